"""Replies customers text back (STOP, 退订), as each provider posts them to us: checked first.

A provider that forwards inbound messages posts them to ``/hooks/sms/<channel
id>`` (``web.sms_inbound``); anyone can post there, so each request is
authenticated the way its provider signs it, before anything is read:

- ``twilio``: form-encoded ``From`` / ``Body``, signed in ``X-Twilio-Signature``:
  base64 of HMAC-SHA1, keyed with the account's auth token, over the URL Twilio
  called followed by every POST parameter's name and value, sorted by name
  (Twilio's "Validating requests" page). The URL is ours as configured
  (``web.base_url``), never the request's ``Host``.
- ``http`` (your gateway): a JSON body ``{"from": "+86…", "text": "退订"}`` signed
  in ``X-Dialwatch-Signature: sha256=<hex HMAC-SHA256 of the body>`` with the
  channel's ``inbound_secret``.

Aliyun and Tencent Cloud deliver replies through their own queues / consoles
(Aliyun MNS ``SmsUp`` messages, Tencent's 上行短信 callback); relay them
through a gateway of yours in the ``http`` shape above.

Pure: ``read_reply`` takes what the request carried and returns the sender's
number and the text, or raises ``InboundRefused`` with the status to answer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


class InboundRefused(ValueError):
    """Not a reply we accept; ``status`` is what to answer (403 unsigned, 400 garbled,
    404 a channel that takes no replies)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Reply:
    number: str
    text: str


def twilio_signature(auth_token: str, url: str, params: Mapping[str, str]) -> str:
    signed = url + "".join(f"{k}{params[k]}" for k in sorted(params))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def gateway_signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def read_reply(
    config: Any, url: str, headers: Mapping[str, str], form: Mapping[str, str], body: bytes
) -> Reply:
    """The reply in a provider's request to ``url``, once its signature holds."""
    provider = getattr(config, "provider", None)
    if provider == "twilio":
        given = headers.get("X-Twilio-Signature", "")
        expected = twilio_signature(config.auth_token, url, form)
        if not given or not hmac.compare_digest(given, expected):
            raise InboundRefused(403, "the X-Twilio-Signature does not match")
        number, text = form.get("From", ""), form.get("Body", "")
    elif provider == "http" and getattr(config, "inbound_secret", None):
        given = headers.get("X-Dialwatch-Signature", "")
        if not given or not hmac.compare_digest(
            given, gateway_signature(config.inbound_secret, body)
        ):
            raise InboundRefused(403, "the X-Dialwatch-Signature does not match")
        try:
            data = json.loads(body)
        except ValueError:
            raise InboundRefused(400, "the body is not JSON") from None
        if not isinstance(data, dict):
            raise InboundRefused(
                400, 'the body is not a JSON object like {"from": ..., "text": ...}'
            )
        number, text = data.get("from", ""), data.get("text", "")
    else:
        raise InboundRefused(404, "this channel takes no replies")
    if not isinstance(number, str) or not isinstance(text, str) or not number:
        raise InboundRefused(400, "a reply needs the sender's number and its text")
    return Reply(number, text[:500])
