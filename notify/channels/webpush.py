"""The ``webpush`` channel: a browser notification on every device a console user subscribed.

```yaml
channels:
  - id: push
    kind: webpush
```

A console user presses Subscribe on their account page; the browser's
subscription (the push service's endpoint URL and the browser's keys) is
kept in the state DB (``monitor.staff.push_subscriptions``). A message for
that user (``Message.user``) goes to each of their subscriptions: the JSON
``{"title", "body", "url", "delivery_id"}`` encrypted for that browser
(RFC 8291, ``aes128gcm``, by ``pywebpush``), with a VAPID JWT (RFC 8292)
signed by the appliance's key (``notify.vapid``), POSTed to the endpoint
through the one HTTP client, no redirect followed. The console's service
worker shows it and opens ``url`` on a click.

The endpoint's host must be on ``allowed_hosts`` (the push services of the
browsers people use), checked before anything is resolved: a subscription
is written by a browser, i.e. by whoever holds a console login, and must
not turn the appliance into a way to reach the call center's internal
services. A name on the list is then resolved once and refused if it
points at a private, loopback or link-local address (``core.net.outbound``);
an IP address on the list (a lab receiver) is taken as it is.

One send succeeds when at least one push service accepted the message
(201). A 404 or 410 means the browser dropped the subscription: the row is
deleted. 429 (with ``Retry-After``), 408 and 5xx are transient; other
answers are permanent. No subscription at all is a permanent failure, so
the person's next contact method is tried at once.

A status page subscriber is not a console user: their message carries their one
browser's subscription (``Message.push_subscription``, opened from the sealed
subscriber row) and goes there, under the same allow-list; a 404/410 fails the
delivery permanently, which retires the subscriber (``notify.service``).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from core.config import Bool, Timeout
from core.observation import ErrorClass
from notify.channels.base import (
    ChannelConfig,
    ChannelContext,
    DeliveryError,
    Message,
    Receipt,
    shortened,
)
from notify.channels.exchange import TRANSIENT_4XX, Exchange

PUSH_SERVICE_HOSTS: tuple[str, ...] = (
    "fcm.googleapis.com",  # Chrome, Edge on Android, Opera, Samsung Internet
    "updates.push.services.mozilla.com",  # Firefox
    "*.push.services.mozilla.com",
    "*.notify.windows.com",  # Edge on Windows
    "web.push.apple.com",  # Safari (macOS 13+, iOS 16.4+ home-screen apps)
    "*.push.apple.com",
)
"""The push services of the browsers in use (2026); ``*.`` matches any subdomain."""

MAX_PAYLOAD = 3993
"""Bytes of JSON a push may carry: push services take at most 4096 bytes of encrypted
body, and ``aes128gcm`` adds 103 (86 header, 16 tag, 1 padding delimiter)."""
MAX_TITLE = 200
MAX_URL = 1000
MAX_ANSWER_BYTES = 16 * 1024
GONE = frozenset({404, 410})
JWT_LIFETIME = 12 * 3600
"""Seconds a VAPID JWT is valid (push services refuse more than 24 h)."""


def _host_pattern(value: str) -> str:
    text = value.strip().lower().rstrip(".")
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]  # an IPv6 address is written bare here, as urlsplit gives it
    bare = text[2:] if text.startswith("*.") else text
    if not bare or "/" in bare or (":" in bare and not _is_ip(bare)):
        raise ValueError(
            f"{value!r} is not a host name (e.g. fcm.googleapis.com, *.push.apple.com)"
        )
    return text


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether ``host`` is one of ``allowed`` (``*.example.com``: any subdomain of it)."""
    name = host.lower().rstrip(".").strip("[]")
    for pattern in allowed:
        if pattern.startswith("*."):
            if name.endswith(pattern[1:]) and name != pattern[2:]:
                return True
        elif name == pattern:
            return True
    return False


def endpoint_refusal(endpoint: str, allowed: Iterable[str]) -> str | None:
    """Why a subscription's endpoint may not be pushed to (None: it may): its host must be
    on ``allowed``, and plain http:// is for an IP address on the list (a lab receiver)."""
    parts = urlsplit(endpoint)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host or not host_allowed(host, allowed):
        return f"{host or '?'} is not an allowed push service (allowed_hosts)"
    if parts.scheme == "http" and not (_is_ip(host) and host in allowed):
        return f"{host}: push services are reached over https:// only"
    return None


class WebPushChannelConfig(ChannelConfig):
    """Browser notifications to the console users who subscribed (service worker, VAPID)."""

    kind: Literal["webpush"]
    allowed_hosts: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=lambda: list(PUSH_SERVICE_HOSTS)
    )
    """Push service hosts a subscription's endpoint may be on (``*.`` for any subdomain);
    default: the services of Chrome, Firefox, Edge and Safari. Anything else is refused when
    subscribing and before any push."""
    contact: str | None = None
    """``mailto:`` or ``https://`` address push services may contact about this appliance
    (the VAPID ``sub``); default: ``web.base_url`` when it is https, else
    ``mailto:dialwatch@localhost``."""
    ttl: Annotated[int, Field(ge=0, le=28 * 86400)] = 3600
    """Seconds a push service keeps a message for a browser that is offline (0: deliver now
    or never); an older page is news no more."""
    timeout: Timeout = 10.0
    """Longest one send may take, to all of the user's subscriptions together."""
    verify_tls: Bool = True
    """Check the push service's certificate; turn off only for a lab receiver."""

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [_host_pattern(v) for v in value]

    @field_validator("contact")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        if value is not None and not (
            (value.startswith("mailto:") and "@" in value) or value.startswith("https://")
        ):
            raise ValueError("must be a mailto: or https:// address, e.g. mailto:noc@example.cn")
        return value


def payload_of(message: Message) -> bytes:
    """The JSON the service worker reads: at most ``MAX_PAYLOAD`` bytes (the body is cut).

    ``url`` is the message's ``data["url"]`` (a console link such as ``/incidents/12``),
    or ``/`` without one."""
    url = message.data.get("url")
    if not isinstance(url, str) or not url or len(url) > MAX_URL:
        url = "/"  # the console's start page: the worker opens pages of the console only
    document = {
        "title": shortened(message.subject, MAX_TITLE),
        "body": message.text,
        "url": url,
        "delivery_id": message.delivery_id,
    }
    raw = json.dumps(document, ensure_ascii=False).encode("utf-8")
    if len(raw) <= MAX_PAYLOAD:
        return raw
    # Cut the body by what is over (plus room for the ellipsis), on a character boundary.
    text = message.text
    while len(raw) > MAX_PAYLOAD and text:
        over = len(raw) - MAX_PAYLOAD
        text = text[: max(0, len(text) - max(over // 3, 1) - 1)]
        document["body"] = text + "…"
        raw = json.dumps(document, ensure_ascii=False).encode("utf-8")
    return raw


def topic_of(delivery_id: str) -> str:
    """The ``Topic`` header: a resend of one delivery replaces its copy still waiting at the
    push service, so an offline browser shows it once (≤ 32 URL-safe base64 characters)."""
    digest = hashlib.sha256(delivery_id.encode()).digest()[:24]
    return base64.urlsafe_b64encode(digest).decode("ascii")


class PushTarget(Protocol):
    """What one push needs of a subscription (a console user's or a subscriber's)."""

    @property
    def label(self) -> str: ...

    @property
    def endpoint(self) -> str: ...

    def info(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class BrowserSubscription:
    """One browser's subscription as ``PushSubscription.toJSON()`` gives it."""

    endpoint: str
    p256dh: str
    auth: str

    @property
    def label(self) -> str:
        from monitor.staff.push_subscriptions import label

        return label(self.endpoint)

    def info(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}

    def to_json(self) -> str:
        return json.dumps(self.info(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> BrowserSubscription:
        """``ValueError`` when ``text`` is not a subscription."""
        try:
            data = json.loads(text)
            keys = data["keys"]
            found = cls(str(data["endpoint"]), str(keys["p256dh"]), str(keys["auth"]))
        except (ValueError, KeyError, TypeError):
            raise ValueError("not a push subscription (endpoint, keys.p256dh, keys.auth)") from None
        if not found.endpoint or not found.p256dh or not found.auth:
            raise ValueError("not a push subscription (endpoint, keys.p256dh, keys.auth)")
        return found


@dataclass(frozen=True)
class _Outcome:
    label: str
    said: str
    accepted: bool = False
    permanent: bool = True
    retry_after: float | None = None
    location: str | None = None
    gone: bool = False
    """The push service said the subscription does not exist (404/410)."""


class WebPushChannel:
    """Pushes each message to every subscription of its user."""

    def __init__(self, config: WebPushChannelConfig, context: ChannelContext | None = None) -> None:
        self.config = config
        self.context = context or ChannelContext()
        self._allowed = frozenset(config.allowed_hosts)

    def __repr__(self) -> str:
        return f"WebPushChannel({self.config.id!r})"

    def send(self, message: Message) -> Receipt:
        from monitor.staff import push_subscriptions as subs

        if message.push_subscription is not None:
            return self._send_to_subscriber(message, message.push_subscription)
        context = self.context
        user = message.user
        if not user:
            raise DeliveryError(
                "web push needs a console user to push to (the person has no user:)",
                permanent=True,
            )
        if context.state is None:
            raise DeliveryError("web push is not available here (no state DB)", permanent=True)
        with context.state.reading() as conn:
            found = subs.list_for_user(conn, user)
        if found is None:
            raise DeliveryError(f"there is no console user named {user!r}", permanent=True)
        if not found:
            raise DeliveryError(
                f"{user} has no web push subscription; open the console and press Subscribe",
                permanent=True,
            )
        vapid = self._vapid()
        payload = payload_of(message)
        deadline = time.monotonic() + self.config.timeout
        outcomes = []
        for subscription in found:
            outcome = self._push(subscription, payload, message.delivery_id, vapid, deadline)
            outcomes.append(outcome)
            if outcome.accepted:
                subs.succeeded(context.state, subscription.id, at=context.clock())
            elif outcome.gone:
                subs.gone(context.state, subscription.id)
        accepted = [o for o in outcomes if o.accepted]
        summary = "; ".join(f"{o.label}: {o.said}" for o in outcomes)
        if accepted:
            return Receipt(
                accepted[0].location,
                shortened(
                    f"pushed to {len(accepted)} of {len(outcomes)} browsers of {user}: {summary}"
                ),
            )
        transient = [o for o in outcomes if not o.permanent]
        waits = [o.retry_after for o in transient if o.retry_after is not None]
        raise DeliveryError(
            shortened(f"web push to {user}: no push service accepted it: {summary}", 500),
            permanent=not transient,
            error_class=ErrorClass.RESPONSE,
            retry_after=max(waits) if waits else None,
        )

    def _send_to_subscriber(self, message: Message, subscription_json: str) -> Receipt:
        try:
            target = BrowserSubscription.from_json(subscription_json)
        except ValueError as exc:
            raise DeliveryError(f"web push: {exc}", permanent=True) from None
        deadline = time.monotonic() + self.config.timeout
        o = self._push(target, payload_of(message), message.delivery_id, self._vapid(), deadline)
        if o.accepted:
            return Receipt(o.location, shortened(f"pushed to {o.label}: {o.said}"))
        raise DeliveryError(
            shortened(f"web push to {o.label}: {o.said}", 500),
            permanent=o.permanent,
            error_class=ErrorClass.RESPONSE,
            retry_after=o.retry_after,
        )

    # -- one subscription --------------------------------------------------------------
    def _vapid(self) -> Any:  # py_vapid.Vapid02: the library has no types
        from py_vapid import Vapid02

        from notify import vapid

        path = self.context.vapid_key_path
        if path is None:
            raise DeliveryError(
                "web push has no VAPID key file (no data directory)", permanent=True
            )
        try:
            key = vapid.load_or_create(path, create=False)
        except vapid.VapidKeyError as exc:
            raise DeliveryError(f"web push: {exc}", permanent=True) from None
        return Vapid02(private_key=key.private_key)

    def _contact(self) -> str:
        if self.config.contact:
            return self.config.contact
        base = self.context.base_url or ""
        return base.rstrip("/") if base.startswith("https://") else "mailto:dialwatch@localhost"

    def _push(
        self,
        subscription: PushTarget,
        payload: bytes,
        delivery_id: str,
        vapid: Any,  # py_vapid.Vapid02: the library has no types
        deadline: float,
    ) -> _Outcome:
        from pywebpush import WebPusher, WebPushException

        label = subscription.label
        parts = urlsplit(subscription.endpoint)
        host = parts.hostname or ""
        refusal = endpoint_refusal(subscription.endpoint, self._allowed)
        if refusal is not None:
            # Before any lookup or connection: the allow-list is the SSRF guard.
            return _Outcome(label, refusal)
        exchange = Exchange(
            subscription.endpoint,
            label="push service",
            timeout=self.config.timeout,
            deadline=deadline,
            verify_tls=self.config.verify_tls,
            # An address written on the list is meant (a lab receiver); a name must
            # not resolve to an internal address.
            allow_private=_is_ip(host.strip("[]")),
            shown=host,  # the endpoint's path is the subscription's secret
        )
        try:
            exchange.pin()
        except DeliveryError as exc:
            return _Outcome(label, exc.reason, permanent=exc.permanent)
        try:
            body = WebPusher(subscription.info()).encode(payload, "aes128gcm")["body"]
        except (WebPushException, ValueError) as exc:
            return _Outcome(label, f"its keys do not work: {exc}")
        origin = f"{parts.scheme}://{parts.netloc}"
        now = int(self.context.clock())
        auth = vapid.sign({"aud": origin, "exp": now + JWT_LIFETIME, "sub": self._contact()})
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Encoding": "aes128gcm",
            "TTL": str(self.config.ttl),
            "Urgency": "high",
            "Topic": topic_of(delivery_id),
            "Authorization": auth["Authorization"],
        }
        try:
            answer = exchange.send("POST", headers, body, max_bytes=MAX_ANSWER_BYTES)
        except DeliveryError as exc:
            return _Outcome(label, exc.reason, permanent=False)
        said = answer.said
        if answer.ok:
            return _Outcome(label, said, accepted=True, location=answer.headers.get("location"))
        if answer.status in GONE:
            return _Outcome(
                label, said + " (the browser dropped it; subscription removed)", gone=True
            )
        transient = answer.status >= 500 or answer.status in TRANSIENT_4XX
        return _Outcome(label, said, permanent=not transient, retry_after=answer.retry_after)
