"""The probe runner: crashes become error observations, timeouts fail, lanes protect live targets.

Hung probes wait on a ManualClock, which is also the runner's clock: the test
moves time to expire them, so nothing here waits in real time.
"""

from __future__ import annotations

import asyncio

from core.clock import ManualClock
from core.observation import ErrorClass, Observation, Status
from monitor.runner import TIMEOUT_GRACE, ProbeRunner
from probes.base import Check, ProbeContext


def ctx(timeout: float = 1.0, target_id: str = "t") -> ProbeContext:
    return ProbeContext(target_id=target_id, timeout=timeout)


async def crashing(target: object, ctx: ProbeContext) -> Observation:
    raise RuntimeError("socket exploded")


def sleeping(clock: ManualClock) -> Check:
    """A probe that hangs for a minute of ``clock``'s time."""

    async def check(target: object, ctx: ProbeContext) -> Observation:
        await clock.sleep(60)
        return Observation.ok()

    return check


async def quick(target: object, ctx: ProbeContext) -> Observation:
    return Observation.ok("fine")


async def not_an_observation(target: object, ctx: ProbeContext) -> Observation:
    return "ok"  # type: ignore[return-value]


def test_a_crashing_probe_becomes_an_error_observation_with_the_exception_text() -> None:
    runner = ProbeRunner(concurrency=4)
    obs = asyncio.run(runner.run(crashing, None, ctx()))
    assert obs.status is Status.ERROR
    assert obs.error_class is ErrorClass.CRASH
    assert "RuntimeError: socket exploded" in obs.detail
    assert runner.stats.errored == 1 and runner.stats.finished == 1


def test_a_probe_overrunning_its_timeout_is_cancelled_and_fails_as_timeout() -> None:
    clock = ManualClock()
    runner = ProbeRunner(concurrency=4, clock=clock)

    async def scenario() -> tuple[bool, Observation]:
        run = asyncio.create_task(runner.run(sleeping(clock), None, ctx(timeout=0.1)))
        await clock.advance(0.1)
        within_grace = not run.done()  # the probe gets a grace to report its own timeout
        await clock.advance(TIMEOUT_GRACE)
        return within_grace, await run

    within_grace, obs = asyncio.run(scenario())
    assert within_grace
    assert obs.status is Status.FAIL
    assert obs.error_class is ErrorClass.TIMEOUT
    assert "0.1s" in obs.detail
    assert obs.latency == 0.1 + TIMEOUT_GRACE
    assert runner.stats.timed_out == 1 and runner.stats.in_flight == 0


def test_a_probe_returning_garbage_is_an_error_not_a_crash_of_the_engine() -> None:
    obs = asyncio.run(ProbeRunner().run(not_an_observation, None, ctx()))
    assert obs.status is Status.ERROR
    assert "not an Observation" in obs.detail


def test_suspect_targets_timing_out_do_not_starve_live_targets() -> None:
    clock = ManualClock()

    async def scenario() -> tuple[float, int]:
        runner = ProbeRunner(concurrency=8, suspect_share=0.5, clock=clock)
        dead = [
            asyncio.create_task(
                runner.run(
                    sleeping(clock), None, ctx(timeout=0.5, target_id=f"dead-{i}"), suspect=True
                )
            )
            for i in range(200)
        ]
        await clock.advance(0)  # the dead probes take their lane and hang
        live = [
            asyncio.create_task(runner.run(quick, None, ctx(target_id=f"live-{i}")))
            for i in range(50)
        ]
        # Hang guard only (real seconds): with one shared semaphore the live probes
        # would queue behind 200 dead ones whose timeouts never come (the clock stands still).
        await asyncio.wait(live, timeout=30)
        waited = clock.monotonic()
        for task in dead:
            task.cancel()
        await asyncio.gather(*dead, return_exceptions=True)
        return waited, sum(t.done() and t.result().status is Status.OK for t in live)

    waited, ok = asyncio.run(scenario())
    assert ok == 50
    assert waited == 0.0  # not one dead probe's timeout had to pass first


def test_cancelled_waiters_do_not_leave_the_queue_counter_wrong() -> None:
    clock = ManualClock()

    async def scenario() -> ProbeRunner:
        runner = ProbeRunner(concurrency=1, clock=clock)
        tasks = [
            asyncio.create_task(runner.run(sleeping(clock), None, ctx(timeout=5))) for _ in range(5)
        ]
        await clock.advance(0)  # one runs, four wait for the slot
        assert (runner.stats.in_flight, runner.stats.queued) == (1, 4)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return runner

    runner = asyncio.run(scenario())
    assert runner.stats.queued == 0 and runner.stats.in_flight == 0
