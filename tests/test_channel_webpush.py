"""The webpush channel against a local push service stand-in (tests/peers/push.py) that
verifies the VAPID JWT and decrypts the body with the subscription the test made itself."""

from __future__ import annotations

import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from monitor.staff import push_subscriptions as subs
from monitor.staff import users
from monitor.store.db import open_database
from monitor.store.models import PushSubscription
from monitor.store.repository import StateRepository
from notify import vapid
from notify.channels import CHANNELS, ChannelContext, DeliveryError, Message, build_channel
from notify.channels.webpush import (
    MAX_PAYLOAD,
    PUSH_SERVICE_HOSTS,
    WebPushChannel,
    WebPushChannelConfig,
    host_allowed,
    payload_of,
)
from tests.peers.push import Answer, PushServer, push_service, unb64url

T0 = 1_790_000_000.0
PASSWORD = "correct horse battery"
MESSAGE = Message(
    delivery_id="d-9",
    subject="trunk-a down",
    text="trunk-a (电信) has been down for 2 minutes.",
    user="zhang",
    data={"url": "/incidents/12", "incident": 12},
)

_connects: list[Any] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.getaddrinfo") and _connects is not None:
        _connects.append((event, args[1] if event == "socket.connect" else args[0]))


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
def repo(tmp_path: Path) -> StateRepository:
    state = StateRepository(open_database(None, tmp_path))
    users.add_user(state, "cli", "zhang", "operator", PASSWORD, at=T0)
    users.add_user(state, "cli", "li", "viewer", PASSWORD, at=T0)
    return state


@pytest.fixture
def service() -> Iterator[PushServer]:
    with push_service() as server:
        server.clock = lambda: T0 + 60
        yield server


def channel(repo: StateRepository, tmp_path: Path, **fields: Any) -> WebPushChannel:
    config = WebPushChannelConfig.model_validate(
        {
            "id": "push",
            "kind": "webpush",
            "allowed_hosts": [*PUSH_SERVICE_HOSTS, "127.0.0.1"],
            "timeout": "3s",
            **fields,
        }
    )
    context = ChannelContext(state=repo, data_dir=tmp_path / "data", clock=lambda: T0 + 60)
    vapid.load_or_create(vapid.key_path(tmp_path / "data"))
    built = build_channel(config, context)
    assert isinstance(built, WebPushChannel)
    return built


def subscribe(repo: StateRepository, service: PushServer, name: str, user: str = "zhang") -> str:
    endpoint, client = service.subscribe(name)
    subs.add(repo, "user:" + user, user, endpoint, client.p256dh, client.auth, at=T0)
    return endpoint


def rows(repo: StateRepository) -> list[str]:
    with repo.engine.connect() as conn:
        return [r.endpoint for r in conn.execute(select(PushSubscription))]


def test_webpush_is_a_registered_channel_kind() -> None:
    assert CHANNELS["webpush"].model is WebPushChannelConfig
    assert CHANNELS["webpush"].implementation is WebPushChannel


def test_a_push_is_signed_encrypted_and_accepted(
    repo: StateRepository, service: PushServer, tmp_path: Path
) -> None:
    push = channel(repo, tmp_path)
    service.vapid_public_key = vapid.load_or_create(vapid.key_path(tmp_path / "data")).public_key
    subscribe(repo, service, "zhang-laptop")
    subscribe(repo, service, "zhang-phone")
    receipt = push.send(MESSAGE)
    assert service.refused == []
    assert len(service.received) == 2
    got = service.received[0]
    assert got.json() == {
        "title": "trunk-a down",
        "body": "trunk-a (电信) has been down for 2 minutes.",
        "url": "/incidents/12",
        "delivery_id": "d-9",
    }
    assert got.claims["aud"] == service.origin
    assert got.claims["sub"] == "mailto:dialwatch@localhost"
    assert got.headers["ttl"] == "3600"
    assert "pushed to 2 of 2 browsers of zhang" in receipt.answer
    assert receipt.provider_id == f"{service.origin}/message/1"
    with repo.engine.connect() as conn:
        stamps = [r.last_success_at for r in conn.execute(select(PushSubscription))]
    assert stamps == [T0 + 60, T0 + 60]


def test_one_accepting_push_service_is_enough(
    repo: StateRepository, service: PushServer, tmp_path: Path
) -> None:
    subscribe(repo, service, "broken")
    subscribe(repo, service, "good")
    service.answers["/push/broken"] = Answer(500)
    receipt = channel(repo, tmp_path).send(MESSAGE)
    assert "pushed to 1 of 2" in receipt.answer and "HTTP 500" in receipt.answer


def test_a_410_removes_that_subscription(
    repo: StateRepository, service: PushServer, tmp_path: Path
) -> None:
    gone = subscribe(repo, service, "old-browser")
    kept = subscribe(repo, service, "new-browser")
    service.answers["/push/old-browser"] = Answer(410, body=b"push subscription has expired")
    channel(repo, tmp_path).send(MESSAGE)
    assert rows(repo) == [kept]
    assert gone not in rows(repo)


def test_a_404_alone_is_a_permanent_failure_and_removes_it(
    repo: StateRepository, service: PushServer, tmp_path: Path
) -> None:
    subscribe(repo, service, "unknown")
    service.answers["/push/unknown"] = Answer(404)
    with pytest.raises(DeliveryError) as caught:
        channel(repo, tmp_path).send(MESSAGE)
    assert caught.value.permanent and "subscription removed" in caught.value.reason
    assert rows(repo) == []


def test_a_429_is_transient_with_retry_after(
    repo: StateRepository, service: PushServer, tmp_path: Path
) -> None:
    subscribe(repo, service, "busy")
    service.answers["/push/busy"] = Answer(429, {"Retry-After": "30"})
    with pytest.raises(DeliveryError) as caught:
        channel(repo, tmp_path).send(MESSAGE)
    assert not caught.value.permanent
    assert caught.value.retry_after == 30.0
    assert len(rows(repo)) == 1  # kept


def test_an_endpoint_host_not_on_the_allow_list_is_refused_before_any_connect(
    repo: StateRepository, service: PushServer, tmp_path: Path, connects: list[Any]
) -> None:
    endpoint, client = service.subscribe("sneaky")
    sneaky = endpoint.replace("127.0.0.1", "internal.example.test")
    subs.add(repo, "user:zhang", "zhang", sneaky, client.p256dh, client.auth, at=T0)
    push = channel(repo, tmp_path, allowed_hosts=list(PUSH_SERVICE_HOSTS))
    connects.clear()
    with pytest.raises(DeliveryError) as caught:
        push.send(MESSAGE)
    assert caught.value.permanent
    assert "internal.example.test is not an allowed push service" in caught.value.reason
    assert connects == []
    assert service.received == [] and service.refused == []


def test_a_loopback_endpoint_is_refused_unless_listed(
    repo: StateRepository, service: PushServer, tmp_path: Path, connects: list[Any]
) -> None:
    subscribe(repo, service, "lab")
    push = channel(repo, tmp_path, allowed_hosts=["fcm.googleapis.com"])
    with pytest.raises(DeliveryError, match="127.0.0.1 is not an allowed push service"):
        push.send(MESSAGE)
    assert connects == [] and service.received == []


def test_no_subscription_is_a_permanent_failure_that_says_what_to_do(
    repo: StateRepository, tmp_path: Path
) -> None:
    with pytest.raises(DeliveryError) as caught:
        channel(repo, tmp_path).send(MESSAGE)
    assert caught.value.permanent
    assert caught.value.reason == (
        "zhang has no web push subscription; open the console and press Subscribe"
    )


def test_a_message_without_a_user_or_for_an_unknown_user_fails_permanently(
    repo: StateRepository, tmp_path: Path
) -> None:
    push = channel(repo, tmp_path)
    with pytest.raises(DeliveryError, match="needs a console user") as caught:
        push.send(Message(delivery_id="d-1", subject="s", text="t"))
    assert caught.value.permanent
    with pytest.raises(DeliveryError, match="no console user named 'wang'"):
        push.send(Message(delivery_id="d-1", subject="s", text="t", user="wang"))


def test_a_subscription_belongs_to_its_user(
    repo: StateRepository, service: PushServer, tmp_path: Path
) -> None:
    subscribe(repo, service, "li-laptop", user="li")
    with pytest.raises(DeliveryError, match="zhang has no web push subscription"):
        channel(repo, tmp_path).send(MESSAGE)
    assert service.received == []


def test_a_long_message_is_cut_to_fit_a_push(
    repo: StateRepository, service: PushServer, tmp_path: Path
) -> None:
    long = Message(delivery_id="d-2", subject="x", text="很长的消息" * 2000, user="zhang")
    assert len(payload_of(long)) <= MAX_PAYLOAD
    subscribe(repo, service, "zhang")
    channel(repo, tmp_path).send(long)
    assert service.refused == []
    body = service.received[0].json()["body"]
    assert body.endswith("…") and len(service.received[0].plaintext) <= MAX_PAYLOAD


def test_the_vapid_key_is_0600_and_reused_across_restarts(tmp_path: Path) -> None:
    path = vapid.key_path(tmp_path / "data")
    first = vapid.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    again = vapid.load_or_create(path)
    assert again.public_key == first.public_key
    assert len(unb64url(first.public_key)) == 65
    path.chmod(0o644)
    vapid.load_or_create(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "BEGIN" not in repr(first)


def test_a_damaged_key_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "vapid.pem"
    path.write_text("not a key")
    with pytest.raises(vapid.VapidKeyError, match="is not a PEM private key"):
        vapid.load_or_create(path)


def test_a_missing_key_file_is_a_permanent_failure(
    repo: StateRepository, service: PushServer, tmp_path: Path
) -> None:
    subscribe(repo, service, "zhang")
    push = channel(repo, tmp_path)
    vapid.key_path(tmp_path / "data").unlink()
    with pytest.raises(DeliveryError, match="VAPID key file .* does not exist") as caught:
        push.send(MESSAGE)
    assert caught.value.permanent and service.received == []


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("fcm.googleapis.com", True),
        ("FCM.googleapis.com.", True),
        ("wns2-par02p.notify.windows.com", True),
        ("notify.windows.com", False),
        ("web.push.apple.com", True),
        ("evil-fcm.googleapis.com.example", False),
        ("127.0.0.1", False),
        ("10.0.0.1", False),
    ],
)
def test_the_default_allow_list(host: str, allowed: bool) -> None:
    assert host_allowed(host, PUSH_SERVICE_HOSTS) is allowed


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"allowed_hosts": ["https://fcm.googleapis.com/"]}, "is not a host name"),
        ({"contact": "noc@example.cn"}, "mailto: or https://"),
        ({"ttl": -1}, "greater than or equal to 0"),
        ({"endpoint": "x"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_config_is_refused(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        WebPushChannelConfig.model_validate({"id": "push", "kind": "webpush", **fields})


def test_subscribing_checks_the_keys_and_endpoint(repo: StateRepository) -> None:
    good_key = "B" + "A" * 86
    with pytest.raises(ValueError, match="keys.p256dh must be"):
        subs.add(
            repo, "user:zhang", "zhang", "https://fcm.googleapis.com/x", "abc", "A" * 22, at=T0
        )
    with pytest.raises(ValueError, match="keys.auth must be 16 bytes"):
        subs.add(repo, "user:zhang", "zhang", "https://fcm.googleapis.com/x", good_key, "AA", at=T0)
    with pytest.raises(ValueError, match="endpoint must be an https://"):
        subs.add(repo, "user:zhang", "zhang", "file:///etc/passwd", good_key, "A" * 22, at=T0)


def test_the_cli_makes_the_key_once_and_prints_its_public_half(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dialwatch.cli import main

    data = tmp_path / "var" / "dialwatch"
    assert main(["vapid-key", "--data", str(data)]) == 0
    first = capsys.readouterr().out.strip()
    path = vapid.key_path(data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert main(["vapid-key", "--data", str(data)]) == 0  # install.sh run again: same key
    assert capsys.readouterr().out.strip() == first == vapid.load_or_create(path).public_key
    path.write_text("damaged")
    assert main(["vapid-key", "--data", str(data)]) == 2
    assert "is not a PEM private key" in capsys.readouterr().err


def test_an_ipv6_lab_address_may_be_listed_with_or_without_brackets() -> None:
    from notify.channels.webpush import endpoint_refusal

    for written in ("[::1]", "::1"):
        config = WebPushChannelConfig.model_validate(
            {"id": "push", "kind": "webpush", "allowed_hosts": [written]}
        )
        assert endpoint_refusal("http://[::1]:8080/push/x", config.allowed_hosts) is None
    assert "https:// only" in (
        endpoint_refusal("http://fcm.googleapis.com/x", PUSH_SERVICE_HOSTS) or ""
    )
