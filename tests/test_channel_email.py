"""The email channel against real SMTP servers on loopback (aiosmtpd): one accepting,
one refusing, one hanging, with STARTTLS, implicit TLS and logins where configured."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.observation import ErrorClass
from notify.channels import CHANNELS, DeliveryError, Message, build_channel
from notify.channels.email import EmailChannel, EmailChannelConfig, message_id
from tests.peers import free_port
from tests.peers.https import TestPki
from tests.peers.smtp import QUEUED, Accepting, Hanging, Refusing, server_tls, smtp_server

MESSAGE = Message(
    delivery_id="d-1042",
    subject="trunk-a 中断\nBcc: injected@example.cn",
    text="trunk-a (电信) 已中断 2 分钟。",
    html="<p><b>trunk-a</b> (电信) 已中断 2 分钟。</p>",
    language="zh-CN",
    name="张伟",
    email="zhang@example.cn",
)


def channel(port: int, **smtp: Any) -> EmailChannel:
    config = EmailChannelConfig.model_validate(
        {
            "id": "mail",
            "kind": "email",
            "from": "NOC <noc@example.cn>",
            "smtp": {"host": "127.0.0.1", "port": port, "tls": "none", "timeout": "2s", **smtp},
        }
    )
    built = build_channel(config)
    assert isinstance(built, EmailChannel)
    return built


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("smtp-pki"))


@pytest.fixture(scope="module")
def tls_files(pki: TestPki) -> Iterator[tuple[str, str, str]]:
    leaf = pki.leaf("smtp")
    yield str(leaf.cert), str(leaf.key), str(pki.ca_file)


def test_the_email_kind_is_registered() -> None:
    assert CHANNELS["email"].model is EmailChannelConfig
    assert CHANNELS["email"].implementation is EmailChannel


def test_an_accepted_message_has_both_parts_its_message_id_and_headers() -> None:
    handler = Accepting()
    with smtp_server(handler) as server:
        receipt = channel(server.port).send(MESSAGE)
    assert receipt.answer == QUEUED
    assert receipt.provider_id == message_id("d-1042", "example.cn")
    [got] = handler.received
    assert got.mail_from == "noc@example.cn"
    assert got.rcpt_tos == ["zhang@example.cn"]
    mail = got.message
    assert mail.get_content_type() == "multipart/alternative"
    text, html = mail.iter_parts()
    assert text.get_content_type() == "text/plain"
    assert text.get_content().strip() == MESSAGE.text
    assert html.get_content_type() == "text/html"
    assert html.get_content().strip() == MESSAGE.html
    assert mail["Message-ID"] == receipt.provider_id
    assert mail["To"] == "张伟 <zhang@example.cn>"
    assert mail["From"] == "NOC <noc@example.cn>"
    # The line break in the subject did not start a header of its own.
    assert mail["Subject"] == "trunk-a 中断 Bcc: injected@example.cn"
    assert mail["Bcc"] is None
    assert mail["Content-Language"] == "zh-CN"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert mail["X-Dialwatch-Delivery"] == "d-1042"
    assert mail["Date"]


def test_a_resend_of_the_same_delivery_carries_the_same_message_id() -> None:
    handler = Accepting()
    other = Message(delivery_id="d-1043", subject="s", text="t", email="li@example.cn")
    with smtp_server(handler) as server:
        mail = channel(server.port)
        first = mail.send(MESSAGE)
        again = mail.send(MESSAGE)
        third = mail.send(other)
    ids = [r.message["Message-ID"] for r in handler.received]
    assert ids == [first.provider_id, again.provider_id, third.provider_id]
    assert ids[0] == ids[1] != ids[2]


def test_a_message_without_html_is_plain_text() -> None:
    handler = Accepting()
    with smtp_server(handler) as server:
        channel(server.port).send(Message("d-1", "s", "just text", email="li@example.cn"))
    mail = handler.received[0].message
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content().strip() == "just text"


def test_starttls_with_a_login_upgrades_before_the_password_is_sent(
    tls_files: tuple[str, str, str],
) -> None:
    cert, key, ca = tls_files
    handler = Accepting()
    with smtp_server(
        handler, tls_context=server_tls(cert, key), users={"noc": "s3cret-pass"}
    ) as server:
        channel(
            server.port, tls="starttls", username="noc", password="s3cret-pass", ca_file=ca
        ).send(MESSAGE)
    [got] = handler.received
    assert got.tls and got.login == "noc"


def test_a_wrong_password_is_a_permanent_failure_that_does_not_show_it(
    tls_files: tuple[str, str, str],
) -> None:
    cert, key, ca = tls_files
    with (
        smtp_server(Accepting(), tls_context=server_tls(cert, key), users={"noc": "right"}) as s,
        pytest.raises(DeliveryError) as raised,
    ):
        channel(s.port, tls="starttls", username="noc", password="wrong-pass", ca_file=ca).send(
            MESSAGE
        )
    assert raised.value.permanent
    assert raised.value.error_class is ErrorClass.AUTH
    assert raised.value.reason.startswith(
        f"the SMTP server 127.0.0.1:{s.port} refused the login: 535"
    )
    assert "wrong-pass" not in raised.value.reason


def test_implicit_tls_speaks_tls_from_the_first_byte(tls_files: tuple[str, str, str]) -> None:
    cert, key, ca = tls_files
    handler = Accepting()
    with smtp_server(handler, ssl_context=server_tls(cert, key), users={"noc": "pw"}) as server:
        receipt = channel(
            server.port, tls="implicit", username="noc", password="pw", ca_file=ca
        ).send(MESSAGE)
    assert receipt.answer == QUEUED
    assert handler.received[0].login == "noc"


def test_a_certificate_from_an_unknown_ca_is_a_permanent_tls_failure(
    tls_files: tuple[str, str, str],
) -> None:
    cert, key, _ = tls_files
    handler = Accepting()
    with (
        smtp_server(handler, ssl_context=server_tls(cert, key)) as server,
        pytest.raises(DeliveryError) as raised,
    ):
        # No ca_file: the system's CAs do not know the test CA.
        channel(server.port, tls="implicit").send(MESSAGE)
    assert raised.value.permanent and raised.value.error_class is ErrorClass.TLS
    assert handler.received == []


def test_starttls_refuses_a_server_that_does_not_offer_it() -> None:
    handler = Accepting()
    with smtp_server(handler) as server, pytest.raises(DeliveryError) as raised:
        channel(server.port, tls="starttls").send(MESSAGE)
    assert raised.value.permanent
    assert "does not offer STARTTLS" in raised.value.reason
    assert handler.received == []


def test_a_5xx_answer_is_a_permanent_failure_with_the_servers_words() -> None:
    handler = Refusing()
    with smtp_server(handler) as server, pytest.raises(DeliveryError) as raised:
        channel(server.port).send(MESSAGE)
    assert raised.value.permanent
    assert raised.value.reason == (
        f"the SMTP server 127.0.0.1:{server.port} refused RCPT TO <zhang@example.cn>: "
        "550 5.1.1 <nobody@example.cn>: Recipient address rejected: no such user"
    )
    assert handler.asked == 1


def test_a_4xx_answer_is_transient() -> None:
    with (
        smtp_server(Refusing("451 4.3.0 mailbox busy, try later")) as server,
        pytest.raises(DeliveryError) as raised,
    ):
        channel(server.port).send(MESSAGE)
    assert not raised.value.permanent
    assert "451 4.3.0 mailbox busy, try later" in raised.value.reason


def test_a_hanging_server_is_a_transient_timeout_within_the_timeout() -> None:
    handler = Hanging()
    with smtp_server(handler) as server:
        mail = channel(server.port, timeout="1s")
        started = time.monotonic()
        with pytest.raises(DeliveryError) as raised:
            mail.send(MESSAGE)
        took = time.monotonic() - started
    assert not raised.value.permanent
    assert raised.value.error_class is ErrorClass.TIMEOUT
    assert raised.value.reason == (
        f"no answer from the SMTP server 127.0.0.1:{server.port} within 1s (during DATA)"
    )
    assert handler.reached_data == 1
    assert took < 1 + 1


def test_a_refused_connection_is_transient() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(DeliveryError) as raised:
        channel(port).send(MESSAGE)
    assert not raised.value.permanent
    assert raised.value.error_class is ErrorClass.REFUSED
    assert raised.value.reason == f"the SMTP server 127.0.0.1:{port}: connection refused"


def test_a_recipient_without_an_address_is_a_permanent_failure() -> None:
    with pytest.raises(DeliveryError) as raised:
        channel(free_port()).send(Message("d-2", "s", "t", phone="+8613800138000"))
    assert raised.value.permanent
    assert raised.value.reason == "the recipient has no e-mail address"


def test_the_password_is_in_no_repr(tmp_path: Path) -> None:
    mail = channel(25, tls="starttls", username="noc", password="s3cret-pass")
    for shown in (repr(mail), repr(mail.config), str(mail.config), repr(mail.config.smtp)):
        assert "s3cret-pass" not in shown


class CountingEhlo(Accepting):
    """Accepts every message and counts the sessions (one EHLO each)."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0

    async def handle_EHLO(self, server: Any, session: Any, envelope: Any, hostname: str,  # noqa: N802
                          responses: list[str]) -> list[str]:  # fmt: skip
        self.sessions += 1
        session.host_name = hostname  # aiosmtpd leaves this to a handler with its own EHLO
        return responses


def test_a_burst_of_messages_shares_one_logged_in_session() -> None:
    counting = CountingEhlo()
    with smtp_server(counting) as server:
        mail = channel(server.port)
        for n in range(3):
            mail.send(Message(delivery_id=f"d-{n}", subject="s", text="t", html=None,
                              language="en", email=f"c{n}@example.cn"))  # fmt: skip
    assert [r.rcpt_tos for r in counting.received] == [["c0@example.cn"], ["c1@example.cn"],
                                                         ["c2@example.cn"]]  # fmt: skip
    assert counting.sessions == 1


def test_a_kept_session_the_server_dropped_is_replaced_without_a_failure() -> None:
    port = free_port()
    first, second = Accepting(), Accepting()
    with smtp_server(first, port=port):
        mail = channel(port)
        mail.send(MESSAGE)
    with smtp_server(second, port=port):  # the server restarted: the kept session is dead
        receipt = mail.send(MESSAGE)
    assert len(first.received) == 1 and len(second.received) == 1
    assert receipt.provider_id == message_id("d-1042", "example.cn")
