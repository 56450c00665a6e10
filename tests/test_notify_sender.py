"""The sender and the outbox: claim, send, record every attempt, fall back, recover after a crash.

Real state DBs (SQLite and PostgreSQL) and a real SMTP server (aiosmtpd) for
the e-mail channel; the other channels are recording stand-ins in this file,
so the order of attempts and the failures can be chosen exactly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from core.clock import ManualClock
from monitor.store import queries
from monitor.store.models import (
    ATTEMPT_INTERRUPTED,
    ATTEMPT_SENT,
    DELIVERY_FAILED,
    DELIVERY_PENDING,
    DELIVERY_SENT,
    Delivery,
    DeliveryAttempt,
)
from monitor.store.repository import StateRepository
from notify import outbox
from notify.channels import build_channel
from notify.channels.base import ChannelConfig, DeliveryError, Message, Receipt
from notify.channels.email import EmailChannelConfig
from notify.fallback import RateLimit, RetryPolicy
from notify.outbox import Notice
from notify.sender import Rendered, Sender
from tests.peers.smtp import Accepting, smtp_server

T0 = 1_800_000_000.0


@dataclass(frozen=True)
class Person:
    id: str
    name: str | None = "张伟"
    email: str | None = "zhang@example.cn"
    phone: str | None = "+8613800138000"
    user: str | None = "zhang"
    language: str = "zh-CN"


@dataclass
class Recording:
    """A channel that fails as it is told (a list of errors, then success), and records."""

    id: str
    failures: list[DeliveryError] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    config: Any = None

    def __post_init__(self) -> None:
        self.config = ChannelConfig(id=self.id, kind="recording")

    def send(self, message: Message) -> Receipt:
        self.sent.append(message)
        if self.failures:
            raise self.failures.pop(0)
        return Receipt(f"{self.id}-{len(self.sent)}", "accepted")


def render(conn: Any, delivery: outbox.DeliveryRow, person: Any) -> Rendered:
    ids = ", ".join(str(n.incident_id) for n in delivery.notices)
    return Rendered(f"{delivery.kind}: {ids}", f"incidents {ids}", None, person.language)


@pytest.fixture
def repo(db: Engine) -> StateRepository:
    return StateRepository(db)


def make_sender(
    repo: StateRepository, clock: ManualClock, channels: dict[str, Any], **kw: Any
) -> Sender:
    people = {"zhang": Person("zhang"), "li": Person("li", name="李娜", email="li@example.cn")}
    return Sender(repo, channels=channels, people=people.get, render=render, clock=clock, **kw)


def incident(repo: StateRepository, target: str = "trunk-a") -> int:
    return repo.open_incident(target, "down", f"{target} down", T0)


def add(
    repo: StateRepository, person: str, incident_id: int, channels: list[str], now: float
) -> int:
    with repo.transaction() as conn:
        return outbox.add(conn, person, [Notice("opened", incident_id, level=1)], channels, now)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def one_round(sender: Sender) -> float | None:
    await sender.round()
    await sender.settle()
    return await sender.next_due()


def attempts(db: Engine) -> list[Any]:
    with db.connect() as conn:
        return list(conn.execute(select(DeliveryAttempt).order_by(DeliveryAttempt.id)))


def delivery(db: Engine, delivery_id: int) -> outbox.DeliveryRow:
    with db.connect() as conn:
        found = outbox.get(conn, delivery_id)
    assert found is not None
    return found


def test_an_email_reaches_a_real_smtp_server_and_the_attempt_is_recorded(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    handler = Accepting()
    with smtp_server(handler) as server:
        mail = build_channel(
            EmailChannelConfig.model_validate(
                {"id": "mail", "kind": "email", "from": "NOC <noc@example.cn>",
                 "smtp": {"host": "127.0.0.1", "port": server.port, "tls": "none"}}
            )
        )  # fmt: skip
        sender = make_sender(repo, clock, {"mail": mail})
        inc = incident(repo)
        did = add(repo, "zhang", inc, ["mail"], T0)
        run(one_round(sender))
    [got] = handler.received
    assert got.rcpt_tos == ["zhang@example.cn"]
    assert got.message["Subject"] == f"opened: {inc}"
    d = delivery(db, did)
    assert d.state == DELIVERY_SENT and d.sent_at == T0
    [a] = attempts(db)
    assert (a.channel_id, a.outcome) == ("mail", ATTEMPT_SENT)
    assert a.provider_id == got.message["Message-ID"]
    assert a.answer.startswith("250")
    lines = [e.text for e in queries.incident_events(db, inc)]
    assert "notified zhang via mail (opened)" in lines
    audit = [e for e in queries.audit_entries(db) if e.action == "delivery"]
    assert [e.object for e in audit] == [f"delivery:{did}"]


def test_a_permanent_failure_falls_back_to_the_next_channel_at_once(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    push = Recording("push", [DeliveryError("no subscription", permanent=True)])
    sms = Recording("sms")
    sender = make_sender(repo, clock, {"push": push, "sms": sms})
    did = add(repo, "zhang", incident(repo), ["push", "sms"], T0)
    assert run(one_round(sender)) == T0  # the fallback is due at once
    run(one_round(sender))
    assert [m.delivery_id for m in push.sent + sms.sent] == [f"dw-{did}", f"dw-{did}"]
    assert [(a.channel_id, a.outcome, a.permanent) for a in attempts(db)] == [
        ("push", "failed", True),
        ("sms", "sent", False),
    ]
    assert delivery(db, did).state == DELIVERY_SENT


def test_a_transient_failure_is_retried_after_its_back_off_then_falls_back(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    timeout = DeliveryError("no answer within 2s", permanent=False)
    ding = Recording("ding", [timeout, timeout])
    mail = Recording("mail")
    sender = make_sender(
        repo, clock, {"ding": ding, "mail": mail}, retry=RetryPolicy(retries=1, backoff=(5.0,))
    )
    did = add(repo, "zhang", incident(repo), ["ding", "mail"], T0)
    assert run(one_round(sender)) == T0 + 5
    run(one_round(sender))  # not due yet: nothing is sent
    assert len(ding.sent) == 1
    run(clock.advance(5))
    run(one_round(sender))  # the retry fails too: on to mail at once
    run(one_round(sender))
    assert [(a.channel_id, a.outcome) for a in attempts(db)] == [
        ("ding", "failed"),
        ("ding", "failed"),
        ("mail", "sent"),
    ]
    d = delivery(db, did)
    assert d.state == DELIVERY_SENT and d.channel_index == 1


def test_when_every_channel_fails_the_delivery_fails_and_says_why(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    bad = Recording("sms", [DeliveryError("isv.MOBILE_NUMBER_ILLEGAL", permanent=True)])
    sender = make_sender(repo, clock, {"sms": bad}, disabled={"ding": "bad config"})
    inc = incident(repo)
    did = add(repo, "zhang", inc, ["ding", "gone", "sms"], T0)
    for _ in range(3):
        run(one_round(sender))
    d = delivery(db, did)
    assert d.state == DELIVERY_FAILED
    assert d.reason == "isv.MOBILE_NUMBER_ILLEGAL"
    assert [(a.channel_id, a.reason) for a in attempts(db)] == [
        ("ding", "channel 'ding' is disabled: bad config"),
        ("gone", "no channel 'gone' in the config (any more)"),
        ("sms", "isv.MOBILE_NUMBER_ILLEGAL"),
    ]
    assert any("every channel failed" in e.text for e in queries.incident_events(db, inc))


def test_a_channel_that_raises_something_else_is_a_transient_failure_not_a_dead_sender(
    repo: StateRepository, db: Engine
) -> None:
    class Broken(Recording):
        def send(self, message: Message) -> Receipt:
            raise KeyError("bug")

    clock = ManualClock(T0)
    mail = Recording("mail")
    sender = make_sender(repo, clock, {"bug": Broken("bug"), "mail": mail},
                         retry=RetryPolicy(retries=0))  # fmt: skip
    add(repo, "zhang", incident(repo), ["bug", "mail"], T0)
    run(one_round(sender))
    run(one_round(sender))
    assert [(a.channel_id, a.outcome) for a in attempts(db)] == [
        ("bug", "failed"),
        ("mail", "sent"),
    ]
    assert attempts(db)[0].reason.startswith("the channel failed unexpectedly: KeyError")


def test_notices_for_a_person_waiting_in_the_outbox_go_as_one_message(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    mail = Recording("mail")
    sender = make_sender(repo, clock, {"mail": mail})
    ids = {add(repo, "zhang", incident(repo, f"trunk-{i}"), ["mail"], T0) for i in range(50)}
    add(repo, "li", incident(repo, "trunk-x"), ["mail"], T0)
    assert len(ids) == 1  # grouped into the one pending delivery
    run(one_round(sender))
    assert sorted(m.email or "" for m in mail.sent) == ["li@example.cn", "zhang@example.cn"]
    [to_zhang] = [m for m in mail.sent if m.email == "zhang@example.cn"]
    assert to_zhang.subject.count(",") == 49
    with db.connect() as conn:
        [view] = outbox.of_incident(conn, 3)
    assert view.delivery.id in ids


def test_over_the_rate_limit_the_rest_waits_for_the_window_and_goes_as_one(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    mail = Recording("mail")
    sender = make_sender(repo, clock, {"mail": mail}, rate=RateLimit(messages=2, window=600))
    for i in range(2):
        add(repo, "zhang", incident(repo, f"a-{i}"), ["mail"], clock.time())
        run(one_round(sender))
    held = [add(repo, "zhang", incident(repo, f"b-{i}"), ["mail"], clock.time()) for i in range(5)]
    assert run(one_round(sender)) == T0 + 600
    assert len(mail.sent) == 2 and len(set(held)) == 1
    run(clock.advance(600))
    run(one_round(sender))
    assert len(mail.sent) == 3
    assert len(delivery(db, held[0]).notices) == 5


def test_after_a_crash_the_attempts_in_flight_are_named_and_sent_again_with_the_same_id(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    mail = Recording("mail")
    did = add(repo, "zhang", incident(repo), ["mail"], T0)
    # A sender claimed it, wrote its in-flight attempt, and the process died.
    with repo.transaction() as conn:
        [row] = outbox.due(conn, T0, 10)
        outbox.begin_attempt(conn, row, T0, ("s", "t", None, "zh-CN"))
    sender = make_sender(repo, clock, {"mail": mail})
    [stuck] = run(sender.recover())
    assert stuck.delivery_id == did
    run(one_round(sender))
    assert [m.delivery_id for m in mail.sent] == [f"dw-{did}"]
    assert mail.sent[0].subject == "s"  # the message fixed at its first attempt
    assert [a.outcome for a in attempts(db)] == [ATTEMPT_INTERRUPTED, ATTEMPT_SENT]
    assert delivery(db, did).state == DELIVERY_SENT


def test_a_tick_runs_first_in_every_round_and_its_failure_stops_nothing(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    seen: list[float] = []

    def tick(now: float) -> None:
        seen.append(now)
        raise RuntimeError("paging broke")

    mail = Recording("mail")
    sender = make_sender(repo, clock, {"mail": mail}, tick=tick)
    add(repo, "zhang", incident(repo), ["mail"], T0)
    run(one_round(sender))
    assert seen == [T0] and len(mail.sent) == 1


def test_pending_deliveries_are_not_claimed_twice(repo: StateRepository, db: Engine) -> None:
    did = add(repo, "zhang", incident(repo), ["mail"], T0)
    with repo.transaction() as conn:
        [row] = outbox.due(conn, T0, 10)
        outbox.begin_attempt(conn, row, T0)
        assert outbox.due(conn, T0, 10) == []
    with db.begin() as conn:
        conn.execute(update(Delivery).where(Delivery.id == did).values(state=DELIVERY_PENDING))


def test_a_channel_failing_its_last_attempts_is_reported_degraded(
    repo: StateRepository, db: Engine
) -> None:
    class Faults:
        def __init__(self) -> None:
            self.reports: list[tuple[str, str]] = []

        def report(self, source: str, error: Any, **_: Any) -> None:
            self.reports.append((source, str(error)))

    faults = Faults()
    clock = ManualClock(T0)
    dead = Recording("ding", [DeliveryError("errcode 310000", permanent=True)] * 3)
    mail = Recording("mail")
    sender = make_sender(repo, clock, {"ding": dead, "mail": mail}, faults=faults, degraded_after=3)
    for i in range(3):
        add(repo, "zhang" if i % 2 else "li", incident(repo, f"t-{i}"), ["ding", "mail"], T0)
        run(one_round(sender))
        run(one_round(sender))
    degraded = [r for r in faults.reports if r[0] == "channel:ding"]
    assert len(degraded) == 1
    assert "its last 3 attempts failed (last: errcode 310000)" in degraded[0][1]
    assert len(mail.sent) == 3  # every delivery still arrived through the fallback
    # While it lasts the appliance's own check warns about it; a success clears it.
    assert sender.degraded == {"ding": degraded[0][1]}
    assert dead.failures == []  # the robot works again
    add(repo, "zhang", incident(repo, "t-9"), ["ding", "mail"], T0)
    run(one_round(sender))
    assert sender.degraded == {}


def test_a_message_carries_facts_for_machine_receivers_and_a_console_link(
    repo: StateRepository, db: Engine
) -> None:
    clock = ManualClock(T0)
    mail = Recording("mail")
    sender = make_sender(repo, clock, {"mail": mail})
    inc = incident(repo)
    add(repo, "zhang", inc, ["mail"], T0)
    run(one_round(sender))
    [m] = mail.sent
    assert m.data["incident_id"] == inc and m.data["url"] == f"/incidents/{inc}"
    assert m.user == "zhang" and m.phone == "+8613800138000"
