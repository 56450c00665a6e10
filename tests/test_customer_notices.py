"""Customer notices from events: a real state DB, events made by the monitor's own
functions, time given by the test; the notices land in the outbox written for the
subscriber, redacted like the status page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from core.secret_box import SecretBox
from dialwatch.schema import Config
from monitor import incident_actions as actions
from monitor.events import Event, EventKind, NewEvent, record
from monitor.store.db import open_database
from monitor.store.models import Delivery, TargetState
from monitor.store.repository import StateRepository
from notify import subscribers
from notify.customer_notices import CustomerNotices
from notify.subscribers import Keys

T0 = 1_800_000_000.0
M = 60.0


def config() -> Any:
    return Config.model_validate(
        {
            "site": {"name": "外呼中心", "timezone": "Asia/Shanghai", "language": "zh-CN"},
            "targets": [{"id": "trunk-a", "kind": "sip", "uri": "sip:10.9.8.7:5060",
                         "tags": {"role": "trunk"}}],
            "components": [{"id": "outbound", "name": {"zh-CN": "外呼线路", "en": "Outbound calling"},
                            "selector": {"role": "trunk"}}],
            "channels": [{"id": "mail", "kind": "email", "from": "Status <s@example.cn>",
                          "smtp": {"host": "127.0.0.1", "port": 25, "tls": "none"}}],
            "customers": {"email_channel": "mail"},
        }
    )  # fmt: skip


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.repo = StateRepository(open_database(None, tmp_path))
        self.keys = Keys.of(SecretBox.from_file(tmp_path / "keys" / "appliance.key"))
        self.config = config()
        self.notices = CustomerNotices(
            lambda: self.config, self.keys, lambda: "https://status.example.cn"
        )
        with self.repo.transaction() as conn:
            conn.execute(insert(TargetState).values(target_id="trunk-a", kind="sip", health="up",
                                                    since=T0 - 3600))  # fmt: skip
        self.subscriber = self.subscribe("li@example.cn", "en")

    def subscribe(self, address: str, language: str) -> int:
        asked = subscribers.subscribe(self.repo, self.keys, "email", address, ["outbound"],
                                      language, known=["outbound"], at=T0 - 600)  # fmt: skip
        subscribers.confirm(self.repo, asked.subscriber.id, at=T0 - 600)
        return asked.subscriber.id

    def health(self, health: str, at: float) -> None:
        with self.repo.transaction() as conn:
            conn.execute(update(TargetState).where(TargetState.target_id == "trunk-a")
                         .values(health=health, since=at))  # fmt: skip
            event = record(self.repo, NewEvent(EventKind.TRANSITION, at, target_id="trunk-a",
                                               payload={"to": health}))  # fmt: skip
            self.notices.handle(self.repo, event)

    def handle(self, event: Event) -> None:
        with self.repo.transaction():
            self.notices.handle(self.repo, event)

    def outbox(self) -> list[tuple[str, str, str]]:
        with self.repo.reading() as conn:
            rows = conn.execute(select(Delivery.person_id, Delivery.subject, Delivery.text)
                                .order_by(Delivery.id)).all()  # fmt: skip
        return [(p, s, t) for p, s, t in rows]


def test_an_outage_its_update_and_the_all_clear_reach_the_subscriber_redacted(
    tmp_path: Path,
) -> None:
    w = World(tmp_path)
    zh = w.subscribe("wang@example.cn", "zh-CN")
    w.health("down", T0)
    incident = w.repo.open_incident("trunk-a", "down", "trunk-a down (sip:10.9.8.7)", T0)
    actions.add_note(w.repo, "user:zhang", incident, "internal: SBC password hunter2", at=T0 + 10)
    actions.update(w.repo, "user:zhang", incident, cause="carrier sip:10.9.8.7 not answering",
                   eta=T0 + 3600, at=T0 + 20)  # fmt: skip
    assert w.notices.tick(w.repo, T0 + 299) == 0  # the delay: a blip would tell nobody
    assert w.notices.tick(w.repo, T0 + 300) == 2
    (to_li, subject, text), (to_wang, zh_subject, _zh_text) = w.outbox()
    assert (to_li, to_wang) == (f"subscriber:{w.subscriber}", f"subscriber:{zh}")
    assert subject == "Outbound calling: we are investigating a problem."
    assert zh_subject == "外呼线路：服务异常，我们正在处理。"
    assert "Cause: carrier [redacted] not answering" in text
    assert "Expected back: 2027-01-15 17:00 (Asia/Shanghai)" in text
    for secret in ("10.9.8.7", "hunter2", "trunk-a", "internal"):
        assert secret not in text
    assert "https://status.example.cn/status/unsubscribe/" in text

    with w.repo.transaction():
        event = actions.publish_customer_update(
            w.repo, "user:zhang", incident,
            {"zh-CN": "已切换备用线路", "en": "Calls go over a backup carrier now"}, at=T0 + 600,
        )  # fmt: skip
    w.handle(event)
    assert w.notices.tick(w.repo, T0 + 600) == 2
    assert "Calls go over a backup carrier now" in w.outbox()[2][2]
    assert "已切换备用线路" in w.outbox()[3][2]

    w.health("up", T0 + 1200)
    assert w.notices.tick(w.repo, T0 + 1200 + 599) == 0  # settle
    assert w.notices.tick(w.repo, T0 + 1200 + 600) == 2
    assert w.outbox()[4][1] == "Outbound calling: resolved."


def test_a_flap_inside_settle_sends_no_all_clear_and_no_second_outage(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.health("down", T0)
    w.notices.tick(w.repo, T0 + 300)
    w.health("up", T0 + 900)
    w.notices.tick(w.repo, T0 + 1000)
    w.health("down", T0 + 1100)  # back in trouble before the all clear went out
    for at in (T0 + 1500, T0 + 2000, T0 + 3000):
        w.notices.tick(w.repo, at)
    assert [s for _, s, _ in w.outbox()] == ["Outbound calling: we are investigating a problem."]


def test_someone_who_unsubscribed_hears_nothing_more(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.health("down", T0)
    subscribers.unsubscribe(w.repo, w.subscriber, at=T0 + 10)
    assert w.notices.tick(w.repo, T0 + 300) == 0
    assert w.outbox() == []


@pytest.mark.parametrize("mode", ["manual"])
def test_manual_components_wait_for_a_published_update(tmp_path: Path, mode: str) -> None:
    w = World(tmp_path)
    w.config = w.config.model_copy(
        update={"customers": w.config.customers.model_copy(update={"notify": mode})}
    )
    w.health("down", T0)
    assert w.notices.tick(w.repo, T0 + 3600) == 0


def test_a_component_can_be_manual_or_have_its_own_delay(tmp_path: Path) -> None:
    w = World(tmp_path)
    [component] = w.config.components
    w.config = w.config.model_copy(
        update={"components": [component.model_copy(update={"notify_delay": 60.0})]}
    )
    w.health("down", T0)
    assert w.notices.tick(w.repo, T0 + 60) == 1  # its own 1 min, not the 5 min default
    w.config = w.config.model_copy(
        update={"components": [component.model_copy(update={"notify": "manual"})]}
    )
    w.health("up", T0 + 100)
    assert w.notices.tick(w.repo, T0 + 700) == 1  # the all clear of the first outage
    w.health("down", T0 + 2000)
    assert w.notices.tick(w.repo, T0 + 9000) == 0  # manual now: nothing until an update
    assert [s for _, s, _ in w.outbox()][-1] == "Outbound calling: resolved."
