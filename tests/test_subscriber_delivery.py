"""A notice to a status page subscriber goes through the same outbox and sender as pages
to staff: the address opened only to send, the e-mail carrying RFC 8058 one-click
unsubscribe headers whose link is the subscriber's signed token; a subscriber who left
gets nothing. Real SMTP server (aiosmtpd) on loopback."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.clock import ManualClock
from core.secret_box import SecretBox
from dialwatch.schema import Config
from monitor.faults import NO_FAULTS
from monitor.store.db import open_database
from monitor.store.models import Delivery
from monitor.store.repository import StateRepository
from notify import outbox, subscribers
from notify.outbox import Notice
from notify.service import Notifications
from tests.peers.smtp import Accepting, smtp_server

T0 = 1_800_000_000.0


def service(tmp_path: Path, port: int) -> tuple[Notifications, StateRepository]:
    config = Config.model_validate(
        {
            "web": {"base_url": "https://status.example.cn"},
            "components": [{"id": "outbound", "name": {"zh-CN": "外呼线路", "en": "Outbound"},
                            "targets": []}],
            "channels": [{"id": "mail", "kind": "email", "from": "Status <status@example.cn>",
                          "smtp": {"host": "127.0.0.1", "port": port, "tls": "none"}}],
            "customers": {"email_channel": "mail"},
        }
    )  # fmt: skip
    repo = StateRepository(open_database(None, tmp_path))
    box = SecretBox.from_file(tmp_path / "keys" / "appliance.key")
    notes = Notifications(repo, box, lambda: config, clock=ManualClock(T0), faults=NO_FAULTS,
                          listen=("127.0.0.1", 8080))  # fmt: skip
    return notes, repo


def queue(repo: StateRepository, subscriber_id: int) -> None:
    with repo.transaction() as conn:
        outbox.add(conn, f"subscriber:{subscriber_id}", [Notice("message", None)], ["mail"], T0,
                   subject="外呼线路: 正在处理", text="We are investigating.")  # fmt: skip


def send(notes: Notifications) -> None:
    async def go() -> None:
        await notes.sender.round()
        await notes.sender.settle()

    asyncio.run(go())


def test_a_subscriber_gets_the_notice_with_one_click_unsubscribe(tmp_path: Path) -> None:
    accepting = Accepting()
    with smtp_server(accepting) as smtp:
        notes, repo = service(tmp_path, smtp.port)
        keys = notes.subscriber_keys
        asked = subscribers.subscribe(repo, keys, "email", "li@example.cn", ["outbound"], "en",
                                      known=["outbound"], at=T0)  # fmt: skip
        subscribers.confirm(repo, asked.subscriber.id, at=T0)
        queue(repo, asked.subscriber.id)
        send(notes)
    [mail] = accepting.received
    assert mail.rcpt_tos == ["li@example.cn"]
    message = mail.message
    assert message["Subject"] == "外呼线路: 正在处理"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(message["List-Unsubscribe"]).strip("<>")
    assert link.startswith("https://status.example.cn/status/unsubscribe/")
    token = link.rsplit("/", 1)[1]
    assert keys.read(token, "unsubscribe", T0 + 365 * 86400) == asked.subscriber.id


def test_a_subscriber_who_left_gets_nothing_and_the_delivery_says_why(tmp_path: Path) -> None:
    accepting: Any = Accepting()
    with smtp_server(accepting) as smtp:
        notes, repo = service(tmp_path, smtp.port)
        asked = subscribers.subscribe(repo, notes.subscriber_keys, "email", "li@example.cn",
                                      ["outbound"], "en", known=["outbound"], at=T0)  # fmt: skip
        subscribers.unsubscribe(repo, asked.subscriber.id, at=T0)
        queue(repo, asked.subscriber.id)
        send(notes)
    assert accepting.received == []
    with repo.reading() as conn:
        [state] = conn.execute(select(Delivery.state)).scalars()
    assert state == "failed"


def test_a_confirmation_in_the_subscribers_language_through_the_customers_channel(
    tmp_path: Path,
) -> None:
    from notify import customer_messages

    accepting = Accepting()
    with smtp_server(accepting) as smtp:
        notes, repo = service(tmp_path, smtp.port)
        asked = subscribers.subscribe(repo, notes.subscriber_keys, "email", "wang@example.cn",
                                      ["outbound"], "zh-CN", known=["outbound"], at=T0)  # fmt: skip
        link = "https://status.example.cn/status/confirm/" + notes.subscriber_keys.token(
            asked.subscriber.id, "confirm", T0
        )
        written = customer_messages.confirmation("zh-CN", "外呼中心", ["外呼线路"], link)
        notes.to_subscriber(asked.subscriber.id, written.subject, written.text, at=T0)
        send(notes)  # pending subscribers get their confirmation
    [mail] = accepting.received
    assert mail.message["Subject"] == "外呼中心：请确认订阅"
    body = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert link in body and "外呼线路" in body and "24 小时内有效" in body


def test_an_address_that_bounces_for_good_is_retired_and_counted(tmp_path: Path) -> None:
    from tests.peers.smtp import Refusing

    with smtp_server(Refusing()) as smtp:
        notes, repo = service(tmp_path, smtp.port)
        asked = subscribers.subscribe(repo, notes.subscriber_keys, "email", "gone@example.cn",
                                      ["outbound"], "en", known=["outbound"], at=T0)  # fmt: skip
        subscribers.confirm(repo, asked.subscriber.id, at=T0)
        queue(repo, asked.subscriber.id)
        send(notes)
    with repo.reading() as conn:
        row = subscribers.get(conn, asked.subscriber.id)
    assert (row.state, row.failures) == ("retired", 1)
    assert "550" in row.reason
