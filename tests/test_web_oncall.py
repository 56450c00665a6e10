"""On-call overrides from the console and the API, and the ``/oncall`` page, against the
real app: a config of the appliance's schema with people and a schedule, time from the
services' clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from dialwatch.schema import Config as ApplianceConfig
from monitor.store.models import AuditEntry, OncallOverride
from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.test_web_access import csrf_of, login
from tests.test_web_support import BASE_CONFIG, STAFF, World, make_world

NOW = 1_800_000_000.0  # 2027-01-15 08:00 UTC, 16:00 in Asia/Shanghai
HOUR = 3600.0


def world_config() -> dict[str, Any]:
    return {
            **BASE_CONFIG,
            "channels": [{"id": "hook", "kind": "webhook", "url": "http://127.0.0.1:9/",
                          "secret": "0123456789abcdef0123456789", "allow_private": True}],
            "people": [
                {"id": "zhang", "user": "zhang", "name": "张伟", "contact": ["hook"]},
                {"id": "li", "user": "li", "name": "李娜", "contact": ["hook"]},
            ],
            "schedules": [
                {"id": "noc", "name": "NOC", "timezone": "Asia/Shanghai",
                 "rotation": {"every": "1w", "handoff": "mon 09:00", "members": ["zhang"]}},
            ],
        }  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> World:
    config = ApplianceConfig.model_validate(world_config())
    return make_world(tmp_path, config=config, clock=lambda: NOW)


def oncall_now(w: World) -> str:
    [noc] = w.client("viewer").get("/api/v1/oncall").get_json()["items"]
    return noc["now"]["person"]


def audits(w: World, action: str) -> list[Any]:
    with w.db.connect() as conn:
        return list(
            conn.execute(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )


BODY = {
    "schedule": "noc",
    "person": "li",
    "from": "2027-01-15T08:00:00Z",
    "to": "2027-01-15T20:00",  # no offset: the site timezone (Asia/Shanghai)
    "reason": "Zhang at the dentist",
}


def test_an_override_changes_who_is_on_call_and_is_audited(world: World) -> None:
    assert oncall_now(world) == "zhang"
    r = world.client("operator").post("/api/v1/oncall/overrides", json=BODY)
    assert r.status_code == 201, r.get_json()
    made = r.get_json()
    assert (made["person"], made["active"]) == ("li", True)
    assert made["to"] == "2027-01-15T12:00:00Z"
    assert oncall_now(world) == "li"
    listed = world.client("viewer").get("/api/v1/oncall/overrides").get_json()["items"]
    assert [o["id"] for o in listed] == [made["id"]]
    [entry] = audits(world, "oncall.override.add")
    assert entry.actor.startswith("token:")  # the operator's API token
    assert (entry.object, entry.result) == ("schedule:noc", "ok")
    assert entry.after["person"] == "li"

    gone = world.client("operator").delete(f"/api/v1/oncall/overrides/{made['id']}")
    assert gone.status_code == 200, gone.get_json()
    assert oncall_now(world) == "zhang"
    assert world.client("viewer").get("/api/v1/oncall/overrides").get_json()["items"] == []
    again = world.client("operator").delete(f"/api/v1/oncall/overrides/{made['id']}")
    assert again.status_code == 409 and "removed already" in again.get_json()["error"]
    assert world.client("operator").delete("/api/v1/oncall/overrides/999").status_code == 404
    results = [e.result for e in audits(world, "oncall.override.remove")]
    assert results == ["ok", "failed", "failed"]
    with world.db.connect() as conn:
        [row] = conn.execute(select(OncallOverride)).all()
    assert (row.removed_by, row.removed_at) == (entry.actor, NOW)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"to": "2027-01-15T07:00:00Z"}, "the end must be after the start"),
        ({"person": "wang"}, "no person 'wang'"),
        ({"schedule": "voice"}, "no schedule 'voice'"),
        ({"from": "tomorrow"}, "from: must be an ISO 8601"),
        ({"from": "2027-01-14T08:00:00Z"}, "in the past"),
        ({"to": "2027-06-01"}, "at most 90 days"),
        ({"when": "now"}, "unknown field"),
    ],
)
def test_bad_overrides_are_400_with_the_reason(
    world: World, change: dict[str, str], reason: str
) -> None:
    r = world.client("operator").post("/api/v1/oncall/overrides", json={**BODY, **change})
    assert r.status_code == 400
    assert reason in r.get_json()["error"]
    assert oncall_now(world) == "zhang"


def test_a_start_a_few_seconds_ago_is_taken_as_now(world: World) -> None:
    body = {**BODY, "from": "2027-01-15T07:59:30Z"}
    r = world.client("operator").post("/api/v1/oncall/overrides", json=body)
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["from"] == "2027-01-15T08:00:00Z"


def test_a_viewer_cannot_add_or_remove(world: World) -> None:
    assert world.client("viewer").post("/api/v1/oncall/overrides", json=BODY).status_code == 403
    made = world.client("operator").post("/api/v1/oncall/overrides", json=BODY).get_json()
    r = world.client("viewer").delete(f"/api/v1/oncall/overrides/{made['id']}")
    assert r.status_code == 403
    assert world.anonymous().get("/api/v1/oncall/overrides").status_code == 401


def session(w: World, role: str) -> FlaskClient:
    client = w.anonymous()
    assert login(client, STAFF[role]).status_code == 302
    return client


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_the_page_shows_now_next_and_the_week_the_form_only_for_operators(
    world: World, lang: str
) -> None:
    world.client("operator").post("/api/v1/oncall/overrides", json=BODY)
    viewer = world.client("viewer").get(f"/oncall?lang={lang}").get_data(as_text=True)
    assert "李娜" in viewer and "张伟" in viewer and "Zhang at the dentist" in viewer
    assert "2027-01-15 20:00:00" in viewer  # the handoff back, in the site timezone
    assert 'id="form-override"' not in viewer and "/remove" not in viewer
    assert f"<td>{STAFF['operator']}</td>" in viewer  # who made it: the token's user
    word = {"en": "On call", "zh-CN": "值班"}[lang]
    assert word in viewer
    operator = session(world, "operator").get(f"/oncall?lang={lang}").get_data(as_text=True)
    assert 'id="form-override"' in operator and 'name="csrf_token"' in operator
    assert '<option value="li">李娜</option>' in operator


def test_the_page_form_adds_and_removes_and_shows_a_refusal(world: World) -> None:
    operator = session(world, "operator")
    form = {"schedule": "noc", "person": "li", "from": "2027-01-15T16:00",
            "to": "2027-01-15T18:00", "reason": "cover"}  # fmt: skip
    r = operator.post(
        "/oncall/overrides", data={"csrf_token": csrf_of(operator, "/oncall"), **form}
    )
    assert r.status_code == 303
    assert oncall_now(world) == "li"
    [made] = world.client("viewer").get("/api/v1/oncall/overrides").get_json()["items"]
    bad = operator.post(
        "/oncall/overrides?lang=en",
        data={"csrf_token": csrf_of(operator, "/oncall"), **form, "to": "2027-01-15T15:00"},
    )
    assert bad.status_code == 400
    assert 'id="error-override"' in bad.get_data(as_text=True)
    assert "the end must be after the start" in bad.get_data(as_text=True)
    no_csrf = operator.post("/oncall/overrides", data=form)
    assert no_csrf.status_code in (400, 403)
    path = f"/oncall/overrides/{made['id']}/remove"
    assert operator.post(path, data={"csrf_token": csrf_of(operator, "/oncall")}).status_code == 303
    assert oncall_now(world) == "zhang"
    twice = operator.post(path + "?lang=en", data={"csrf_token": csrf_of(operator, "/oncall")})
    assert twice.status_code == 409


@pytest.mark.peer
def test_an_operator_adds_and_removes_an_override_in_chromium(
    tmp_path: Path,
    chromium,  # noqa: ANN001, F811 - the fixture imported below
) -> None:
    """The page as a person uses it: a plain title, who is on call, the override form (a
    datetime-local input, so the value is set the way the browser's picker sets it), the
    row with its Remove button, a channel's Send test refused with its reason; no script errors."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_web_browser import _console_errors, browser_login
    from web.server import serve

    config = ApplianceConfig.model_validate(
        {**world_config(), "web": {"allowed_hosts": ["127.0.0.1"]}}
    )
    w = make_world(tmp_path, config=config, clock=lambda: NOW)
    handle = serve(w.app, "127.0.0.1", 0)
    try:
        browser_login(chromium, handle.url, role="operator")
        chromium.get(f"{handle.url}/oncall?lang=en")
        assert chromium.title.startswith("On call · ")
        now = chromium.find_element(By.CSS_SELECTOR, "#schedule-noc .oncall-now")
        assert now.text.startswith("张伟")
        form = chromium.find_element(By.ID, "form-override")
        form.find_element(By.CSS_SELECTOR, "select[name=person] option[value=li]").click()
        for name, value in (("from", "2027-01-15T16:00"), ("to", "2027-01-15T18:00")):
            field = form.find_element(By.NAME, name)
            chromium.execute_script("arguments[0].value = arguments[1]", field, value)
        form.find_element(By.NAME, "reason").send_keys("<b>cover</b>")
        form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # A page being replaced by the next one leaves stale elements for a moment.
        wait = WebDriverWait(chromium, 10, ignored_exceptions=(StaleElementReferenceException,))
        wait.until(lambda d: d.find_element(By.ID, "override-count").text == "1")
        assert oncall_now(w) == "li"
        assert chromium.find_element(By.CSS_SELECTOR, "#schedule-noc .oncall-now").text.startswith(
            "李娜"
        )
        [row] = chromium.find_elements(By.CSS_SELECTOR, "#override-rows tbody tr[data-id]")
        assert "<b>cover</b>" in row.text  # the reason shown as typed, not as markup
        assert row.find_elements(By.TAG_NAME, "b") == []
        row.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait.until(lambda d: d.find_element(By.ID, "override-count").text == "0")
        assert oncall_now(w) == "zhang"
        assert _console_errors(chromium) == []
        channel = chromium.find_element(By.CSS_SELECTOR, "#channel-rows tr[data-id=hook]")
        channel.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        # This world runs no paging service, so the refusal is what the row shows.
        refusal = wait.until(lambda d: d.find_element(By.ID, "error-channels"))
        assert refusal.text == "paging is not running in this process"
        [refused] = _console_errors(chromium)  # the page came back as a 409, nothing else
        assert "/oncall/channels/hook/test" in refused and "409" in refused
    finally:
        handle.close()
