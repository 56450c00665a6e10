"""The clock: the system one is the standard functions; the manual one moves when told."""

from __future__ import annotations

import asyncio
import time

import pytest

from core.clock import SYSTEM_CLOCK, ManualClock


def test_the_system_clock_is_the_standard_functions_themselves() -> None:
    assert SYSTEM_CLOCK.time is time.time
    assert SYSTEM_CLOCK.monotonic is time.monotonic
    assert SYSTEM_CLOCK.sleep is asyncio.sleep
    assert SYSTEM_CLOCK.timeout is asyncio.timeout


def test_a_manual_clock_stands_still_until_advanced() -> None:
    clock = ManualClock(start=1_000.0)
    assert (clock.time(), clock.monotonic()) == (1_000.0, 0.0)
    asyncio.run(clock.advance(2.5))
    assert (clock.time(), clock.monotonic()) == (1_002.5, 2.5)


def test_sleepers_wake_in_the_order_of_their_due_time_each_at_its_own_time() -> None:
    async def scenario() -> list[tuple[str, float]]:
        clock = ManualClock()
        woke: list[tuple[str, float]] = []

        async def sleeper(name: str, seconds: float) -> None:
            await clock.sleep(seconds)
            woke.append((name, clock.monotonic()))

        tasks = [
            asyncio.create_task(sleeper(name, s))
            for name, s in (("c", 3.0), ("a", 1.0), ("b", 2.0), ("b2", 2.0), ("late", 9.0))
        ]
        await clock.advance(1.5)
        assert woke == [("a", 1.0)]
        await clock.advance(1.5)
        for task in tasks:
            task.cancel()
        return woke

    assert asyncio.run(scenario()) == [("a", 1.0), ("b", 2.0), ("b2", 2.0), ("c", 3.0)]


def test_a_task_that_sleeps_again_within_an_advance_wakes_again_within_it() -> None:
    async def scenario() -> list[float]:
        clock = ManualClock()
        ticks: list[float] = []

        async def every_second() -> None:
            while True:
                await clock.sleep(1.0)
                ticks.append(clock.monotonic())

        task = asyncio.create_task(every_second())
        await clock.advance(3.5)
        task.cancel()
        return ticks

    assert asyncio.run(scenario()) == [1.0, 2.0, 3.0]


def test_a_stall_wakes_nothing_on_the_way_then_every_overdue_sleeper_once_late() -> None:
    async def scenario() -> list[float]:
        clock = ManualClock()
        ticks: list[float] = []

        async def every_second() -> None:
            while True:
                await clock.sleep(1.0)
                ticks.append(clock.monotonic())

        task = asyncio.create_task(every_second())
        await clock.stall(3.5)
        await clock.advance(1.0)
        task.cancel()
        return ticks

    assert asyncio.run(scenario()) == [3.5, 4.5]


def test_a_timeout_on_a_manual_clock_expires_when_the_clock_passes_it() -> None:
    async def scenario() -> tuple[bool, float]:
        clock = ManualClock()

        async def hung() -> None:
            async with clock.timeout(2.0):
                await asyncio.Event().wait()  # never set: only the timeout ends this

        task = asyncio.create_task(hung())
        await clock.advance(1.9)
        still_waiting = not task.done()
        await clock.advance(0.1)
        with pytest.raises(TimeoutError):
            await task
        return still_waiting, clock.monotonic()

    assert asyncio.run(scenario()) == (True, 2.0)


def test_a_block_that_finishes_in_time_is_not_cancelled_when_its_timeout_comes() -> None:
    async def scenario() -> list[str]:
        clock = ManualClock()
        finished: list[str] = []

        async def block() -> None:
            async with clock.timeout(1.0):
                await clock.sleep(0.5)
            finished.append("in time")
            await clock.sleep(5.0)  # still running when the old timeout's time passes
            finished.append("never cancelled")

        task = asyncio.create_task(block())
        await clock.advance(6.0)
        await task
        return finished

    assert asyncio.run(scenario()) == ["in time", "never cancelled"]


def test_a_manual_clock_does_not_move_backwards() -> None:
    clock = ManualClock()
    with pytest.raises(ValueError, match="only moves forward"):
        asyncio.run(clock.advance(-1))
