"""Time as an object: what reads the time, sleeps or times out does it through a Clock.

``SYSTEM_CLOCK`` is what runs in production: its methods *are* ``time.time``,
``time.monotonic``, ``asyncio.sleep`` and ``asyncio.timeout`` (bound as static
methods, so a call costs what the bare function costs on the hot path).

``ManualClock`` is for tests: time stands still until the test moves it with
``advance``, which wakes the sleepers and expires the timeouts whose time has
come, in time order. A scenario that spans minutes of slots, timeouts and
periodic jobs then runs in milliseconds, and the same way on an idle laptop
and on a loaded CI machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import time as _time  # the class body below rebinds ``time``
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol


class Clock(Protocol):
    """Wall time, monotonic time, sleeping and timeouts — from one source."""

    def time(self) -> float:
        """Epoch seconds (timestamps that people and the DB read)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary start, never going back (durations, rates)."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Return after ``seconds`` of this clock's time."""
        ...

    def timeout(self, seconds: float) -> AbstractAsyncContextManager[object]:
        """``async with clock.timeout(s):`` cancels the block after ``s`` seconds of this
        clock's time and raises ``TimeoutError``, like ``asyncio.timeout``."""
        ...


class SystemClock:
    """The real clock: the standard functions themselves, nothing in between."""

    time = staticmethod(_time.time)
    monotonic = staticmethod(_time.monotonic)
    sleep = staticmethod(asyncio.sleep)
    timeout = staticmethod(asyncio.timeout)


SYSTEM_CLOCK: Clock = SystemClock()

ROUNDS_PER_WAKEUP = 20
"""Loop rounds a woken task gets before the next wakeup (``ManualClock.advance``).

One round takes a task from its wakeup to its next ``await``; work that hands
over to other tasks of the loop (a dispatch starting probe tasks, a timeout
cancelling its task) needs a few. Work waiting on real I/O or a thread is not
waited for: a test that drives such work waits for it itself (e.g.
``Engine.settle``)."""


@dataclass(order=True)
class _Wakeup:
    at: float
    seq: int
    action: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)


class ManualClock:
    """A clock that moves only when a test moves it.

    ``start`` is the wall time (``time()``) at the beginning; ``monotonic()``
    starts at 0. Sleepers and timeouts wait in a heap ordered by due time (ties
    in the order they were registered).
    """

    def __init__(self, start: float = 0.0) -> None:
        self._start = start
        self._now = 0.0
        self._wakeups: list[_Wakeup] = []
        self._seq = itertools.count()

    # -- reading ---------------------------------------------------------
    def time(self) -> float:
        return self._start + self._now

    def monotonic(self) -> float:
        return self._now

    # -- waiting ---------------------------------------------------------
    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)  # like asyncio.sleep(0): give the loop a round
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def wake() -> None:
            if not future.done():  # a cancelled sleeper stays in the heap until its time
                future.set_result(None)

        self._schedule(seconds, wake)
        await future

    @contextlib.asynccontextmanager
    async def timeout(self, seconds: float) -> AsyncIterator[asyncio.Timeout]:
        # asyncio's own Timeout does the cancelling and the TimeoutError; only
        # *when* it fires comes from this clock.
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(None) as cm:
            wakeup = self._schedule(seconds, lambda: cm.reschedule(loop.time()))
            try:
                yield cm
            finally:
                wakeup.cancelled = True

    def _schedule(self, seconds: float, action: Callable[[], None]) -> _Wakeup:
        wakeup = _Wakeup(self._now + max(0.0, seconds), next(self._seq), action)
        heapq.heappush(self._wakeups, wakeup)
        return wakeup

    # -- moving ----------------------------------------------------------
    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``: each sleeper and timeout due on the way
        wakes at its own due time, in order, and its task runs (``ROUNDS_PER_WAKEUP``)
        before the next one wakes — so a task that sleeps again within the span
        wakes again within it, as it would in real time. Tasks already created or
        woken get their rounds first, so what they start to wait for counts."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, not by {seconds:g}s")
        await _rounds(ROUNDS_PER_WAKEUP)
        until = self._now + seconds
        while self._wakeups and self._wakeups[0].at <= until:
            wakeup = heapq.heappop(self._wakeups)
            if wakeup.cancelled:
                continue
            self._now = max(self._now, wakeup.at)
            wakeup.action()
            await _rounds(ROUNDS_PER_WAKEUP)
        self._now = until
        await _rounds(1)

    async def stall(self, seconds: float) -> None:
        """``seconds`` pass as if the loop were blocked (a suspended VM, a long GC):
        nothing wakes on the way; then everything overdue wakes, late, in order."""
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, not by {seconds:g}s")
        await _rounds(ROUNDS_PER_WAKEUP)
        self._now += seconds
        await self.advance(0)


async def _rounds(n: int) -> None:
    for _ in range(n):
        await asyncio.sleep(0)
