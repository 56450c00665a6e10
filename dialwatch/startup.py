"""What the appliance says when it starts: what it loaded and where it keeps things.

Pure: lines made from the loaded config and the parts built from it, so an
operator reading the log (or a test) sees at once which files were read, what
is watched, where metrics go, which state DB and data directory are in use.
``dialwatch.app`` logs them at INFO before the engine starts; the web logs
where it listens once its socket is bound.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.engine import URL

from monitor.config import LoadedConfig


def config_line(config_path: str, loaded: LoadedConfig) -> str:
    """``config: site.yaml``, or a directory with the files read from it."""
    path = Path(config_path)
    if not path.is_dir():
        return f"config: {path}"
    names = ", ".join(f.name if f.parent == path else str(f) for f in loaded.files)
    count = len(loaded.files)
    return f"config: {path}/ ({count} file{'' if count == 1 else 's'}: {names or 'none'})"


def targets_line(loaded: LoadedConfig) -> str:
    """``targets: 3 (2 tcp, 1 server)``, most common kind first, and what is left out."""
    targets = loaded.config.targets
    enabled = [t for t in targets if t.enabled]
    kinds = Counter(t.kind for t in enabled)
    text = f"targets: {len(enabled)}"
    if kinds:
        text += " (" + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()) + ")"
    if len(enabled) < len(targets):
        text += f", {len(targets) - len(enabled)} disabled"
    if "appliance" not in kinds:
        text += ", plus the built-in appliance self-check"
    return text


def sinks_line(described: Sequence[str]) -> str:
    return "metric sinks: " + "; ".join(described)


def state_db_line(url: URL) -> str:
    """The state DB: its file for SQLite, its URL without the password otherwise."""
    if url.get_backend_name() == "sqlite" and url.database:
        return f"state DB: {url.database} (SQLite)"
    return f"state DB: {url.render_as_string(hide_password=True)}"


def data_line(data_dir: Path, log_file: Path | None) -> str:
    return f"data directory: {data_dir}" + (f"; log file {log_file}" if log_file else "")


def setup_line(base_url: str, code: str, path: Path, config_path: str, data_dir: Path) -> str:
    """The first-start line: where to create the first admin, the code it needs, and the
    CLI command that does the same (with this appliance's own --config and --data)."""
    command = f"dialwatch user add NAME --role admin --config {shlex.quote(config_path)}"
    command += f" --data {shlex.quote(str(data_dir))}"
    return (
        f"no staff user yet: open {base_url}/setup and enter the setup code {code} "
        f"to create the first admin (the code is also in {path}; or run `{command}`)"
    )
