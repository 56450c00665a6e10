"""The console's incident pages and silences page: who sees what, each form's change and
its audit entry, refusals as a form error with a 4xx, filters, pagination, strict params.

A real temporary SQLite state DB, the real app, real users and API tokens (one
per role) and, where a form is used as a browser uses it, a real login session
with its CSRF token. The appliance clock is a manual one.
"""

from __future__ import annotations

import re
import time
from datetime import datetime
from html import unescape
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select, update

from monitor.store import queries
from monitor.store.models import (
    AuditEntry,
    CustomerUpdate,
    Incident,
    ManualMaintenance,
    Silence,
)
from tests.test_web_access import csrf_of, login
from tests.test_web_support import (
    STAFF,
    World,
    add_incident,
    add_targets,
    make_world,
    standard_rows,
)
from web.i18n import iso

NOTE = "internal: carrier NOC ticket 4471, core router"


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
    """The operator logged in through the login form (a cookie session, as a browser)."""
    client = world.anonymous()
    assert login(client, STAFF["operator"]).status_code == 302
    return client


def text_of(response: Any) -> str:
    return unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True)))


def post(client: FlaskClient, path: str, page: str, **data: Any) -> Any:
    """A form post with the CSRF token of ``page``, as the browser sends it."""
    return client.post(path, data={"csrf_token": csrf_of(client, page), **data})


def audits(world: World) -> list[Any]:
    with world.db.connect() as conn:
        return list(
            conn.execute(
                select(AuditEntry)
                .where(AuditEntry.actor != "test", AuditEntry.action != "login")
                .order_by(AuditEntry.id)
            ).all()
        )


def last_audit(world: World) -> Any:
    rows = audits(world)
    assert rows, "no audit entry"
    return rows[-1]


def incident_row(world: World, incident_id: int) -> queries.IncidentRow:
    row = queries.incident(world.db, incident_id)
    assert row is not None
    return row


OPERATOR = f"user:{STAFF['operator']}"
FORMS = ("form-ack", "form-note", "form-edit", "form-update", "form-resolve")


# -- who sees what -----------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/incidents", "/incidents/1", "/incidents/new", "/silences"])
def test_anonymous_callers_are_sent_to_log_in(world: World, incident: int, path: str) -> None:
    r = world.anonymous().get(path)
    assert r.status_code == 302 and r.headers["Location"].startswith(f"/login?next={path}")


def test_a_viewer_reads_the_incident_but_gets_no_forms(world: World, incident: int) -> None:
    viewer = world.client("viewer")
    page = viewer.get(f"/incidents/{incident}?lang=en")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Carrier A down" in html and "trunk-a is Down" in text_of(page)
    assert not any(f'id="{form}"' in html for form in FORMS)
    listing = viewer.get("/incidents?lang=en")
    assert listing.status_code == 200 and "Declare an incident" not in listing.get_data(True)
    assert viewer.get("/incidents/new").status_code == 403
    silences = viewer.get("/silences?lang=en").get_data(as_text=True)
    assert 'id="form-silence"' not in silences and 'id="form-maintenance"' not in silences


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/incidents/{id}/ack", {}),
        ("/incidents/{id}/notes", {"text": NOTE}),
        ("/incidents/{id}/edit", {"cause": "fibre cut"}),
        ("/incidents/{id}/updates", {"text_en": "calls fail"}),
        ("/incidents/{id}/resolve", {"note": "fixed"}),
        ("/incidents/new", {"title": "x", "severity": "down", "targets": "trunk-b"}),
        ("/silences", {"subject": "target:trunk-a", "duration": "1h"}),
        ("/silences/maintenance", {"subject": "target:trunk-b"}),
    ],
)
def test_a_viewer_post_is_refused_and_changes_nothing(
    world: World, incident: int, path: str, data: dict[str, str]
) -> None:
    before = incident_row(world, incident)
    r = world.client("viewer").post(path.format(id=incident), data=data)
    assert r.status_code == 403 and "operator" in text_of(r)
    assert incident_row(world, incident) == before
    assert audits(world) == []


def test_an_operator_gets_every_form_each_with_its_csrf_token(
    operator: FlaskClient, incident: int
) -> None:
    for path in (f"/incidents/{incident}", "/incidents/new", "/silences"):
        html = operator.get(path).get_data(as_text=True)
        forms = re.findall(r'<form method="post".*?</form>', html, re.S)
        assert forms, path
        for form in forms:
            assert 'name="csrf_token" value="' in form, (path, form[:120])
    html = operator.get(f"/incidents/{incident}").get_data(as_text=True)
    assert all(f'id="{form}"' in html for form in FORMS)


def test_a_form_post_without_the_csrf_token_is_refused(
    world: World, operator: FlaskClient, incident: int
) -> None:
    assert operator.post(f"/incidents/{incident}/ack").status_code == 400
    assert incident_row(world, incident).acknowledged_by is None


# -- each form ------------------------------------------------------------------------------
def test_acknowledge_records_who_and_when_and_the_page_shows_it(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    page = f"/incidents/{incident}"
    r = post(operator, f"{page}/ack", page)
    assert r.status_code == 303 and r.headers["Location"] == page
    row = incident_row(world, incident)
    assert (row.acknowledged_by, row.acknowledged_at) == (OPERATOR, clock.now)
    entry = last_audit(world)
    assert (entry.actor, entry.action, entry.object, entry.result) == (
        OPERATOR,
        "incident.ack",
        f"incident:{incident}",
        "ok",
    )
    shown = text_of(operator.get(f"{page}?lang=en"))
    assert f"by {STAFF['operator']} at" in shown
    assert 'id="form-ack"' not in operator.get(page).get_data(as_text=True)


def test_a_second_acknowledgement_shows_who_acknowledged_first_with_a_409(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    assert world.client("admin").post(f"/api/v1/incidents/{incident}/ack").status_code == 200
    clock.now += 60
    page = f"/incidents/{incident}"
    r = operator.post(f"{page}/ack?lang=en", data={"csrf_token": csrf_of(operator, page)})
    assert r.status_code == 409
    message = re.search(r'id="error-ack">(.*?)</p>', r.get_data(as_text=True)).group(1)
    assert f"Already acknowledged by {STAFF['admin']}" in unescape(message)
    assert last_audit(world).result == "failed"


def test_a_note_goes_on_the_timeline_and_never_on_the_status_page(
    world: World, operator: FlaskClient, incident: int
) -> None:
    page = f"/incidents/{incident}"
    assert post(operator, f"{page}/notes", page, text=NOTE).status_code == 303
    timeline = operator.get(f"{page}?lang=en").get_data(as_text=True)
    assert NOTE in unescape(timeline) and "Internal note" in timeline
    entry = last_audit(world)
    assert (entry.action, entry.after) == ("incident.note", {"text": NOTE})
    assert NOTE not in world.anonymous().get("/status").get_data(as_text=True)


def test_an_empty_note_is_a_form_error_with_the_text_kept(
    operator: FlaskClient, incident: int
) -> None:
    page = f"/incidents/{incident}"
    r = post(operator, f"{page}/notes?lang=en", page, text="   ")
    assert r.status_code == 400
    assert "must not be empty" in unescape(
        re.search(r'id="error-note">(.*?)</p>', r.get_data(as_text=True)).group(1)
    )


def test_cause_eta_in_30_min_and_summaries_are_set_from_one_form_and_audited(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    page = f"/incidents/{incident}"
    r = post(
        operator,
        f"{page}/edit",
        page,
        cause="Carrier A fibre cut",
        eta="in 30 min",
        **{"summary_zh-CN": "部分外呼失败", "summary_en": "Some outbound calls fail"},
    )
    assert r.status_code == 303, text_of(r)
    row = incident_row(world, incident)
    assert row.cause == "Carrier A fibre cut" and row.eta == clock.now + 1800
    assert dict(row.summary) == {"zh-CN": "部分外呼失败", "en": "Some outbound calls fail"}
    entry = last_audit(world)
    assert entry.action == "incident.update" and entry.result == "ok"
    assert entry.before == {"cause": None, "eta": None, "summary": None}
    assert entry.after["eta"] == iso(clock.now + 1800)
    # The form shows the values again; sent back unchanged after the ETA has passed, with
    # only the cause changed, the ETA is not read again (and so not refused as past).
    clock.now += 3600
    html = operator.get(page).get_data(as_text=True)
    eta_value = re.search(r'name="eta" value="([^"]*)"', html).group(1)
    assert eta_value
    r = post(
        operator,
        f"{page}/edit",
        page,
        cause="Carrier A fibre cut, splicing",
        eta=eta_value,
        **{"summary_zh-CN": "部分外呼失败", "summary_en": "Some outbound calls fail"},
    )
    assert r.status_code == 303
    assert last_audit(world).after == {"cause": "Carrier A fibre cut, splicing"}


def test_an_eta_in_the_past_is_a_400_form_error_and_audited_as_failed(
    world: World, operator: FlaskClient, incident: int
) -> None:
    page = f"/incidents/{incident}"
    r = post(operator, f"{page}/edit?lang=en", page, eta="2020-01-01T08:00")
    assert r.status_code == 400
    error = unescape(re.search(r'id="error-edit">(.*?)</p>', r.get_data(as_text=True)).group(1))
    assert "not in the future" in error
    assert incident_row(world, incident).eta is None
    assert (last_audit(world).action, last_audit(world).result) == ("incident.update", "failed")
    # what was typed stays in the form
    assert 'value="2020-01-01T08:00"' in r.get_data(as_text=True)


def test_an_eta_that_is_no_time_and_an_unchanged_form_are_400s(
    operator: FlaskClient, incident: int
) -> None:
    page = f"/incidents/{incident}"
    assert post(operator, f"{page}/edit", page, eta="tomorrow-ish").status_code == 400
    assert post(operator, f"{page}/edit", page).status_code == 400


def test_a_customer_update_in_both_languages_reaches_the_status_page(
    world: World, operator: FlaskClient, incident: int
) -> None:
    page = f"/incidents/{incident}"
    r = post(
        operator,
        f"{page}/updates",
        page,
        **{"text_zh-CN": "已切换到备用线路。", "text_en": "Calls now use the backup trunk."},
    )
    assert r.status_code == 303
    with world.db.connect() as conn:
        stored = conn.execute(select(CustomerUpdate.text)).scalars().all()
    assert stored == [{"zh-CN": "已切换到备用线路。", "en": "Calls now use the backup trunk."}]
    assert last_audit(world).action == "incident.customer_update"
    shown = unescape(operator.get(page).get_data(as_text=True))
    assert "已切换到备用线路。" in shown and "Calls now use the backup trunk." in shown
    anon = world.anonymous()
    assert "Calls now use the backup trunk." in anon.get("/status?lang=en").get_data(True)
    assert "已切换到备用线路。" in anon.get("/status?lang=zh-CN").get_data(True)


def test_a_customer_update_with_no_text_is_a_400(
    world: World, operator: FlaskClient, incident: int
) -> None:
    page = f"/incidents/{incident}"
    r = post(operator, f"{page}/updates", page, **{"text_zh-CN": " ", "text_en": ""})
    assert r.status_code == 400 and 'id="error-update"' in r.get_data(as_text=True)
    with world.db.connect() as conn:
        assert conn.execute(select(CustomerUpdate)).all() == []


def test_resolve_with_a_note_then_a_second_resolve_is_a_409(
    world: World, operator: FlaskClient, incident: int, clock: Clock
) -> None:
    page = f"/incidents/{incident}"
    assert post(operator, f"{page}/resolve", page, note="").status_code == 400
    r = post(operator, f"{page}/resolve", page, note="carrier repaired the fibre")
    assert r.status_code == 303
    row = incident_row(world, incident)
    assert (row.state, row.resolved_at) == ("resolved", clock.now)
    assert last_audit(world).after == {"note": "carrier repaired the fibre"}
    html = operator.get(f"{page}?lang=en").get_data(as_text=True)
    assert "carrier repaired the fibre" in html and 'id="form-resolve"' not in html
    again = post(operator, f"{page}/resolve?lang=en", page, note="again")
    assert again.status_code == 409 and "it is resolved" in text_of(again)


def test_an_unknown_incident_is_a_404_page(operator: FlaskClient) -> None:
    assert operator.get("/incidents/999").status_code == 404
    assert operator.get("/incidents/١").status_code == 404
    assert post(operator, "/incidents/999/notes", "/incidents", text="x").status_code == 404


# -- declaring --------------------------------------------------------------------------------
def test_declare_for_a_component_with_cause_and_summary(
    world: World, operator: FlaskClient
) -> None:
    r = post(
        operator,
        "/incidents/new",
        "/incidents/new",
        title="Carrier announced maintenance outage",
        severity="degraded",
        components="outbound",
        cause="carrier core upgrade",
        summary_en="Outbound calls may fail tonight",
    )
    assert r.status_code == 303, text_of(r)
    incident_id = int(r.headers["Location"].rsplit("/", 1)[1])
    row = incident_row(world, incident_id)
    assert set(row.member_ids) == {"trunk-a", "trunk-b"} and row.severity.value == "degraded"
    assert row.cause == "carrier core upgrade"
    assert dict(row.summary) == {"en": "Outbound calls may fail tonight"}
    assert [a.action for a in audits(world)] == ["incident.declare", "incident.update"]
    assert audits(world)[0].object == "component:outbound"


def test_declare_refusals_keep_the_form(world: World, operator: FlaskClient, incident: int) -> None:
    page = "/incidents/new"
    nothing = post(operator, f"{page}?lang=en", page, title="x", severity="down")
    assert nothing.status_code == 400 and "give targets or components" in text_of(nothing)
    busy = post(
        operator, f"{page}?lang=en", page, title="again", severity="down", targets="trunk-a"
    )
    assert busy.status_code == 409 and "in open incident" in text_of(busy)
    assert 'value="again"' in busy.get_data(as_text=True)


# -- the list ----------------------------------------------------------------------------------
@pytest.fixture
def many(world: World, clock: Clock) -> dict[str, int]:
    """Incidents of every kind the filters tell apart."""
    made = {
        "open-down": add_incident(world.db, ["trunk-a", "router"], opened_ago=600),
        "open-degraded": add_incident(world.db, ["crm-db"], opened_ago=500, severity="degraded"),
        "old-resolved": add_incident(world.db, ["trunk-b"], state="resolved", opened_ago=86400 * 3),
        "resolved": add_incident(world.db, ["router"], state="resolved", opened_ago=400),
    }
    with world.db.begin() as conn:  # three days ago, for an hour
        conn.execute(
            update(Incident)
            .where(Incident.id == made["old-resolved"])
            .values(resolved_at=time.time() - 86400 * 3 + 3600)
        )
    return made


def listed(client: FlaskClient, query: str) -> list[int]:
    r = client.get(f"/incidents?{query}")
    assert r.status_code == 200, text_of(r)
    return [int(i) for i in re.findall(r'<tr class="[^"]*" data-id="(\d+)"', r.get_data(True))]


def test_the_list_filters_by_state_severity_target_component_and_time(
    world: World, many: dict[str, int]
) -> None:
    viewer = world.client("viewer")
    assert set(listed(viewer, "")) == set(many.values())
    assert set(listed(viewer, "state=open")) == {many["open-down"], many["open-degraded"]}
    assert listed(viewer, "state=open&severity=degraded") == [many["open-degraded"]]
    assert set(listed(viewer, "target=router")) == {many["open-down"], many["resolved"]}
    assert set(listed(viewer, "component=outbound")) == {many["open-down"], many["old-resolved"]}
    assert listed(viewer, "component=crm&state=resolved") == []
    shanghai = ZoneInfo("Asia/Shanghai")  # the site timezone
    yesterday = datetime.fromtimestamp(time.time() - 86400, shanghai).strftime("%Y-%m-%d")
    assert set(listed(viewer, f"from={yesterday}")) == set(many.values()) - {many["old-resolved"]}
    four_days_ago = datetime.fromtimestamp(time.time() - 4 * 86400, shanghai)
    two_days_ago = datetime.fromtimestamp(time.time() - 2 * 86400, shanghai)
    window = f"from={four_days_ago:%Y-%m-%dT%H:%M}&to={two_days_ago:%Y-%m-%dT%H:%M}"
    assert listed(viewer, window) == [many["old-resolved"]]
    assert listed(viewer, "to=2020-01-01") == []
    # the form's "any" choices come as empty values and filter nothing
    assert set(listed(viewer, "state=&severity=&target=&component=&from=&to=")) == set(
        many.values()
    )


def test_the_list_pages_and_its_links_keep_the_filters_and_the_language(
    world: World, many: dict[str, int]
) -> None:
    viewer = world.client("viewer")
    first = viewer.get("/incidents?per_page=2&severity=down&lang=en")
    html = unescape(first.get_data(as_text=True))
    assert "Page 1 of 2" in html
    assert 'href="/incidents?per_page=2&severity=down&page=2"' in html
    assert "?per_page=2&severity=down&lang=zh-CN" in html  # the language switch
    second = listed(viewer, "per_page=2&severity=down&page=2")
    assert len(second) == 1 and second[0] not in listed(viewer, "per_page=2&severity=down")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("page=²", "page: must be a whole number"),
        ("per_page=0", "per_page: must be from 1"),
        ("state=closed", "state: unknown value 'closed'"),
        ("severity=up", "severity: unknown value 'up'"),
        ("component=nope", "component: unknown 'nope'"),
        ("target=a%00b", "target: must not contain control characters"),
        ("from=yesterday", "from: must be an ISO 8601 date or time"),
        (
            "from=2026-02-30",
            "from: must be an ISO 8601 date or time such as 2026-12-02, 2026-12-02T10:00 or 2026-12-02T10:00:00+08:00, got '2026-02-30'",
        ),
        ("from=2026-12-02&to=2026-12-01", "to: must be after from"),
        ("helth=down", "unknown parameter helth"),
    ],
)
def test_bad_list_parameters_are_a_400_page_with_the_reason(
    world: World, query: str, reason: str
) -> None:
    r = world.client("viewer").get(f"/incidents?{query}&lang=en")
    assert r.status_code == 400
    assert reason in text_of(r)


def test_the_incident_page_takes_no_other_parameter(world: World, incident: int) -> None:
    assert world.client("viewer").get(f"/incidents/{incident}?x=1").status_code == 400


# -- the API's incident ------------------------------------------------------------------------
def test_the_api_gives_one_incident_with_members_timeline_and_updates(
    world: World, incident: int
) -> None:
    op = world.client("operator")
    assert op.post(f"/api/v1/incidents/{incident}/notes", json={"text": NOTE}).status_code == 201
    body = {"text": {"en": "Failing over", "zh-CN": "正在切换"}}
    assert op.post(f"/api/v1/incidents/{incident}/updates", json=body).status_code == 201
    r = world.client("viewer").get(f"/api/v1/incidents/{incident}")
    assert r.status_code == 200
    got = r.get_json()
    assert got["id"] == incident and got["targets"] == ["trunk-a", "router"]
    assert [(m["target_id"], m["role"]) for m in got["members"]] == [
        ("trunk-a", "root"),
        ("router", "affected"),
    ]
    assert [e["kind"] for e in got["timeline"]] == ["note", "customer_update"]
    assert got["customer_updates"][0]["text"] == body["text"]
    missing = world.client("viewer").get("/api/v1/incidents/999")
    assert missing.status_code == 404 and missing.get_json() == {"error": "no incident 999"}
    assert world.anonymous().get(f"/api/v1/incidents/{incident}").status_code == 401


# -- the dashboard ------------------------------------------------------------------------------
def test_the_dashboard_links_each_open_incident_and_says_who_acknowledged_it(
    world: World, operator: FlaskClient, incident: int
) -> None:
    other = add_incident(world.db, ["crm-db"], severity="degraded")
    page = f"/incidents/{incident}"
    assert post(operator, f"{page}/ack", page).status_code == 303
    html = operator.get("/?lang=en").get_data(as_text=True)
    assert f'href="/incidents/{incident}"' in html and f'href="/incidents/{other}"' in html
    assert f"acknowledged by {STAFF['operator']}" in html
    assert "not acknowledged" in html
    assert 'href="/incidents"' in html and 'href="/silences"' in html  # the nav


# -- silences and maintenance ---------------------------------------------------------------------
def test_silence_a_component_then_lift_it(
    world: World, operator: FlaskClient, clock: Clock
) -> None:
    r = post(
        operator,
        "/silences",
        "/silences",
        subject="component:outbound",
        duration="2h",
        reason="carrier works",
    )
    assert r.status_code == 303, text_of(r)
    with world.db.connect() as conn:
        (row,) = conn.execute(select(Silence)).all()
    assert (row.component_id, row.ends_at, row.created_by) == (
        "outbound",
        clock.now + 7200,
        OPERATOR,
    )
    assert (last_audit(world).action, last_audit(world).object) == (
        "silence.start",
        "component:outbound",
    )
    page = text_of(operator.get("/silences?lang=en"))
    assert "Outbound calling" in page and "carrier works" in page
    assert post(operator, f"/silences/{row.id}/lift", "/silences").status_code == 303
    assert queries.silence(world.db, row.id).lifted_by == OPERATOR
    assert last_audit(world).action == "silence.lift"
    again = post(operator, f"/silences/{row.id}/lift?lang=en", "/silences")
    assert again.status_code == 409 and "over already" in text_of(again)


def test_a_silence_with_a_bad_duration_is_a_400_form_error(
    world: World, operator: FlaskClient
) -> None:
    r = post(operator, "/silences?lang=en", "/silences", subject="target:trunk-a", duration="ever")
    assert r.status_code == 400 and 'id="error-silence"' in r.get_data(as_text=True)
    no_subject = post(operator, "/silences", "/silences", subject="", duration="1h")
    assert no_subject.status_code == 400
    with world.db.connect() as conn:
        assert conn.execute(select(Silence)).all() == []


def test_maintenance_for_a_target_until_in_2h_then_end_it(
    world: World, operator: FlaskClient, clock: Clock
) -> None:
    r = post(
        operator,
        "/silences/maintenance",
        "/silences",
        subject="target:trunk-b",
        until="in 2h",
        reason="firmware",
    )
    assert r.status_code == 303, text_of(r)
    with world.db.connect() as conn:
        (window,) = conn.execute(select(ManualMaintenance)).all()
    assert (window.target_id, window.ends_at) == ("trunk-b", clock.now + 7200)
    assert last_audit(world).action == "maintenance.start"
    assert "firmware" in text_of(operator.get("/silences"))
    busy = post(operator, "/silences/maintenance", "/silences", subject="target:trunk-b")
    assert busy.status_code == 409
    assert post(operator, f"/silences/maintenance/{window.id}/end", "/silences").status_code == 303
    assert queries.maintenance_window(world.db, window.id).ended_by == OPERATOR
    assert last_audit(world).action == "maintenance.end"


def test_the_silences_page_takes_only_its_page_parameters(world: World) -> None:
    viewer = world.client("viewer")
    assert viewer.get("/silences?spage=2&mpage=1").status_code == 200
    assert viewer.get("/silences?spage=²").status_code == 400
    assert viewer.get("/silences?x=1").status_code == 400


def test_a_resolved_incidents_cause_changes_and_its_eta_stays(
    world: World, operator: FlaskClient, clock: Clock
) -> None:
    done = add_incident(world.db, ["crm-db"], state="resolved", eta=clock.now - 600)
    page = f"/incidents/{done}"
    html = operator.get(page).get_data(as_text=True)
    assert re.search(r'name="eta" value="[^"]+"[^>]* disabled', html)
    r = post(operator, f"{page}/edit", page, cause="disk full")  # no eta: a disabled field
    assert r.status_code == 303, text_of(r)
    row = incident_row(world, done)
    assert (row.cause, row.eta) == ("disk full", clock.now - 600)


def test_a_site_with_many_targets_asks_for_ids_instead_of_listing_them(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    from web import incident_pages

    monkeypatch.setattr(incident_pages, "MAX_CHOICES", 2)  # the four targets are "many"
    w = make_world(tmp_path, clock=clock.time)
    add_targets(w.db, standard_rows())
    add_incident(w.db, ["trunk-a"])
    operator = w.anonymous()
    login(operator, STAFF["operator"])
    listing = operator.get("/incidents?target=trunk-a").get_data(as_text=True)
    assert (
        '<input name="target" value="trunk-a"' in listing
        and '<option value="router"' not in listing
    )
    r = post(
        operator, "/incidents/new", "/incidents/new", title="CRM down", target_ids="crm-db, router"
    )
    assert r.status_code == 303, text_of(r)
    declared = incident_row(w, int(r.headers["Location"].rsplit("/", 1)[1]))
    assert declared.member_ids == ("crm-db", "router")
    assert 'name="target"' in operator.get("/silences").get_data(as_text=True)
    r = post(operator, "/silences", "/silences", subject="", target="trunk-b", duration="1h")
    assert r.status_code == 303, text_of(r)
    both = post(
        operator, "/silences", "/silences", subject="component:crm", target="x", duration="1h"
    )
    assert both.status_code == 400


def test_the_api_list_takes_the_same_filters_and_refuses_empty_ones(
    world: World, many: dict[str, int]
) -> None:
    viewer = world.client("viewer")

    def ids(query: str) -> set[int]:
        r = viewer.get(f"/api/v1/incidents?{query}")
        assert r.status_code == 200, r.get_json()
        return {i["id"] for i in r.get_json()["items"]}

    assert ids("state=open&severity=degraded") == {many["open-degraded"]}
    assert ids("target=router") == {many["open-down"], many["resolved"]}
    assert ids("component=outbound&state=resolved") == {many["old-resolved"]}
    assert ids("from=2020-01-01T00:00Z&to=2020-01-02") == set()
    day_ago = datetime.fromtimestamp(time.time() - 86400, ZoneInfo("UTC"))
    since = f"{day_ago:%Y-%m-%dT%H:%M}Z"
    assert ids(f"from={since}") == set(many.values()) - {many["old-resolved"]}
    for query, reason in [
        ("to=", "to: must be an ISO 8601 date or time"),
        ("target=", "target: empty value"),
        ("component=", "component: empty value"),
        ("lang=en", "unknown parameter lang"),
    ]:
        r = viewer.get(f"/api/v1/incidents?{query}")
        assert r.status_code == 400 and r.get_json()["error"].startswith(reason), query
