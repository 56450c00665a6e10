"""Incident actions: each checks its input, writes its change, timeline line and event together.

Run on SQLite and on a real PostgreSQL (``peer``). What was written is read
back with plain SQL on the tables, so these tests say what is stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select

from monitor import incident_actions as actions
from monitor.events import EventKind, events_after
from monitor.health import Health
from monitor.incident_actions import NotFound
from monitor.store.models import (
    CustomerUpdate,
    Incident,
    IncidentEvent,
    IncidentTarget,
    ManualMaintenance,
    Silence,
)
from monitor.store.repository import StateRepository
from tests.test_events import Driven, count, fail_inserts_into, target

NOW = 1_800_000_000.0
ALICE = "user:alice"


@pytest.fixture
def repo(db: Engine) -> StateRepository:
    repo = StateRepository(db)
    repo.checkpoint(
        [
            {"target_id": t, "kind": "sip", "health": "up", "since": NOW - 100}
            for t in ("trunk-a", "trunk-b", "pbx")
        ]
    )
    return repo


@pytest.fixture
def incident(repo: StateRepository) -> int:
    """An open incident of trunk-a, opened by the engine."""
    return repo.open_incident("trunk-a", "down", "trunk-a is down", NOW - 60)


def incident_row(db: Engine, incident_id: int) -> Any:
    with db.connect() as conn:
        return conn.execute(select(Incident).where(Incident.id == incident_id)).one()


def timeline(db: Engine, incident_id: int) -> list[tuple[str, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(IncidentEvent.kind, IncidentEvent.text)
            .where(IncidentEvent.incident_id == incident_id)
            .order_by(IncidentEvent.id)
        )
        return [(r.kind, r.text) for r in rows]


def members(db: Engine, incident_id: int) -> list[tuple[str, str]]:
    with db.connect() as conn:
        rows = conn.execute(
            select(IncidentTarget.target_id, IncidentTarget.role)
            .where(IncidentTarget.incident_id == incident_id)
            .order_by(IncidentTarget.role.desc(), IncidentTarget.target_id)
        )
        return [(r.target_id, r.role) for r in rows]


# -- each action: its change, its timeline line, its event ---------------------------
def test_acknowledge_records_who_took_the_incident_on(
    db: Engine, repo: StateRepository, incident: int
) -> None:
    event = actions.acknowledge(repo, ALICE, incident, at=NOW)
    assert (event.kind, event.actor, event.incident_id) == (EventKind.ACKNOWLEDGED, ALICE, incident)
    row = incident_row(db, incident)
    assert (row.acknowledged_by, row.acknowledged_at) == (ALICE, NOW)
    assert timeline(db, incident)[-1] == ("acknowledged", ALICE)
    with pytest.raises(ValueError, match="acknowledged already by user:alice"):
        actions.acknowledge(repo, "user:bob", incident, at=NOW + 1)


def test_a_note_is_internal_and_says_who_wrote_it(
    db: Engine, repo: StateRepository, incident: int
) -> None:
    event = actions.add_note(repo, ALICE, incident, "  carrier ticket #123  ", at=NOW)
    assert (event.kind, dict(event.payload)) == (EventKind.NOTED, {"text": "carrier ticket #123"})
    assert timeline(db, incident)[-1] == ("note", "user:alice: carrier ticket #123")
    assert count(db, CustomerUpdate) == 0


def test_update_changes_only_the_fields_given_and_lists_them_in_the_event(
    db: Engine, repo: StateRepository, incident: int
) -> None:
    event = actions.update(
        repo,
        "rule:trunk-failover",
        incident,
        cause="fibre cut at the carrier",
        eta=NOW + 3600,
        summary={"zh-CN": "部分外呼失败", "en": "Some outbound calls fail"},
        at=NOW,
    )
    assert event.kind is EventKind.UPDATED
    assert event.payload["fields"] == {
        "cause": "fibre cut at the carrier",
        "eta": NOW + 3600,
        "summary": {"zh-CN": "部分外呼失败", "en": "Some outbound calls fail"},
    }
    actions.update(repo, ALICE, incident, cause=None, severity="degraded", at=NOW + 1)
    row = incident_row(db, incident)
    assert (row.cause, row.eta, row.severity) == (None, NOW + 3600, "degraded")
    assert row.summary == {"zh-CN": "部分外呼失败", "en": "Some outbound calls fail"}
    assert timeline(db, incident)[-2:] == [
        (
            "updated",
            "rule:trunk-failover: cause: fibre cut at the carrier; "
            "ETA 2027-01-15T09:00:00Z; summary (zh-CN, en)",
        ),
        ("updated", "user:alice: cause cleared; severity: degraded"),
    ]


def test_a_customer_update_is_published_per_language_in_its_own_table(
    db: Engine, repo: StateRepository, incident: int
) -> None:
    text = {"zh-CN": "我们正在处理中国电信线路故障", "en": "We are working on the CT trunk outage"}
    event = actions.publish_customer_update(repo, ALICE, incident, text, at=NOW)
    assert event.kind is EventKind.CUSTOMER_UPDATE
    assert event.payload["text"] == text
    with db.connect() as conn:
        [row] = conn.execute(select(CustomerUpdate)).all()
    assert (row.id, row.incident_id, row.published_by, row.text) == (
        event.payload["update_id"],
        incident,
        ALICE,
        text,
    )
    assert timeline(db, incident)[-1] == (
        "customer_update",
        "user:alice published a customer update (zh-CN, en)",
    )


def test_resolve_by_hand_is_its_own_kind_of_event(
    db: Engine, repo: StateRepository, incident: int
) -> None:
    event = actions.resolve(repo, ALICE, incident, reason="carrier confirmed the fix", at=NOW)
    assert (event.kind, dict(event.payload)) == (
        EventKind.RESOLVED_BY_HAND,
        {"reason": "carrier confirmed the fix"},
    )
    row = incident_row(db, incident)
    assert (row.state, row.resolved_at) == ("resolved", NOW)
    assert timeline(db, incident)[-1] == (
        "resolved",
        "resolved by user:alice: carrier confirmed the fix",
    )
    with pytest.raises(ValueError, match=f"cannot resolve incident {incident}: it is resolved"):
        actions.resolve(repo, ALICE, incident, at=NOW + 1)


def test_declare_opens_an_incident_by_hand_with_its_targets(
    db: Engine, repo: StateRepository
) -> None:
    event = actions.declare(
        repo, "cli", ["trunk-b", "pbx"], "Calls drop after 30 s", severity="degraded", at=NOW
    )
    assert event.kind is EventKind.DECLARED and event.target_id == "trunk-b"
    assert dict(event.payload) == {
        "title": "Calls drop after 30 s",
        "severity": "degraded",
        "targets": ["trunk-b", "pbx"],
    }
    row = incident_row(db, event.incident_id)
    assert (row.state, row.title, row.severity, row.root_target_id) == (
        "open",
        "Calls drop after 30 s",
        "degraded",
        "trunk-b",
    )
    assert members(db, event.incident_id) == [("trunk-b", "root"), ("pbx", "affected")]
    assert timeline(db, event.incident_id) == [
        ("opened", "cli declared: Calls drop after 30 s"),
        ("joined", "affected"),
    ]


def test_a_silence_and_its_lifting_are_events_and_timeline_lines(
    db: Engine, repo: StateRepository, incident: int
) -> None:
    of_target = actions.silence(
        repo, ALICE, target_id="trunk-a", duration=3600, reason="known", at=NOW
    )
    of_incident = actions.silence(repo, ALICE, incident_id=incident, duration=600, at=NOW)
    assert of_target.kind is EventKind.SILENCED
    assert (of_target.target_id, of_target.payload["until"], of_target.payload["state"]) == (
        "trunk-a",
        NOW + 3600,
        "active",
    )
    assert (of_incident.incident_id, of_incident.target_id) == (incident, None)
    lifted = actions.lift_silence(repo, "user:bob", of_target.payload["silence_id"], at=NOW + 5)
    assert dict(lifted.payload) == {
        "state": "lifted",
        "silence_id": of_target.payload["silence_id"],
    }
    with db.connect() as conn:
        rows = conn.execute(
            select(Silence.target_id, Silence.incident_id, Silence.lifted_by).order_by(Silence.id)
        ).all()
    assert [tuple(r) for r in rows] == [("trunk-a", None, "user:bob"), (None, incident, None)]
    # trunk-a is in the incident: its silence shows on the incident's timeline too
    assert [k for k, _ in timeline(db, incident)][-3:] == ["silenced"] * 3
    with pytest.raises(ValueError, match="is over already"):
        actions.lift_silence(repo, ALICE, of_target.payload["silence_id"], at=NOW + 6)


def test_a_component_is_silenced_by_its_id_and_lifted(db: Engine, repo: StateRepository) -> None:
    started = actions.silence(
        repo, ALICE, component_id="outbound", duration=1800, reason="carrier work", at=NOW
    )
    assert (started.target_id, started.incident_id) == (None, None)
    assert dict(started.payload) == {
        "state": "active",
        "silence_id": started.payload["silence_id"],
        "until": NOW + 1800,
        "reason": "carrier work",
        "component_id": "outbound",
    }
    lifted = actions.lift_silence(repo, "user:bob", started.payload["silence_id"], at=NOW + 5)
    assert lifted.payload["component_id"] == "outbound"
    with db.connect() as conn:
        rows = conn.execute(
            select(Silence.target_id, Silence.component_id, Silence.incident_id, Silence.lifted_by)
        ).all()
    assert [tuple(r) for r in rows] == [(None, "outbound", None, "user:bob")]


def test_maintenance_by_hand_starts_and_ends_a_window(db: Engine, repo: StateRepository) -> None:
    started = actions.start_maintenance(
        repo, ALICE, "pbx", until=NOW + 7200, reason="PBX upgrade", at=NOW
    )
    assert started.kind is EventKind.MAINTENANCE and started.target_id == "pbx"
    assert dict(started.payload) == {
        "state": "started",
        "window_id": started.payload["window_id"],
        "until": NOW + 7200,
        "reason": "PBX upgrade",
    }
    with pytest.raises(ValueError, match="in maintenance window .* already"):
        actions.start_maintenance(repo, "user:bob", "pbx", at=NOW + 1)
    ended = actions.end_maintenance(repo, "user:bob", started.payload["window_id"], at=NOW + 60)
    assert dict(ended.payload) == {"state": "ended", "window_id": started.payload["window_id"]}
    with db.connect() as conn:
        row = conn.execute(select(ManualMaintenance)).one()
    assert (row.target_id, row.created_by, row.ended_by, row.ended_at) == (
        "pbx",
        ALICE,
        "user:bob",
        NOW + 60,
    )


def test_every_action_event_is_read_back_in_order(db: Engine, repo: StateRepository) -> None:
    declared = actions.declare(repo, ALICE, ["trunk-a"], "Trunk A is flaky", at=NOW)
    iid = declared.incident_id
    actions.acknowledge(repo, ALICE, iid, at=NOW + 1)
    actions.add_note(repo, ALICE, iid, "opened carrier ticket", at=NOW + 2)
    actions.resolve(repo, ALICE, iid, at=NOW + 3)
    assert [(e.kind.value, e.incident_id, e.actor) for e in events_after(db, 0)] == [
        ("declared", iid, ALICE),
        ("acknowledged", iid, ALICE),
        ("noted", iid, ALICE),
        ("resolved_by_hand", iid, ALICE),
    ]


# -- bad input: a clear error, nothing written --------------------------------------------
BAD: list[Any] = [
    pytest.param(
        lambda r, i: actions.acknowledge(r, "", i),
        ValueError,
        "actor '' must say who",
        id="no-actor",
    ),
    pytest.param(
        lambda r, i: actions.acknowledge(r, "alice\n", i),
        ValueError,
        "must say who acted",
        id="actor-with-newline",
    ),
    pytest.param(
        lambda r, i: actions.acknowledge(r, ALICE, 404),
        NotFound,
        "no incident 404",
        id="ack-missing",
    ),
    pytest.param(
        lambda r, i: actions.acknowledge(r, ALICE, "1"),
        ValueError,
        "incident id must be a whole number",
        id="ack-id-not-a-number",
    ),
    pytest.param(
        lambda r, i: actions.add_note(r, ALICE, i, "   "),
        ValueError,
        "note must not be empty",
        id="empty-note",
    ),
    pytest.param(
        lambda r, i: actions.add_note(r, ALICE, i, "x" * 4001),
        ValueError,
        "note is 4001 characters; at most 4000",
        id="note-too-long",
    ),
    pytest.param(
        lambda r, i: actions.update(r, ALICE, i),
        ValueError,
        "nothing to update",
        id="update-nothing",
    ),
    pytest.param(
        lambda r, i: actions.update(r, ALICE, i, eta=NOW - 1, at=NOW),
        ValueError,
        "eta 2027-01-15T07:59:59Z is not in the future",
        id="eta-in-the-past",
    ),
    pytest.param(
        lambda r, i: actions.update(r, ALICE, i, eta=float("nan")),
        ValueError,
        "eta must be epoch seconds",
        id="eta-nan",
    ),
    pytest.param(
        lambda r, i: actions.update(r, ALICE, i, severity="critical"),
        ValueError,
        "severity must be one of down, degraded, not 'critical'",
        id="unknown-severity",
    ),
    pytest.param(
        lambda r, i: actions.update(r, ALICE, i, summary={"fr": "Appels en échec"}),
        ValueError,
        "summary: unknown language 'fr'; use zh-CN, en",
        id="summary-unknown-language",
    ),
    pytest.param(
        lambda r, i: actions.publish_customer_update(r, ALICE, i, {}),
        ValueError,
        "customer update must map a language to its text",
        id="customer-update-empty",
    ),
    pytest.param(
        lambda r, i: actions.publish_customer_update(r, ALICE, i, {"en": " "}),
        ValueError,
        r"customer update\[en\] must not be empty",
        id="customer-update-blank-language",
    ),
    pytest.param(
        lambda r, i: actions.publish_customer_update(r, ALICE, 404, {"en": "x"}),
        NotFound,
        "no incident 404",
        id="customer-update-missing-incident",
    ),
    pytest.param(
        lambda r, i: actions.declare(r, ALICE, ["trunk-a"], "again"),
        ValueError,
        "target 'trunk-a' is in open incident .* already",
        id="declare-target-in-an-incident",
    ),
    pytest.param(
        lambda r, i: actions.declare(r, ALICE, ["nope", "pbx"], "x"),
        NotFound,
        "no target 'nope' in the state DB",
        id="declare-unknown-target",
    ),
    pytest.param(
        lambda r, i: actions.declare(r, ALICE, "pbx", "x"),
        ValueError,
        "targets must be a list",
        id="declare-targets-as-a-string",
    ),
    pytest.param(
        lambda r, i: actions.declare(r, ALICE, ["pbx", "pbx"], "x"),
        ValueError,
        "lists a target twice",
        id="declare-target-twice",
    ),
    pytest.param(
        lambda r, i: actions.declare(r, ALICE, ["pbx"], "x" * 201),
        ValueError,
        "title is 201 characters; at most 200",
        id="declare-title-too-long",
    ),
    pytest.param(
        lambda r, i: actions.silence(r, ALICE, duration=60),
        ValueError,
        "silence exactly one of a target_id, a component_id or an incident_id",
        id="silence-nothing",
    ),
    pytest.param(
        lambda r, i: actions.silence(r, ALICE, target_id="pbx", component_id="x", duration=60),
        ValueError,
        "silence exactly one of",
        id="silence-two-things",
    ),
    pytest.param(
        lambda r, i: actions.silence(r, ALICE, component_id="  ", duration=60),
        ValueError,
        "component_id must not be empty",
        id="silence-empty-component",
    ),
    pytest.param(
        lambda r, i: actions.silence(r, ALICE, target_id="pbx", duration=0),
        ValueError,
        "duration must be seconds above 0",
        id="silence-no-time",
    ),
    pytest.param(
        lambda r, i: actions.silence(r, ALICE, target_id="pbx", duration=31 * 86400),
        ValueError,
        r"at most 2592000 \(30 days\)",
        id="silence-too-long",
    ),
    pytest.param(
        lambda r, i: actions.silence(r, ALICE, target_id="nope", duration=60),
        NotFound,
        "no target 'nope'",
        id="silence-unknown-target",
    ),
    pytest.param(
        lambda r, i: actions.lift_silence(r, ALICE, 404),
        NotFound,
        "no silence 404",
        id="lift-missing",
    ),
    pytest.param(
        lambda r, i: actions.start_maintenance(r, ALICE, "pbx", until=NOW - 1, at=NOW),
        ValueError,
        "until must be epoch seconds after now",
        id="maintenance-ending-in-the-past",
    ),
    pytest.param(
        lambda r, i: actions.end_maintenance(r, ALICE, 404),
        NotFound,
        "no maintenance window 404",
        id="end-missing-maintenance",
    ),
]


@pytest.mark.parametrize(("act", "error", "message"), BAD)
def test_bad_input_is_refused_with_its_reason_and_nothing_is_written(
    db: Engine,
    repo: StateRepository,
    incident: int,
    act: Callable[[StateRepository, int], Any],
    error: type[Exception],
    message: str,
) -> None:
    before = timeline(db, incident)
    with pytest.raises(error, match=message):
        act(repo, incident)
    assert events_after(db, 0) == ()
    assert timeline(db, incident) == before
    assert count(db, Incident) == 1


def test_an_action_on_a_resolved_incident_that_needs_it_open_is_refused(
    repo: StateRepository, incident: int
) -> None:
    actions.resolve(repo, ALICE, incident, at=NOW)
    for act in (
        lambda: actions.acknowledge(repo, ALICE, incident),
        lambda: actions.update(repo, ALICE, incident, eta=NOW + 60, at=NOW),
        lambda: actions.silence(repo, ALICE, incident_id=incident, duration=60),
    ):
        with pytest.raises(ValueError, match=f"incident {incident}: it is resolved"):
            act()
    # a note or the cause after the fact (the post-mortem) is fine
    actions.add_note(repo, ALICE, incident, "root cause: expired certificate", at=NOW + 1)
    actions.update(repo, ALICE, incident, cause="expired certificate", at=NOW + 2)


def test_an_action_whose_event_cannot_be_written_changes_nothing(
    db: Engine, repo: StateRepository, incident: int
) -> None:
    before = timeline(db, incident)
    fail_inserts_into(db, "event")
    with pytest.raises(Exception, match="refused by the test"):
        actions.acknowledge(repo, ALICE, incident, at=NOW)
    with pytest.raises(Exception, match="refused by the test"):
        actions.publish_customer_update(repo, ALICE, incident, {"en": "Working on it"}, at=NOW)
    row = incident_row(db, incident)
    assert (row.acknowledged_at, row.acknowledged_by) == (None, None)
    assert timeline(db, incident) == before
    assert count(db, CustomerUpdate) == 0


# -- the engine learns of incidents declared or resolved by hand, through the events --
async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


def test_the_engine_takes_a_declared_incident_and_forgets_one_resolved_by_hand(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with Driven(tmp_path, target("trunk-a")) as d:
            await d.feed("trunk-a", "ok")
            # from another thread, as the web does
            declared = await asyncio.to_thread(
                actions.declare, d.repo, ALICE, ["trunk-a"], "Carrier reports an outage"
            )
            iid = declared.incident_id
            await until(lambda: iid in d.engine.incidents, "the keeper to learn of it")
            await d.feed("trunk-a", "fail", "fail")  # down: gathered, not a second incident
            assert [i.id for i in d.engine.incidents] == [iid]
            assert count(d.db, Incident) == 1
            assert timeline(d.db, iid)[-1][0] == "transition"

            await asyncio.to_thread(actions.resolve, d.repo, ALICE, iid)
            await until(lambda: iid not in d.engine.incidents, "the keeper to forget it")
            await d.feed("trunk-a", "ok", "ok", "fail", "fail")  # down again: a new incident
            assert [i.root_target_id for i in d.engine.incidents] == ["trunk-a"]
            assert [i.id for i in d.engine.incidents] != [iid]

    asyncio.run(scenario())


def test_a_severity_set_by_hand_is_the_one_the_engine_keeps(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Driven(tmp_path, target("trunk-a")) as d:
            await d.feed("trunk-a", "ok", "fail", "fail")
            [item] = list(d.engine.incidents)
            await asyncio.to_thread(actions.update, d.repo, ALICE, item.id, severity="degraded")
            await until(
                lambda: next(iter(d.engine.incidents)).severity == "degraded",
                "the keeper to take the severity",
            )

    asyncio.run(scenario())


def test_maintenance_started_by_hand_puts_the_target_in_maintenance_until_ended(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        async with Driven(tmp_path, target("pbx")) as d:
            await d.feed("pbx", "ok")
            started = await asyncio.to_thread(
                actions.start_maintenance, d.repo, ALICE, "pbx", reason="PBX upgrade"
            )
            await until(
                lambda: d.engine.manual_maintenance.reason("pbx", d.now) is not None,
                "the engine to learn of the window",
            )
            await d.feed("pbx", "fail", "fail", "fail")
            rt = d.engine.targets["pbx"]
            assert rt.state.health is Health.MAINTENANCE
            assert count(d.db, Incident) == 0
            [*_, into] = [e for e in events_after(d.db, 0) if e.kind is EventKind.TRANSITION]
            assert into.payload["to"] == "maintenance"
            assert "maintenance started by user:alice: PBX upgrade" in into.payload["reason"]

            await asyncio.to_thread(
                actions.end_maintenance, d.repo, ALICE, started.payload["window_id"]
            )
            await until(
                lambda: d.engine.manual_maintenance.reason("pbx", d.now) is None,
                "the engine to learn the window ended",
            )
            await d.feed("pbx", "ok", "ok")
            assert rt.state.health is Health.UP

    asyncio.run(scenario())


def test_a_window_started_by_hand_survives_a_restart(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Driven(tmp_path, target("pbx")) as d:
            await d.feed("pbx", "ok")
            await asyncio.to_thread(actions.start_maintenance, d.repo, "cli", "pbx")
        async with Driven(tmp_path, target("pbx")) as d:
            assert d.engine.manual_maintenance.reason("pbx", d.now) == (
                "maintenance started by cli"
            )

    asyncio.run(scenario())
