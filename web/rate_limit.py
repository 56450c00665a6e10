"""Counted limits per key over a sliding window (pure, with an injected clock).

The public subscribe form sends mail to whatever address is typed in, so it
is limited per address and per client network: at most ``limit`` accepted
requests for a key in any ``window`` seconds. Like the login back-off
(``web.login_throttle``, whose shape this follows) the counts live in memory
per process: a restart forgives, which is acceptable for an abuse limit
(each request that got through still queued one mail, in the outbox).

``LoginThrottle`` itself does not fit: it slows *failures* down exponentially,
while here every request counts, failed or not, against a fixed number an hour.
"""

from __future__ import annotations

import ipaddress
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping

MAX_KEYS = 10_000


class WindowLimit:
    def __init__(
        self, clock: Callable[[], float], *, window: float = 3600.0, max_keys: int = MAX_KEYS
    ) -> None:
        self._clock = clock
        self.window = window
        self.max_keys = max_keys
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()  # waitress serves requests on several threads

    def take(self, limits: Mapping[str, int]) -> float:
        """Count one request against every key of ``limits`` (key → its limit) if none is
        at its limit: returns 0.0. Else count nothing and return the seconds until the
        fullest key has room again."""
        now = self._clock()
        with self._lock:
            wait = 0.0
            for key, limit in limits.items():
                times = self._recent(key, now)
                if len(times) >= limit:
                    wait = max(wait, times[len(times) - limit] + self.window - now)
            if wait > 0:
                return wait
            if len(self._seen) + len(limits) > self.max_keys:
                self._forget_old(now)
            for key in limits:
                self._seen.setdefault(key, deque()).append(now)
            return 0.0

    def give_back(self, keys: Iterable[str]) -> None:
        """Undo the newest ``take`` of these keys (the request turned out to be refused)."""
        with self._lock:
            for key in keys:
                times = self._seen.get(key)
                if times:
                    times.pop()
                    if not times:
                        del self._seen[key]

    def _recent(self, key: str, now: float) -> deque[float]:
        times = self._seen.get(key, deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def _forget_old(self, now: float) -> None:
        for key in list(self._seen):
            if not self._recent(key, now):
                del self._seen[key]
        if len(self._seen) >= self.max_keys:  # a flood of fresh keys: keep the busiest
            keep = sorted(self._seen.items(), key=lambda kv: len(kv[1]))[self.max_keys // 2 :]
            self._seen = dict(keep)


def network_of(address: str) -> str:
    """The client network a request is counted against: an IPv4 address as it is, an
    IPv6 address by its /64 (one host gets a whole /64 and can pick any address in it)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{ip}/64", strict=False))
    return str(ip)
