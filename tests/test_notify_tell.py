"""A written message for people (a runbook's ``notify`` step) through paging's outbox:
``Notifications.tell`` against a real state DB and a real signed webhook receiver,
with the fallback to a person's next channel."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import ManualClock
from core.secret_box import SecretBox
from dialwatch.schema import Config
from monitor.faults import NO_FAULTS
from monitor.store.db import open_database
from monitor.store.models import Delivery
from monitor.store.repository import StateRepository
from notify.service import Notifications
from tests.peers.webhook import Receiver, webhook_receiver

SECRET = "0123456789abcdef0123456789"
NOW = 1_800_000_000.0  # a Friday, 16:00 in Asia/Shanghai


@pytest.fixture
def hook() -> Any:
    with webhook_receiver(SECRET) as receiver:
        yield receiver


def service(tmp_path: Path, hook: Receiver) -> tuple[Notifications, StateRepository]:
    config = Config.model_validate(
        {
            "channels": [
                {"id": "hook", "kind": "webhook", "url": hook.url(), "secret": SECRET,
                 "allow_private": True},
                {"id": "dead", "kind": "webhook", "url": hook.url("/status/503"),
                 "secret": SECRET, "allow_private": True},
            ],
            "people": [
                {"id": "zhang", "user": "zhang", "name": "张伟", "contact": ["dead", "hook"]},
                {"id": "li", "user": "li", "name": "李娜", "contact": ["hook"]},
            ],
            "schedules": [{"id": "noc", "timezone": "Asia/Shanghai",
                           "rotation": {"every": "1d", "handoff": "09:00", "members": ["li"]}}],
            "paging": {"retries": 0},
        }
    )  # fmt: skip
    repo = StateRepository(open_database(None, tmp_path))
    box = SecretBox.from_file(tmp_path / "keys" / "appliance.key")
    return Notifications(repo, box, lambda: config, clock=ManualClock(NOW), faults=NO_FAULTS,
                         listen=("127.0.0.1", 8080)), repo  # fmt: skip


def test_a_message_reaches_a_person_and_whoever_is_on_call_with_fallback(
    tmp_path: Path, hook: Receiver
) -> None:
    notes, repo = service(tmp_path, hook)
    told = notes.tell(["person:zhang", "schedule:noc", "person:li"], "Failover: trunk-ct out\n",
                      "Calls go over the backup carrier.", at=NOW)  # fmt: skip
    assert told == ["zhang", "li"]  # li once, though named twice

    async def send() -> None:
        for _ in range(4):  # zhang's first channel fails: the next round tries the next one
            await notes.sender.round()
            await notes.sender.settle()

    asyncio.run(send())
    bodies = [json.loads(r.body) for r in hook.requests if r.path == "/hook"]
    assert sorted(b["subject"] for b in bodies) == ["Failover: trunk-ct out"] * 2
    assert all(b["text"].startswith("Calls go over the backup carrier.") for b in bodies)
    with repo.reading() as conn:
        rows = conn.execute(select(Delivery.person_id, Delivery.state, Delivery.kind)).all()
    assert sorted(rows) == [("li", "sent", "message"), ("zhang", "sent", "message")]


def test_an_unknown_recipient_is_refused_naming_it(tmp_path: Path, hook: Receiver) -> None:
    notes, _ = service(tmp_path, hook)
    with pytest.raises(ValueError, match="no person 'chen'"):
        notes.tell(["person:chen"], "x", "y", at=NOW)
    with pytest.raises(ValueError, match="no schedule 'ops'"):
        notes.tell(["schedule:ops"], "x", "y", at=NOW)
