"""The failover API against the real app: the groups and their members as stored, and the
audited approval of a failback (``failback: approve``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from dialwatch.schema import Config as ApplianceConfig
from monitor.store.models import AuditEntry, FailoverMember
from tests.test_web_support import BASE_CONFIG, World, make_world

NOW = 1_800_000_000.0
GROUP: dict[str, Any] = {
    "id": "carriers",
    "name": "深圳出局",
    "proxy": {"kind": "kamailio", "rpc": "http://127.0.0.1:5080/RPC", "set": 1,
              "username": "dw", "password": "s3cret-proxy-pass"},
    "members": [
        {"target": "trunk-a", "destination": "sip:198.51.100.7:5060"},
        {"target": "trunk-b", "destination": "sip:203.0.113.9:5060"},
    ],
    "failback": "approve",
    "failback_after": "5m",
}  # fmt: skip


@pytest.fixture
def world(tmp_path: Path) -> World:
    auto = {**GROUP, "id": "auto", "failback": "auto"}
    config = ApplianceConfig.model_validate({**BASE_CONFIG, "failover": [GROUP, auto]})
    w = make_world(tmp_path, config=config, clock=lambda: NOW)
    with w.db.begin() as conn:
        conn.execute(
            insert(FailoverMember).values(
                group_id="carriers", target_id="trunk-a", wanted="inactive",
                changed_at=NOW - 60, reason="its own health is down",
            )
        )  # fmt: skip
    return w


def audits(w: World) -> list[tuple[str, str, str, str]]:
    with w.db.connect() as conn:
        rows = conn.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.object, AuditEntry.result)
            .where(AuditEntry.action == "failover.approve")
            .order_by(AuditEntry.id)
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_the_groups_show_each_member_as_wanted_and_no_credentials(world: World) -> None:
    r = world.client("viewer").get("/api/v1/failover")
    assert r.status_code == 200
    body = r.get_json()
    assert "s3cret-proxy-pass" not in r.get_data(as_text=True)
    carriers = body["items"][0]
    assert carriers["name"] == "深圳出局" and carriers["failback"] == "approve"
    assert carriers["proxy"] == {"kind": "kamailio", "via": "rpc", "set": 1}
    a, b = carriers["members"]
    assert (a["target"], a["wanted"], a["reason"]) == (
        "trunk-a",
        "inactive",
        "its own health is down",
    )
    assert a["approved_by"] is None and a["changed_at"].startswith("2027-01-15")
    assert (b["target"], b["wanted"], b["changed_at"]) == ("trunk-b", "active", None)
    assert world.client("viewer").get("/api/v1/failover?x=1").status_code == 400


def test_an_operator_approves_a_failback_once_audited(world: World) -> None:
    operator = world.client("operator")
    r = operator.post("/api/v1/failover/carriers/trunk-a/approve")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.get_json()["approved_by"] and r.get_json()["wanted"] == "inactive"
    [a, _b] = world.client("viewer").get("/api/v1/failover").get_json()["items"][0]["members"]
    assert a["approved_by"] == r.get_json()["approved_by"]
    again = operator.post("/api/v1/failover/carriers/trunk-a/approve")
    assert again.status_code == 409 and "approved already" in again.get_json()["error"]
    [(actor, action, obj, result), (_, _, _, second)] = audits(world)
    assert (action, obj, result, second) == (
        "failover.approve", "failover:carriers/trunk-a", "ok", "failed",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/api/v1/failover/nope/trunk-a/approve", 404, "no failover group 'nope'"),
        ("/api/v1/failover/carriers/crm-db/approve", 404, "'crm-db' is not a member"),
        ("/api/v1/failover/carriers/trunk-b/approve", 409, "in the proxy already"),
        ("/api/v1/failover/auto/trunk-a/approve", 409, "puts members back by itself"),
    ],
)
def test_refusals_say_why_and_are_audited(world: World, path: str, status: int, words: str) -> None:
    r = world.client("operator").post(path)
    assert r.status_code == status and words in r.get_json()["error"]
    [(_, _, _, result)] = audits(world)
    assert result == "failed"


def test_a_viewer_cannot_approve(world: World) -> None:
    assert (
        world.client("viewer").post("/api/v1/failover/carriers/trunk-a/approve").status_code == 403
    )
    assert audits(world) == []
