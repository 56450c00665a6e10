"""The probe runner: crashes become error observations, timeouts fail, lanes protect live targets."""

from __future__ import annotations

import asyncio

from core.observation import ErrorClass, Observation, Status
from monitor.runner import ProbeRunner
from probes.base import ProbeContext


def ctx(timeout: float = 1.0, target_id: str = "t") -> ProbeContext:
    return ProbeContext(target_id=target_id, timeout=timeout)


async def crashing(target: object, ctx: ProbeContext) -> Observation:
    raise RuntimeError("socket exploded")


async def sleeping(target: object, ctx: ProbeContext) -> Observation:
    await asyncio.sleep(60)
    return Observation.ok()


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
    runner = ProbeRunner(concurrency=4)
    obs = asyncio.run(runner.run(sleeping, None, ctx(timeout=0.1)))
    assert obs.status is Status.FAIL
    assert obs.error_class is ErrorClass.TIMEOUT
    assert "0.1s" in obs.detail
    assert runner.stats.timed_out == 1 and runner.stats.in_flight == 0


def test_a_probe_returning_garbage_is_an_error_not_a_crash_of_the_engine() -> None:
    obs = asyncio.run(ProbeRunner().run(not_an_observation, None, ctx()))
    assert obs.status is Status.ERROR
    assert "not an Observation" in obs.detail


def test_suspect_targets_timing_out_do_not_starve_live_targets() -> None:
    async def scenario() -> tuple[float, int]:
        runner = ProbeRunner(concurrency=8, suspect_share=0.5)
        loop = asyncio.get_running_loop()
        dead = [
            asyncio.create_task(
                runner.run(sleeping, None, ctx(timeout=0.5, target_id=f"dead-{i}"), suspect=True)
            )
            for i in range(200)
        ]
        await asyncio.sleep(0.01)
        started = loop.time()
        live = await asyncio.gather(
            *(runner.run(quick, None, ctx(target_id=f"live-{i}")) for i in range(50))
        )
        elapsed = loop.time() - started
        for task in dead:
            task.cancel()
        await asyncio.gather(*dead, return_exceptions=True)
        return elapsed, sum(o.status is Status.OK for o in live)

    elapsed, ok = asyncio.run(scenario())
    assert ok == 50
    # With one shared semaphore the live probes would wait for 200/8 × 1 s of dead timeouts.
    assert elapsed < 0.4


def test_cancelled_waiters_do_not_leave_the_queue_counter_wrong() -> None:
    async def scenario() -> ProbeRunner:
        runner = ProbeRunner(concurrency=1)
        tasks = [asyncio.create_task(runner.run(sleeping, None, ctx(timeout=5))) for _ in range(5)]
        await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return runner

    runner = asyncio.run(scenario())
    assert runner.stats.queued == 0 and runner.stats.in_flight == 0
