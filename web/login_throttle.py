"""Login back-off per user name and per client address (pure, with an injected clock).

After ``free`` failures in a row a key must wait before its next try, the
wait doubling with each further failure up to ``max_wait``; a success
clears the user's key. Both keys are checked, so guessing one user's
password from many addresses and many users' passwords from one address
are both slowed. Kept in memory: a restart forgives, which is acceptable
for a slowdown (the audit log keeps every failure).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_KEYS = 10_000


@dataclass
class _Record:
    failures: int
    last: float


class LoginThrottle:
    def __init__(
        self,
        clock: Callable[[], float],
        *,
        free: int = 5,
        first_wait: float = 2.0,
        max_wait: float = 900.0,
        forget_after: float = 3600.0,
    ) -> None:
        self._clock = clock
        self.free = free
        self.first_wait = first_wait
        self.max_wait = max_wait
        self.forget_after = forget_after
        self._records: dict[str, _Record] = {}

    def _wait_of(self, key: str, now: float) -> float:
        record = self._records.get(key)
        if record is None:
            return 0.0
        if now - record.last >= self.forget_after:
            del self._records[key]
            return 0.0
        over = record.failures - self.free
        if over < 0:
            return 0.0
        wait = min(self.first_wait * (2**over), self.max_wait)
        return max(0.0, record.last + wait - now)

    def wait(self, *keys: str) -> float:
        """Seconds before these keys may try again (0: now)."""
        now = self._clock()
        return max((self._wait_of(k, now) for k in keys), default=0.0)

    def failed(self, *keys: str) -> None:
        now = self._clock()
        if len(self._records) >= MAX_KEYS:
            self._forget_old(now)
        for key in keys:
            record = self._records.get(key)
            if record is None or now - record.last >= self.forget_after:
                self._records[key] = _Record(1, now)
            else:
                record.failures += 1
                record.last = now

    def succeeded(self, key: str) -> None:
        self._records.pop(key, None)

    def _forget_old(self, now: float) -> None:
        for key in [k for k, r in self._records.items() if now - r.last >= self.forget_after]:
            del self._records[key]
        if len(self._records) >= MAX_KEYS:  # a flood of fresh keys: keep the worst offenders
            keep = sorted(self._records.items(), key=lambda kv: kv[1].failures)[MAX_KEYS // 2 :]
            self._records = dict(keep)
