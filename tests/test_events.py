"""The event outbox: one event per transition or incident action, stored with the change.

The store tests run on SQLite and on a real PostgreSQL (``peer``). The engine
tests feed observations to a started Engine on a ManualClock by hand (its
targets' slots are a day apart, so no probe of its own runs during a test):
which events a scenario writes does not depend on timing.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text

from core.clock import ManualClock
from core.observation import Observation, Status
from monitor.config import load_config
from monitor.engine import Engine as MonitorEngine
from monitor.events import (
    ENGINE_ACTOR,
    Event,
    EventKind,
    NewEvent,
    events_after,
    last_event_id,
    record,
    record_many,
)
from monitor.health import Health
from monitor.store.db import open_database
from monitor.store.models import EventRecord, Incident, IncidentEvent, Transition
from monitor.store.repository import StateRepository


@pytest.fixture
def repo(db: Engine) -> StateRepository:
    return StateRepository(db)


def all_events(db: Engine) -> tuple[Event, ...]:
    return events_after(db, 0, 100_000)


def count(db: Engine, model: Any) -> int:
    with db.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()


def fail_inserts_into(db: Engine, table: str) -> None:
    """Make the DB itself refuse every insert into ``table`` (a real failing write)."""
    with db.begin() as conn:
        if db.dialect.name == "sqlite":
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
            )
        else:
            conn.exec_driver_sql(
                "CREATE FUNCTION refuse() RETURNS trigger AS "
                "$$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$ LANGUAGE plpgsql"
            )
            conn.exec_driver_sql(
                f"CREATE TRIGGER refuse_{table} BEFORE INSERT ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )


# -- the outbox ---------------------------------------------------------------------
def test_an_event_is_kept_only_with_the_change_it_records(
    db: Engine, repo: StateRepository
) -> None:
    with pytest.raises(RuntimeError), repo.transaction():
        incident_id = repo.open_incident("trunk-a", "down", "Trunk A is down", 10.0)
        record(repo, NewEvent(EventKind.OPENED, 10.0, incident_id=incident_id))
        raise RuntimeError("the process dies before the commit")
    assert all_events(db) == ()
    assert count(db, Incident) == 0

    with repo.transaction():
        incident_id = repo.open_incident("trunk-a", "down", "Trunk A is down", 10.0)
        stored = record(repo, NewEvent(EventKind.OPENED, 10.0, incident_id=incident_id))
    assert all_events(db) == (stored,)
    assert stored.actor == ENGINE_ACTOR and stored.incident_id == incident_id


def test_a_change_whose_event_cannot_be_written_is_not_kept(
    db: Engine, repo: StateRepository
) -> None:
    fail_inserts_into(db, "event")
    with pytest.raises(Exception, match="refused by the test"), repo.transaction():
        incident_id = repo.open_incident("trunk-a", "down", "Trunk A is down", 10.0)
        record(repo, NewEvent(EventKind.OPENED, 10.0, incident_id=incident_id))
    assert count(db, Incident) == 0
    assert count(db, IncidentEvent) == 0


def test_event_ids_grow_and_are_never_reused_even_after_every_event_was_pruned(
    db: Engine, repo: StateRepository
) -> None:
    first = [record(repo, NewEvent(EventKind.NOTED, float(i), incident_id=1)) for i in range(3)]
    record_many(repo, [NewEvent(EventKind.NOTED, 9.0, incident_id=1)] * 2)
    ids = [e.id for e in all_events(db)]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [e.id for e in first] == ids[:3]
    with db.begin() as conn:
        conn.execute(EventRecord.__table__.delete())
    after = record(repo, NewEvent(EventKind.NOTED, 10.0, incident_id=1))
    assert after.id > ids[-1]
    assert last_event_id(db) == after.id


def test_events_written_by_two_threads_at_once_are_read_in_commit_order(
    db: Engine, repo: StateRepository
) -> None:
    # A reader that has seen id n must never later find a smaller id committed:
    # ids are in commit order (PostgreSQL: the advisory lock).
    import threading

    seen: list[int] = []
    stop = threading.Event()

    def reader() -> None:
        cursor = 0
        while not stop.is_set() or cursor < last_event_id(db):
            for event in events_after(db, cursor, 1000):
                seen.append(event.id)
                cursor = event.id

    def writer(n: int) -> None:
        for i in range(40):
            with repo.transaction():
                record(repo, NewEvent(EventKind.NOTED, float(i), incident_id=n))
                record(repo, NewEvent(EventKind.NOTED, float(i), incident_id=n))

    threads = [threading.Thread(target=writer, args=(n,)) for n in (1, 2, 3)]
    read = threading.Thread(target=reader)
    read.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    read.join()
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    assert sorted(seen) == [e.id for e in all_events(db)]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda: NewEvent("gossip", 1.0), "unknown event kind 'gossip'", id="unknown-kind"
        ),
        pytest.param(
            lambda: NewEvent(EventKind.NOTED, 1.0, actor="Alice Smith"),
            "actor 'Alice Smith' must say who acted",
            id="actor-without-kind",
        ),
        pytest.param(
            lambda: NewEvent(EventKind.NOTED, 1.0, payload={"text": "x" * 40_000}),
            "noted event payload is 40012 bytes; at most 32768",
            id="payload-too-big",
        ),
    ],
)
def test_a_bad_event_is_refused_before_anything_is_written(make: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()


def test_an_event_is_frozen_payload_included() -> None:
    event = Event(1, EventKind.NOTED, 1.0, "cli", None, 3, {"text": "hi"})
    with pytest.raises(AttributeError):
        event.kind = EventKind.OPENED  # type: ignore[misc]
    with pytest.raises(TypeError):
        event.payload["text"] = "changed"  # type: ignore[index]


# -- what the engine writes ------------------------------------------------------------
DAY = "24h"


def engine_config(path: Path, targets: str) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            site: {{name: test-site, timezone: Asia/Shanghai}}
            appliance: {{interval: {DAY}}}
            targets:
            """
        )
        + textwrap.indent(textwrap.dedent(targets), "  "),
        encoding="utf-8",
    )
    return path


def target(target_id: str, extra: str = "") -> str:
    # Never probed by the engine itself during a test: the slot is a day away.
    return textwrap.dedent(
        f"""\
        - id: {target_id}
          kind: tcp
          address: 127.0.0.1:9
          interval: {DAY}
          timeout: 1s
          fail_after: 2
          recover_after: 2
        """
    ) + textwrap.indent(textwrap.dedent(extra), "  ")


class Driven:
    """A started Engine on a ManualClock whose observations the test hands in."""

    def __init__(self, tmp_path: Path, targets: str) -> None:
        self.db = open_database(None, tmp_path / "data")
        self.repo = StateRepository(self.db)
        cfg = engine_config(tmp_path / "site.yaml", targets)
        self.clock = ManualClock(1_800_000_000.0)
        self.engine = MonitorEngine(
            load_config(cfg), self.repo, tmp_path / "data", clock=self.clock
        )

    @property
    def now(self) -> float:
        return self.clock.time()

    async def __aenter__(self) -> Driven:
        await self.engine.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.engine.stop(drain_timeout=1)
        self.repo.close()
        self.db.dispose()

    async def feed(self, target_id: str, *statuses: str, step: float = 1.0) -> None:
        """Observations of ``target_id``, ``step`` seconds apart; then wait until written."""
        rt = self.engine.targets[target_id]
        for status in statuses:
            await self.clock.advance(step)
            await self.engine.observe(rt, Observation(Status(status), status, time=self.now))
        await self.engine.settle()  # every transition handled and committed

    def events(self, target_id: str | None = None) -> list[tuple[str, str | None, int | None]]:
        return [
            (e.kind.value, e.target_id, e.incident_id)
            for e in all_events(self.db)
            if target_id is None or e.target_id == target_id
        ]


def test_observations_that_change_no_health_write_no_event(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Driven(tmp_path, target("crm-db")) as d:
            await d.feed("crm-db", "ok")
            assert d.events("crm-db") == [("transition", "crm-db", None)]
            before = (count(d.db, EventRecord), count(d.db, Transition))
            await d.feed("crm-db", *["ok"] * 300)
            await d.feed("crm-db", "fail", "ok", "fail", "ok")  # below fail_after: still up
            assert d.engine.targets["crm-db"].state.health is Health.UP
            assert (count(d.db, EventRecord), count(d.db, Transition)) == before

    asyncio.run(scenario())


def test_an_incident_writes_one_event_per_transition_and_one_per_incident_change(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with Driven(tmp_path, target("sbc")) as d:
            await d.feed("sbc", "ok", "fail", "fail", "ok", "ok")
            [opened] = [e for e in all_events(d.db) if e.kind is EventKind.OPENED]
            iid = opened.incident_id
            assert d.events("sbc") == [
                ("transition", "sbc", None),
                ("transition", "sbc", iid),
                ("opened", "sbc", iid),
                ("transition", "sbc", iid),
                ("resolved", "sbc", iid),
            ]
            transitions = [e for e in all_events(d.db) if e.kind is EventKind.TRANSITION]
            assert [(e.payload["from"], e.payload["to"]) for e in transitions] == [
                ("unknown", "up"),
                ("up", "down"),
                ("down", "up"),
            ]
            assert opened.payload == {"title": "sbc is down", "severity": "down"}
            assert all(e.actor == ENGINE_ACTOR for e in all_events(d.db))

    asyncio.run(scenario())


def test_a_transition_whose_event_cannot_be_written_leaves_no_incident(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Driven(tmp_path, target("sbc")) as d:
            await d.feed("sbc", "ok")
            fail_inserts_into(d.db, "event")
            await d.feed("sbc", "fail", "fail")  # down: the write of the incident fails
            assert d.engine.targets["sbc"].state.health is Health.DOWN
            assert count(d.db, Incident) == 0
            assert count(d.db, Transition) == 1  # the first "up" only
            assert len(d.engine.incidents) == 0

    asyncio.run(scenario())


def test_a_merge_emits_merged_and_joined_but_never_resolved(tmp_path: Path) -> None:
    targets = target("edge-router") + target("pbx", "depends_on: [edge-router]\n")

    async def scenario() -> None:
        async with Driven(tmp_path, targets) as d:
            await d.feed("edge-router", "ok")
            await d.feed("pbx", "ok")
            await d.feed("pbx", "fail", "fail", step=0.1)  # the child notices first
            [own] = [e.incident_id for e in all_events(d.db) if e.kind is EventKind.OPENED]
            await d.feed("edge-router", "fail", "fail", step=0.1)
            opened = [e for e in all_events(d.db) if e.kind is EventKind.OPENED]
            parent = opened[-1].incident_id
            assert [e.target_id for e in opened] == ["pbx", "edge-router"]
            merge = [e for e in all_events(d.db) if e.incident_id == own]
            assert [e.kind.value for e in merge] == ["transition", "opened", "merged"]
            assert merge[-1].payload == {"into": parent, "parent": "edge-router"}
            joined = [e for e in all_events(d.db) if e.kind is EventKind.JOINED]
            assert [(e.target_id, e.incident_id, e.payload["merged_from"]) for e in joined] == [
                ("pbx", parent, own)
            ]
            assert not any(e.kind is EventKind.RESOLVED for e in all_events(d.db))
            # ...and all of it is the parent's transition write: the same transaction.
            with d.db.connect() as conn:
                states = dict(conn.execute(select(Incident.id, Incident.state)).all())
            assert states == {own: "resolved", parent: "open"}
            assert [i.id for i in d.engine.incidents] == [parent]
            assert d.engine.targets["pbx"].state.affected_by == "edge-router"

    asyncio.run(scenario())


def test_the_event_table_is_not_the_incident_timeline(db: Engine) -> None:
    with db.connect() as conn:
        tables = set(
            conn.execute(
                text("SELECT name FROM sqlite_master WHERE type='table'")
                if db.dialect.name == "sqlite"
                else text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            ).scalars()
        )
    assert {"event", "event_cursor", "incident_event"} <= tables


def test_rules_can_select_exactly_the_kinds_events_have() -> None:
    from monitor.config.rules import EVENT_KINDS

    assert sorted(EVENT_KINDS) == sorted(k.value for k in EventKind)
