"""The one-time setup code that claims a new appliance (the Jenkins pattern).

While no staff user exists, the console shows a setup page that creates the
first admin — and asks for this code, printed to the appliance's log at
start and kept in ``<data>/setup-code`` (0600), so only someone who can read
the box's log or disk can claim it, not whoever reaches the port first.
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def _fold(code: str) -> str:
    return "".join(ch for ch in code.upper() if ch.isalnum())


class SetupCode:
    """The code in ``path``; ``ensure`` makes one, ``consume`` removes it once used."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def ensure(self) -> str:
        """The current code, made (and written 0600) when there is none."""
        current = self.current()
        if current is not None:
            return current
        raw = "".join(secrets.choice(_ALPHABET) for _ in range(16))
        code = "-".join(raw[i : i + 4] for i in range(0, 16, 4))
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(code + "\n")
        return code

    def current(self) -> str | None:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        return text or None

    def matches(self, given: str) -> bool:
        current = self.current()
        if current is None or not isinstance(given, str):
            return False
        return hmac.compare_digest(_fold(current).encode(), _fold(given).encode())

    def consume(self) -> None:
        self.path.unlink(missing_ok=True)
