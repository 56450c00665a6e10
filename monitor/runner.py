"""Runs one probe with the global concurrency cap and a hard timeout.

Two lanes share the cap. A target whose last run failed or timed out runs in
the *suspect* lane, everything else in the *live* lane. When a carrier's
whole gateway range goes dark, thousands of suspect probes each hold a slot
for their full timeout; with a single semaphore they would queue the live
targets behind them and make healthy trunks late. With lanes, dead targets
can only use their own share, so live targets keep their slots.

The runner — not each probe — turns an exception into an ``error``
observation with the exception text, and a probe overrunning its timeout
into a ``fail`` with ErrorClass.TIMEOUT. Nothing a probe does can stop the
engine. A crash is also reported to ``faults`` (``monitor.faults``: merged
exception entries of the audit log) as ``probe:<kind>``.

The hard timeout and the latency of the runner's own observations come from
the injected clock (``core.clock``): a test with a ``ManualClock`` expires a
hung probe by moving the clock. A probe's I/O keeps its own, real timeouts.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from dataclasses import dataclass, field

from core.clock import SYSTEM_CLOCK, Clock
from core.observation import ErrorClass, Observation, Status
from monitor.faults import NO_FAULTS, Faults
from probes.base import Check, ProbeContext

log = logging.getLogger(__name__)

# A probe gets its own timeout plus this grace to clean up and report its own
# (more precise) timeout message before the runner cancels it.
TIMEOUT_GRACE = 0.5


@dataclass
class RunnerStats:
    """Counters the appliance self-check reads (monotonic totals)."""

    started: int = 0
    finished: int = 0
    failed: int = 0
    errored: int = 0
    timed_out: int = 0
    in_flight: int = 0
    queued: int = 0
    by_status: dict[str, int] = field(default_factory=dict)


class ProbeRunner:
    """Bounded, timeout-enforcing executor for probe checks on one asyncio loop."""

    def __init__(
        self,
        concurrency: int = 512,
        suspect_share: float = 0.5,
        clock: Clock = SYSTEM_CLOCK,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.concurrency = concurrency
        self._clock = clock
        self._faults = faults
        self._live = asyncio.Semaphore(concurrency)
        self._suspect = asyncio.Semaphore(max(1, int(concurrency * suspect_share)))
        self.stats = RunnerStats()

    async def run(
        self, check: Check, target: object, ctx: ProbeContext, suspect: bool = False
    ) -> Observation:
        lane = self._suspect if suspect else self._live
        self.stats.queued += 1
        acquired = False
        try:
            async with lane:
                acquired = True
                self.stats.queued -= 1
                self.stats.in_flight += 1
                self.stats.started += 1
                try:
                    obs = await self._run_one(check, target, ctx)
                finally:
                    self.stats.in_flight -= 1
        finally:
            if not acquired:  # cancelled while waiting for a slot (engine stopping)
                self.stats.queued -= 1
        self.stats.finished += 1
        self.stats.by_status[obs.status.value] = self.stats.by_status.get(obs.status.value, 0) + 1
        if obs.status is Status.FAIL:
            self.stats.failed += 1
        elif obs.status is Status.ERROR:
            self.stats.errored += 1
        return obs

    async def _run_one(self, check: Check, target: object, ctx: ProbeContext) -> Observation:
        clock = self._clock
        started = clock.monotonic()
        try:
            # asyncio.timeout (the system clock's), not wait_for: no extra task
            # per probe (measurable at 1,000/s)
            async with clock.timeout(ctx.timeout + TIMEOUT_GRACE):
                obs = await check(target, ctx)
        except TimeoutError:
            self.stats.timed_out += 1
            return Observation(
                Status.FAIL,
                f"probe did not finish within its timeout of {ctx.timeout:g}s",
                latency=clock.monotonic() - started,
                error_class=ErrorClass.TIMEOUT,
                time=clock.time(),
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning(
                "probe for %s crashed: %s\n%s",
                ctx.target_id,
                exc,
                "".join(traceback.format_exception(exc, limit=-3)),
            )
            self._faults.report(_source(target), exc, object=ctx.target_id)
            return Observation(
                Status.ERROR,
                f"probe crashed: {type(exc).__name__}: {exc}",
                latency=clock.monotonic() - started,
                error_class=ErrorClass.CRASH,
                time=clock.time(),
            )
        if not isinstance(obs, Observation):
            self._faults.report(
                _source(target),
                f"probe returned {type(obs).__name__}, not an Observation",
                object=ctx.target_id,
                error_class="TypeError",
            )
            return Observation(
                Status.ERROR,
                f"probe returned {type(obs).__name__}, not an Observation",
                error_class=ErrorClass.CRASH,
                time=clock.time(),
            )
        return obs


def _source(target: object) -> str:
    """``probe:<kind>``: a probe kind's crashes merge across its targets."""
    return f"probe:{getattr(target, 'kind', 'unknown')}"
