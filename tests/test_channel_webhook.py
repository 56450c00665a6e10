"""The webhook channel against a local receiver that verifies the HMAC, and the SSRF guard
against names resolved by a real dnsmasq: private, loopback and link-local addresses are
refused before any connection is attempted, and the request goes to the address checked."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.observation import ErrorClass
from notify.channels import CHANNELS, DeliveryError, Message, build_channel
from notify.channels.webhook import WebhookChannel, WebhookChannelConfig, body_of, signature
from tests.peers import free_port
from tests.peers.dns import Dnsmasq, dnsmasq
from tests.peers.https import TestPki
from tests.peers.webhook import Receiver, webhook_receiver

SECRET = "a-webhook-secret-of-some-length"
MESSAGE = Message(
    delivery_id="d-77",
    subject="trunk-a down",
    text="trunk-a (telecom) has been down for 2 minutes.",
    language="en",
    data={"incident": 12, "target": "trunk-a", "health": "down"},
)

# Every socket connect and every getaddrinfo this process makes while a test watches
# (an audit hook: the interpreter reports each before it happens, whichever library calls it).
_connects: list[Any] | None = None
_lookups: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "socket.connect" and _connects is not None:
        _connects.append(args[1])
    elif event == "socket.getaddrinfo" and _lookups is not None:
        _lookups.append(str(args[0]))


sys.addaudithook(_audit)


@pytest.fixture
def connects() -> Iterator[list[Any]]:
    global _connects
    _connects = []
    try:
        yield _connects
    finally:
        _connects = None


@pytest.fixture
def lookups() -> Iterator[list[str]]:
    global _lookups
    _lookups = []
    try:
        yield _lookups
    finally:
        _lookups = None


@pytest.fixture(scope="module")
def names(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dnsmasq]:
    """dnsmasq answering names that point at denied ranges, at loopback, and a mixed one."""
    hosts = {
        "internal.hook.test": "10.0.0.1",
        "metadata.hook.test": "169.254.169.254",
        "office.hook.test": "192.168.1.20",
        "local.hook.test": "127.0.0.1",
        "secure.hook.test": "127.0.0.1",
        "mixed.hook.test": ["192.0.2.7", "172.16.5.5"],
    }
    with dnsmasq(tmp_path_factory.mktemp("hook-dns"), hosts=hosts, zone="hook.test") as server:
        yield server


def channel(url: str, **fields: Any) -> WebhookChannel:
    config = WebhookChannelConfig.model_validate(
        {"id": "hook", "kind": "webhook", "url": url, "secret": SECRET, "timeout": "2s", **fields}
    )
    built = build_channel(config)
    assert isinstance(built, WebhookChannel)
    return built


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with webhook_receiver(SECRET) as server:
        yield server


def test_the_webhook_kind_is_registered() -> None:
    assert CHANNELS["webhook"].model is WebhookChannelConfig
    assert CHANNELS["webhook"].implementation is WebhookChannel


def test_a_signed_json_post_is_delivered(receiver: Receiver) -> None:
    receipt = channel(receiver.url(), allow_private=True).send(MESSAGE)
    assert receipt.answer == "HTTP 204 No Content"
    [got] = receiver.requests
    assert got.signed
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    assert got.headers["x-dialwatch-delivery"] == "d-77"
    assert got.headers["x-dialwatch-signature"] == signature(SECRET, got.body)
    assert json.loads(got.body) == {
        "delivery_id": "d-77",
        "subject": "trunk-a down",
        "text": "trunk-a (telecom) has been down for 2 minutes.",
        "language": "en",
        "data": {"incident": 12, "target": "trunk-a", "health": "down"},
    }


def test_a_resend_is_the_same_bytes_with_the_same_signature(receiver: Receiver) -> None:
    hook = channel(receiver.url(), allow_private=True)
    hook.send(MESSAGE)
    hook.send(MESSAGE)
    first, again = receiver.requests
    assert first.body == again.body == body_of(MESSAGE)
    assert first.headers["x-dialwatch-signature"] == again.headers["x-dialwatch-signature"]


def test_a_receiver_with_another_secret_refuses_it_permanently(receiver: Receiver) -> None:
    hook = channel(receiver.url(), allow_private=True, secret="another-secret-entirely")
    with pytest.raises(DeliveryError) as raised:
        hook.send(MESSAGE)
    assert raised.value.permanent
    assert (
        raised.value.reason
        == f"webhook {receiver.url()} answered HTTP 401 Unauthorized: status 401"
    )
    assert receiver.requests[0].signed is False


def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    with pytest.raises(DeliveryError) as raised:
        channel(receiver.url("/moved"), allow_private=True).send(MESSAGE)
    assert raised.value.permanent
    assert "redirects are not followed" in raised.value.reason
    assert receiver.paths() == ["/moved"]


@pytest.mark.parametrize(
    ("code", "permanent", "retry_after"),
    [
        pytest.param(400, True, None, id="400-permanent"),
        pytest.param(404, True, None, id="404-permanent"),
        pytest.param(408, False, None, id="408-transient"),
        pytest.param(429, False, 7.0, id="429-transient-with-retry-after"),
        pytest.param(500, False, None, id="500-transient"),
        pytest.param(503, False, 7.0, id="503-transient-with-retry-after"),
    ],
)
def test_the_answers_status_decides_whether_a_failure_is_permanent(
    receiver: Receiver, code: int, permanent: bool, retry_after: float | None
) -> None:
    with pytest.raises(DeliveryError) as raised:
        channel(receiver.url(f"/status/{code}"), allow_private=True).send(MESSAGE)
    assert raised.value.permanent is permanent
    assert raised.value.retry_after == retry_after
    assert f"answered HTTP {code}" in raised.value.reason


def test_a_receiver_that_never_answers_is_a_transient_timeout(receiver: Receiver) -> None:
    hook = channel(receiver.url("/hang"), allow_private=True, timeout="1s")
    started = time.monotonic()
    with pytest.raises(DeliveryError) as raised:
        hook.send(MESSAGE)
    assert time.monotonic() - started < 1 + 1
    assert not raised.value.permanent
    assert raised.value.error_class is ErrorClass.TIMEOUT


def test_nothing_listening_is_transient() -> None:
    port = free_port()
    with pytest.raises(DeliveryError) as raised:
        channel(f"http://127.0.0.1:{port}/hook", allow_private=True).send(MESSAGE)
    assert not raised.value.permanent
    assert raised.value.error_class is ErrorClass.REFUSED


def test_loopback_is_refused_unless_allowed(receiver: Receiver, connects: list[Any]) -> None:
    with pytest.raises(DeliveryError) as raised:
        channel(receiver.url()).send(MESSAGE)
    assert raised.value.permanent
    assert raised.value.reason == (
        f"webhook {receiver.url()}: 127.0.0.1, a loopback address (127.0.0.0/8): not sent, "
        "outbound requests go to public addresses only (allow_private: true allows it)"
    )
    assert connects == []
    assert receiver.requests == []


@pytest.mark.parametrize(
    ("host", "address", "network"),
    [
        pytest.param("internal.hook.test", "10.0.0.1", "10.0.0.0/8", id="private-10"),
        pytest.param("office.hook.test", "192.168.1.20", "192.168.0.0/16", id="private-192-168"),
        pytest.param(
            "metadata.hook.test", "169.254.169.254", "169.254.0.0/16", id="cloud-metadata"
        ),
        pytest.param("mixed.hook.test", "172.16.5.5", "172.16.0.0/12", id="one-of-two-private"),
        pytest.param("local.hook.test", "127.0.0.1", "127.0.0.0/8", id="name-for-loopback"),
    ],
)
def test_a_name_resolving_to_a_denied_range_is_refused_before_any_connect(
    names: Dnsmasq, connects: list[Any], host: str, address: str, network: str
) -> None:
    hook = channel(f"https://{host}/hook", nameservers=[names.nameserver])
    with pytest.raises(DeliveryError) as raised:
        hook.send(MESSAGE)
    assert raised.value.permanent
    assert raised.value.error_class is ErrorClass.UNREACHABLE
    assert f"{host} resolves to {address}, a " in raised.value.reason
    assert f"({network}): not sent" in raised.value.reason
    # Only the DNS server was spoken to; no connect to the address, nor to any other.
    assert {tuple(a)[:2] for a in connects} <= {("127.0.0.1", names.port)}


def test_an_allowed_name_is_sent_to_the_address_that_was_checked(
    names: Dnsmasq, receiver: Receiver, connects: list[Any], lookups: list[str]
) -> None:
    url = receiver.url(host="local.hook.test")
    channel(url, allow_private=True, nameservers=[names.nameserver]).send(MESSAGE)
    [got] = receiver.requests
    assert got.signed
    # The name stays in Host; the connection went to the checked address, resolved once.
    assert got.headers["host"] == f"local.hook.test:{receiver.port}"
    tcp = [tuple(a)[:2] for a in connects if tuple(a)[:2] != ("127.0.0.1", names.port)]
    assert tcp == [("127.0.0.1", receiver.port)]
    # No second lookup of the name by the HTTP library (DNS rebinding): it got the address.
    assert "local.hook.test" not in lookups


def test_tls_checks_the_name_while_connecting_to_the_checked_address(
    names: Dnsmasq, tmp_path: Path
) -> None:
    pki = TestPki(tmp_path)
    leaf = pki.leaf("secure", dns_names=("secure.hook.test",), ips=())
    with webhook_receiver(SECRET, cert=str(leaf.cert), key=str(leaf.key)) as server:
        url = server.url(host="secure.hook.test")
        hook = channel(
            url, allow_private=True, nameservers=[names.nameserver], ca_file=str(pki.ca_file)
        )
        hook.send(MESSAGE)
        assert server.requests[0].signed
        # The same certificate does not pass for the name it was not made for.
        wrong = channel(
            server.url(host="local.hook.test"),
            allow_private=True,
            nameservers=[names.nameserver],
            ca_file=str(pki.ca_file),
        )
        with pytest.raises(DeliveryError) as raised:
            wrong.send(MESSAGE)
    assert raised.value.permanent and raised.value.error_class is ErrorClass.TLS
    assert len(server.requests) == 1


def test_a_name_that_does_not_exist_is_a_permanent_resolve_failure(names: Dnsmasq) -> None:
    with pytest.raises(DeliveryError) as raised:
        channel("https://nowhere.hook.test/hook", nameservers=[names.nameserver]).send(MESSAGE)
    assert raised.value.permanent and raised.value.error_class is ErrorClass.RESOLVE
    assert "could not resolve nowhere.hook.test (no such name)" in raised.value.reason


def test_the_secret_is_in_no_repr() -> None:
    hook = channel("https://hooks.example.cn/x?token=abc")
    for shown in (repr(hook), repr(hook.config), str(hook.config)):
        assert SECRET not in shown
    assert "token=abc" not in repr(hook)
