"""The group-robot channels (dingtalk, wecom, feishu) against a local STAND-IN
(tests/peers/chatrobots.py) that checks signatures, tokens and fields the way each
service does and answers in its shape: an HTTP 200 carrying an error code is a
failed delivery, never a sent one."""

from __future__ import annotations

import time
from typing import Any

import pytest
from pydantic import ValidationError

from core.observation import ErrorClass
from notify.channels import CHANNELS, ChannelContext, DeliveryError, Message, build_channel
from notify.channels.robot import cut_to_bytes, mainland_mobile, plain_text
from tests.peers.chatrobots import Robots, chat_robots

SECRET = "SEC0123456789abcdef0123456789abcdef"
MESSAGE = Message(
    delivery_id="d-91",
    subject="trunk-a down",
    text="trunk-a down: telecom trunk has not answered OPTIONS for 2 minutes.\n"
    "Details: https://noc.example.cn/incidents/12",
    language="en",
    phone="+8613800138000",
)
URLS = {"dingtalk": Robots.dingtalk_url, "wecom": Robots.wecom_url, "feishu": Robots.feishu_url}
SIGNED = ("dingtalk", "feishu")


def channel(kind: str, robots: Robots, clock: Any = time.time, **fields: Any) -> Any:
    entry: dict[str, Any] = {
        "id": "chat",
        "kind": kind,
        "webhook": URLS[kind](robots),
        "allow_private": True,  # the stand-in is on loopback
        "timeout": "2s",
        **fields,
    }
    if robots.secret and kind in SIGNED and "secret" not in fields:
        entry["secret"] = robots.secret
    config = CHANNELS[kind].model.model_validate(entry)
    return build_channel(config, ChannelContext(clock=clock))


@pytest.mark.parametrize("kind", ["dingtalk", "wecom", "feishu"])
def test_a_message_is_accepted_and_the_receipt_keeps_the_answer(kind: str) -> None:
    with chat_robots(secret=SECRET) as robots:
        receipt = channel(kind, robots).send(MESSAGE)
    assert robots.codes(kind) == [0]
    assert receipt.answer.startswith("HTTP 200")
    text = robots.got[0].json()
    content = text["text"]["content"] if kind != "feishu" else text["content"]["text"]
    assert content.startswith("trunk-a down: telecom trunk")  # the subject is not said twice
    assert "https://noc.example.cn/incidents/12" in content


@pytest.mark.parametrize("kind", SIGNED)
def test_a_wrong_secret_is_a_permanent_failure_with_the_services_code(kind: str) -> None:
    with chat_robots(secret=SECRET) as robots, pytest.raises(DeliveryError) as raised:
        channel(kind, robots, secret="SECnot-the-robots-secret").send(MESSAGE)
    code = {"dingtalk": 310000, "feishu": 19021}[kind]
    assert robots.codes(kind) == [code]
    assert raised.value.permanent
    assert f"code {code}" in raised.value.reason
    assert "sign" in raised.value.reason


@pytest.mark.parametrize("kind", SIGNED)
def test_a_clock_two_hours_off_fails_the_signature_check(kind: str) -> None:
    with chat_robots(secret=SECRET) as robots:
        with pytest.raises(DeliveryError) as raised:
            channel(kind, robots, clock=lambda: time.time() - 7200).send(MESSAGE)
        assert robots.codes(kind) == [{"dingtalk": 310000, "feishu": 19021}[kind]]
        # The same robot signs fine with the right time: it was the timestamp.
        channel(kind, robots).send(MESSAGE)
    assert raised.value.permanent
    assert robots.codes(kind)[-1] == 0


def test_a_robot_without_a_secret_sends_no_signature() -> None:
    with chat_robots() as robots:
        channel("dingtalk", robots).send(MESSAGE)
        channel("feishu", robots).send(MESSAGE)
    assert "sign=" not in robots.got[0].path and "timestamp=" not in robots.got[0].path
    assert "sign" not in robots.got[1].json()


@pytest.mark.parametrize(
    ("kind", "code"), [("dingtalk", 300001), ("wecom", 93000), ("feishu", 19001)]
)
def test_an_unknown_token_is_permanent_and_the_reason_hides_the_token(kind: str, code: int) -> None:
    with chat_robots() as robots:
        config = {"webhook": URLS[kind](robots, "tok-wrong-77ab")}
        with pytest.raises(DeliveryError) as raised:
            channel(kind, robots, **config).send(MESSAGE)
    assert robots.codes(kind) == [code]
    assert raised.value.permanent
    assert "tok-wrong-77ab" not in raised.value.reason
    assert "tok-wrong-77ab" not in repr(channel(kind, robots, **config))


@pytest.mark.parametrize(
    ("kind", "code"), [("dingtalk", 130101), ("wecom", 45009), ("feishu", 11232)]
)
def test_a_rate_limit_code_with_http_200_is_transient_with_a_wait(kind: str, code: int) -> None:
    with chat_robots(mode="throttle") as robots, pytest.raises(DeliveryError) as raised:
        channel(kind, robots).send(MESSAGE)
    assert robots.codes(kind) == [code]
    assert not raised.value.permanent
    assert raised.value.retry_after == 60.0
    assert "too many messages" in raised.value.reason


@pytest.mark.parametrize("kind", ["dingtalk", "feishu"])
def test_the_keyword_is_put_in_front_when_the_message_lacks_it(kind: str) -> None:
    with chat_robots(keyword="监控告警") as robots:
        with pytest.raises(DeliveryError) as raised:
            channel(kind, robots).send(MESSAGE)  # no keyword configured: refused
        channel(kind, robots, keyword="监控告警").send(MESSAGE)
    assert raised.value.permanent
    assert robots.codes(kind)[-1] == 0


def test_dingtalk_and_wecom_mention_the_recipients_mainland_mobile() -> None:
    with chat_robots() as robots:
        channel("dingtalk", robots).send(MESSAGE)
        channel("wecom", robots).send(MESSAGE)
        channel("wecom", robots, mention=False).send(MESSAGE)
    ding, wecom, quiet = (g.json() for g in robots.got)
    assert ding["at"] == {"atMobiles": ["13800138000"], "isAtAll": False}
    assert ding["text"]["content"].endswith("\n@13800138000")
    assert wecom["text"]["mentioned_mobile_list"] == ["13800138000"]
    assert "mentioned_mobile_list" not in quiet["text"]


def test_wecom_text_is_cut_to_its_2048_byte_limit_and_still_accepted() -> None:
    long = Message(delivery_id="d-92", subject="批量故障", text="中继" * 2000)
    with chat_robots() as robots:
        channel("wecom", robots).send(long)
    content = robots.got[0].json()["text"]["content"]
    assert robots.codes("wecom") == [0]
    assert len(content.encode()) <= 2048 and content.endswith("…")


@pytest.mark.parametrize("kind", ["dingtalk", "wecom", "feishu"])
def test_garbage_with_200_is_a_transient_failure_not_a_delivery(kind: str) -> None:
    with chat_robots(mode="garbage") as robots, pytest.raises(DeliveryError) as raised:
        channel(kind, robots).send(MESSAGE)
    assert not raised.value.permanent
    assert raised.value.error_class is ErrorClass.PROTOCOL
    assert "not the robot's JSON" in raised.value.reason


@pytest.mark.parametrize("kind", ["dingtalk", "wecom", "feishu"])
def test_a_hanging_robot_is_a_transient_timeout_within_the_channels_timeout(kind: str) -> None:
    with chat_robots(mode="hang") as robots, pytest.raises(DeliveryError) as raised:
        channel(kind, robots, timeout="1s").send(MESSAGE)
    # The stand-in holds the request for 30 s: a timeout here is the channel's own bound.
    assert not raised.value.permanent
    assert raised.value.error_class is ErrorClass.TIMEOUT


@pytest.mark.parametrize("kind", ["dingtalk", "wecom", "feishu"])
def test_a_robot_on_a_private_address_is_refused_before_any_connection(kind: str) -> None:
    with chat_robots() as robots, pytest.raises(DeliveryError) as raised:
        channel(kind, robots, allow_private=False).send(MESSAGE)
    assert robots.got == []
    assert raised.value.permanent
    assert "allow_private" in raised.value.reason


def test_a_webhook_that_is_not_http_is_a_config_error_naming_the_key() -> None:
    with pytest.raises(ValidationError) as raised:
        CHANNELS["dingtalk"].model.model_validate(
            {"id": "d", "kind": "dingtalk", "webhook": "ftp://oapi.dingtalk.com/robot/send"}
        )
    assert raised.value.errors()[0]["loc"] == ("webhook",)
    assert "http:// or https://" in str(raised.value)


def test_plain_text_cut_and_mobile_helpers() -> None:
    assert cut_to_bytes("中继中继", 7) == "中…"  # never half a character
    assert cut_to_bytes("abc", 3) == "abc"
    assert mainland_mobile("+8613800138000") == "13800138000"
    assert mainland_mobile("+85291234567") is None
    assert mainland_mobile(None) is None
    message = Message(delivery_id="d-1", subject="S", text="body")
    assert plain_text(message, None, 100) == "S\nbody"
    assert plain_text(message, "告警", 100) == "【告警】S\nbody"
    assert plain_text(message, "body", 100) == "S\nbody"


def test_a_literal_webhook_url_is_masked_in_repr_because_it_holds_the_token() -> None:
    url = "https://oapi.dingtalk.com/robot/send?access_token=literal-token-5e1"
    config = CHANNELS["dingtalk"].model.model_validate(
        {"id": "d", "kind": "dingtalk", "webhook": url, "secret": "SEC-literal-secret"}
    )
    assert "literal-token-5e1" not in repr(config)
    assert "SEC-literal-secret" not in repr(config)
