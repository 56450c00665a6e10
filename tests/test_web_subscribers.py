"""Subscribers for admins through the API: listed masked, exported on request with the
address opened, erased for good — admins only, audited."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from sqlalchemy import select

from core.clock import ManualClock
from core.secret_box import SecretBox
from dialwatch.schema import Config as ApplianceConfig
from monitor.store.models import AuditEntry
from monitor.store.repository import StateRepository
from notify import subscribers
from notify.service import Notifications
from tests.test_web_support import BASE_CONFIG, World, make_world

NOW = 1_800_000_000.0


@pytest.fixture
def world(tmp_path: Path) -> tuple[World, int]:
    config = ApplianceConfig.model_validate(BASE_CONFIG)
    w = make_world(tmp_path, config=config, clock=lambda: NOW)
    repo = StateRepository(w.db)
    service = Notifications(repo, SecretBox.from_file(tmp_path / "keys" / "appliance.key"),
                            lambda: config, clock=ManualClock(NOW),
                            faults=w.app.extensions["dialwatch"].faults,
                            listen=("127.0.0.1", 8080))  # fmt: skip
    w.app.extensions["dialwatch"] = dataclasses.replace(
        w.app.extensions["dialwatch"], notifications=service
    )
    asked = subscribers.subscribe(repo, service.subscriber_keys, "email", "zhang@example.cn",
                                  ["outbound"], "zh-CN", known=["outbound", "crm"], at=NOW)  # fmt: skip
    return w, asked.subscriber.id


def test_admins_see_subscribers_masked_and_others_not_at_all(world: tuple[World, int]) -> None:
    w, sid = world
    r = w.client("admin").get("/api/v1/subscribers")
    assert r.status_code == 200
    [item] = r.get_json()["items"]
    assert (item["id"], item["address"], item["state"]) == (sid, "z***@example.cn", "pending")
    assert "zhang@" not in r.get_data(as_text=True)
    assert w.client("operator").get("/api/v1/subscribers").status_code == 403
    assert w.client("viewer").get(f"/api/v1/subscribers/{sid}/export").status_code == 403


def test_export_opens_the_address_and_erase_removes_it_both_audited(
    world: tuple[World, int],
) -> None:
    w, sid = world
    admin = w.client("admin")
    exported = admin.get(f"/api/v1/subscribers/{sid}/export")
    assert exported.status_code == 200
    assert exported.get_json()["address"] == "zhang@example.cn"
    assert admin.delete(f"/api/v1/subscribers/{sid}").get_json() == {"erased": sid}
    assert admin.get("/api/v1/subscribers").get_json()["items"] == []
    missing = admin.delete(f"/api/v1/subscribers/{sid}")
    assert missing.status_code == 404 and f"no subscriber {sid}" in missing.get_json()["error"]
    with w.db.connect() as conn:
        rows = conn.execute(select(AuditEntry.action, AuditEntry.result).where(
            AuditEntry.action.like("subscriber.%")).order_by(AuditEntry.id)).all()  # fmt: skip
        details = " ".join(conn.execute(select(AuditEntry.detail)).scalars())
    assert [tuple(r) for r in rows] == [
        ("subscriber.export", "ok"), ("subscriber.erase", "ok"), ("subscriber.erase", "failed"),
    ]  # fmt: skip
    assert "zhang@" not in details  # the audit log names the subscriber, not the address
