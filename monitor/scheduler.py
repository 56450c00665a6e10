"""Schedules one APScheduler job per target on the engine's asyncio loop.

- Spread: each target's slots are offset by a stable, hash-derived fraction of
  its interval (``slot_offset``), so 10,000 targets at 10 s start evenly,
  ~1,000 per second, and the same target keeps the same slot across restarts
  and reloads. This is our jitter: deterministic, so lateness is measurable.
- No overlap: ``max_instances=1`` per target; a run still going at its next
  slot makes that slot a *missed* one (counted, not queued).
- Coalescing: after a stall (a suspended VM, a blocked loop) the missed runs
  of a target collapse into one run (``coalesce=True``).
- Lateness: we track each target's expected slot ourselves and record how
  late each run started; the appliance self-check reads ``lag_p95`` and
  ``late_per_second``.
"""

from __future__ import annotations

import logging
import math
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

LATE_AFTER = 1.0
"""A run that starts more than this many seconds after its slot counts as late."""

# APScheduler logs every job start at INFO and every skipped instance at
# WARNING: at 1,000 runs/s that is a log storm. Our own slot tracking counts
# late and missed runs (a skipped or coalesced slot shows up as a lag of whole
# intervals at the next run).
logging.getLogger("apscheduler").setLevel(logging.ERROR)


def slot_offset(target_id: str, interval: float) -> float:
    """Stable offset in [0, interval) for a target's slots."""
    return (zlib.crc32(target_id.encode()) / 2**32) * interval


@dataclass
class _Slot:
    interval: float
    next_at: float  # epoch seconds of the next expected start


class ProbeScheduler:
    """One job per target; calls ``fire(target_id)`` on each slot."""

    def __init__(self, fire: Callable[[str], Awaitable[None]], window: float = 60.0) -> None:
        self._fire = fire
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._slots: dict[str, _Slot] = {}
        self._window = window
        self._lags: deque[tuple[float, float]] = deque()
        self.runs = 0
        self.late = 0
        self.missed = 0

    # -- lifecycle -----------------------------------------------------
    def start(self) -> None:
        """Start on the running asyncio loop (call from inside it)."""
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=False)

    # -- jobs ----------------------------------------------------------
    def upsert(self, target_id: str, interval: float) -> None:
        """Add a target's job, or reschedule it when its interval changed."""
        slot = self._slots.get(target_id)
        if slot is not None and slot.interval == interval:
            return
        now = time.time()
        # Anchor slots on a multiple of the interval so they are stable over restarts.
        anchor = math.floor(now / interval) * interval + slot_offset(target_id, interval)
        if anchor <= now:
            anchor += interval
        self._slots[target_id] = _Slot(interval, anchor)
        self._scheduler.add_job(
            self._run,
            IntervalTrigger(seconds=interval, start_date=datetime.fromtimestamp(anchor, UTC)),
            args=(target_id,),
            id=target_id,
            replace_existing=True,
            max_instances=1,
            coalesce=True,
            misfire_grace_time=max(1, int(interval)),
        )

    def remove(self, target_id: str) -> None:
        if self._slots.pop(target_id, None) is not None and self._scheduler.get_job(target_id):
            self._scheduler.remove_job(target_id)

    def run_soon(self, target_id: str) -> None:
        """Probe a target now, outside its slots (e.g. right after it was added)."""
        job = self._scheduler.get_job(target_id)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def target_ids(self) -> set[str]:
        return set(self._slots)

    # -- lateness ------------------------------------------------------
    async def _run(self, target_id: str) -> None:
        slot = self._slots.get(target_id)
        now = time.time()
        if slot is not None:
            lag = now - slot.next_at
            if lag >= 0:
                skipped = int(lag // slot.interval)
                self.missed += skipped
                lag -= skipped * slot.interval
                slot.next_at += (skipped + 1) * slot.interval
            else:  # a run_soon() or clock step: not a slot run
                lag = 0.0
            self.runs += 1
            if lag > LATE_AFTER:
                self.late += 1
            self._lags.append((now, lag))
            cutoff = now - self._window
            while self._lags and self._lags[0][0] < cutoff:
                self._lags.popleft()
        await self._fire(target_id)

    def lag_p95(self) -> float:
        """95th percentile of start lag (seconds) over the last window."""
        if not self._lags:
            return 0.0
        lags = sorted(lag for _, lag in self._lags)
        return lags[min(len(lags) - 1, int(len(lags) * 0.95))]
