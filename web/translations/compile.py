"""Compile every ``<lang>/LC_MESSAGES/messages.po`` here into the ``.mo`` the app loads.

Run after editing a catalog: ``.venv/bin/python web/translations/compile.py``.
The ``.mo`` files are committed so an install needs no build step. To pick up
new strings first (see docs/web.md)::

    .venv/bin/pybabel extract -F web/translations/babel.cfg -k _l -k lazy_gettext \\
        --no-location --sort-output -o web/translations/messages.pot .
    .venv/bin/pybabel update -i web/translations/messages.pot -d web/translations \\
        --no-fuzzy-matching --width 100
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

HERE = Path(__file__).resolve().parent


def compile_all(root: Path = HERE) -> list[Path]:
    """Write a ``.mo`` next to every ``.po`` under ``root``; returns the files written."""
    written = []
    for po_path in sorted(root.glob("*/LC_MESSAGES/messages.po")):
        with po_path.open("rb") as f:
            catalog = read_po(f)
        mo_path = po_path.with_suffix(".mo")
        with mo_path.open("wb") as f:
            # fuzzy entries are guesses from `pybabel update`; never ship them
            write_mo(f, catalog, use_fuzzy=False)
        written.append(mo_path)
    return written


if __name__ == "__main__":
    for path in compile_all():
        print(path.relative_to(HERE))
    sys.exit(0)
