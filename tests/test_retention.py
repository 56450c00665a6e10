"""Retention: the one job (monitor.retention), the state DB's pruners and uptime rollup
(monitor.store.retention, monitor.store.uptime), on SQLite and a real PostgreSQL.

Time is an injected number: every run is ``job.run_once(now)``; nothing sleeps.
"""

from __future__ import annotations

import asyncio
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from sqlalchemy import Engine, func, inspect, select, text

from core.clock import ManualClock
from monitor import incident_actions as actions
from monitor.config.models import RetentionConfig, RetentionPolicy
from monitor.events import EventKind, NewEvent, record
from monitor.retention import (
    Batch,
    RetentionJob,
    age_cutoff,
    later,
    not_after,
)
from monitor.store.db import alembic_config, open_database
from monitor.store.models import (
    EventRecord,
    Incident,
    IncidentEvent,
    IncidentTarget,
    ManualMaintenance,
    Silence,
    Transition,
    UptimeDay,
)
from monitor.store.repository import StateRepository
from monitor.store.retention import (
    IncidentsPruner,
    TimelinesPruner,
    TransitionsPruner,
    UptimePruner,
    manual_maintenance_pruner,
    register_state_history,
    silences_pruner,
)
from monitor.store.uptime import UptimeRollup
from monitor.uptime import UptimeScope
from tests import test_state_db as state_db
from tests.peers.postgres import postgres_server  # noqa: F401 - the fixture
from tests.test_state_db import Backend, state

# The state DB tests' fixtures: every test here runs on SQLite and on PostgreSQL.
shared_postgres_url = state_db.shared_postgres_url
backend = state_db.backend
empty_backend = state_db.empty_backend
engine = state_db.engine
repo = state_db.repo

UTC = ZoneInfo("UTC")
DAY = 86400.0
H = 3600.0
T0 = datetime(2026, 5, 1, tzinfo=UTC).timestamp()
"""Midnight UTC on 1 May 2026: the simulated days start here."""


def policy(max_age: float | None = None, max_rows: int | None = None) -> RetentionPolicy:
    return RetentionPolicy(max_age=max_age, max_rows=max_rows)


KINDS = (
    "transitions",
    "events",
    "incident_timelines",
    "incidents",
    "uptime",
    "silences",
    "manual_maintenance",
    "audit",
    "staff_sessions",
    "runbook_runs",
)
"""The state DB's kinds of history, in the order they are pruned."""


def retention(**kinds: Any) -> RetentionConfig:
    """A RetentionConfig where every kind keeps everything unless given."""
    unlimited = {"max_age": None, "max_rows": None}
    base = dict.fromkeys(KINDS, unlimited)
    return RetentionConfig.model_validate({**base, **kinds})


def run(job: RetentionJob, now: float) -> Any:
    return asyncio.run(job.run_once(now))


def count(engine: Engine, model: Any) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model.__table__)).scalar_one()


def transitions(engine: Engine) -> list[tuple[str, float, int | None]]:
    t = Transition.__table__
    with engine.connect() as conn:
        rows = conn.execute(select(t.c.target_id, t.c.at, t.c.incident_id).order_by(t.c.id))
        return [tuple(r) for r in rows]  # type: ignore[misc]


def uptime_rows(engine: Engine) -> list[tuple[Any, ...]]:
    u = UptimeDay.__table__
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                u.c.subject_kind,
                u.c.subject_id,
                u.c.day,
                u.c.up_seconds,
                u.c.degraded_seconds,
                u.c.down_seconds,
                u.c.maintenance_seconds,
                u.c.unknown_seconds,
            ).order_by(u.c.day, u.c.subject_kind, u.c.subject_id)
        )
        return [tuple(r) for r in rows]


# -- the pure policy ---------------------------------------------------------------
def test_age_cutoff_is_now_minus_max_age_or_none() -> None:
    assert age_cutoff(policy(max_age=10.0), 100.0) == 90.0
    assert age_cutoff(policy(), 100.0) is None


def test_the_cutoff_that_deletes_more_wins() -> None:
    assert later(None, 5.0, 7.0) == 7.0
    assert later(None, None) is None


def test_a_rollup_limits_the_age_cutoff_and_nothing_rolled_up_means_nothing_goes() -> None:
    assert not_after(50.0, 40.0) == 40.0
    assert not_after(30.0, 40.0) == 30.0
    assert not_after(30.0, None) is None
    assert not_after(None, 40.0) is None


# -- the job, with stores made of lists -----------------------------------------------
class ListPruner:
    """A kind of history kept in a list of times; records every batch."""

    def __init__(self, times: list[float], log: list[str], name: str) -> None:
        self.times = times
        self.log = log
        self.name = name
        self.batches: list[int] = []

    def plan(self, policy: RetentionPolicy, now: float) -> float | None:
        self.log.append(f"plan {self.name}")
        return age_cutoff(policy, now)

    def delete_batch(self, cutoff: float, limit: int) -> Batch:
        old = [t for t in self.times if t < cutoff][:limit]
        for t in old:
            self.times.remove(t)
        self.batches.append(len(old))
        return Batch(len(old), bool(old))


class ListRollup:
    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.written: list[list[int]] = []

    def pending(self, now: float) -> list[int]:
        self.log.append("rollup pending")
        return [1, 2]

    def compute(self, unit: int, now: float) -> list[int]:
        return list(range(unit * 25))

    def write(self, rows: list[int]) -> None:
        self.written.append(list(rows))


def test_a_run_rolls_up_first_then_prunes_each_kind_in_batches() -> None:
    log: list[str] = []
    config = retention(transitions={"max_age": 100}, incidents={"max_age": 10}, batch=10)
    job = RetentionJob(lambda: config)
    rollup = ListRollup(log)
    transitions_ = ListPruner([float(t) for t in range(25)], log, "transitions")
    incidents = ListPruner([float(t) for t in range(25)], log, "incidents")
    job.register("transitions", transitions_)
    job.register_rollup("uptime", rollup)
    job.register("incidents", incidents)

    report = run(job, now=115.0)

    assert log == ["rollup pending", "plan transitions", "plan incidents"]
    assert [len(rows) for rows in rollup.written] == [10, 10, 5, 10, 10, 10, 10, 10]
    assert transitions_.batches == [10, 5, 0] and transitions_.times == [
        float(t) for t in range(15, 25)
    ]
    assert incidents.batches == [10, 10, 5, 0] and incidents.times == []
    assert report.deleted == {"transitions": 15, "incidents": 25}
    assert report.rolled_up == {"uptime": 2} and report.failed == []


def test_the_job_reads_on_its_reader_and_writes_only_on_its_writer() -> None:
    calls: list[tuple[str, str]] = []

    def runner(name: str) -> Callable[..., Awaitable[Any]]:
        async def call(fn: Callable[..., Any], *args: Any) -> Any:
            calls.append((name, fn.__name__))
            return fn(*args)

        return call

    job = RetentionJob(
        lambda: retention(transitions={"max_age": 1}), read=runner("read"), write=runner("write")
    )
    job.register_rollup("uptime", ListRollup([]))
    job.register("transitions", ListPruner([0.0], [], "transitions"))
    run(job, now=10.0)
    assert {name for name, fn in calls if fn in ("write", "delete_batch")} == {"write"}
    assert {name for name, fn in calls if fn in ("pending", "compute", "plan")} == {"read"}


def test_a_failing_store_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken:
        def plan(self, policy: RetentionPolicy, now: float) -> None:
            raise RuntimeError("disk on fire")

        def delete_batch(self, plan: Any, limit: int) -> Batch:
            raise AssertionError("never planned")

    class BrokenRollup(ListRollup):
        def pending(self, now: float) -> list[int]:
            raise RuntimeError("no rollup today")

    job = RetentionJob(lambda: retention(incidents={"max_age": 1}))
    job.register_rollup("uptime", BrokenRollup([]))
    job.register("transitions", Broken())
    healthy = ListPruner([0.0, 50.0], [], "incidents")
    job.register("incidents", healthy)

    report = run(job, now=10.0)

    assert report.failed == ["uptime", "transitions"]
    assert report.deleted == {"incidents": 1} and healthy.times == [50.0]
    assert "pruning transitions failed" in caplog.text and "disk on fire" in caplog.text


def test_registering_a_kind_without_a_policy_says_how_to_add_one() -> None:
    job = RetentionJob(RetentionConfig)
    with pytest.raises(ValueError) as raised:
        job.register("deliveries", ListPruner([], [], "deliveries"))
    assert str(raised.value) == (
        "no retention policy 'deliveries': storage.retention has transitions, events, "
        "incident_timelines, incidents, uptime, silences, manual_maintenance, audit, "
        "staff_sessions, runbook_runs; "
        "add a RetentionPolicy field for it to RetentionConfig (monitor/config/models.py)"
    )
    with pytest.raises(ValueError, match="no retention policy 'batch'"):
        job.register("batch", ListPruner([], [], "batch"))


def test_registering_a_kind_twice_is_refused() -> None:
    job = RetentionJob(RetentionConfig)
    job.register("transitions", ListPruner([], [], "a"))
    with pytest.raises(ValueError, match="registered twice"):
        job.register("transitions", ListPruner([], [], "b"))


def test_run_forever_waits_a_minute_then_runs_every_period_read_again_each_time() -> None:
    running = {"config": retention(every="1h")}
    runs: list[float] = []

    class Recorder(ListPruner):
        def plan(self, policy: RetentionPolicy, now: float) -> None:
            runs.append(now - 1000.0)
            return None

    job = RetentionJob(lambda: running["config"])
    job.register("transitions", Recorder([], [], "transitions"))
    clock = ManualClock(start=1000.0)

    async def drive() -> None:
        task = asyncio.create_task(job.run_forever(clock))
        await clock.advance(59)
        assert runs == []
        await clock.advance(1)  # a minute after start
        await clock.advance(3600)  # then every hour
        running["config"] = retention(every="30m")  # a reload: read before the next wait
        await clock.advance(3600)
        await clock.advance(1800 + 1800)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(drive())
    assert runs == [60.0, 3660.0, 7260.0, 9060.0, 10860.0]


# -- the state DB's pruners ---------------------------------------------------------------
def configured(repo: StateRepository, *target_ids: str) -> None:
    """Targets the engine watches (they have a target_state row)."""
    repo.checkpoint([state(t) for t in target_ids])


def scope(**components: tuple[str, ...]) -> Callable[[], UptimeScope]:
    value = UptimeScope(tz=UTC, components=components, keep_days=400)
    return lambda: value


def job_for(
    repo: StateRepository, config: RetentionConfig, **components: tuple[str, ...]
) -> RetentionJob:
    job = RetentionJob(lambda: config)
    register_state_history(job, repo, scope(**components))
    return job


def test_transitions_older_than_max_age_go_but_each_targets_last_one_before_the_cutoff_stays(
    repo: StateRepository,
) -> None:
    configured(repo, "a", "b")
    for at in (1.0, 2.0, 3.0):
        repo.record_transition("a", T0 + at * DAY, "up", "down")
    repo.record_transition("b", T0 + 1 * DAY, "unknown", "up")  # stable since day 1
    repo.record_transition("a", T0 + 9 * DAY, "down", "up")
    repo.record_transition("gone", T0 + 1 * DAY, "up", "down")  # no longer configured
    job = job_for(repo, retention(transitions={"max_age": "5d"}))

    report = run(job, now=T0 + 10 * DAY)

    assert report.deleted["transitions"] == 3
    assert transitions(repo.engine) == [
        ("a", T0 + 3 * DAY, None),  # a's health at the cutoff (day 5): kept
        ("b", T0 + 1 * DAY, None),  # b's health since day 1: kept
        ("a", T0 + 9 * DAY, None),
    ]


def test_transitions_beyond_max_rows_go_oldest_first(repo: StateRepository) -> None:
    configured(repo, "a")
    for n in range(10):
        repo.record_transition("a", T0 + n, "up", "down")
    job = job_for(repo, retention(transitions={"max_rows": 4}))
    run(job, now=T0 + 100)
    # the 4 newest, and the one before them: the health the target had at the cutoff
    assert [at - T0 for _, at, _ in transitions(repo.engine)] == [5, 6, 7, 8, 9]


def test_transitions_wait_for_the_uptime_rollup(repo: StateRepository) -> None:
    configured(repo, "a")
    repo.record_transition("a", T0 + 1 * H, "up", "down")
    repo.record_transition("a", T0 + 2 * H, "down", "up")
    pruner = TransitionsPruner(repo, lambda: None)  # nothing rolled up yet
    assert pruner.plan(policy(max_age=60.0), T0 + 10 * DAY) is None
    rolled_to_day_one = TransitionsPruner(repo, lambda: T0)
    assert rolled_to_day_one.plan(policy(max_age=60.0), T0 + 10 * DAY).cutoff == T0  # type: ignore[union-attr]


def test_pruning_deletes_in_batches_of_at_most_the_batch_size(repo: StateRepository) -> None:
    configured(repo, *(f"t{n}" for n in range(5)))
    with repo.transaction():
        for n in range(5):
            for i in range(30):
                repo.record_transition(f"t{n}", T0 + i * 60.0, "up", "down")
    pruner = TransitionsPruner(repo, lambda: T0 + DAY)
    plan = pruner.plan(policy(max_age=60.0), T0 + DAY)
    batches = []
    while (done := pruner.delete_batch(plan, 10)).more:
        batches.append(done.deleted)
    batches.append(done.deleted)
    assert all(n <= 10 for n in batches) and sum(batches) == 5 * 29
    assert len(batches) >= 15
    assert sorted(target for target, _, _ in transitions(repo.engine)) == [
        f"t{n}" for n in range(5)
    ]


def incident(
    repo: StateRepository, root: str, opened: float, resolved: float | None, lines: int = 0
) -> int:
    iid = repo.open_incident(root, "down", f"{root} down", opened)
    repo.join_incident(iid, f"{root}-b", "affected", opened + 1)
    repo.record_transition(root, opened, "up", "down", incident_id=iid)
    for n in range(lines):
        repo.add_incident_event(iid, "note", opened + 2 + n, text=f"line {n}")
    if resolved is not None:
        repo.resolve_incident(iid, resolved)
    return iid


def test_old_resolved_incident_timelines_go_whole_and_the_incidents_stay(
    repo: StateRepository,
) -> None:
    configured(repo, "old", "recent", "open")
    incident(repo, "old", T0, T0 + H, lines=3)
    recent = incident(repo, "recent", T0, T0 + 9 * DAY, lines=3)
    still_open = incident(repo, "open", T0, None, lines=3)
    job = job_for(repo, retention(incident_timelines={"max_age": "5d"}))

    report = run(job, now=T0 + 10 * DAY)

    e = IncidentEvent.__table__
    with repo.engine.connect() as conn:
        by_incident = dict(
            conn.execute(select(e.c.incident_id, func.count()).group_by(e.c.incident_id)).all()
        )
    assert by_incident == {recent: 6, still_open: 5}  # opened, joined, 3 notes (+ resolved)
    assert report.deleted["incident_timelines"] == 6
    assert count(repo.engine, Incident) == 3


def test_timeline_lines_beyond_max_rows_go_oldest_first_but_never_an_open_incidents(
    repo: StateRepository,
) -> None:
    configured(repo, "a", "b")
    still_open = incident(repo, "a", T0, None, lines=4)  # 6 lines
    resolved = incident(repo, "b", T0 + 100, T0 + 200, lines=4)  # 7 lines
    job = job_for(repo, retention(incident_timelines={"max_rows": 5}))
    run(job, now=T0 + DAY)
    e = IncidentEvent.__table__
    with repo.engine.connect() as conn:
        left = conn.execute(select(e.c.incident_id, e.c.text).order_by(e.c.id)).all()
    assert [i for i, _ in left].count(still_open) == 6
    # the 5 newest lines, and the open incident's older ones
    assert [t for i, t in left if i == resolved] == ["line 0", "line 1", "line 2", "line 3", ""]


def test_old_resolved_incidents_go_with_members_and_lines_and_transitions_are_unlinked(
    repo: StateRepository,
) -> None:
    configured(repo, "old", "open")
    old = incident(repo, "old", T0, T0 + H, lines=30)
    still_open = incident(repo, "open", T0, None, lines=2)
    job = job_for(repo, retention(incidents={"max_age": "5d"}, batch=10))

    report = run(job, now=T0 + 10 * DAY)

    i, m = Incident.__table__, IncidentTarget.__table__
    with repo.engine.connect() as conn:
        assert conn.execute(select(i.c.id)).scalars().all() == [still_open]
        assert set(conn.execute(select(m.c.incident_id)).scalars()) == {still_open}
    # the old incident's transition is the newest of a configured target: kept, unlinked
    assert ("old", T0, None) in transitions(repo.engine)
    assert ("open", T0, still_open) in transitions(repo.engine)
    assert report.deleted["incidents"] == 33 + 2 + 1  # lines, members, the incident
    assert old != still_open


def test_resolved_incidents_beyond_max_rows_go_oldest_first(repo: StateRepository) -> None:
    configured(repo, "a")
    ids = [incident(repo, "a", T0 + n, T0 + 10 + n) for n in range(5)]
    still_open = incident(repo, "a", T0 + 50, None)
    job = job_for(repo, retention(incidents={"max_rows": 2}))
    run(job, now=T0 + DAY)
    with repo.engine.connect() as conn:
        left = conn.execute(select(Incident.__table__.c.id).order_by(text("id"))).scalars().all()
    assert left == [ids[3], ids[4], still_open]


def test_uptime_days_older_than_max_age_or_beyond_max_rows_go(repo: StateRepository) -> None:
    rollup = UptimeRollup(repo, scope())
    rollup.write(
        [
            {
                "subject_kind": "target",
                "subject_id": f"t{n}",
                "day": date(2026, 5, 1) + timedelta(days=d),
                "up_seconds": DAY,
                "degraded_seconds": 0.0,
                "down_seconds": 0.0,
                "maintenance_seconds": 0.0,
                "unknown_seconds": 0.0,
            }
            for d in range(10)
            for n in range(3)
        ]
    )
    pruner = UptimePruner(repo, lambda: UTC)
    by_age = pruner.plan(policy(max_age=5 * DAY), T0 + 9.5 * DAY)
    assert by_age == date(2026, 5, 5)
    by_count = pruner.plan(policy(max_rows=7), T0 + 9.5 * DAY)
    assert by_count == date(2026, 5, 8)  # whole days: 3 days of 3 rows are kept
    while pruner.delete_batch(by_count, 4).more:
        pass
    assert sorted({row[2] for row in uptime_rows(repo.engine)}) == [
        date(2026, 5, 8),
        date(2026, 5, 9),
        date(2026, 5, 10),
    ]


def test_nothing_configured_to_go_deletes_nothing(repo: StateRepository) -> None:
    configured(repo, "a")
    incident(repo, "a", T0, T0 + 1, lines=2)
    job = job_for(repo, retention())
    report = run(job, now=T0 + 10 * DAY)
    assert report.deleted == dict.fromkeys(job.kinds, 0)


def outbox(repo: StateRepository, n: int, start: float = T0) -> None:
    with repo.transaction():
        for i in range(n):
            record(repo, NewEvent(EventKind.NOTED, start + i * H, incident_id=1))


def event_ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(EventRecord.__table__.c.id).order_by(text("id"))).scalars())


def test_events_older_than_max_age_go_without_subscribers(repo: StateRepository) -> None:
    outbox(repo, 10)  # one an hour from T0
    run(job_for(repo, retention(events={"max_age": "5h"})), now=T0 + 10 * H)
    assert event_ids(repo.engine) == [6, 7, 8, 9, 10]


def test_no_event_goes_before_every_subscriber_has_had_it(
    repo: StateRepository, caplog: pytest.LogCaptureFixture
) -> None:
    outbox(repo, 10)
    repo.start_cursor("pager", 0, T0)
    repo.set_cursor("pager", 3, T0)  # behind: it has had 1-3
    repo.start_cursor("tallies", 0, T0)
    repo.set_cursor("tallies", 10, T0)
    job = job_for(repo, retention(events={"max_age": "5h", "max_rows": 2}))
    run(job, now=T0 + 10 * H)
    assert event_ids(repo.engine) == [4, 5, 6, 7, 8, 9, 10]
    assert "subscriber pager has not had them yet" in caplog.text
    repo.set_cursor("pager", 10, T0 + 10 * H)  # caught up
    caplog.clear()
    run(job, now=T0 + 10 * H)
    assert event_ids(repo.engine) == [9, 10]  # the count limit, now nobody needs them
    assert "has not had them" not in caplog.text


# -- the uptime rollup ---------------------------------------------------------------------
def test_the_rollup_counts_each_day_per_target_and_component(repo: StateRepository) -> None:
    configured(repo, "a", "b", "new")
    repo.record_transition("a", T0 - DAY, "unknown", "up")  # up since the day before
    repo.record_transition("b", T0 - DAY, "unknown", "up")
    repo.record_transition("a", T0 + 2 * H, "up", "down")
    repo.record_transition("a", T0 + 3 * H, "down", "up")
    repo.record_transition("new", T0 + DAY + 12 * H, "unknown", "up")  # added at noon on day 2
    job = job_for(repo, retention(), calls=("a", "b"), newbie=("new", "missing"))

    run(job, now=T0 + 2 * DAY + 6 * H)  # 06:00 on day 3

    assert uptime_rows(repo.engine) == [
        ("component", "calls", date(2026, 4, 30), DAY, 0.0, 0.0, 0.0, 0.0),
        ("target", "a", date(2026, 4, 30), DAY, 0.0, 0.0, 0.0, 0.0),
        ("target", "b", date(2026, 4, 30), DAY, 0.0, 0.0, 0.0, 0.0),
        ("component", "calls", date(2026, 5, 1), 23 * H, 1 * H, 0.0, 0.0, 0.0),
        ("target", "a", date(2026, 5, 1), 23 * H, 0.0, 1 * H, 0.0, 0.0),
        ("target", "b", date(2026, 5, 1), DAY, 0.0, 0.0, 0.0, 0.0),
        ("component", "calls", date(2026, 5, 2), DAY, 0.0, 0.0, 0.0, 0.0),
        ("component", "newbie", date(2026, 5, 2), 12 * H, 0.0, 0.0, 0.0, 0.0),
        ("target", "a", date(2026, 5, 2), DAY, 0.0, 0.0, 0.0, 0.0),  # no transitions: inherits
        ("target", "b", date(2026, 5, 2), DAY, 0.0, 0.0, 0.0, 0.0),
        ("target", "new", date(2026, 5, 2), 12 * H, 0.0, 0.0, 0.0, 0.0),
        ("component", "calls", date(2026, 5, 3), 6 * H, 0.0, 0.0, 0.0, 0.0),
        ("component", "newbie", date(2026, 5, 3), 6 * H, 0.0, 0.0, 0.0, 0.0),
        ("target", "a", date(2026, 5, 3), 6 * H, 0.0, 0.0, 0.0, 0.0),  # today, up to now
        ("target", "b", date(2026, 5, 3), 6 * H, 0.0, 0.0, 0.0, 0.0),
        ("target", "new", date(2026, 5, 3), 6 * H, 0.0, 0.0, 0.0, 0.0),
    ]


def test_rolling_a_day_up_again_gives_the_same_rows(repo: StateRepository) -> None:
    configured(repo, "a")
    repo.record_transition("a", T0 + H, "unknown", "up")
    repo.record_transition("a", T0 + 5 * H, "up", "degraded")
    job = job_for(repo, retention(), calls=("a",))
    run(job, now=T0 + DAY + H)
    first = uptime_rows(repo.engine)
    run(job, now=T0 + DAY + H)
    assert uptime_rows(repo.engine) == first
    rollup = UptimeRollup(repo, scope(calls=("a",)))
    rollup.write(rollup.compute(date(2026, 5, 1), T0 + DAY + H))
    assert uptime_rows(repo.engine) == first


def test_a_running_day_is_completed_by_the_next_run(repo: StateRepository) -> None:
    configured(repo, "a")
    repo.record_transition("a", T0, "unknown", "up")
    job = job_for(repo, retention())
    run(job, now=T0 + 20 * H)
    repo.record_transition("a", T0 + 22 * H, "up", "down")
    run(job, now=T0 + DAY + H)
    assert uptime_rows(repo.engine) == [
        ("target", "a", date(2026, 5, 1), 22 * H, 0.0, 2 * H, 0.0, 0.0),
        ("target", "a", date(2026, 5, 2), 0.0, 0.0, 1 * H, 0.0, 0.0),
    ]


def test_days_are_rolled_up_before_their_transitions_are_pruned(repo: StateRepository) -> None:
    """A month with the appliance stopped for a week: the first run after it rolls up
    every day still in the transitions, and only then deletes them."""
    configured(repo, "a")
    repo.record_transition("a", T0, "unknown", "up")
    job = job_for(repo, retention(transitions={"max_age": "1d"}))
    run(job, now=T0 + 3 * H)
    for day in range(1, 30):
        repo.record_transition("a", T0 + day * DAY + 1 * H, "up", "down")
        repo.record_transition("a", T0 + day * DAY + 2 * H, "down", "up")
        if not 10 <= day < 17:
            run(job, now=T0 + day * DAY + 3 * H)
    days = [row for row in uptime_rows(repo.engine) if row[2] > date(2026, 5, 1)]
    assert len(days) == 29
    assert {row[5] for row in days} == {1 * H}  # every day's hour of outage was counted
    # left: the last day's two, and the one before them (the health at the cutoff)
    assert len(transitions(repo.engine)) == 3


def test_while_the_rollup_fails_transitions_it_has_not_counted_stay(repo: StateRepository) -> None:
    configured(repo, "a")
    repo.record_transition("a", T0, "unknown", "up")
    broken = {"now": False}
    good = UptimeScope(tz=UTC, components={}, keep_days=400)

    def flaky_scope() -> UptimeScope:
        if broken["now"]:
            raise RuntimeError("the config cannot be read")
        return good

    job = RetentionJob(lambda: retention(transitions={"max_age": "1d"}))
    register_state_history(job, repo, flaky_scope)
    run(job, now=T0 + 3 * H)  # May 1 counted (so far)
    broken["now"] = True
    for day in range(1, 6):
        repo.record_transition("a", T0 + day * DAY + 1 * H, "up", "down")
        repo.record_transition("a", T0 + day * DAY + 2 * H, "down", "up")
        assert run(job, now=T0 + day * DAY + 3 * H).failed[0] == "uptime"
    assert len(transitions(repo.engine)) == 11  # nothing after 1 May was counted: all stay
    broken["now"] = False
    run(job, now=T0 + 5 * DAY + 4 * H)
    assert [row[5] for row in uptime_rows(repo.engine)] == [0.0] + [1 * H] * 5
    assert len(transitions(repo.engine)) == 3


def test_the_rollup_follows_the_site_timezone_across_dst(repo: StateRepository) -> None:
    berlin = ZoneInfo("Europe/Berlin")
    configured(repo, "a")
    start = datetime(2026, 3, 28, 12, tzinfo=berlin).timestamp()
    repo.record_transition("a", start, "unknown", "up")
    job = RetentionJob(lambda: retention())
    register_state_history(job, repo, lambda: UptimeScope(berlin, {}, 400))
    run(job, now=datetime(2026, 3, 30, 0, 30, tzinfo=berlin).timestamp())
    assert [(row[2], row[3]) for row in uptime_rows(repo.engine)] == [
        (date(2026, 3, 28), 12 * H),
        (date(2026, 3, 29), 23 * H),
        (date(2026, 3, 30), 0.5 * H),
    ]


# -- one writer: the job and the engine's writes ---------------------------------------------
def test_the_jobs_batches_queue_with_the_engines_writes_on_one_writer_thread(
    repo: StateRepository,
) -> None:
    """As in the appliance: deletes and the engine's writes share one DB thread, in
    order, so neither can wait on a lock the other holds, and a write the engine
    queues while the job runs waits for at most one batch."""
    configured(repo, "a")
    with repo.transaction():
        for i in range(100):
            repo.record_transition("a", T0 + i, "up", "down")
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb")
    order: list[tuple[str, str]] = []

    def engine_write(n: int) -> None:
        repo.record_transition("b", T0 + DAY + n, "up", "down")
        order.append(("engine", threading.current_thread().name))

    async def on_writer(fn: Callable[..., Any], *args: Any) -> Any:
        writer.submit(engine_write, len(order))  # the engine writes while the job runs
        return await asyncio.get_running_loop().run_in_executor(writer, fn, *args)

    async def on_reader(fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    class Recording(TransitionsPruner):
        def delete_batch(self, plan: Any, limit: int) -> Batch:
            order.append(("batch", threading.current_thread().name))
            return super().delete_batch(plan, limit)

    job = RetentionJob(
        lambda: retention(transitions={"max_age": 1}, batch=10), read=on_reader, write=on_writer
    )
    job.register("transitions", Recording(repo, lambda: T0 + DAY))
    try:
        report = asyncio.run(job.run_once(T0 + DAY))
    finally:
        writer.shutdown(wait=True)
    assert report.deleted == {"transitions": 99}
    assert [what for what, _ in order] == ["engine", "batch"] * 11
    assert len({thread for _, thread in order}) == 1
    assert [t for t, _, _ in transitions(repo.engine)] == ["a"] + ["b"] * 11


@pytest.mark.peer
def test_two_appliances_pruning_one_postgresql_never_deadlock(
    postgres_server: Any,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    url = postgres_server.create_database()
    engines = [open_database(url, tmp_path), open_database(url, tmp_path)]
    try:
        repos = [StateRepository(e) for e in engines]
        configured(repos[0], *(f"t{n}" for n in range(10)))
        with repos[0].transaction():
            for n in range(10):
                incident(repos[0], f"t{n}", T0 + n, T0 + 10 + n, lines=20)
                for i in range(50):
                    repos[0].record_transition(f"t{n}", T0 + 100 + i, "up", "down")
        config = retention(
            transitions={"max_age": 1},
            incident_timelines={"max_age": 1},
            incidents={"max_age": 1},
            batch=10,
        )
        jobs = [job_for(r, config) for r in repos]
        errors: list[BaseException] = []

        def prune(job: RetentionJob) -> None:
            try:
                for _ in range(3):
                    report = run(job, now=T0 + 10 * DAY)
                    assert report.failed == []
            except BaseException as exc:  # re-raised below, in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=prune, args=(j,)) for j in jobs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert count(engines[0], Incident) == 0 and count(engines[0], IncidentEvent) == 0
        assert count(engines[0], Transition) == 10
    finally:
        for e in engines:
            e.dispose()


# -- the migration ----------------------------------------------------------------------------
def test_the_retention_migration_keeps_target_states_and_drops_only_the_unused_columns(
    empty_backend: Backend,
) -> None:
    db = open_database(empty_backend.url, empty_backend.data_dir, migrate=False)
    try:
        with db.connect() as conn, conn.begin():
            command.upgrade(alembic_config(conn), "0001")
            conn.execute(
                text(
                    "INSERT INTO target_state (target_id, kind, health, since, flapping, "
                    "affected_by, ok_streak, fail_streak, machine, last_metrics, probes_run, "
                    "probes_failed, probes_errored) VALUES ('a', 'sip', 'down', 5.0, :no, 'r', "
                    "0, 3, :empty, :empty, 7, 3, 0)"
                ),
                {"no": False, "empty": "{}"},
            )
            conn.execute(text("INSERT INTO counter (name, value) VALUES ('probes_run', 7)"))
        with db.connect() as conn, conn.begin():
            command.upgrade(alembic_config(conn), "0003_retention")
        columns = {c["name"] for c in inspect(db).get_columns("target_state")}
        assert {"ok_streak", "fail_streak"}.isdisjoint(columns)
        assert {"health", "since", "affected_by", "flapping"} <= columns
        assert "ix_target_state_health" in {
            i["name"] for i in inspect(db).get_indexes("target_state")
        }
        with db.connect() as conn:  # the counters stay (a DB subscriber's tallies)
            assert conn.execute(text("SELECT value FROM counter")).scalar_one() == 7
        row = StateRepository(db).load_target_states()["a"]
        assert (row.health, row.since, row.affected_by, row.probes_run) == ("down", 5.0, "r", 7)
    finally:
        db.dispose()


def test_every_retention_policy_has_a_store_registered_for_it(repo: StateRepository) -> None:
    job = job_for(repo, RetentionConfig())
    policies = [
        name
        for name, info in RetentionConfig.model_fields.items()
        if isinstance(info.annotation, type) and issubclass(info.annotation, RetentionPolicy)
    ]
    assert job.kinds == KINDS
    assert sorted(job.kinds) == sorted(policies)
    assert job.rollups == ("uptime",)


def test_timelines_pruner_and_incidents_pruner_have_nothing_to_plan_without_limits(
    repo: StateRepository,
) -> None:
    assert TimelinesPruner(repo).plan(policy(), T0) is None
    assert IncidentsPruner(repo).plan(policy(), T0) is None


# -- silences and manual maintenance windows: what people started by hand ---------------------
ALICE = "user:alice"


@pytest.fixture
def by_hand(db: Engine) -> StateRepository:
    """A state DB (SQLite, PostgreSQL) with targets a..e configured."""
    repo = StateRepository(db)
    configured(repo, "a", "b", "c", "d", "e")
    return repo


def ids(engine: Engine, model: Any) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(select(model.__table__.c.id).order_by(text("id"))).scalars())


def days(clock: ManualClock, n: float) -> None:
    asyncio.run(clock.advance(n * DAY))


def test_silences_that_ran_out_or_were_lifted_long_ago_go_and_an_active_one_never(
    by_hand: StateRepository,
) -> None:
    clock = ManualClock(start=T0)
    silence = functools.partial(actions.silence, by_hand, ALICE)
    silence(target_id="a", duration=H, at=clock.time())  # runs out an hour later
    lifted = silence(target_id="b", duration=30 * DAY, at=clock.time()).payload["silence_id"]
    month = silence(target_id="c", duration=30 * DAY, at=clock.time()).payload["silence_id"]
    days(clock, 1)
    actions.lift_silence(by_hand, ALICE, lifted, at=clock.time())
    days(clock, 6)
    recent = silence(target_id="d", duration=H, at=clock.time()).payload["silence_id"]
    days(clock, 3)  # day 10: a ran out and b was lifted 9-10 days ago, d 3; c runs to day 30
    job = job_for(by_hand, retention(silences={"max_age": "5d"}))

    report = run(job, now=clock.time())

    assert report.deleted["silences"] == 2 and report.failed == []
    assert ids(by_hand.engine, Silence) == [month, recent]  # a's and the lifted one went
    days(clock, 25)  # day 35: d ran out 28 days ago, c 5 days ago (not more)
    run(job, now=clock.time())
    assert ids(by_hand.engine, Silence) == [month]
    days(clock, 1)
    run(job, now=clock.time())
    assert ids(by_hand.engine, Silence) == []


def test_maintenance_windows_that_ended_long_ago_go_and_an_open_one_never(
    by_hand: StateRepository,
) -> None:
    clock = ManualClock(start=T0)
    start = functools.partial(actions.start_maintenance, by_hand, ALICE)
    ran_out = start("a", until=clock.time() + 2 * H, at=clock.time()).payload["window_id"]
    ended = start("b", at=clock.time()).payload["window_id"]
    open_ended = start("c", at=clock.time()).payload["window_id"]  # until someone ends it
    long_one = start("d", until=clock.time() + 20 * DAY, at=clock.time()).payload["window_id"]
    days(clock, 2)
    actions.end_maintenance(by_hand, ALICE, ended, at=clock.time())
    days(clock, 8)  # day 10
    job = job_for(by_hand, retention(manual_maintenance={"max_age": "5d"}))

    report = run(job, now=clock.time())

    assert report.deleted["manual_maintenance"] == 2 and report.failed == []
    assert ids(by_hand.engine, ManualMaintenance) == [open_ended, long_one]
    assert {ran_out, ended}.isdisjoint(ids(by_hand.engine, ManualMaintenance))
    days(clock, 400)  # a year later the window nobody ended is still open: it stays
    run(job, now=clock.time())
    assert ids(by_hand.engine, ManualMaintenance) == [open_ended]


@pytest.mark.parametrize(
    ("kind", "make_pruner"),
    [("silences", silences_pruner), ("manual_maintenance", manual_maintenance_pruner)],
    ids=["silences", "manual-maintenance"],
)
def test_beyond_max_rows_the_earliest_ended_go_and_active_ones_neither_count_nor_go(
    by_hand: StateRepository, kind: str, make_pruner: Callable[[StateRepository], Any]
) -> None:
    clock = ManualClock(start=T0)
    model = Silence if kind == "silences" else ManualMaintenance

    def begin(target: str, length: float) -> int:
        if kind == "silences":
            event = actions.silence(
                by_hand, ALICE, target_id=target, duration=length, at=clock.time()
            )
            return event.payload["silence_id"]
        until = clock.time() + length
        return actions.start_maintenance(
            by_hand, ALICE, target, until=until, at=clock.time()
        ).payload["window_id"]

    active = begin("e", 29 * DAY)
    ended = []
    for target in ("a", "b", "c", "d"):
        ended.append(begin(target, H))  # ends an hour later, a day apart
        days(clock, 1)
    pruner = make_pruner(by_hand)

    cutoff = pruner.plan(policy(max_rows=2), clock.time())
    while pruner.delete_batch(cutoff, 1).more:
        pass

    assert ids(by_hand.engine, model) == [active, *ended[2:]]
    everything_ended = pruner.plan(policy(max_age=0.001), clock.time())
    while pruner.delete_batch(everything_ended, 10).more:
        pass
    assert ids(by_hand.engine, model) == [active]
    assert pruner.plan(policy(), clock.time()) is None


def test_runs_that_ended_long_ago_go_with_their_steps_and_an_interrupted_one_never(
    by_hand: StateRepository,
) -> None:
    from sqlalchemy import insert as sql_insert

    from monitor.store.models import RunbookRun, RunbookStep

    clock = ManualClock(start=T0)

    def add_run(state: str, ended: float | None) -> int:
        with by_hand.transaction() as conn:
            run_id = conn.execute(sql_insert(RunbookRun).values(
                runbook_id="rb", target_id=None, started_by="user:alice", state=state,
                params={}, created_at=T0, ended_at=ended, error="",
            )).inserted_primary_key[0]  # fmt: skip
            conn.execute(sql_insert(RunbookStep).values(
                run_id=run_id, phase="main", position=0, step_id="s", kind="shell",
                state="succeeded", started_at=T0, summary="", output="x" * 100,
            ))  # fmt: skip
        return int(run_id)

    old = add_run("succeeded", T0 + H)
    interrupted = add_run("interrupted", None)
    days(clock, 10)
    recent = add_run("failed", clock.time() - H)
    job = job_for(by_hand, retention(runbook_runs={"max_age": "5d"}))
    report = run(job, now=clock.time())
    assert report.deleted["runbook_runs"] == 1 and report.failed == []
    assert ids(by_hand.engine, RunbookRun) == [interrupted, recent]
    with by_hand.reading() as conn:
        left = sorted(conn.execute(select(RunbookStep.run_id)).scalars())
    assert left == [interrupted, recent] and old not in left
