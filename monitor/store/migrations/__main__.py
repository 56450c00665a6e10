"""Developer helper: autogenerate a new migration revision from the models.

Usage: ``python -m monitor.store.migrations revision "what changed"``. It
migrates a scratch SQLite database to head, compares it with
``monitor/store/models.py`` and writes ``versions/NNNN_what_changed.py``.
"""

from __future__ import annotations

import re
import sys
import tempfile
from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory

from monitor.store.db import alembic_config, open_database


def next_revision_id() -> str:
    """Revisions are numbered 0001, 0002... so the versions folder reads in order.

    A revision id may carry a name after its number (``0003_retention``).
    """
    script = ScriptDirectory.from_config(alembic_config())
    numbers = [
        int(m.group()) for s in script.walk_revisions() if (m := re.match(r"\d+", s.revision))
    ]
    return f"{max(numbers, default=0) + 1:04d}"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "revision":
        print(__doc__, file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as scratch:
        engine = open_database(None, Path(scratch))
        try:
            with engine.connect() as conn, conn.begin():
                command.revision(
                    alembic_config(conn),
                    message=argv[1],
                    autogenerate=True,
                    rev_id=next_revision_id(),
                )
        finally:
            engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
