"""Schedules every target's probe on the engine's asyncio loop.

APScheduler runs one *dispatch* job every ``TICK`` seconds; the dispatch
starts the targets whose slot has come, from a heap ordered by slot time.
Measured against one APScheduler job per target (the first design): at
1,000 probe starts per second, APScheduler's per-job bookkeeping (job store
lookup, executor, events) cost ~0.15 ms per run on the main thread — a
sixth of the whole CPU budget per probe — while a heap pop costs microseconds
(bench/sip_probe_throughput, bench/RESULTS.md).

- Spread: each target's slots are offset by a stable, hash-derived fraction of
  its interval (``slot_offset``), so 10,000 targets at 10 s start evenly,
  ~1,000 per second, and the same target keeps the same slot across restarts
  and reloads. This is our jitter: deterministic, so lateness is measurable.
- No overlap: a target whose previous run is still going when its slot comes
  skips that slot (counted as *missed*), never runs twice at once.
- Coalescing: after a stall (a suspended VM, a blocked loop) the missed slots
  of a target collapse into one run; the skipped ones count as missed.
- Lateness: each run's delay against its slot is recorded; the appliance
  self-check reads ``lag_p95`` and ``late``/``missed``.

Time comes from a ``core.clock.Clock``. Without one (production) it is the
system clock and APScheduler ticks the dispatch; given one (a test's
``ManualClock``), the dispatch ticks on that clock's ``sleep`` at the same
fixed rate, so a test moves slots, lateness and missed runs by moving the clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.schedulers.base import STATE_RUNNING
from apscheduler.triggers.interval import IntervalTrigger

from core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

LATE_AFTER = 1.0
"""A run that starts more than this many seconds after its slot counts as late."""
TICK = 0.05
"""Seconds between dispatches: the scheduling granularity (well under LATE_AFTER)."""

# APScheduler logs every job start at INFO: at 20 dispatches/s that is noise.
logging.getLogger("apscheduler").setLevel(logging.ERROR)


def slot_offset(target_id: str, interval: float) -> float:
    """Stable offset in [0, interval) for a target's slots."""
    return (zlib.crc32(target_id.encode()) / 2**32) * interval


@dataclass
class _Slot:
    interval: float
    next_at: float  # epoch seconds of the next slot
    generation: int  # heap entries of an older generation are stale (rescheduled, removed)
    running: bool = False


class ProbeScheduler:
    """Calls ``fire(target_id)`` at each target's slots, one run per target at a time."""

    def __init__(
        self,
        fire: Callable[[str], Awaitable[None]],
        window: float = 60.0,
        clock: Clock | None = None,
    ) -> None:
        self._fire = fire
        self._clock = clock or SYSTEM_CLOCK
        # APScheduler reads the system clock itself: it ticks only when no clock is given.
        self._scheduler = AsyncIOScheduler(timezone=UTC) if clock is None else None
        self._ticker: asyncio.Task[None] | None = None
        self._slots: dict[str, _Slot] = {}
        self._heap: list[tuple[float, int, str, int]] = []  # (at, seq, target, generation)
        self._seq = itertools.count()
        self._generation = itertools.count()
        self._soon: list[str] = []
        self._window = window
        self._lags: deque[tuple[float, float]] = deque()
        self.runs = 0
        self.late = 0
        self.missed = 0

    # -- lifecycle -----------------------------------------------------
    def start(self) -> None:
        """Start on the running asyncio loop (call from inside it)."""
        if self._scheduler is None:
            self._ticker = asyncio.get_running_loop().create_task(
                self._tick_on_clock(), name="dispatch"
            )
            return
        self._scheduler.add_job(
            self._dispatch,
            IntervalTrigger(seconds=TICK),
            id="dispatch",
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
        )
        self._scheduler.start()

    def shutdown(self) -> None:
        """Stop dispatching. Runs already started are the engine's to drain.

        Paused first: APScheduler shuts down on the loop's next turn, and a
        dispatch it started in between was cancelled before it ran and logged
        as a job error with a ``CancelledError`` traceback (now and then on
        SIGTERM). Paused, it starts none; one it started before runs first.
        """
        if self._ticker is not None:
            self._ticker.cancel()
            self._ticker = None
        if self._scheduler is not None and self._scheduler.state == STATE_RUNNING:
            self._scheduler.pause()
            self._scheduler.shutdown(wait=False)

    async def _tick_on_clock(self) -> None:
        """The dispatch every TICK of the injected clock, as APScheduler's job runs it:
        at a fixed rate from the start, ticks lost to a stall coalesced into one."""
        clock = self._clock
        started = clock.monotonic()
        tick = 1
        while True:
            await clock.sleep(started + tick * TICK - clock.monotonic())
            try:
                await self._dispatch()
            except Exception:  # as APScheduler does: log it, keep ticking
                log.exception("dispatch failed")
            tick = max(tick + 1, math.floor((clock.monotonic() - started) / TICK) + 1)

    # -- targets -------------------------------------------------------
    def upsert(self, target_id: str, interval: float) -> None:
        """Add a target, or move it to new slots when its interval changed."""
        slot = self._slots.get(target_id)
        if slot is not None and slot.interval == interval:
            return
        now = self._clock.time()
        # Anchor slots on a multiple of the interval so they are stable over restarts.
        first = math.floor(now / interval) * interval + slot_offset(target_id, interval)
        if first <= now:
            first += interval
        generation = next(self._generation)
        running = slot.running if slot is not None else False
        self._slots[target_id] = _Slot(interval, first, generation, running)
        heapq.heappush(self._heap, (first, next(self._seq), target_id, generation))

    def remove(self, target_id: str) -> None:
        self._slots.pop(target_id, None)  # its heap entries go stale

    def run_soon(self, target_id: str) -> None:
        """Probe a target at the next dispatch, outside its slots (e.g. right after it was added)."""
        if target_id in self._slots:
            self._soon.append(target_id)

    def target_ids(self) -> set[str]:
        return set(self._slots)

    # -- dispatch ------------------------------------------------------
    async def _dispatch(self) -> None:
        now = self._clock.time()
        soon, self._soon = self._soon, []
        for target_id in soon:
            slot = self._slots.get(target_id)
            if slot is not None and not slot.running:
                self._start(target_id, slot)
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, _, target_id, generation = heapq.heappop(heap)
            slot = self._slots.get(target_id)
            if slot is None or slot.generation != generation:
                continue  # removed or rescheduled
            lag = now - at
            skipped = int(lag // slot.interval)  # whole slots lost to a stall: coalesced
            slot.next_at = at + (skipped + 1) * slot.interval
            heapq.heappush(heap, (slot.next_at, next(self._seq), target_id, generation))
            self.missed += skipped
            if slot.running:
                self.missed += 1  # no overlap: this slot is skipped
                continue
            lag -= skipped * slot.interval
            self._record(now, lag)
            self._start(target_id, slot)

    def _start(self, target_id: str, slot: _Slot) -> None:
        slot.running = True
        task = asyncio.get_running_loop().create_task(self._fire(target_id))
        task.add_done_callback(lambda _t: self._finished(target_id))

    def _finished(self, target_id: str) -> None:
        # Looked up again: an upsert during the run replaced the slot object.
        slot = self._slots.get(target_id)
        if slot is not None:
            slot.running = False

    def _record(self, now: float, lag: float) -> None:
        self.runs += 1
        if lag > LATE_AFTER:
            self.late += 1
        self._lags.append((now, lag))
        cutoff = now - self._window
        while self._lags and self._lags[0][0] < cutoff:
            self._lags.popleft()

    def lag_p95(self) -> float:
        """95th percentile of start lag (seconds) over the last window."""
        if not self._lags:
            return 0.0
        lags = sorted(lag for _, lag in self._lags)
        return lags[min(len(lags) - 1, int(len(lags) * 0.95))]
