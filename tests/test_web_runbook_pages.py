"""The console's runbook pages against the real app: the emergency plan beside the steps,
a dry-run and a start from the form, the run page with its answer form, the failback
approval button; CSRF on every form, nothing typed reaches the page as markup."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import insert

from dialwatch.schema import Config as ApplianceConfig
from monitor.store.models import FailoverMember
from monitor.store.repository import StateRepository
from runbooks import runs
from tests.test_web_access import csrf_of, login
from tests.test_web_failover import GROUP
from tests.test_web_support import BASE_CONFIG, STAFF, World, make_world

NOW = 1_800_000_000.0
RUNBOOKS: list[dict[str, Any]] = [
    {
        "id": "pause",
        "name": {"zh-CN": "暂停外呼", "en": "Pause the campaigns"},
        "emergency_plan": {"zh-CN": "致电运营商 400-000-0000", "en": "Call the carrier NOC: 400-000-0000"},
        "parameters": {"campaign": {"default": "all"}},
        "steps": [
            {"id": "ask", "kind": "approve", "prompt": "Pause {{ params.campaign }}?"},
            {"id": "pause", "kind": "http", "method": "POST",
             "url": "http://127.0.0.1:9/campaigns/{{ params.campaign }}/pause"},
        ],
    },
]  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> World:
    config = ApplianceConfig.model_validate(
        {**BASE_CONFIG, "runbooks": RUNBOOKS, "failover": [GROUP]}
    )
    w = make_world(tmp_path, config=config, clock=lambda: NOW)
    with w.db.begin() as conn:
        conn.execute(
            insert(FailoverMember).values(
                group_id="carriers", target_id="trunk-a", wanted="inactive", changed_at=NOW - 60,
                reason="its own health is down",
            )
        )  # fmt: skip
    return w


def session(w: World, role: str) -> FlaskClient:
    client = w.anonymous()
    assert login(client, STAFF[role]).status_code == 302
    return client


def test_the_list_shows_the_emergency_plan_and_the_form_only_to_operators(world: World) -> None:
    viewer = session(world, "viewer").get("/runbooks?lang=en").get_data(as_text=True)
    assert "Pause the campaigns" in viewer and "Call the carrier NOC: 400-000-0000" in viewer
    assert 'id="form-start-pause"' not in viewer and "Approve failback" not in viewer
    assert 'data-target="trunk-a"' in viewer and "taken out" in viewer
    zh = session(world, "viewer").get("/runbooks?lang=zh-CN").get_data(as_text=True)
    assert "暂停外呼" in zh and "致电运营商" in zh and "应急预案" in zh
    operator = session(world, "operator").get("/runbooks?lang=en").get_data(as_text=True)
    assert 'id="form-start-pause"' in operator and "Approve failback" in operator


def test_a_dry_run_from_the_form_shows_the_plan_and_starts_nothing(world: World) -> None:
    op = session(world, "operator")
    r = op.post(
        "/runbooks/pause/start?lang=en",
        data={"csrf_token": csrf_of(op, "/runbooks"), "target": "trunk-a",
              "param-campaign": "<b>c7</b>", "action": "dry-run"},
    )  # fmt: skip
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert 'id="plan"' in page and "Nothing was executed" in page
    assert "Pause &lt;b&gt;c7&lt;/b&gt;?" in page and "<b>c7</b>" not in page
    assert world.client("viewer").get("/api/v1/runs").get_json()["items"] == []


def test_start_then_answer_on_the_run_page(world: World) -> None:
    op = session(world, "operator")
    r = op.post(
        "/runbooks/pause/start",
        data={"csrf_token": csrf_of(op, "/runbooks"), "target": "trunk-a", "action": "start"},
    )
    assert r.status_code == 303
    path = r.headers["Location"]
    run_id = int(path.rsplit("/", 1)[1])
    page = op.get(path + "?lang=en").get_data(as_text=True)
    assert 'http-equiv="refresh"' in page and "queued" in page
    assert "Call the carrier NOC" in page  # the emergency plan beside the run
    repo = StateRepository(world.db)
    with repo.transaction() as conn:  # where the engine puts a run whose step asks a person
        conn.execute(runs._RUN.update().where(runs._RUN.c.id == run_id).values(state="waiting"))
        conn.execute(runs._STEP.insert().values(
            run_id=run_id, phase="main", position=0, step_id="ask", kind="approve", attempt=1,
            state="waiting", started_at=NOW, summary="", output="", waiting_for="approve",
            role="operator", prompt="Pause all?", note=""))  # fmt: skip
    page = op.get(path + "?lang=en").get_data(as_text=True)
    assert 'id="form-decide"' in page and "Pause all?" in page
    own = op.post(path + "/decide?lang=en", data={"csrf_token": csrf_of(op, path),
                                                  "decision": "approved"})  # fmt: skip
    assert own.status_code == 409 and "someone else must approve it" in own.get_data(as_text=True)
    admin = session(world, "admin")
    ok = admin.post(path + "/decide", data={"csrf_token": csrf_of(admin, path),
                                            "decision": "approved", "note": "<i>go</i>"})  # fmt: skip
    assert ok.status_code == 303
    page = admin.get(path + "?lang=en").get_data(as_text=True)
    assert "&lt;i&gt;go&lt;/i&gt;" in page and "<i>go</i>" not in page
    no_csrf = admin.post(path + "/abort", data={})
    assert no_csrf.status_code in (400, 403)
    aborted = admin.post(path + "/abort", data={"csrf_token": csrf_of(admin, path)})
    assert aborted.status_code == 303


def test_the_failback_button_approves_once(world: World) -> None:
    op = session(world, "operator")
    r = op.post("/failover/carriers/trunk-a/approve",
                data={"csrf_token": csrf_of(op, "/runbooks")})  # fmt: skip
    assert r.status_code == 303
    page = op.get("/runbooks?lang=en").get_data(as_text=True)
    assert "failback approved by" in page and "Approve failback" not in page
    again = op.post("/failover/carriers/trunk-a/approve?lang=en",
                    data={"csrf_token": csrf_of(op, "/runbooks")})  # fmt: skip
    assert again.status_code == 409 and 'id="error-failover"' in again.get_data(as_text=True)


def test_an_unknown_run_is_a_404_page(world: World) -> None:
    assert session(world, "viewer").get("/runs/999").status_code == 404
