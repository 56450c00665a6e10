"""The runbooks API against the real app: runbooks listed, dry-runs, runs started by hand,
people's answers (four eyes), aborts and resumes — every change audited."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from dialwatch.schema import Config as ApplianceConfig
from monitor.store.models import AuditEntry
from monitor.store.repository import StateRepository
from runbooks import runs
from tests.test_web_support import BASE_CONFIG, World, make_world

NOW = 1_800_000_000.0
RUNBOOKS: list[dict[str, Any]] = [
    {
        "id": "pause",
        "name": {"zh-CN": "暂停外呼", "en": "Pause the campaigns"},
        "emergency_plan": {"zh-CN": "致电运营商", "en": "Call the carrier NOC: 400-000-0000"},
        "parameters": {"campaign": {"default": "all"}},
        "steps": [
            {"id": "ask", "kind": "approve", "prompt": "Pause {{ params.campaign }}?"},
            {"id": "pause", "kind": "http", "method": "POST",
             "url": "http://127.0.0.1:9/campaigns/{{ params.campaign }}/pause",
             "headers": {"Authorization": "Bearer s3cret-dialer-token"}},
        ],
        "rollback": [{"kind": "http", "method": "POST",
                      "url": "http://127.0.0.1:9/campaigns/{{ params.campaign }}/resume"}],
    },
    {"id": "admin-only", "steps": [{"kind": "approve", "role": "admin"}]},
    {"id": "tick", "steps": [{"kind": "manual", "prompt": "Call {{ target.name }}"}]},
]  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> World:
    config = ApplianceConfig.model_validate({**BASE_CONFIG, "runbooks": RUNBOOKS})
    return make_world(tmp_path, config=config, clock=lambda: NOW)


def audits(w: World, prefix: str = "runbook.") -> list[tuple[str, str]]:
    with w.db.connect() as conn:
        rows = conn.execute(
            select(AuditEntry.action, AuditEntry.result).order_by(AuditEntry.id)
        ).all()
    return [(a, r) for a, r in rows if a.startswith(prefix)]


def waiting(w: World, run_id: int, what: str, role: str = "operator") -> None:
    """Put the run where the engine puts it when a step asks a person."""
    repo = StateRepository(w.db)
    with repo.transaction() as conn:
        conn.execute(runs._RUN.update().where(runs._RUN.c.id == run_id).values(state="waiting"))
        conn.execute(
            runs._STEP.insert().values(
                run_id=run_id, phase="main", position=0, step_id="ask", kind=what, attempt=1,
                state="waiting", started_at=NOW, summary="", output="", waiting_for=what,
                role=role, prompt="?", note="",
            )
        )  # fmt: skip


def test_runbooks_are_listed_with_their_plan_for_people(world: World) -> None:
    r = world.client("viewer").get("/api/v1/runbooks")
    assert r.status_code == 200
    pause = r.get_json()["items"][0]
    assert pause["name"] == {"en": "Pause the campaigns", "zh-CN": "暂停外呼"}
    assert pause["emergency_plan"]["en"] == "Call the carrier NOC: 400-000-0000"
    assert [s["id"] for s in pause["steps"]] == ["ask", "pause"]
    assert pause["parameters"]["campaign"]["default"] == "all"
    assert "s3cret-dialer-token" not in r.get_data(as_text=True)


def test_a_dry_run_resolves_values_hides_secrets_and_stores_nothing(world: World) -> None:
    r = world.client("operator").post(
        "/api/v1/runbooks/pause/runs",
        json={"target": "trunk-a", "params": {"campaign": "c7"}, "dry_run": True},
    )
    assert r.status_code == 200, r.get_data(as_text=True)
    plan = r.get_json()["plan"]
    assert [(p["phase"], p["id"]) for p in plan] == [
        ("main", "ask"), ("main", "pause"), ("rollback", "rollback-1"),
    ]  # fmt: skip
    assert "Pause c7?" in " ".join(plan[0]["does"])
    assert any("/campaigns/c7/pause" in line for line in plan[1]["does"])
    assert "s3cret-dialer-token" not in r.get_data(as_text=True)
    assert world.client("viewer").get("/api/v1/runs").get_json()["items"] == []


def test_an_operator_starts_a_run_once_per_target_audited(world: World) -> None:
    op = world.client("operator")
    r = op.post("/api/v1/runbooks/pause/runs", json={"target": "trunk-a"})
    assert r.status_code == 201, r.get_data(as_text=True)
    run = r.get_json()
    assert (run["state"], run["target"], run["params"]) == (
        "queued",
        "trunk-a",
        {"campaign": "all"},
    )
    assert run["started_by"].startswith("token:")
    again = op.post("/api/v1/runbooks/pause/runs", json={"target": "trunk-a"})
    assert again.status_code == 409
    assert "one run per runbook and target" in again.get_json()["error"]
    assert audits(world) == [("runbook.start", "ok"), ("runbook.start", "failed")]
    detail = world.client("viewer").get(f"/api/v1/runs/{run['id']}").get_json()
    assert detail["steps"] == [] and detail["id"] == run["id"]
    listed = world.client("viewer").get("/api/v1/runs?state=queued").get_json()["items"]
    assert [x["id"] for x in listed] == [run["id"]]


@pytest.mark.parametrize(
    ("path", "body", "status", "words"),
    [
        ("/api/v1/runbooks/nope/runs", {}, 404, "no runbook 'nope'"),
        ("/api/v1/runbooks/pause/runs", {"target": "nope"}, 400, "no target 'nope'"),
        ("/api/v1/runbooks/pause/runs", {"params": {"colour": "red"}}, 400, "no parameter colour"),
        ("/api/v1/runbooks/pause/runs", {"speed": 1}, 400, "speed"),
        ("/api/v1/runbooks/pause/runs", {"params": {"campaign": ["a"]}}, 400, "params"),
        ("/api/v1/runs/999/abort", None, 404, "no run 999"),
    ],
)
def test_bad_requests_are_4xx_with_the_reason(
    world: World, path: str, body: Any, status: int, words: str
) -> None:
    r = world.client("operator").post(path, json=body)
    assert r.status_code == status, r.get_data(as_text=True)
    assert words in r.get_json()["error"]


def test_viewers_change_nothing(world: World) -> None:
    viewer = world.client("viewer")
    assert viewer.post("/api/v1/runbooks/pause/runs", json={}).status_code == 403
    assert viewer.post("/api/v1/runs/1/decide", json={"decision": "approved"}).status_code == 403


def test_the_starter_cannot_approve_someone_else_can(world: World) -> None:
    op = world.client("operator")
    run = op.post("/api/v1/runbooks/pause/runs", json={"target": "trunk-a"}).get_json()
    waiting(world, run["id"], "approve")
    self_approval = op.post(f"/api/v1/runs/{run['id']}/decide", json={"decision": "approved"})
    assert self_approval.status_code == 409
    assert "someone else must approve it" in self_approval.get_json()["error"]
    other = world.client("admin").post(
        f"/api/v1/runs/{run['id']}/decide", json={"decision": "approved", "note": "ok"}
    )
    assert other.status_code == 200, other.get_data(as_text=True)
    [step] = world.client("viewer").get(f"/api/v1/runs/{run['id']}").get_json()["steps"]
    assert (step["decision"], step["note"]) == ("approved", "ok")
    assert step["decided_by"].startswith("token:")
    assert ("runbook.decide", "failed") in audits(world) and ("runbook.decide", "ok") in audits(
        world
    )


def test_a_step_for_admins_refuses_an_operator(world: World) -> None:
    run = world.client("admin").post("/api/v1/runbooks/admin-only/runs", json={}).get_json()
    waiting(world, run["id"], "approve", role="admin")
    r = world.client("operator").post(
        f"/api/v1/runs/{run['id']}/decide", json={"decision": "approved"}
    )
    assert r.status_code == 409 and "needs the admin role" in r.get_json()["error"]


def test_a_manual_step_takes_done_and_nothing_else(world: World) -> None:
    op = world.client("operator")
    run = op.post("/api/v1/runbooks/tick/runs", json={"target": "trunk-a"}).get_json()
    waiting(world, run["id"], "manual")
    bad = op.post(f"/api/v1/runs/{run['id']}/decide", json={"decision": "approved"})
    assert bad.status_code == 400 and "answer done" in bad.get_json()["error"]
    assert op.post(f"/api/v1/runs/{run['id']}/decide", json={"decision": "done"}).status_code == 200
    twice = op.post(f"/api/v1/runs/{run['id']}/decide", json={"decision": "done"})
    assert twice.status_code == 409


def test_abort_resume_and_rollback_fit_the_state(world: World) -> None:
    op = world.client("operator")
    run = op.post("/api/v1/runbooks/pause/runs", json={"target": "trunk-a"}).get_json()
    assert op.post(f"/api/v1/runs/{run['id']}/resume").status_code == 409
    aborted = op.post(f"/api/v1/runs/{run['id']}/abort")
    assert aborted.status_code == 200 and aborted.get_json()["state"] == "aborted"
    assert op.post(f"/api/v1/runs/{run['id']}/abort").status_code == 409
    second = op.post("/api/v1/runbooks/pause/runs", json={"target": "trunk-a"}).get_json()
    repo = StateRepository(world.db)
    with repo.transaction() as conn:
        conn.execute(
            runs._RUN.update().where(runs._RUN.c.id == second["id"]).values(state="interrupted")
        )
    rolled = op.post(f"/api/v1/runs/{second['id']}/rollback")
    assert rolled.status_code == 200
    assert (rolled.get_json()["state"], rolled.get_json()["phase"]) == ("queued", "rollback")
