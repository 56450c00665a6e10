"""The ``webhook`` channel: the message as JSON, POSTed to a URL and signed with HMAC-SHA256.

```yaml
channels:
  - id: hook
    kind: webhook
    url: https://hooks.example.cn/dialwatch
    secret: "${file:/etc/dialwatch/secrets/hook}"
```

The request (see docs/channels/webhook.md for a receiver's side)::

    POST /dialwatch HTTP/1.1
    Content-Type: application/json; charset=utf-8
    X-Dialwatch-Delivery: <delivery id, the same on every attempt>
    X-Dialwatch-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes, keyed by secret>

    {"delivery_id": "...", "subject": "...", "text": "...", "language": "zh-CN", "data": {...}}

Sent through the one HTTP client (``core.net.http``) with no redirect
followed: a redirect is a failed delivery that names where it pointed (a
receiver that moved is fixed in the config, not chased). The URL's host is
resolved once and checked against private, loopback and link-local ranges
before any connection (``core.net.outbound``), and the request goes to the
address that was checked, so a name that resolves differently the second
time (DNS rebinding) gains nothing; ``allow_private: true`` lifts the check
for a receiver inside the network.

The answer decides: 2xx is delivered; 408 and 429 (with ``Retry-After``)
and 5xx are transient; any other 4xx and any 3xx are permanent.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from notify.channels.base import Message, Receipt
from notify.channels.exchange import Exchange, HttpChannelConfig, http_url

SIGNATURE_HEADER = "X-Dialwatch-Signature"
DELIVERY_HEADER = "X-Dialwatch-Delivery"


class WebhookChannelConfig(HttpChannelConfig):
    """A JSON POST to a URL of yours, signed so the receiver can tell it came from here."""

    kind: Literal["webhook"]
    url: str
    """``http://`` or ``https://`` URL to POST to (no user:password in it)."""
    secret: Annotated[str, Field(min_length=16)]
    """Key of the HMAC-SHA256 signature in ``X-Dialwatch-Signature`` (at least 16 characters;
    write it as ``${file:/path}``). Never logged."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value, "https://hooks.example.cn/x")


def body_of(message: Message) -> bytes:
    """The JSON body: the same bytes for every attempt of one delivery (so the same signature)."""
    document = {
        "delivery_id": message.delivery_id,
        "subject": message.subject,
        "text": message.text,
        "language": message.language,
        "data": dict(message.data),
    }
    return json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")


def signature(secret: str, body: bytes) -> str:
    """The ``X-Dialwatch-Signature`` value: ``sha256=`` and the hex HMAC of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class WebhookChannel:
    """POSTs each message to the configured URL (a fresh connection each time)."""

    def __init__(self, config: WebhookChannelConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        parts = urlsplit(self.config.url)
        return f"WebhookChannel({self.config.id!r}, {parts.scheme}://{parts.netloc}{parts.path})"

    def send(self, message: Message) -> Receipt:
        config = self.config
        exchange = Exchange.for_config(config, config.url, "webhook")
        body = body_of(message)
        answer = exchange.send(
            "POST",
            {
                "Content-Type": "application/json; charset=utf-8",
                DELIVERY_HEADER: message.delivery_id,
                SIGNATURE_HEADER: signature(config.secret, body),
            },
            body,
        )
        if answer.ok:
            return Receipt(answer.headers.get("x-request-id"), answer.said)
        if 300 <= answer.status < 400:
            raise exchange.redirect(answer, key="url")
        raise exchange.refused(answer)
