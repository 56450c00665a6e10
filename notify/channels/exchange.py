"""One guarded HTTP exchange for every channel that talks to an HTTP API.

Webhooks, SMS providers, chat robots, web push services and the heartbeat
all send one request to a host the config (or a browser) named, and all
need the same guard around it:

- the host is resolved once and checked against private, loopback and
  link-local ranges (``core.net.outbound``) unless ``allow_private`` is on,
  and the request goes to the checked address with the name kept for
  ``Host`` and TLS, so a name that resolves differently the second time
  (DNS rebinding) gains nothing;
- no redirect is followed (a receiver that moved is fixed in the config);
- the whole attempt is bounded by ``timeout``, an answer by ``max_bytes``;
- a transport failure becomes a transient ``DeliveryError`` (a certificate
  that does not verify: permanent), named with the URL as the operator
  wrote it, never with the address connected to or the query (it can hold
  a key).

What the service *said* is each channel's to read; ``Answer`` carries it,
and ``refused``/``redirect``/``garbage`` word the usual verdicts.
"""

from __future__ import annotations

import json
import ssl
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator

from core import __version__
from core.config import Bool, Timeout
from core.net.address import parse_nameserver
from core.net.outbound import OutboundRefused, Pinned, checked_address, pinned_pool, pinned_url
from core.net.tls import check_ca_file
from core.observation import ErrorClass
from notify.channels.base import ChannelConfig, DeliveryError, shortened

MAX_ANSWER_BYTES = 64 * 1024
"""Read at most this much of an answer: services answer with a small JSON document."""
TRANSIENT_4XX = frozenset({408, 429})
"""The 4xx answers that say "try again later"; every other 4xx is permanent."""


class HttpChannelConfig(ChannelConfig):
    """What every channel that sends to an HTTP API has: bounds and the outbound guard."""

    timeout: Timeout = 10.0
    """Longest one delivery may take: resolving the host, connecting and the answer."""
    verify_tls: Bool = True
    """Check the host's certificate on ``https://``; turn off only for a lab receiver."""
    ca_file: str | None = None
    """PEM file of the CA that signed the host's certificate (default: the system's)."""
    allow_private: Bool = False
    """Allow a host at a private, loopback or link-local address (10/8, 172.16/12,
    192.168/16, 127/8, 169.254/16, ::1, fc00::/7, fe80::/10: a receiver inside the
    network); off, such a URL is refused before any connection."""
    nameservers: list[str] = Field(default_factory=list)
    """``ip`` or ``ip:port`` of DNS servers to resolve the host with; default: the system's."""

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


def http_url(value: str, example: str = "https://hooks.example.cn/dialwatch") -> str:
    """Validate a URL a channel sends to: http(s), a host, no user:password, a numeric port."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL, e.g. {example}")
    if "@" in parts.netloc:
        raise ValueError("must not hold a user or password (put credentials in their own keys)")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ValueError("port must be a number from 1 to 65535") from None
    return value


def shown_url(url: str) -> str:
    """scheme://host[:port]/path: how a reason names a URL (no query: it can hold a key)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def shown_origin(url: str) -> str:
    """scheme://host[:port]: for URLs whose path is itself a secret (a robot's token)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


@dataclass(frozen=True)
class Answer:
    """A service's HTTP answer: status, headers (lower-case names), body text and,
    when it parsed, its JSON."""

    status: int
    reason: str
    headers: Mapping[str, str]
    text: str
    document: Any | None

    @property
    def said(self) -> str:
        """``HTTP 200 OK: {"errcode":0}``: the answer in one short line, for receipts and reasons."""
        line = shortened(self.text, 200)
        return f"HTTP {self.status} {self.reason}".rstrip() + (f": {line}" if line else "")

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def retry_after(self) -> float | None:
        return retry_after(self.headers.get("retry-after"))


class Exchange:
    """One request to ``url``, guarded as the module docstring says.

    ``label`` starts every reason (``webhook``, ``SMS (aliyun)``, ``DingTalk``);
    ``shown`` is how reasons name the URL (default: without its query).
    """

    def __init__(
        self,
        url: str,
        *,
        label: str,
        timeout: float,
        verify_tls: bool = True,
        ca_file: str | None = None,
        allow_private: bool = False,
        nameservers: Sequence[str] = (),
        shown: str | None = None,
        deadline: float | None = None,
    ) -> None:
        self.url = url
        self.label = label
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self.allow_private = allow_private
        self.nameservers = list(nameservers)
        self.shown = shown if shown is not None else shown_url(url)
        # ``deadline`` (monotonic) when several exchanges share one bound (web push's browsers).
        self.deadline = deadline if deadline is not None else time.monotonic() + timeout
        self.pinned: Pinned | None = None

    @classmethod
    def for_config(
        cls, config: HttpChannelConfig, url: str, label: str, shown: str | None = None
    ) -> Exchange:
        return cls(
            url,
            label=label,
            timeout=config.timeout,
            verify_tls=config.verify_tls,
            ca_file=config.ca_file,
            allow_private=config.allow_private,
            nameservers=config.nameservers,
            shown=shown,
        )

    @property
    def where(self) -> str:
        return f"{self.label} {self.shown}"

    def pin(self) -> Pinned:
        """Resolve and check the host (once); what the request must name in ``Host``."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            address = checked_address(
                parts.hostname or "",
                port,
                deadline=self.deadline,
                allow_private=self.allow_private,
                nameservers=self.nameservers,
            )
        except OutboundRefused as exc:
            raise DeliveryError(
                f"{self.where}: {exc.reason}", permanent=exc.permanent, error_class=exc.error_class
            ) from None
        self.pinned = pinned_url(self.url, address)
        return self.pinned

    def send(
        self,
        method: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        max_bytes: int = MAX_ANSWER_BYTES,
    ) -> Answer:
        """Send the request; the answer whatever its status, or a ``DeliveryError``."""
        # Deferred: urllib3 loads only in a process that sends.
        from core.net.http import HttpFailure, request

        pinned = self.pinned or self.pin()
        pool = pinned_pool(pinned, self.verify_tls, self.ca_file)
        try:
            answer = request(
                pool,
                method,
                pinned.url,
                deadline=self.deadline,
                max_bytes=max_bytes,
                headers={
                    "Host": pinned.host_header,
                    "User-Agent": f"Dialwatch/{__version__}",
                    **(headers or {}),
                },
                body=body,
                redirects="none",
            )
        except HttpFailure as exc:
            # The client names the address it connected to; the operator wrote the name.
            reason = exc.detail.replace(shown_url(pinned.url), self.shown)
            # A certificate that does not verify will not verify on the next try either.
            permanent = exc.error_class is ErrorClass.TLS and certificate_refused(exc.cause)
            raise DeliveryError(
                f"{self.label} {reason}", permanent=permanent, error_class=exc.error_class
            ) from None
        finally:
            pool.clear()
        text = answer.body.decode("utf-8", "replace")
        try:
            document = json.loads(text) if text.strip() else None
        except ValueError:
            document = None
        return Answer(answer.status, answer.reason, answer.headers, text, document)

    def redirect(self, answer: Answer, key: str = "the config") -> DeliveryError:
        """A 3xx: permanent, naming where it pointed (with no query)."""
        location = answer.headers.get("location", "")
        pointed = shown_url(urljoin(self.url, location)) if location else "nowhere"
        return DeliveryError(
            f"{self.where} answered {answer.status} redirecting to {pointed}; redirects are "
            f"not followed (put the final address in {key})",
            permanent=True,
            error_class=ErrorClass.RESPONSE,
        )

    def refused(self, answer: Answer) -> DeliveryError:
        """A non-2xx answer judged by its status: 408, 429 and 5xx transient, the rest permanent."""
        transient = answer.status >= 500 or answer.status in TRANSIENT_4XX
        return DeliveryError(
            f"{self.where} answered {answer.said}",
            permanent=not transient,
            error_class=ErrorClass.RESPONSE,
            retry_after=answer.retry_after,
        )

    def garbage(self, answer: Answer, what: str = "the provider's JSON") -> DeliveryError:
        """An answer that is not the service's JSON: transient (a proxy's error page, a
        half-deployed gateway); a 4xx other than 408/429 is permanent."""
        transient = answer.status >= 500 or answer.status in TRANSIENT_4XX or answer.status < 400
        return DeliveryError(
            f"{self.where} answered HTTP {answer.status} that is not {what}: "
            f"{shortened(answer.text, 120) or '(empty)'}",
            permanent=not transient,
            error_class=ErrorClass.PROTOCOL,
            retry_after=answer.retry_after,
        )


def certificate_refused(cause: BaseException | None) -> bool:
    """Whether a TLS failure is a certificate that did not verify (permanent)."""
    inner = cause.args[0] if cause is not None and cause.args else cause
    return (
        isinstance(inner, ssl.SSLCertVerificationError)
        or type(inner).__name__ == "CertificateError"  # urllib3's own name check
        or "CERTIFICATE_VERIFY_FAILED" in str(inner)
    )


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (the HTTP-date form is not used by the services we know)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())
