"""The apprise channel, only ever against loopback: Apprise's ``json://`` service posting to a
local receiver (tests/peers/webhook.py). No test builds an Apprise notifier for a real host."""

from __future__ import annotations

import json
import logging

import pytest
from pydantic import ValidationError

from notify.channels import CHANNELS, DeliveryError, Message, build_channel
from notify.channels.apprise import scrubbed, with_timeouts
from tests.peers.webhook import webhook_receiver

MESSAGE = Message(delivery_id="d-5", subject="trunk-a down", text="trunk-a has been down 2 minutes")


def channel(url: str, **fields: object):
    config = CHANNELS["apprise"].model.model_validate(
        {"id": "tail", "kind": "apprise", "apprise_url": url, "timeout": "1s", **fields}
    )
    return build_channel(config)


def test_a_message_reaches_the_service_with_title_and_body() -> None:
    with webhook_receiver("unused-secret-0123") as receiver:
        port = receiver.port
        receipt = channel(f"json://127.0.0.1:{port}/status/200").send(MESSAGE)
    [got] = receiver.requests
    body = json.loads(got.body)
    assert (body["title"], body["message"]) == ("trunk-a down", "trunk-a has been down 2 minutes")
    assert receipt.answer == "Apprise json:// accepted it"


def test_a_refusing_service_is_a_transient_failure_with_what_apprise_said() -> None:
    with webhook_receiver("unused-secret-0123") as receiver:
        url = f"json://127.0.0.1:{receiver.port}/status/500"
        with pytest.raises(DeliveryError) as raised:
            channel(url).send(MESSAGE)
    assert len(receiver.requests) == 1
    assert not raised.value.permanent
    assert "did not send it" in raised.value.reason
    assert "500" in raised.value.reason


def test_a_hanging_service_fails_within_the_channels_timeout() -> None:
    with (
        webhook_receiver("unused-secret-0123") as receiver,
        pytest.raises(DeliveryError) as raised,
    ):
        channel(f"json://127.0.0.1:{receiver.port}/hang").send(MESSAGE)
    # The receiver holds the request for 30 s: failing at all is Apprise's rto at work.
    assert not raised.value.permanent
    assert len(receiver.requests) == 1


def test_an_unknown_apprise_url_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ValidationError) as raised:
        channel("nosuchservice://token/chat")
    assert raised.value.errors()[0]["loc"] == ("apprise_url",)
    assert "Apprise does not understand this URL (scheme 'nosuchservice')" in str(raised.value)


def test_the_url_is_a_secret_in_repr_and_in_reasons(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    url = "json://127.0.0.1:9/hook-tok-3f9a1c?Authorization=Bearer-zz81ab"
    made = channel(url)
    assert "hook-tok-3f9a1c" not in repr(made.config) and "hook-tok-3f9a1c" not in repr(made)
    with pytest.raises(DeliveryError) as raised:
        made.send(MESSAGE)  # nothing listens on port 9: a connection error
    assert "hook-tok-3f9a1c" not in raised.value.reason
    assert "zz81ab" not in raised.value.reason
    assert "hook-tok-3f9a1c" not in caplog.text


def test_timeouts_are_added_unless_the_url_sets_them() -> None:
    assert with_timeouts("tgram://bot/chat", 5.0) == "tgram://bot/chat?cto=5&rto=5"
    assert with_timeouts("json://h/p?rto=2", 1.5) == "json://h/p?rto=2&cto=1.5"
    assert scrubbed("failed at tgram://123456:ABCDEF/chat", "tgram://123456:ABCDEF/-100777") == (
        "failed at tgram://***:***/chat"
    )
