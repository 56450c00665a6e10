"""The probe scheduler: stable spread, no overlap, lateness and missed slots counted.

Slots run on a ManualClock: the test moves time, so counts and lateness are
exact and do not depend on how busy the machine is.
"""

from __future__ import annotations

import asyncio

from core.clock import ManualClock
from monitor.scheduler import TICK, ProbeScheduler, slot_offset

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z: a whole second, so slot phases are exact


def test_slot_offsets_are_stable_and_spread_over_the_interval() -> None:
    offsets = [slot_offset(f"trunk-{i}", 10.0) for i in range(10_000)]
    assert offsets == [slot_offset(f"trunk-{i}", 10.0) for i in range(10_000)]
    assert all(0 <= o < 10.0 for o in offsets)
    per_second = [0] * 10
    for o in offsets:
        per_second[int(o)] += 1
    # ~1,000 starts in every second of the cycle, none crowded
    assert min(per_second) > 900 and max(per_second) < 1100


def test_each_target_fires_once_per_interval_within_a_tick_of_its_slot() -> None:
    clock = ManualClock(START)

    async def scenario() -> tuple[dict[str, int], ProbeScheduler]:
        fired: dict[str, int] = {}

        async def fire(target_id: str) -> None:
            fired[target_id] = fired.get(target_id, 0) + 1

        sched = ProbeScheduler(fire, clock=clock)
        sched.start()
        for i in range(50):
            sched.upsert(f"t{i}", 0.5)
        await clock.advance(2.0)
        sched.shutdown()
        return fired, sched

    fired, sched = asyncio.run(scenario())
    # 2 s at 0.5 s: four slots each, wherever its offset puts them
    assert fired == {f"t{i}": 4 for i in range(50)}
    assert sched.runs == 200 and sched.late == 0 and sched.missed == 0
    assert sched.lag_p95() < TICK  # the dispatch ticks every TICK: no run waits longer


def test_a_run_still_going_at_its_next_slot_is_not_overlapped_and_counts_as_missed() -> None:
    clock = ManualClock(START)

    async def scenario() -> tuple[int, ProbeScheduler]:
        running = 0
        peak = 0

        async def fire(target_id: str) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await clock.sleep(1.2)  # longer than the interval: the next two slots find it running
            running -= 1

        sched = ProbeScheduler(fire, clock=clock)
        sched.start()
        sched.upsert("slow", 0.5)
        await clock.advance(3.0)
        sched.shutdown()
        return peak, sched

    peak, sched = asyncio.run(scenario())
    assert peak == 1
    # six slots in 3 s: runs at the 1st and 4th, the 2nd, 3rd, 5th and 6th find it running
    assert (sched.runs, sched.missed) == (2, 4)


def test_after_a_stall_a_targets_missed_slots_collapse_into_one_run() -> None:
    clock = ManualClock(START)

    async def scenario() -> tuple[list[float], ProbeScheduler]:
        fired: list[float] = []

        async def fire(target_id: str) -> None:
            fired.append(clock.monotonic())

        sched = ProbeScheduler(fire, clock=clock)
        sched.start()
        sched.upsert("a", 0.5)
        while not fired:  # its first slot
            await clock.advance(TICK)
        await clock.stall(2.51)  # the loop is blocked across its next five slots
        sched.shutdown()
        return fired, sched

    fired, sched = asyncio.run(scenario())
    assert len(fired) == 2  # one run for the five overdue slots...
    assert sched.missed == 4  # ...the other four counted as missed
    assert sched.late == 0  # and that run's lag is measured from its latest slot


def test_removed_targets_stop_firing_and_changed_intervals_reschedule() -> None:
    clock = ManualClock(START)

    async def scenario() -> list[tuple[str, float]]:
        fired: list[tuple[str, float]] = []

        async def fire(target_id: str) -> None:
            fired.append((target_id, clock.monotonic()))

        sched = ProbeScheduler(fire, clock=clock)
        sched.start()
        sched.upsert("a", 0.3)
        sched.upsert("b", 0.3)
        await clock.advance(0.7)
        assert {t for t, _ in fired} == {"a", "b"}
        sched.remove("b")
        assert sched.target_ids() == {"a"}
        mark = clock.monotonic()
        await clock.advance(0.8)
        sched.shutdown()
        return [(t, at) for t, at in fired if at > mark]

    after = asyncio.run(scenario())
    assert len(after) >= 2 and {t for t, _ in after} == {"a"}  # 0.8 s at 0.3 s: 2-3 slots


def test_a_target_rescheduled_while_running_keeps_firing_after_the_run_ends() -> None:
    clock = ManualClock(START)

    async def scenario() -> list[float]:
        fired: list[float] = []

        async def fire(target_id: str) -> None:
            fired.append(clock.monotonic())
            await clock.sleep(0.4)

        sched = ProbeScheduler(fire, clock=clock)
        sched.start()
        sched.upsert("a", 0.3)
        while not fired:
            await clock.advance(TICK)
        sched.upsert("a", 0.25)  # new interval while the first run is going
        await clock.advance(1.5)
        sched.shutdown()
        return fired

    fired = asyncio.run(scenario())
    # after the first run: one run per 0.5 s (every other 0.25 s slot finds it still running)
    assert len(fired) >= 3, fired


def test_run_soon_probes_a_new_target_before_its_first_slot() -> None:
    clock = ManualClock(START)

    async def scenario() -> list[str]:
        fired: list[str] = []

        async def fire(target_id: str) -> None:
            fired.append(target_id)

        sched = ProbeScheduler(fire, clock=clock)
        sched.start()
        sched.upsert("slow", 3600.0)
        sched.run_soon("slow")
        await clock.advance(TICK)
        sched.shutdown()
        return fired

    assert asyncio.run(scenario()) == ["slow"]
