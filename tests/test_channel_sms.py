"""The sms channel: each provider's signature against the provider's documented example,
and every provider against a local STAND-IN (tests/peers/sms.py) that verifies each
request the way the provider does and answers like it, error codes included."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from core.observation import ErrorClass
from notify.channels import CHANNELS, DeliveryError, Message, build_channel
from notify.channels.sms import SmsChannel, SmsChannelConfig, aliyun, tencent
from notify.channels.sms.aliyun import AliyunSmsConfig
from notify.channels.sms.gateway import GatewaySmsConfig
from notify.channels.sms.tencent import TencentSmsConfig
from notify.channels.sms.twilio import TwilioSmsConfig
from tests.peers.sms import Peer, sms_peer

ALIYUN_ID, ALIYUN_SECRET = "LTAI5tTestKeyId", "aliyun-Secret-0123456789"
TENCENT_ID, TENCENT_KEY = "AKIDtestsecretid0123", "tencent-Key-0123456789"
TWILIO_SID, TWILIO_TOKEN = "AC" + "0123456789abcdef" * 2, "twilio-Token-0123456789"
GATEWAY_TOKEN = "gateway-Bearer-0123456789"
SECRETS = (ALIYUN_SECRET, TENCENT_KEY, TWILIO_TOKEN, GATEWAY_TOKEN)

MESSAGE = Message(
    delivery_id="d-77",
    subject="trunk-a down",
    text="trunk-a (telecom) has been down for 2 minutes.",
    language="en",
    phone="+8613800138000",
    data={"incident": 12, "target": "trunk-a", "health": "down"},
)


def sms(peer: Peer | None, provider: str, **fields: Any) -> SmsChannel:
    """An sms channel of ``provider`` pointed at the stand-in (loopback: allow_private)."""
    base: dict[str, Any] = {"id": "sms", "kind": "sms", "provider": provider, "timeout": "2s"}
    if peer is not None:
        base["allow_private"] = True
    where = peer.url() if peer is not None else "http://127.0.0.1:9/"
    if provider == "aliyun":
        base |= {
            "access_key_id": ALIYUN_ID,
            "access_key_secret": ALIYUN_SECRET,
            "sign_name": "外呼中心",
            "template": "SMS_123",
            "variables": {"target": "target", "state": "health"},
            "endpoint": where,
        }
    elif provider == "tencent":
        base |= {
            "secret_id": TENCENT_ID,
            "secret_key": TENCENT_KEY,
            "sdk_app_id": "1400000000",
            "sign_name": "外呼中心",
            "template_id": "123456",
            "parameters": ["target", "health"],
            "endpoint": where,
        }
    elif provider == "twilio":
        base |= {
            "account_sid": TWILIO_SID,
            "auth_token": TWILIO_TOKEN,
            "from": "+15005550006",
            "endpoint": where,
        }
    else:
        base |= {
            "url": where + "send",
            "secret_headers": {"Authorization": f"Bearer {GATEWAY_TOKEN}"},
            "success": {"status": [200], "json_path": "result.code", "equals": 0},
        }
    config = CHANNELS["sms"].model.model_validate(base | fields)
    channel = build_channel(config)
    assert isinstance(channel, SmsChannel)
    return channel


def peer_for(provider: str, secret: str | None = None) -> Any:
    keys = {
        "aliyun": (ALIYUN_ID, ALIYUN_SECRET),
        "tencent": (TENCENT_ID, TENCENT_KEY),
        "twilio": (TWILIO_SID, TWILIO_TOKEN),
        "http": ("", ""),
    }[provider]
    return sms_peer(provider, keys[0], secret or keys[1])


@pytest.fixture(params=["aliyun", "tencent", "twilio", "http"])
def any_peer(request: pytest.FixtureRequest) -> Iterator[Peer]:
    with peer_for(request.param) as peer:
        yield peer


def failure(channel: SmsChannel, message: Message = MESSAGE) -> DeliveryError:
    with pytest.raises(DeliveryError) as raised:
        channel.send(message)
    error = raised.value
    shown = f"{error.reason} {error!r} {channel!r} {channel.config!r}"
    for secret in SECRETS:
        assert secret not in shown
    return error


# --- the signatures, against the providers' own documented examples ---------------------


def test_the_aliyun_signature_matches_the_documented_sendsms_example() -> None:
    # Aliyun SMS, "HTTP协议及签名" (https://help.aliyun.com/document_detail/56189.html), the
    # SendSms example, also on https://www.alibabacloud.com/help/en/sms/signature-method:
    # AccessKeyId testId, AccessKeySecret testSecret, HMAC key "testSecret&".
    parameters = {
        "AccessKeyId": "testId",
        "Action": "SendSms",
        "Format": "XML",
        "OutId": "123",
        "PhoneNumbers": "15300000001",
        "RegionId": "cn-hangzhou",
        "SignName": "阿里云短信测试专用",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466",
        "SignatureVersion": "1.0",
        "TemplateCode": "SMS_71390007",
        "TemplateParam": '{"customer":"test"}',
        "Timestamp": "2017-07-12T02:42:19Z",
        "Version": "2017-05-25",
    }
    assert aliyun.string_to_sign("GET", parameters) == (
        "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123"
        "%26PhoneNumbers%3D15300000001%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598"
        "%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4%25BF%25A1%25E6%25B5%258B"
        "%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1"
        "%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0"
        "%26TemplateCode%3DSMS_71390007%26TemplateParam%3D%257B%2522customer%2522%253A"
        "%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z%26Version%3D2017-05-25"
    )
    assert aliyun.signature("testSecret", "GET", parameters) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="
    # A Signature already among the parameters is not part of what is signed.
    with_old = parameters | {"Signature": "old"}
    assert aliyun.signature("testSecret", "GET", with_old) == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_the_aliyun_signature_matches_the_documented_rpc_example() -> None:
    # Alibaba Cloud RPC "Signature method" pages (e.g.
    # https://www.alibabacloud.com/help/doc-detail/69009.html): DescribeRegions, testid/testsecret.
    parameters = {
        "Format": "XML",
        "AccessKeyId": "testid",
        "Action": "DescribeRegions",
        "SignatureMethod": "HMAC-SHA1",
        "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
        "SignatureVersion": "1.0",
        "Version": "2014-05-26",
        "Timestamp": "2016-02-23T12:46:24Z",
    }
    assert aliyun.signature("testsecret", "GET", parameters) == "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_the_tencent_signature_matches_the_documented_v3_example() -> None:
    # Tencent Cloud API 3.0 "Signature v3" (TC3-HMAC-SHA256), the DescribeInstances example
    # of the SMS API's copy: https://www.tencentcloud.com/document/product/382/40467 —
    # SecretKey Gu5t9xGARNpq86cd98joQYCN3EXAMPLE, timestamp 1551113065, service cvm.
    payload = (
        b'{"Limit": 1, "Filters": [{"Values": ["\\u672a\\u547d\\u540d"], "Name": "instance-name"}]}'
    )
    canonical = tencent.canonical_request(
        "application/json; charset=utf-8", "cvm.tencentcloudapi.com", payload
    )
    assert canonical == (
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:cvm.tencentcloudapi.com\n"
        "\ncontent-type;host\n35e9c5b0e3ae67532d3c9f17ead6c90222632e5b1ff7f6e89887f1398934f064"
    )
    to_sign = tencent.string_to_sign(1551113065, "cvm", canonical)
    assert to_sign == (
        "TC3-HMAC-SHA256\n1551113065\n2019-02-25/cvm/tc3_request\n"
        "5ffe6a04c0664d6b969fab9a13bdab201d63ee709638e2749d62a09ca18d7031"
    )
    expected = "72e494ea809ad7a8c8f7a4507b9bddcbaa8e581f516e8da2f66e2c5a96525168"
    assert tencent.signature("Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", 1551113065, "cvm", to_sign) == (
        expected
    )
    secret_id = "AKID**********************0123456789EXAMPLE"
    assert tencent.authorization(
        secret_id, "Gu5t9xGARNpq86cd98joQYCN3EXAMPLE", 1551113065, "cvm",
        "cvm.tencentcloudapi.com", payload,
    ) == (
        f"TC3-HMAC-SHA256 Credential={secret_id}/2019-02-25/cvm/tc3_request, "
        f"SignedHeaders=content-type;host, Signature={expected}"
    )  # fmt: skip


# --- accepted sends -----------------------------------------------------------------------


def test_the_sms_kind_is_registered_and_validates_into_the_providers_model() -> None:
    assert CHANNELS["sms"].model is SmsChannelConfig
    assert CHANNELS["sms"].implementation is SmsChannel
    assert isinstance(sms(None, "aliyun").config, AliyunSmsConfig)
    assert isinstance(sms(None, "tencent").config, TencentSmsConfig)
    assert isinstance(sms(None, "twilio").config, TwilioSmsConfig)
    assert isinstance(sms(None, "http").config, GatewaySmsConfig)


def test_aliyun_accepts_a_signed_sendsms_with_the_template_variables() -> None:
    with peer_for("aliyun") as peer:
        receipt = sms(peer, "aliyun").send(MESSAGE)
    assert receipt.provider_id == "900619746936498440^0" and receipt.answer == "OK: OK"
    [got] = peer.got
    assert got.verdict == "OK"
    form = got.form()
    assert form["PhoneNumbers"] == "13800138000"  # a mainland number without +86
    assert form["SignName"] == "外呼中心" and form["TemplateCode"] == "SMS_123"
    assert json.loads(form["TemplateParam"]) == {"target": "trunk-a", "state": "down"}
    assert form["OutId"] == "d-77" and form["Format"] == "JSON"


def test_tencent_accepts_a_signed_sendsms_with_the_ordered_parameters() -> None:
    with peer_for("tencent") as peer:
        receipt = sms(peer, "tencent").send(MESSAGE)
    assert receipt.provider_id == "2019:538884*" and receipt.answer == "Ok: send success"
    [got] = peer.got
    assert got.verdict == "Ok"
    assert got.json() == {
        "PhoneNumberSet": ["+8613800138000"],
        "SmsSdkAppId": "1400000000",
        "SignName": "外呼中心",
        "TemplateId": "123456",
        "TemplateParamSet": ["trunk-a", "down"],
        "SessionContext": "d-77",
    }
    assert got.headers["x-tc-region"] == "ap-guangzhou"


def test_twilio_accepts_a_basic_auth_form_post_of_subject_and_text() -> None:
    with peer_for("twilio") as peer:
        receipt = sms(peer, "twilio").send(MESSAGE)
    assert receipt.provider_id == "SM" + "0" * 32 and receipt.answer == "HTTP 201: queued"
    [got] = peer.got
    assert got.path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    assert got.form() == {
        "To": "+8613800138000",
        "From": "+15005550006",
        "Body": "trunk-a down: trunk-a (telecom) has been down for 2 minutes.",
    }


def test_a_gateway_gets_its_body_template_with_json_escaped_values() -> None:
    tricky = Message(
        delivery_id="d-78",
        subject='edge "core" {{ 7*7 }}',
        text="a & b",
        phone="+8613800138000",
        data={"target": 'x", "admin": true, "y": "'},
    )
    with peer_for("http") as peer:
        channel = sms(
            peer, "http", body='{"to": {{ phone }}, "t": {{ target }}, "msg": {{ message }}}'
        )
        receipt = channel.send(tricky)
    assert receipt.answer == 'HTTP 200: {"result": {"code": 0}}'
    [got] = peer.got
    assert got.headers["authorization"] == f"Bearer {GATEWAY_TOKEN}"
    assert got.headers["content-type"] == "application/json; charset=utf-8"
    # Quotes stay inside their strings and template syntax in the message is only text.
    assert got.json() == {
        "to": "+8613800138000",
        "t": 'x", "admin": true, "y": "',
        "msg": 'edge "core" {{ 7*7 }}: a & b',
    }


def test_a_form_gateway_gets_percent_encoded_values() -> None:
    with peer_for("http") as peer:
        channel = sms(
            peer,
            "http",
            content_type="application/x-www-form-urlencoded",
            body="to={{ phone }}&text={{ subject }}",
        )
        channel.send(dataclasses.replace(MESSAGE, subject="a&b=c d"))
    [got] = peer.got
    assert got.form() == {"to": "+8613800138000", "text": "a&b=c d"}


# --- truncation ---------------------------------------------------------------------------


def test_template_variables_are_cut_to_the_providers_limits() -> None:
    long = Message(
        delivery_id="d-79",
        subject="s",
        text="t",
        phone="+8613800138000",
        data={"target": "中继" * 30, "health": "down"},
    )
    with peer_for("aliyun") as ali, peer_for("tencent") as tc, peer_for("twilio") as tw:
        sms(ali, "aliyun").send(long)
        sms(tc, "tencent").send(long)
        sms(tw, "twilio", max_length=40).send(
            Message(delivery_id="d-80", subject="x" * 100, text="y", phone="+15005550001")
        )
    aliyun_target = json.loads(ali.got[0].form()["TemplateParam"])["target"]
    assert len(aliyun_target) == 35 and aliyun_target == "中继" * 17 + "…"
    tencent_target = tc.got[0].json()["TemplateParamSet"][0]
    assert len(tencent_target) == 12 and tencent_target.endswith("…")
    assert tw.got[0].form()["Body"] == "x" * 39 + "…"


# --- the providers' refusals --------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "code"),
    [
        ("aliyun", "SignatureDoesNotMatch"),
        ("tencent", "AuthFailure.SignatureFailure"),
        ("twilio", "error 20003"),
    ],
)
def test_a_wrong_secret_is_a_permanent_failure_with_the_providers_code(
    provider: str, code: str
) -> None:
    with peer_for(provider, secret="the-other-secret-9") as peer:
        error = failure(sms(peer, provider))
    assert error.permanent and code in error.reason
    assert error.error_class is ErrorClass.AUTH


@pytest.mark.parametrize(
    ("provider", "code", "wait"),
    [
        ("aliyun", "isv.BUSINESS_LIMIT_CONTROL", 60.0),
        ("tencent", "LimitExceeded.PhoneNumberThirtySecondLimit", 30.0),
        ("twilio", "error 20429", 3.0),
    ],
)
def test_throttling_is_transient_with_a_retry_after(provider: str, code: str, wait: float) -> None:
    with peer_for(provider) as peer:
        peer.mode = "throttle"
        error = failure(sms(peer, provider))
    assert not error.permanent and code in error.reason and error.retry_after == wait


@pytest.mark.parametrize(
    ("provider", "code"),
    [
        ("aliyun", "isv.SMS_TEMPLATE_ILLEGAL"),
        ("tencent", "FailedOperation.TemplateIncorrectOrUnapproved"),
        ("twilio", "error 21211"),
        ("http", "result.code is 7"),
    ],
)
def test_a_refused_message_with_a_success_status_is_a_permanent_failure(
    provider: str, code: str
) -> None:
    with peer_for(provider) as peer:
        peer.mode = "refuse"
        error = failure(sms(peer, provider))
    assert error.permanent and code in error.reason


@pytest.mark.parametrize("provider", ["aliyun", "tencent"])
def test_a_clock_far_off_gets_the_providers_expired_signature_answer(provider: str) -> None:
    with peer_for(provider) as peer:
        channel = sms(peer, provider)
        channel.sender.clock = lambda: time.time() - 3600
        error = failure(channel)
    assert error.permanent and "Expire" in error.reason
    assert peer.got[0].verdict in ("InvalidTimeStamp.Expired", "AuthFailure.SignatureExpire")


def test_garbage_is_a_transient_failure(any_peer: Peer) -> None:
    any_peer.mode = "garbage"
    error = failure(sms(any_peer, any_peer.provider))
    assert not error.permanent and error.error_class is ErrorClass.PROTOCOL
    assert "502 Bad Gateway" in error.reason


def test_a_5xx_is_a_transient_failure(any_peer: Peer) -> None:
    any_peer.mode = "error500"
    error = failure(sms(any_peer, any_peer.provider))
    assert not error.permanent and "503" in error.reason


def test_a_redirect_is_not_followed_and_fails_permanently(any_peer: Peer) -> None:
    any_peer.mode = "redirect"
    error = failure(sms(any_peer, any_peer.provider))
    assert error.permanent and "redirects are not followed" in error.reason
    assert len(any_peer.got) == 1  # the Location was not asked for


def test_a_hanging_provider_is_a_timeout_within_the_channels_timeout(any_peer: Peer) -> None:
    any_peer.mode = "hang"
    started = time.monotonic()
    error = failure(sms(any_peer, any_peer.provider, timeout="500ms"))
    assert time.monotonic() - started < 2.0
    assert not error.permanent and error.error_class is ErrorClass.TIMEOUT


# --- what is refused before any request ---------------------------------------------------


def test_a_message_without_a_phone_is_a_permanent_failure(any_peer: Peer) -> None:
    no_phone = Message(delivery_id="d-81", subject="s", text="t")
    error = failure(sms(any_peer, any_peer.provider), no_phone)
    assert error.permanent and "has no phone number" in error.reason
    bad = Message(delivery_id="d-82", subject="s", text="t", phone="13800138000")
    assert "not an E.164" in failure(sms(any_peer, any_peer.provider), bad).reason
    assert any_peer.got == []


def test_a_private_endpoint_is_refused_without_allow_private(any_peer: Peer) -> None:
    channel = sms(any_peer, any_peer.provider, allow_private=False)
    error = failure(channel)
    assert error.permanent and "loopback address" in error.reason
    assert any_peer.got == []


# --- the gateway's template sandbox -------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{% include '/etc/passwd' %}",
        "{{ open('/etc/passwd').read() }}",
        "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    ],
)
def test_an_unsafe_or_file_reading_body_template_is_a_config_error(body: str) -> None:
    with pytest.raises(ValidationError) as raised:
        sms(None, "http", body=body)
    assert "template refused" in str(raised.value)
    assert "root:" not in str(raised.value)


def test_gateway_secret_headers_are_masked_in_repr() -> None:
    channel = sms(None, "http")
    assert GATEWAY_TOKEN not in repr(channel.config) and GATEWAY_TOKEN not in repr(channel)
    assert "secret_headers='***'" in repr(channel.config)
