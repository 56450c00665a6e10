"""Config errors: where a problem is (file, line, dotted key path) and how it is printed.

Every problem is one line, ``FILE:LINE: PATH: MESSAGE``, e.g.
``config/site.yaml:14: targets[2].interval: must be a duration like 10s``.
The loader gathers all of them and raises one ``ConfigError``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PathPart = str | int
KeyPath = tuple[PathPart, ...]

_IDENTIFIER_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def format_path(path: Sequence[PathPart]) -> str:
    """``('targets', 2, 'interval')`` → ``targets[2].interval``; odd keys are quoted: ``tags["a.b"]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER_RE.match(part):
            out += f".{part}" if out else part
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
    return out or "(top level)"


@dataclass(frozen=True, order=True)
class Location:
    """A place in a config file; ``line`` is 1-based."""

    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Problem:
    """One config error. ``path`` is None for problems not tied to a key (bad YAML)."""

    location: Location | None
    path: KeyPath | None
    message: str
    file: Path | None = None
    """The file, when there is no line (an unreadable file)."""

    def sort_key(self) -> tuple[str, int]:
        # File and line only: problems on one line keep the order they were
        # found in (depends_on[0] before depends_on[1]).
        if self.location is not None:
            return (str(self.location.file), self.location.line)
        return (str(self.file or ""), 0)

    def render(self) -> str:
        where = str(self.location) if self.location else str(self.file or "config")
        # One problem, one line: a message never spans lines.
        message = " ".join(self.message.split())
        if self.path is None:
            return f"{where}: {message}"
        return f"{where}: {format_path(self.path)}: {message}"


class ConfigError(Exception):
    """A configuration that cannot be used; ``errors`` holds every problem found, one line each."""

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors: list[str] = list(errors)
        super().__init__(
            f"{len(self.errors)} config error(s):\n" + "\n".join(self.errors)
            if len(self.errors) != 1
            else self.errors[0]
        )


def render_all(problems: Iterable[Problem], scrub: Iterable[str] = ()) -> list[str]:
    """Sorted, de-duplicated error lines, with any secret value in ``scrub`` replaced by ``***``.

    Messages are written not to echo values from ``${...}``; the scrub is the
    safety net for messages from validators we do not control.
    """
    # Very short values are left alone: scrubbing "10s" or "udp" would garble
    # the hints ("must be a duration like ***"), and no message echoes inputs anyway.
    secrets = sorted({s for s in scrub if len(s) >= 4}, key=len, reverse=True)
    lines: list[str] = []
    seen: set[str] = set()
    for problem in sorted(problems, key=Problem.sort_key):
        line = problem.render()
        for secret in secrets:
            line = line.replace(secret, "***")
        if line not in seen:
            seen.add(line)
            lines.append(line)
    return lines
