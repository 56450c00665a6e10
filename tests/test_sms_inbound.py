"""Customers' replies to our texts, posted by the provider to ``/hooks/sms/<channel>``:
signed the way Twilio signs (``X-Twilio-Signature``, computed here from Twilio's
published algorithm over our configured URL) or a gateway's HMAC; STOP / 退订 from a
subscribed number unsubscribes it, anything unsigned is refused before it is read."""

from __future__ import annotations

import hashlib
import hmac
import json
import urllib.parse
from pathlib import Path

import pytest

from notify import subscribers
from notify.channels.sms.inbound import gateway_signature, twilio_signature
from tests.peers.sms import sms_peer
from tests.test_channel_sms import TWILIO_SID, TWILIO_TOKEN
from tests.test_status_subscribe_sms import NUMBER, T0, Site, make_site

SECRET = "gateway-inbound-secret-0123"
BASE = "https://status.example.cn"


@pytest.fixture
def site(tmp_path: Path):  # noqa: ANN201
    gateway = {"id": "gw", "kind": "sms", "provider": "http", "url": "https://gw.example.cn/send",
               "inbound_secret": SECRET}  # fmt: skip
    plain = {
        "id": "gw-plain",
        "kind": "sms",
        "provider": "http",
        "url": "https://gw.example.cn/send",
    }
    with sms_peer("twilio", TWILIO_SID, TWILIO_TOKEN) as peer:
        s = make_site(tmp_path, peer, (gateway, plain))
        yield s


def subscribed(site: Site) -> int:
    keys = site.notes.subscriber_keys
    asked = subscribers.subscribe(site.notes.repo, keys, "sms", NUMBER, ["outbound"], "zh-CN",
                                  known=["outbound"], at=T0)  # fmt: skip
    subscribers.confirm(site.notes.repo, asked.subscriber.id, at=T0)
    return asked.subscriber.id


def state(site: Site, subscriber_id: int) -> str:
    with site.notes.repo.reading() as conn:
        return subscribers.get(conn, subscriber_id).state


def twilio_post(
    site: Site, params: dict[str, str], signature: str | None = None, path: str = "/hooks/sms/text"
):  # noqa: ANN201
    sig = (
        signature if signature is not None else twilio_signature(TWILIO_TOKEN, BASE + path, params)
    )
    return site.world.anonymous().post(
        path, data=urllib.parse.urlencode(params),
        headers={"X-Twilio-Signature": sig, "Content-Type": "application/x-www-form-urlencoded"},
    )  # fmt: skip


def test_twilio_signature_matches_twilios_published_example() -> None:
    # Twilio's docs ("Validating requests"): this URL, these parameters and this token
    # give this signature.
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234",
              "From": "+14158675309", "To": "+18005551212"}  # fmt: skip
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_a_signed_stop_from_twilio_unsubscribes_the_number(site: Site) -> None:
    sid = subscribed(site)
    params = {"From": NUMBER, "To": "+15005550006", "Body": " STOP ", "MessageSid": "SM" + "1" * 32}
    r = twilio_post(site, params)
    assert r.status_code == 200 and r.mimetype == "text/xml" and b"<Response></Response>" in r.data
    assert state(site, sid) == "unsubscribed"


def test_an_unsigned_or_forged_twilio_post_changes_nothing(site: Site) -> None:
    sid = subscribed(site)
    params = {"From": NUMBER, "Body": "STOP"}
    assert twilio_post(site, params, signature="").status_code == 403
    forged = twilio_signature("not-the-token", BASE + "/hooks/sms/text", params)
    assert twilio_post(site, params, signature=forged).status_code == 403
    # Signed for another host (what a request with a forged Host header would need).
    other = twilio_signature(TWILIO_TOKEN, "https://evil.example/hooks/sms/text", params)
    r = twilio_post(site, params, signature=other)
    assert r.status_code == 403 and "X-Twilio-Signature" in r.get_json()["error"]
    assert state(site, sid) == "active"


def test_a_reply_that_is_not_a_stop_word_is_answered_and_ignored(site: Site) -> None:
    sid = subscribed(site)
    assert twilio_post(site, {"From": NUMBER, "Body": "when is it back?"}).status_code == 200
    assert state(site, sid) == "active"


def test_a_gateway_reply_signed_with_its_secret_unsubscribes_with_tuiding(site: Site) -> None:
    sid = subscribed(site)
    body = json.dumps({"from": "13800138000", "text": "退订"}, ensure_ascii=False).encode()
    client = site.world.anonymous()
    bad = client.post("/hooks/sms/gw", data=body, content_type="application/json",
                      headers={"X-Dialwatch-Signature": "sha256=" + "0" * 64})  # fmt: skip
    assert bad.status_code == 403 and state(site, sid) == "active"
    good = client.post("/hooks/sms/gw", data=body, content_type="application/json",
                       headers={"X-Dialwatch-Signature": gateway_signature(SECRET, body)})  # fmt: skip
    assert good.status_code == 200 and good.get_json() == {"ok": True, "stopped": True}
    assert state(site, sid) == "unsubscribed"
    assert (
        gateway_signature(SECRET, body)
        == "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    )


def test_garbled_gateway_bodies_are_4xx_with_a_reason(site: Site) -> None:
    client = site.world.anonymous()
    for body in (b"not json", b"[1, 2]", b'{"text": "STOP"}'):
        r = client.post("/hooks/sms/gw", data=body, content_type="application/json",
                        headers={"X-Dialwatch-Signature": gateway_signature(SECRET, body)})  # fmt: skip
        assert r.status_code == 400 and r.get_json()["error"]


def test_channels_that_take_no_replies_are_404(site: Site) -> None:
    client = site.world.anonymous()
    body = b'{"from": "+8613800138000", "text": "STOP"}'
    headers = {"X-Dialwatch-Signature": gateway_signature(SECRET, body)}
    assert client.post("/hooks/sms/gw-plain", data=body, headers=headers).status_code == 404
    assert client.post("/hooks/sms/nope", data=body, headers=headers).status_code == 404
