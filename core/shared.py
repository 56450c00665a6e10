"""Engine-wide objects shared by probes, steps and channels, closed once on stop."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from typing import Any


class SharedResources:
    """Engine-wide objects probes share (one UDP socket for all SIP targets,
    an SSH connection per host...). Created lazily, closed once on engine stop."""

    def __init__(self) -> None:
        self._items: dict[str, Any] = {}
        self._closers: list[Callable[[], Awaitable[None] | None]] = []

    def get(self, key: str) -> Any | None:
        return self._items.get(key)

    def set(
        self, key: str, value: Any, close: Callable[[], Awaitable[None] | None] | None = None
    ) -> None:
        self._items[key] = value
        if close is not None:
            self._closers.append(close)

    async def aclose(self) -> None:
        closers, self._closers = self._closers[::-1], []
        self._items.clear()
        for close in closers:
            with contextlib.suppress(Exception):
                result = close()
                if result is not None:
                    await result
