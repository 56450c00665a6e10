"""The incident workflow API: each action does its work as the caller, audited; bad input is
a 4xx naming the field; viewers change nothing; internal notes never reach customers.

A real temporary SQLite state DB, the real app, real API tokens (one user per
role); the appliance clock is a manual one, so times in answers are exact.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from monitor import incident_actions as actions
from monitor.store import queries
from monitor.store.db import open_database
from monitor.store.models import (
    AuditEntry,
    CustomerUpdate,
    Incident,
    IncidentEvent,
    ManualMaintenance,
    Silence,
)
from monitor.store.repository import StateRepository
from tests.test_web_support import (
    STAFF,
    World,
    add_incident,
    add_staff,
    add_targets,
    make_config,
    make_world,
    standard_rows,
)
from web import WebServices, create_app, guard, params
from web.eta import parse_when
from web.i18n import iso

NOTE = "internal: the carrier's NOC said it is their core router, ticket 4471"


class Clock:
    """The appliance clock: it moves only when the test moves it."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(float(int(time.time())))


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> World:
    w = make_world(tmp_path, clock=clock.time)
    add_targets(w.db, standard_rows())
    return w


@pytest.fixture
def incident(world: World) -> int:
    """An open incident of trunk-a (down) with router affected."""
    return add_incident(world.db, ["trunk-a", "router"], title="Carrier A down")


@pytest.fixture
def operator(world: World) -> FlaskClient:
    return world.client("operator")


def token_actor(world: World, role: str) -> str:
    """``token:N``: how an API token's changes are signed (the guard's actor)."""
    with world.app.test_request_context(headers={"Authorization": f"Bearer {world.tokens[role]}"}):
        assert guard.guard_request() is None
        current = guard.who()
        assert current is not None
        return current.actor


def audits(world: World) -> list[AuditEntry]:
    with world.db.connect() as conn:
        return list(
            conn.execute(
                select(AuditEntry).where(AuditEntry.actor != "test").order_by(AuditEntry.id)
            ).all()
        )


def last_audit(world: World) -> Any:
    rows = audits(world)
    assert rows, "no audit entry"
    return rows[-1]


def rows_of(world: World, model: Any) -> list[Any]:
    with world.db.connect() as conn:
        return list(conn.execute(select(model).order_by(model.id)).all())


# -- each action ------------------------------------------------------------------------
def test_acknowledge_answers_the_incident_and_audits_who(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    r = operator.post(f"/api/v1/incidents/{incident}/ack")
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    actor = token_actor(world, "operator")
    assert (body["id"], body["state"]) == (incident, "open")
    assert (body["acknowledged_by"], body["acknowledged_at"]) == (actor, iso(clock.now))
    entry = last_audit(world)
    assert (entry.actor, entry.action, entry.object, entry.result) == (
        actor,
        "incident.ack",
        f"incident:{incident}",
        "ok",
    )


def test_a_second_acknowledgement_is_a_409_naming_who_acknowledged_first(
    world: World, incident: int, clock: Clock
) -> None:
    assert world.client("operator").post(f"/api/v1/incidents/{incident}/ack").status_code == 200
    first = token_actor(world, "operator")
    clock.now += 60
    r = world.client("admin").post(f"/api/v1/incidents/{incident}/ack")
    assert r.status_code == 409
    body = r.get_json()
    assert body["acknowledged_by"] == first
    assert body["acknowledged_by_user"] == STAFF["operator"]
    assert body["acknowledged_at"] == iso(clock.now - 60)
    assert f"acknowledged already by {first} ({STAFF['operator']})" in body["error"]
    entry = last_audit(world)
    assert (entry.actor, entry.action, entry.result) == (
        token_actor(world, "admin"),
        "incident.ack",
        "failed",
    )
    assert "acknowledged already" in entry.detail


def test_an_acknowledgement_by_a_session_names_the_user(world: World, incident: int) -> None:
    with world.db.begin() as conn:
        conn.execute(
            Incident.__table__.update()
            .where(Incident.id == incident)
            .values(acknowledged_at=1.0, acknowledged_by="user:opal")
        )
    body = world.client("operator").post(f"/api/v1/incidents/{incident}/ack").get_json()
    assert body["acknowledged_by_user"] == "opal"
    assert "acknowledged already by user:opal at" in body["error"]


def test_a_note_goes_on_the_timeline_and_the_audit(
    world: World, operator: FlaskClient, incident: int
) -> None:
    r = operator.post(f"/api/v1/incidents/{incident}/notes", json={"text": NOTE})
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["note"]["text"] == NOTE
    assert r.get_json()["incident"]["id"] == incident
    timeline = [(e.kind, e.text) for e in rows_of(world, IncidentEvent)]
    assert ("note", f"{token_actor(world, 'operator')}: {NOTE}") in timeline
    entry = last_audit(world)
    assert (entry.action, entry.result, entry.after) == ("incident.note", "ok", {"text": NOTE})


def test_a_customer_update_is_stored_per_language_and_answered(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    text = {"zh-CN": "运营商线路故障，正在切换备用线路。", "en": "Carrier outage; failing over."}
    r = operator.post(f"/api/v1/incidents/{incident}/updates", json={"text": text})
    assert r.status_code == 201, r.get_json()
    update = r.get_json()["customer_update"]
    assert update["text"] == text and update["published_at"] == iso(clock.now)
    stored = rows_of(world, CustomerUpdate)
    assert [(u.id, u.incident_id, u.text) for u in stored] == [(update["id"], incident, text)]
    entry = last_audit(world)
    assert (entry.action, entry.object, entry.after) == (
        "incident.customer_update",
        f"incident:{incident}",
        {"text": text},
    )


def test_an_internal_note_never_reaches_anything_customers_see(
    world: World, operator: FlaskClient, incident: int
) -> None:
    operator.post(
        f"/api/v1/incidents/{incident}/updates",
        json={"text": {"en": "Failing over.", "zh-CN": "切换中"}},
    )
    assert (
        operator.post(f"/api/v1/incidents/{incident}/notes", json={"text": NOTE}).status_code == 201
    )
    public = world.anonymous()
    seen = [
        public.get("/status?lang=en").get_data(as_text=True),
        public.get("/status?lang=zh-CN").get_data(as_text=True),
        public.get("/healthz").get_data(as_text=True),
        # the incident JSON (staff) carries no notes either: a customer-facing tool built on
        # it (a status widget) cannot leak one
        json.dumps(operator.get("/api/v1/incidents").get_json(), ensure_ascii=False),
        json.dumps(
            operator.post(f"/api/v1/incidents/{incident}/ack").get_json(), ensure_ascii=False
        ),
    ]
    for text in seen:
        assert "ticket 4471" not in text
    # the status page was built after both: it shows the update, in each language
    assert "Failing over." in seen[0] and "切换中" in seen[1]
    assert [u.text for u in rows_of(world, CustomerUpdate)] == [
        {"en": "Failing over.", "zh-CN": "切换中"}
    ]


def test_patch_sets_cause_eta_summary_and_severity_audited_before_and_after(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    summary = {"zh-CN": "部分外呼失败", "en": "Some outbound calls fail"}
    r = operator.patch(
        f"/api/v1/incidents/{incident}",
        json={"cause": "fibre cut", "eta": "in 30 min", "summary": summary, "severity": "degraded"},
    )
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert (body["cause"], body["eta"], body["summary"], body["severity"]) == (
        "fibre cut",
        iso(clock.now + 1800),
        summary,
        "degraded",
    )
    entry = last_audit(world)
    assert (entry.action, entry.result) == ("incident.update", "ok")
    assert entry.before == {"cause": None, "eta": None, "summary": None, "severity": "down"}
    assert entry.after == {
        "cause": "fibre cut",
        "eta": iso(clock.now + 1800),
        "summary": summary,
        "severity": "degraded",
    }
    # null clears; only the fields given change
    r = operator.patch(f"/api/v1/incidents/{incident}", json={"cause": None})
    assert (r.get_json()["cause"], r.get_json()["eta"]) == (None, iso(clock.now + 1800))
    assert last_audit(world).before == {"cause": "fibre cut"}


@pytest.mark.parametrize(
    ("eta", "seconds"),
    [("30m", 1800), ("in 2 hours", 7200), ("in 90 min", 5400), ("1d", 86400)],
)
def test_a_relative_eta_counts_from_the_appliance_clock(
    operator: FlaskClient, incident: int, clock: Clock, eta: str, seconds: int
) -> None:
    r = operator.patch(f"/api/v1/incidents/{incident}", json={"eta": eta})
    assert r.get_json()["eta"] == iso(clock.now + seconds)


def test_an_absolute_eta_without_a_zone_is_in_the_site_timezone(
    operator: FlaskClient, incident: int, clock: Clock
) -> None:
    local = datetime.fromtimestamp(clock.now + 3600, ZoneInfo("Asia/Shanghai")).replace(
        microsecond=0
    )
    naive = local.replace(tzinfo=None).isoformat()
    r = operator.patch(f"/api/v1/incidents/{incident}", json={"eta": naive})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["eta"] == iso(local.timestamp())


def test_an_eta_in_the_past_is_a_400_with_the_reason_and_a_failed_audit(
    world: World, operator: FlaskClient, incident: int
) -> None:
    r = operator.patch(f"/api/v1/incidents/{incident}", json={"eta": "2020-01-01T00:00Z"})
    assert r.status_code == 400
    assert "eta 2020-01-01T00:00:00Z is not in the future" in r.get_json()["error"]
    entry = last_audit(world)
    assert (entry.action, entry.result) == ("incident.update", "failed")
    assert "not in the future" in entry.detail


def test_resolve_by_hand_with_a_note(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    r = operator.post(f"/api/v1/incidents/{incident}/resolve", json={"note": "carrier fixed it"})
    assert r.status_code == 200, r.get_json()
    assert (r.get_json()["state"], r.get_json()["resolved_at"]) == ("resolved", iso(clock.now))
    assert last_audit(world).after == {"note": "carrier fixed it"}
    again = operator.post(f"/api/v1/incidents/{incident}/resolve", json={"note": "again"})
    assert again.status_code == 409 and "it is resolved" in again.get_json()["error"]


def test_declare_expands_components_to_their_member_targets(
    world: World, operator: FlaskClient
) -> None:
    r = operator.post(
        "/api/v1/incidents",
        json={
            "title": "Carrier B announced maintenance overrun",
            "severity": "degraded",
            "targets": ["router"],
            "components": ["outbound"],
        },
    )
    assert r.status_code == 201, r.get_json()
    body = r.get_json()
    # outbound selects role=trunk: trunk-a, trunk-b; router was named first (the root)
    assert (body["targets"], body["severity"], body["root_target"]) == (
        ["router", "trunk-a", "trunk-b"],
        "degraded",
        "router",
    )
    entry = last_audit(world)
    assert (entry.action, entry.object, entry.result) == (
        "incident.declare",
        "target:router,component:outbound",
        "ok",
    )


def test_declare_refuses_a_target_already_in_an_open_incident(
    operator: FlaskClient, incident: int
) -> None:
    r = operator.post("/api/v1/incidents", json={"title": "x", "targets": ["trunk-a"]})
    assert r.status_code == 409
    assert f"in open incident {incident} already" in r.get_json()["error"]


def test_declare_refuses_an_unknown_component_with_a_404_and_a_failed_audit(
    world: World, operator: FlaskClient
) -> None:
    r = operator.post("/api/v1/incidents", json={"title": "x", "components": ["billing"]})
    assert r.status_code == 404
    assert r.get_json()["error"] == (
        "no component 'billing' in the config (components: outbound, crm)"
    )
    assert (last_audit(world).action, last_audit(world).result) == ("incident.declare", "failed")


def test_silences_of_a_target_a_component_and_an_incident_list_and_lift(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    made = []
    for subject in (
        {"target_id": "crm-db"},
        {"component_id": "outbound"},
        {"incident_id": incident},
    ):
        r = operator.post("/api/v1/silences", json={**subject, "duration": "2h", "reason": "known"})
        assert r.status_code == 201, r.get_json()
        made.append(r.get_json())
    assert [(s["target_id"], s["component_id"], s["incident_id"]) for s in made] == [
        ("crm-db", None, None),
        (None, "outbound", None),
        (None, None, incident),
    ]
    assert {s["ends_at"] for s in made} == {iso(clock.now + 7200)}
    stored = rows_of(world, Silence)
    assert [(s.target_id, s.component_id, s.incident_id) for s in stored] == [
        ("crm-db", None, None),
        (None, "outbound", None),
        (None, None, incident),
    ]
    assert [a.object for a in audits(world)] == [
        "target:crm-db",
        "component:outbound",
        f"incident:{incident}",
    ]

    listed = operator.get("/api/v1/silences?per_page=2")
    assert listed.status_code == 200
    assert (listed.get_json()["total"], len(listed.get_json()["items"])) == (3, 2)

    lifted = operator.post(f"/api/v1/silences/{made[1]['id']}/lift")
    assert lifted.status_code == 200, lifted.get_json()
    assert (lifted.get_json()["active"], lifted.get_json()["lifted_by"]) == (
        False,
        token_actor(world, "operator"),
    )
    assert last_audit(world).action == "silence.lift"
    assert [s["id"] for s in operator.get("/api/v1/silences").get_json()["items"]] == [
        made[0]["id"],
        made[2]["id"],
    ]
    again = operator.post(f"/api/v1/silences/{made[1]['id']}/lift")
    assert again.status_code == 409 and "over already" in again.get_json()["error"]
    # one that ran out is not listed either
    clock.now += 7200
    assert operator.get("/api/v1/silences").get_json()["items"] == []


def test_a_silence_of_an_unknown_component_is_a_404(world: World, operator: FlaskClient) -> None:
    r = operator.post("/api/v1/silences", json={"component_id": "billing", "duration": 60})
    assert r.status_code == 404 and "no component 'billing'" in r.get_json()["error"]
    assert rows_of(world, Silence) == []
    assert (last_audit(world).action, last_audit(world).result) == ("silence.start", "failed")


def test_maintenance_of_a_component_starts_a_window_per_member_and_ends(
    world: World, operator: FlaskClient, clock: Clock
) -> None:
    r = operator.post(
        "/api/v1/maintenance",
        json={"component_id": "outbound", "until": "in 2 hours", "reason": "SBC swap"},
    )
    assert r.status_code == 201, r.get_json()
    items = r.get_json()["items"]
    assert [(w["target_id"], w["ends_at"], w["reason"]) for w in items] == [
        ("trunk-a", iso(clock.now + 7200), "SBC swap"),
        ("trunk-b", iso(clock.now + 7200), "SBC swap"),
    ]
    entry = last_audit(world)
    assert (entry.action, entry.object, entry.after["until"]) == (
        "maintenance.start",
        "component:outbound",
        iso(clock.now + 7200),
    )
    assert operator.get("/api/v1/maintenance").get_json()["total"] == 2
    ended = operator.post(f"/api/v1/maintenance/{items[0]['id']}/end")
    assert ended.status_code == 200 and ended.get_json()["active"] is False
    assert last_audit(world).action == "maintenance.end"
    assert [w["id"] for w in operator.get("/api/v1/maintenance").get_json()["items"]] == [
        items[1]["id"]
    ]
    again = operator.post(f"/api/v1/maintenance/{items[0]['id']}/end")
    assert again.status_code == 409


def test_maintenance_of_a_component_starts_for_all_members_or_none(
    world: World, operator: FlaskClient
) -> None:
    assert operator.post("/api/v1/maintenance", json={"target_id": "trunk-b"}).status_code == 201
    r = operator.post("/api/v1/maintenance", json={"component_id": "outbound"})
    assert r.status_code == 409 and "'trunk-b' is in maintenance window" in r.get_json()["error"]
    assert [w.target_id for w in rows_of(world, ManualMaintenance)] == ["trunk-b"]


# -- refusals ---------------------------------------------------------------------------
INCIDENT_ACTIONS = [
    ("POST", "/ack", None),
    ("POST", "/notes", {"text": "x"}),
    ("POST", "/updates", {"text": {"en": "x"}}),
    ("POST", "/resolve", {"note": "x"}),
    ("PATCH", "", {"cause": "x"}),
]


@pytest.mark.parametrize(("method", "suffix", "body"), INCIDENT_ACTIONS)
@pytest.mark.parametrize("incident_id", ["404", "0", "999999999999999999"])
def test_an_unknown_incident_is_a_404(
    operator: FlaskClient, method: str, suffix: str, body: Any, incident_id: str
) -> None:
    r = operator.open(f"/api/v1/incidents/{incident_id}{suffix}", method=method, json=body)
    assert r.status_code == 404 and r.mimetype == "application/json"
    assert r.get_json()["error"] == f"no incident {int(incident_id)}"


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/incidents/١/ack",  # an Arabic-Indic digit: int() would read it as 1
        "/api/v1/incidents/²/ack",
        "/api/v1/incidents/9999999999999999999/ack",  # past 2**63: SQLite would overflow
        "/api/v1/incidents/-1/ack",
        "/api/v1/silences/99999999999999999999999/lift",
    ],
)
def test_an_id_that_is_not_ascii_digits_or_too_long_is_no_route(
    operator: FlaskClient, path: str
) -> None:
    r = operator.post(path)
    assert r.status_code == 404 and "no such API route" in r.get_json()["error"]


@pytest.mark.parametrize(
    ("data", "content_type", "status", "reason"),
    [
        ("{", "application/json", 400, "the body is not valid JSON: Expecting property name"),
        ("[1, 2]", "application/json", 400, "the body must be a JSON object, not an array"),
        ('"hello"', "application/json", 400, "the body must be a JSON object, not a string"),
        ("null", "application/json", 400, "the body must be a JSON object, not null"),
        ('{"text": "a", "txt": "b"}', "application/json", 400, "txt: unknown field; allowed: text"),
        ('{"text": 5}', "application/json", 400, "text: Input should be a valid string"),
        ('{"text": ["a"]}', "application/json", 400, "text: Input should be a valid string"),
        ('{"text": "a", "text": "b"}', "application/json", 400, "field 'text' is given twice"),
        (
            '{"text": NaN}',
            "application/json",
            400,
            "the body is not valid JSON: NaN is not a JSON number",
        ),
        ('{"text": "   "}', "application/json", 400, "text: must not be empty"),
        ('{"text": "a\\u0000b"}', "application/json", 400, "text: must not contain control"),
        ("{}", "application/json", 400, "text: required"),
        ("", "application/json", 400, "this call needs a JSON object body with text"),
        ("   ", "application/json", 400, "this call needs a JSON object body with text"),
        (b"\xff\xfe", "application/json", 400, "the body is not UTF-8"),
        ('{"text": "a"}', "text/plain", 415, "send the body as application/json, not text/plain"),
        ("text=a", "application/x-www-form-urlencoded", 415, "send the body as application/json"),
        ("[" * 100_000, "application/json", 400, "the body is not valid JSON: nested too deeply"),
        ('{"text": 1' + "0" * 5000 + "}", "application/json", 400, "the body is not valid JSON"),
    ],
    ids=lambda v: v[:30] if isinstance(v, str) else None,
)
def test_a_bad_body_is_refused_naming_what_is_wrong(
    world: World,
    operator: FlaskClient,
    incident: int,
    data: str | bytes,
    content_type: str,
    status: int,
    reason: str,
) -> None:
    r = operator.post(f"/api/v1/incidents/{incident}/notes", data=data, content_type=content_type)
    assert r.status_code == status, r.get_json()
    assert r.mimetype == "application/json"
    assert r.get_json()["error"].startswith(reason)
    assert [e.kind for e in rows_of(world, IncidentEvent)] == []


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("", {"eta": "tomorrow-ish"}, "eta: must be an ISO-8601 time like"),
        ("", {"eta": "in 30 parsecs"}, "eta: unknown unit 'parsecs'"),
        ("", {"eta": "in 5 years"}, "eta: unknown unit 'years'"),
        ("", {"eta": "400d"}, "eta: must be at most a year from now"),
        ("", {"eta": 1800}, "eta: Input should be a valid string"),
        ("", {"severity": "critical"}, "severity: Input should be 'down' or 'degraded'"),
        ("", {"severity": None}, "severity: cannot be cleared"),
        ("", {"summary": {"fr": "x"}}, "summary.fr.[key]: Input should be 'zh-CN' or 'en'"),
        ("", {"summary": {}}, "summary: Dictionary should have at least 1 item"),
        ("", {}, "nothing to change: give cause, eta, summary or severity"),
        ("/updates", {"text": "only one language"}, "text: Input should be a valid dictionary"),
        ("/updates", {"text": {"en": ""}}, "text.en: must not be empty"),
        ("/resolve", {}, "note: required"),
    ],
    ids=lambda v: json.dumps(v)[:30] if not isinstance(v, str) else v,
)
def test_bad_incident_fields_are_400s_naming_the_field(
    operator: FlaskClient, incident: int, path: str, body: dict, reason: str
) -> None:
    method = "PATCH" if path == "" else "POST"
    r = operator.open(f"/api/v1/incidents/{incident}{path}", method=method, json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"].startswith(reason), r.get_json()["error"]


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/api/v1/incidents", {"title": "x"}, "give targets or components (or both)"),
        (
            "/api/v1/incidents",
            {"title": "x", "targets": ["Trunk A"]},
            "targets[0]: String should match",
        ),
        ("/api/v1/incidents", {"targets": ["trunk-a"]}, "title: required"),
        ("/api/v1/silences", {"duration": "1h"}, "give exactly one of target_id, component_id"),
        (
            "/api/v1/silences",
            {"target_id": "crm-db", "incident_id": 1, "duration": "1h"},
            "give exactly one of",
        ),
        (
            "/api/v1/silences",
            {"target_id": "crm-db", "duration": "soon"},
            "duration: must be a duration",
        ),
        (
            "/api/v1/silences",
            {"target_id": "crm-db", "duration": True},
            "duration: must be a duration",
        ),
        (
            "/api/v1/silences",
            {"target_id": "crm-db", "duration": "31d"},
            "duration must be seconds",
        ),
        (
            "/api/v1/silences",
            {"incident_id": 10**19, "duration": "1h"},
            "incident_id: Input should be less than or equal to",
        ),
        ("/api/v1/maintenance", {"reason": "x"}, "give exactly one of target_id or component_id"),
        ("/api/v1/maintenance", {"target_id": "crm-db", "until": "yesterday"}, "until: must be"),
        ("/api/v1/maintenance", {"target_id": "crm-db", "until": "2020-01-01"}, "until must be"),
    ],
    ids=lambda v: json.dumps(v)[:40] if not isinstance(v, str) else v,
)
def test_bad_declarations_silences_and_windows_are_400s(
    operator: FlaskClient, path: str, body: dict, reason: str
) -> None:
    r = operator.post(path, json=body)
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"].startswith(reason), r.get_json()["error"]


def test_a_query_parameter_on_an_action_is_refused(operator: FlaskClient, incident: int) -> None:
    r = operator.post(f"/api/v1/incidents/{incident}/ack?force=1")
    assert r.status_code == 400 and r.get_json()["error"].startswith("unknown parameter force")


@pytest.mark.parametrize(
    "path", ["/api/v1/silences", "/api/v1/maintenance", "/api/v1/targets", "/api/v1/incidents"]
)
@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("per_page=²", "per_page: must be a whole number from 1 to 1000, got '²'"),
        ("page=١", "page: must be a whole number from 1 to 1000000, got '١'"),
        ("page=" + "9" * 40, "page: must be a whole number"),
        ("per_page=0", "per_page: must be from 1 to 1000, got 0"),
        ("limit=5", "unknown parameter limit"),
    ],
)
def test_list_parameters_are_strict(
    operator: FlaskClient, path: str, query: str, reason: str
) -> None:
    r = operator.get(f"{path}?{query}")
    assert r.status_code == 400 and r.get_json()["error"].startswith(reason)


def action_routes(world: World) -> list[tuple[str, str]]:
    """(method, url) of every state-changing route of the incident API, ids filled in."""
    found = []
    for rule in world.app.url_map.iter_rules():
        if not rule.endpoint.startswith("api_incidents."):
            continue
        url = rule.rule
        for arg in rule.arguments:
            url = url.replace(f"<id:{arg}>", "1")
        for method in sorted((rule.methods or set()) & {"POST", "PATCH"}):
            found.append((method, url))
    return found


def test_a_viewer_is_refused_every_action_and_nothing_changes(world: World, incident: int) -> None:
    viewer = world.client("viewer")
    routes = action_routes(world)
    assert len(routes) == 10
    for method, url in routes:
        r = viewer.open(url, method=method, json={})
        assert r.status_code == 403, (method, url, r.status_code)
        assert "operator" in r.get_json()["error"]
    assert [e.kind for e in rows_of(world, IncidentEvent)] == []
    assert rows_of(world, Silence) == [] and rows_of(world, ManualMaintenance) == []
    # a viewer may read the lists
    assert viewer.get("/api/v1/silences").status_code == 200
    assert viewer.get("/api/v1/maintenance").status_code == 200


def test_an_admin_may_act_and_an_anonymous_caller_gets_a_401(world: World, incident: int) -> None:
    assert world.client("admin").post(f"/api/v1/incidents/{incident}/ack").status_code == 200
    for method, url in action_routes(world):
        r = world.anonymous().open(url, method=method, json={})
        assert r.status_code == 401, (method, url)


# -- pure pieces ------------------------------------------------------------------------
@pytest.mark.parametrize("raw", ["²", "١", "1" * 19, "+1", "1.0", " ", "0x10"])
def test_a_whole_number_parameter_is_ascii_digits_only(raw: str) -> None:
    with pytest.raises(params.ParamError, match="must be a whole number"):
        params.integer({"n": [raw]}, "n", 1, 0, 10**30)


def test_a_text_parameter_refuses_control_characters() -> None:
    with pytest.raises(params.ParamError, match="q: must not contain control characters"):
        params.text({"q": ["trunk\x00"]}, "q")


NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("in 30 min", NOW + 1800),
        ("30m", NOW + 1800),
        ("IN 1 HOUR", NOW + 3600),
        ("1.5h", NOW + 5400),
        ("45 seconds", NOW + 45),
        ("2027-01-15T09:00:00+00:00", NOW + 3600),
        ("2027-01-15T17:00", NOW + 3600),  # naive: the site's timezone (UTC+8)
        ("2027-01-15T09:00Z", NOW + 3600),
        ("2027-01-15T08:00:00Z", NOW),  # now: readable (the monitor says it is not ahead)
    ],
)
def test_when_reads_relative_and_absolute_times(text: str, expected: float) -> None:
    assert parse_when(text, NOW, "Asia/Shanghai") == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "must be an ISO-8601 time"),
        ("soon", "must be an ISO-8601 time"),
        ("in -5 min", "must be an ISO-8601 time"),
        ("0m", "must be a positive duration"),
        ("in 30 fortnights", "unknown unit 'fortnights'"),
        ("367d", "must be at most a year from now"),
        ("9999-12-31T23:59", "must be at most a year from now"),
        ("２０２７-01-15", "must be an ISO-8601 time"),
        ("x" * 65, "must be an ISO-8601 time"),
    ],
)
def test_when_refuses_what_it_cannot_read(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_when(text, NOW, "Asia/Shanghai")


# -- the read model of silences and windows, on SQLite and PostgreSQL --------------------
def test_active_silences_and_windows_are_those_in_force_now_paged(db) -> None:  # noqa: ANN001
    repo = StateRepository(db)
    repo.checkpoint(
        [
            {"target_id": t, "kind": "sip", "health": "up", "since": NOW - 100}
            for t in ("trunk-a", "trunk-b", "pbx")
        ]
    )
    ids = [
        actions.silence(repo, "user:a", target_id=t, duration=d, at=NOW).payload["silence_id"]
        for t, d in (("trunk-a", 600), ("trunk-b", 60), ("pbx", 3600))
    ]
    actions.silence(repo, "user:a", component_id="outbound", duration=30, at=NOW - 100)  # over
    actions.lift_silence(repo, "user:b", ids[2], at=NOW + 1)
    page = queries.active_silences(db, NOW + 2, queries.Page(1, 1))
    assert (page.total, [s.id for s in page.items]) == (2, [ids[1]])  # soonest end first
    assert [s.id for s in queries.active_silences(db, NOW + 2, queries.Page(2, 1)).items] == [
        ids[0]
    ]
    lifted = queries.silence(db, ids[2])
    assert lifted is not None and (lifted.lifted_by, lifted.active(NOW + 2)) == ("user:b", False)
    assert queries.silence(db, 10**6) is None

    windows = [
        actions.start_maintenance(repo, "user:a", t, until=u, at=NOW).payload["window_id"]
        for t, u in (("trunk-a", None), ("trunk-b", NOW + 60))
    ]
    actions.end_maintenance(repo, "user:b", windows[0], at=NOW + 10)
    assert [w.id for w in queries.active_maintenance(db, NOW + 20).items] == [windows[1]]
    assert queries.active_maintenance(db, NOW + 60).total == 0  # ran out
    ended = queries.maintenance_window(db, windows[0])
    assert ended is not None and (ended.ended_by, ended.ends_at) == ("user:b", None)


@pytest.mark.peer
def test_a_target_id_postgresql_cannot_hold_is_a_404_not_a_500(
    tmp_path: Path,
    postgres_server,  # noqa: ANN001
) -> None:
    engine = open_database(postgres_server.create_database(), tmp_path)
    try:
        tokens = add_staff(engine)
        app = create_app(WebServices(config=lambda: make_config(), db=engine, listen_port=80))
        client = app.test_client()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {tokens['viewer']}"
        for path in ("/api/v1/targets/a%00b", "/api/v1/targets?q=a%00b"):
            r = client.get(path)
            assert r.status_code in (400, 404), (path, r.status_code)
            assert r.mimetype == "application/json"
    finally:
        engine.dispose()
