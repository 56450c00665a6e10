"""The probe scheduler: stable spread, no overlap, lateness and missed slots counted."""

from __future__ import annotations

import asyncio
import time

from monitor.scheduler import ProbeScheduler, slot_offset


def test_slot_offsets_are_stable_and_spread_over_the_interval() -> None:
    offsets = [slot_offset(f"trunk-{i}", 10.0) for i in range(10_000)]
    assert offsets == [slot_offset(f"trunk-{i}", 10.0) for i in range(10_000)]
    assert all(0 <= o < 10.0 for o in offsets)
    per_second = [0] * 10
    for o in offsets:
        per_second[int(o)] += 1
    # ~1,000 starts in every second of the cycle, none crowded
    assert min(per_second) > 900 and max(per_second) < 1100


def test_each_target_fires_once_per_interval_without_being_late() -> None:
    async def scenario() -> tuple[dict[str, int], ProbeScheduler]:
        fired: dict[str, int] = {}

        async def fire(target_id: str) -> None:
            fired[target_id] = fired.get(target_id, 0) + 1

        sched = ProbeScheduler(fire)
        sched.start()
        for i in range(50):
            sched.upsert(f"t{i}", 0.5)
        await asyncio.sleep(2.1)
        sched.shutdown()
        return fired, sched

    fired, sched = asyncio.run(scenario())
    assert len(fired) == 50
    assert all(3 <= n <= 5 for n in fired.values()), fired
    assert sched.late == 0 and sched.missed == 0
    assert sched.lag_p95() < 0.5


def test_a_run_still_going_at_its_next_slot_is_not_overlapped_and_counts_as_missed() -> None:
    async def scenario() -> tuple[int, int, ProbeScheduler]:
        running = 0
        peak = 0

        async def fire(target_id: str) -> None:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(1.2)  # longer than the interval
            running -= 1

        sched = ProbeScheduler(fire)
        sched.start()
        sched.upsert("slow", 0.5)
        await asyncio.sleep(3.0)
        sched.shutdown()
        return peak, sched.runs, sched

    peak, runs, sched = asyncio.run(scenario())
    assert peak == 1
    assert sched.missed >= 2


def test_removed_targets_stop_firing_and_changed_intervals_reschedule() -> None:
    async def scenario() -> list[tuple[str, float]]:
        fired: list[tuple[str, float]] = []

        async def fire(target_id: str) -> None:
            fired.append((target_id, time.time()))

        sched = ProbeScheduler(fire)
        sched.start()
        sched.upsert("a", 0.3)
        sched.upsert("b", 0.3)
        await asyncio.sleep(0.7)
        sched.remove("b")
        assert sched.target_ids() == {"a"}
        mark = time.time()
        await asyncio.sleep(0.8)
        sched.shutdown()
        return [(t, at) for t, at in fired if at > mark + 0.05]

    after = asyncio.run(scenario())
    assert after and all(t == "a" for t, _ in after)


def test_a_target_rescheduled_while_running_keeps_firing_after_the_run_ends() -> None:
    async def scenario() -> list[float]:
        fired: list[float] = []

        async def fire(target_id: str) -> None:
            fired.append(time.time())
            await asyncio.sleep(0.4)

        sched = ProbeScheduler(fire)
        sched.start()
        sched.upsert("a", 0.3)
        while not fired:
            await asyncio.sleep(0.02)
        sched.upsert("a", 0.25)  # new interval while the first run is going
        await asyncio.sleep(1.5)
        sched.shutdown()
        return fired

    fired = asyncio.run(scenario())
    assert len(fired) >= 3, fired


def test_run_soon_probes_a_new_target_before_its_first_slot() -> None:
    async def scenario() -> list[str]:
        fired: list[str] = []

        async def fire(target_id: str) -> None:
            fired.append(target_id)

        sched = ProbeScheduler(fire)
        sched.start()
        sched.upsert("slow", 3600.0)
        sched.run_soon("slow")
        await asyncio.sleep(0.3)
        sched.shutdown()
        return fired

    assert asyncio.run(scenario()) == ["slow"]
