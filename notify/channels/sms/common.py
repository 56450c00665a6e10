"""What every SMS provider module shares: the config fields, the facts a message offers,
truncation, and one guarded HTTP exchange.

The exchange is the webhook channel's, for a provider's API host: the host is
resolved once and checked against private ranges (``core.net.outbound``) unless
``allow_private`` is on, the request goes to the checked address with the
name kept for ``Host`` and TLS, no redirect is followed, the whole attempt is
bounded by ``timeout`` and an answer by ``MAX_ANSWER_BYTES``. A transport
failure becomes a transient ``DeliveryError`` (a certificate that does not
verify: permanent); what the provider *said* is each provider module's to read.
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import field_validator

from core.config import Bool, Timeout
from core.net.outbound import OutboundRefused, Pinned, checked_address, pinned_pool, pinned_url
from core.net.tls import check_ca_file
from core.observation import ErrorClass
from notify.channels.base import ChannelConfig, DeliveryError, Message

MAX_ANSWER_BYTES = 64 * 1024
"""Read at most this much of a provider's answer: it is a small JSON document."""
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MISSING_FACT = "-"
"""Sent for a template variable whose fact the message does not have (providers refuse
an empty variable, and a dash reads as "not known" on a phone)."""


class SmsConfigBase(ChannelConfig):
    """What every ``kind: sms`` entry has, whatever its provider."""

    kind: Literal["sms"]
    timeout: Timeout = 10.0
    """Longest one message may take: resolving the API host, connecting and the answer."""
    verify_tls: Bool = True
    """Check the API host's certificate on ``https://``; turn off only for a lab gateway."""
    ca_file: str | None = None
    """PEM file of the CA that signed the API host's certificate (default: the system's)."""
    allow_private: Bool = False
    """Allow an API host at a private, loopback or link-local address (a gateway inside
    the network); off, such an endpoint is refused before any connection."""

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        return check_ca_file(value)


def http_url(value: str) -> str:
    """Validate an endpoint or gateway URL: http(s), a host, no user:password, a numeric port."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL, e.g. https://sms.example.cn/send")
    if "@" in parts.netloc:
        raise ValueError("must not hold a user or password (put credentials in their own keys)")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    return value


def check_fact_names(value: Mapping[str, str]) -> Mapping[str, str]:
    for name, fact in value.items():
        if not name or not fact:
            raise ValueError("template variable names and fact names must not be empty")
    return value


def recipient(message: Message, provider: str) -> str:
    """The message's phone number (E.164); a permanent failure when it has none or a bad one."""
    phone = (message.phone or "").strip()
    if not phone:
        raise DeliveryError(f"SMS ({provider}): the recipient has no phone number", permanent=True)
    if not E164.fullmatch(phone):
        raise DeliveryError(
            f"SMS ({provider}): {phone!r} is not an E.164 phone number (+8613800138000)",
            permanent=True,
        )
    return phone


def facts(message: Message) -> dict[str, str]:
    """What a template variable may name: ``message.data``, plus subject, text and delivery_id."""
    found = {
        key: (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        for key, value in message.data.items()
    }
    found.update(subject=message.subject, text=message.text, delivery_id=message.delivery_id)
    return found


def truncated(value: str, limit: int) -> str:
    """``value`` in at most ``limit`` characters (code points, as the providers count),
    ending in ``…`` when it was cut."""
    line = " ".join(value.split())  # a variable is one line; providers refuse line breaks
    return line if len(line) <= limit else line[: limit - 1] + "…"


def template_values(
    variables: Mapping[str, str], found: Mapping[str, str], limit: int
) -> dict[str, str]:
    """Each template variable's value: its fact, truncated to ``limit``."""
    return {
        name: truncated(found.get(fact) or MISSING_FACT, limit) for name, fact in variables.items()
    }


def free_text(message: Message, limit: int) -> str:
    """Subject and text as one short message, at most ``limit`` characters."""
    body = message.subject.strip()
    text = " ".join(message.text.split())
    if text and text != body:
        body = f"{body}: {text}" if body else text
    return body if len(body) <= limit else body[: limit - 1] + "…"


@dataclass(frozen=True)
class Answer:
    """A provider's HTTP answer: status, headers, body text and, when it parsed, its JSON."""

    status: int
    headers: Mapping[str, str]
    text: str
    document: Any | None


class Exchange:
    """One request to a provider, guarded as the module docstring says."""

    def __init__(self, config: SmsConfigBase, url: str, provider: str) -> None:
        self.config = config
        self.url = url
        self.provider = provider
        self.deadline = time.monotonic() + config.timeout
        self.pinned: Pinned | None = None

    @property
    def where(self) -> str:
        from core.net.http import shown_url

        return f"SMS ({self.provider}) {shown_url(self.url)}"

    def pin(self) -> Pinned:
        """Resolve and check the host (once); what the request must name in ``Host``."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = checked_address(
                parts.hostname or "",
                port,
                deadline=self.deadline,
                allow_private=self.config.allow_private,
            )
        except OutboundRefused as exc:
            raise DeliveryError(
                f"{self.where}: {exc.reason}", permanent=exc.permanent, error_class=exc.error_class
            ) from None
        self.pinned = pinned_url(self.url, address)
        return self.pinned

    def send(self, method: str, headers: Mapping[str, str], body: bytes | None) -> Answer:
        from core.net.http import HttpFailure, request, shown_url

        pinned = self.pinned or self.pin()
        pool = pinned_pool(pinned, self.config.verify_tls, self.config.ca_file)
        try:
            answer = request(
                pool,
                method,
                pinned.url,
                deadline=self.deadline,
                max_bytes=MAX_ANSWER_BYTES,
                headers={"Host": pinned.host_header, **headers},
                body=body,
                redirects="none",
            )
        except HttpFailure as exc:
            reason = exc.detail.replace(shown_url(pinned.url), shown_url(self.url))
            permanent = exc.error_class is ErrorClass.TLS and _certificate_refused(exc.cause)
            raise DeliveryError(
                f"SMS ({self.provider}) {reason}", permanent=permanent, error_class=exc.error_class
            ) from None
        finally:
            pool.clear()
        text = answer.body.decode("utf-8", "replace")
        try:
            document = json.loads(text) if text.strip() else None
        except ValueError:
            document = None
        return Answer(answer.status, answer.headers, text, document)

    def redirect(self, answer: Answer) -> DeliveryError:
        return DeliveryError(
            f"{self.where} answered HTTP {answer.status} redirecting elsewhere; redirects are "
            "not followed (put the final address in the config)",
            permanent=True,
            error_class=ErrorClass.RESPONSE,
        )

    def garbage(self, answer: Answer) -> DeliveryError:
        """An answer that is not the provider's JSON: transient (a proxy's error page, a
        half-deployed gateway); a 4xx other than 408/429 is permanent."""
        from notify.channels.base import shortened

        transient = answer.status >= 500 or answer.status in (408, 429) or answer.status < 400
        return DeliveryError(
            f"{self.where} answered HTTP {answer.status} that is not the provider's JSON: "
            f"{shortened(answer.text, 120) or '(empty)'}",
            permanent=not transient,
            error_class=ErrorClass.PROTOCOL,
            retry_after=retry_after(answer.headers.get("retry-after")),
        )


def _certificate_refused(cause: BaseException | None) -> bool:
    inner = cause.args[0] if cause is not None and cause.args else cause
    return (
        isinstance(inner, ssl.SSLCertVerificationError)
        or type(inner).__name__ == "CertificateError"
        or "CERTIFICATE_VERIFY_FAILED" in str(inner)
    )


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by the providers we know)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())
