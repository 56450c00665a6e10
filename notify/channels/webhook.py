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
import ssl
import time
from typing import Annotated, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator

from core import __version__
from core.config import Bool, Timeout
from core.net.address import parse_nameserver
from core.net.outbound import OutboundRefused, checked_address, pinned_pool, pinned_url
from core.net.tls import check_ca_file
from core.observation import ErrorClass
from notify.channels.base import ChannelConfig, DeliveryError, Message, Receipt, shortened

SIGNATURE_HEADER = "X-Dialwatch-Signature"
DELIVERY_HEADER = "X-Dialwatch-Delivery"
MAX_ANSWER_BYTES = 64 * 1024
"""Read at most this much of an answer: the receipt keeps a line of it."""
TRANSIENT_4XX = frozenset({408, 429})


class WebhookChannelConfig(ChannelConfig):
    """A JSON POST to a URL of yours, signed so the receiver can tell it came from here."""

    kind: Literal["webhook"]
    url: str
    """``http://`` or ``https://`` URL to POST to (no user:password in it)."""
    secret: Annotated[str, Field(min_length=16)]
    """Key of the HMAC-SHA256 signature in ``X-Dialwatch-Signature`` (at least 16 characters;
    write it as ``${file:/path}``). Never logged."""
    timeout: Timeout = 10.0
    """Longest one delivery may take: resolving, connecting and the answer."""
    verify_tls: Bool = True
    """Check the receiver's certificate on ``https://``; turn off only for a lab receiver."""
    ca_file: str | None = None
    """PEM file of the CA that signed the receiver's certificate (default: the system's)."""
    allow_private: Bool = False
    """Allow a receiver at a private, loopback or link-local address (10/8, 172.16/12,
    192.168/16, 127/8, 169.254/16, ::1, fc00::/7, fe80::/10); off, such a URL is refused
    before any connection."""
    nameservers: list[str] = Field(default_factory=list)
    """``ip`` or ``ip:port`` of DNS servers to resolve the URL's host with; default: the system's."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL, e.g. https://hooks.example.cn/x")
        if "@" in parts.netloc:
            raise ValueError("must not hold a user or password; the secret signs each request")
        try:
            parts.port  # noqa: B018 - raises for a port that is not a number
        except ValueError:
            raise ValueError("port must be a number from 1 to 65535") from None
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        return check_ca_file(value)

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, value: list[str]) -> list[str]:
        for server in value:
            parse_nameserver(server)
        return value


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
        # Deferred: urllib3 loads only in a process that sends webhooks.
        from core.net.http import HttpFailure, request, shown_url

        config = self.config
        deadline = time.monotonic() + config.timeout
        parts = urlsplit(config.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = checked_address(
                parts.hostname or "",
                port,
                deadline=deadline,
                allow_private=config.allow_private,
                nameservers=config.nameservers,
            )
        except OutboundRefused as exc:
            raise DeliveryError(
                f"webhook {shown_url(config.url)}: {exc.reason}",
                permanent=exc.permanent,
                error_class=exc.error_class,
            ) from None
        pinned = pinned_url(config.url, address)
        body = body_of(message)
        headers = {
            "Host": pinned.host_header,
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": f"Dialwatch/{__version__}",
            DELIVERY_HEADER: message.delivery_id,
            SIGNATURE_HEADER: signature(config.secret, body),
        }
        pool = pinned_pool(pinned, config.verify_tls, config.ca_file)
        try:
            answer = request(
                pool,
                "POST",
                pinned.url,
                deadline=deadline,
                max_bytes=MAX_ANSWER_BYTES,
                headers=headers,
                body=body,
                redirects="none",
            )
        except HttpFailure as exc:
            # The client names the address it connected to; the operator wrote the name.
            reason = exc.detail.replace(shown_url(pinned.url), shown_url(config.url))
            # A certificate that does not verify will not verify on the next try either.
            permanent = exc.error_class is ErrorClass.TLS and _certificate_refused(exc.cause)
            raise DeliveryError(
                f"webhook {reason}", permanent=permanent, error_class=exc.error_class
            ) from None
        finally:
            pool.clear()
        text = shortened(answer.body.decode("utf-8", "replace"), 200)
        said = f"HTTP {answer.status} {answer.reason}".rstrip() + (f": {text}" if text else "")
        where = shown_url(config.url)
        if 200 <= answer.status < 300:
            return Receipt(answer.headers.get("x-request-id"), said)
        if 300 <= answer.status < 400:
            location = answer.headers.get("location", "")
            raise DeliveryError(
                f"webhook {where} answered {answer.status} redirecting to "
                f"{shown_url(urljoin(config.url, location)) if location else 'nowhere'}; "
                "redirects are not "
                "followed (put the final address in url)",
                permanent=True,
                error_class=ErrorClass.RESPONSE,
            )
        transient = answer.status >= 500 or answer.status in TRANSIENT_4XX
        raise DeliveryError(
            f"webhook {where} answered {said}",
            permanent=not transient,
            error_class=ErrorClass.RESPONSE,
            retry_after=_retry_after(answer.headers.get("retry-after")),
        )


def _certificate_refused(cause: BaseException | None) -> bool:
    inner = cause.args[0] if cause is not None and cause.args else cause
    return (
        isinstance(inner, ssl.SSLCertVerificationError)
        or type(inner).__name__ == "CertificateError"  # urllib3's own name check
        or "CERTIFICATE_VERIFY_FAILED" in str(inner)
    )


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by receivers we know)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())
