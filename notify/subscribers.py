"""Status page subscribers: the customers who asked to hear about components.

Their addresses are personal data, so they are kept the way the issue asks:

- **sealed** with the appliance's key file (``core.secret_box``), the row's
  id-free context ``subscriber:<channel>`` binding each to its kind;
- **found again by a keyed digest** (HMAC-SHA256 of the normalised address with
  a key derived from the key file), so a lookup never decrypts every row and
  the DB alone tells nobody who subscribed;
- **shown masked** in the console (``z***@example.cn``, ``+86 138****8000``),
  opened only to send a notice or for an admin's export.

Links in messages (confirm, manage, unsubscribe) carry a signed token, not
the address: ``<id>.<purpose>.<expires>.<mac>``. A confirm link expires (24 h);
the unsubscribe link never does (RFC 8058: a one-click unsubscribe must keep
working). Asking to subscribe an address that is already subscribed answers
the same as a new one (no way to learn who is subscribed) and changes nothing
until the link sent to that address is used.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from sqlalchemy import Connection, delete, insert, select, update

from core.secret_box import SecretBox
from monitor.incident_actions import Conflict
from monitor.staff.push_subscriptions import check_endpoint, check_keys
from monitor.store.models import (
    SUBSCRIBER_ACTIVE,
    SUBSCRIBER_PENDING,
    SUBSCRIBER_RETIRED,
    SUBSCRIBER_UNSUBSCRIBED,
    Subscriber,
)
from monitor.store.repository import NotFound, StateRepository
from notify.channels.webpush import PUSH_SERVICE_HOSTS, BrowserSubscription, endpoint_refusal

Channel = Literal["email", "sms", "webpush"]
Purpose = Literal["confirm", "manage", "unsubscribe"]
CONFIRM_FOR = 24 * 3600.0
CODE_FOR = 600.0
"""How long an SMS verification code works."""
CODE_TRIES = 5
"""Wrong codes allowed before a new one must be asked for."""
DAY = 86400.0
MAX_COMPONENTS = 100
_TABLE = Subscriber.__table__
_EMAIL = re.compile(
    r"^[^@\s<>()\[\],;:\"\\]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
)


class AddressRefused(ValueError):
    """An address that cannot be subscribed, said in a sentence for the page."""


class TokenRefused(ValueError):
    """A link that is not ours, is for something else, or has expired."""


class LimitReached(ValueError):
    """An abuse limit says no (SMS codes per number per day): a sentence for the page."""


def normalize(
    channel: Channel,
    address: str,
    region: str = "CN",
    push_hosts: Sequence[str] = PUSH_SERVICE_HOSTS,
) -> str:
    """The address as it is stored and looked up: e-mail with its domain in lower case,
    a phone number in E.164 (numbers without ``+`` are read in ``region``)."""
    text = address.strip()
    if channel == "email":
        if len(text) > 254 or not _EMAIL.fullmatch(text):
            raise AddressRefused("this is not an e-mail address")
        local, _, domain = text.rpartition("@")
        return f"{local}@{domain.lower()}"
    if channel == "sms":
        try:
            number = phonenumbers.parse(text, None if text.startswith("+") else region)
        except phonenumbers.NumberParseException:
            raise AddressRefused("this is not a phone number") from None
        if not phonenumbers.is_valid_number(number):
            raise AddressRefused("this is not a valid phone number")
        kind = phonenumbers.number_type(number)
        if kind not in (phonenumbers.PhoneNumberType.MOBILE,
                        phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE):  # fmt: skip
            raise AddressRefused("text messages need a mobile number")
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    try:
        check_endpoint(text)
    except ValueError as exc:
        raise AddressRefused(str(exc)) from None
    if not text.startswith("https://") and urlsplit(text).hostname not in push_hosts:
        # Plain http:// only for an address written on the list (a lab receiver).
        raise AddressRefused("a push endpoint is an https:// URL")
    # Only the known push services: a made-up endpoint must never make the appliance
    # connect somewhere (SSRF). Checked before anything is stored or sent.
    refusal = endpoint_refusal(text, push_hosts)
    if refusal is not None:
        raise AddressRefused(refusal)
    return text


def mask(channel: Channel, normalized: str) -> str:
    """What the console shows of an address."""
    if channel == "email":
        local, _, domain = normalized.rpartition("@")
        return f"{local[:1]}***@{domain}"
    if channel == "sms":
        number = phonenumbers.parse(normalized, None)
        national = str(number.national_number)
        hidden = national[:3] + "*" * max(0, len(national) - 7) + national[-4:]
        return f"+{number.country_code} {hidden}"
    # The host only: the rest of the endpoint is the capability to push to that browser.
    return f"push via {urlsplit(normalized).hostname or '?'}"


# -- keys and links ------------------------------------------------------------------------
@dataclass(frozen=True)
class Keys:
    """The keys subscribers need, each derived from the key file for its one job."""

    box: SecretBox
    lookup: bytes
    links: bytes

    @classmethod
    def of(cls, box: SecretBox) -> Keys:
        return cls(box, box.derive_key("subscriber lookup"), box.derive_key("subscriber links"))

    def digest(self, channel: str, normalized: str) -> str:
        return hmac.new(self.lookup, f"{channel}:{normalized}".encode(), hashlib.sha256).hexdigest()

    def token(self, subscriber_id: int, purpose: Purpose, at: float) -> str:
        expires = int(at + CONFIRM_FOR) if purpose == "confirm" else 0
        payload = f"{subscriber_id}.{purpose}.{expires}"
        return f"{payload}.{self._mac(payload)}"

    def read(self, token: str, purpose: Purpose, at: float) -> int:
        """The subscriber a link is for; ``TokenRefused`` otherwise."""
        parts = token.split(".")
        if len(parts) != 4 or not parts[0].isdigit() or not parts[2].isdigit():
            raise TokenRefused("this link is not one of ours")
        payload = ".".join(parts[:3])
        if not hmac.compare_digest(parts[3], self._mac(payload)):
            raise TokenRefused("this link is not one of ours")
        if parts[1] != purpose:
            raise TokenRefused("this link is for something else")
        if int(parts[2]) and at > int(parts[2]):
            raise TokenRefused("this link has expired: subscribe again for a new one")
        return int(parts[0])

    def _mac(self, payload: str) -> str:
        return hmac.new(self.links, payload.encode(), hashlib.sha256).hexdigest()[:32]


# -- rows ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubscriberRow:
    id: int
    channel: str
    masked: str
    language: str
    components: tuple[str, ...]
    state: str
    created_at: float
    confirmed_at: float | None
    ended_at: float | None
    reason: str
    failures: int


def _row(r: Any) -> SubscriberRow:
    return SubscriberRow(
        r.id, r.channel, r.masked, r.language, tuple(r.components or ()), r.state,
        r.created_at, r.confirmed_at, r.ended_at, r.reason, r.failures,
    )  # fmt: skip


def get(conn: Connection, subscriber_id: int) -> SubscriberRow:
    row = conn.execute(select(_TABLE).where(_TABLE.c.id == subscriber_id)).first()
    if row is None:
        raise NotFound(f"no subscriber {subscriber_id}")
    return _row(row)


def address_of(conn: Connection, keys: Keys, subscriber_id: int) -> str:
    """The address, opened (to send a notice, or for an admin's export)."""
    return opened(conn, keys, subscriber_id)[1]


def opened(conn: Connection, keys: Keys, subscriber_id: int) -> tuple[SubscriberRow, str]:
    """The row and its address, opened, in one read (the sender, for each notice)."""
    row = conn.execute(select(_TABLE).where(_TABLE.c.id == subscriber_id)).first()
    if row is None:
        raise NotFound(f"no subscriber {subscriber_id}")
    return _row(row), keys.box.open(row.address_sealed, f"subscriber:{row.channel}")


def active_for(conn: Connection, component_id: str) -> list[SubscriberRow]:
    """Everyone who hears about ``component_id`` now."""
    rows = conn.execute(
        select(_TABLE).where(_TABLE.c.state == SUBSCRIBER_ACTIVE).order_by(_TABLE.c.id)
    )
    return [s for s in (_row(r) for r in rows) if component_id in s.components]


def listed(conn: Connection, limit: int = 500) -> list[SubscriberRow]:
    rows = conn.execute(select(_TABLE).order_by(_TABLE.c.id.desc()).limit(limit))
    return [_row(r) for r in rows]


# -- changes -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Asked:
    """What a subscribe request did: the row, and whether a confirmation must be sent."""

    subscriber: SubscriberRow
    confirm: bool
    """Send the confirm link (a new or pending address); else send the manage link (it
    is subscribed already: whoever asked learns nothing, the owner can change it)."""


def _components(components: Sequence[str], known: Sequence[str]) -> list[str]:
    chosen = list(dict.fromkeys(components))
    if not chosen:
        raise AddressRefused("choose at least one component")
    if len(chosen) > MAX_COMPONENTS:
        raise AddressRefused(f"at most {MAX_COMPONENTS} components")
    unknown = [c for c in chosen if c not in known]
    if unknown:
        raise AddressRefused(f"no component {unknown[0]!r} on this status page")
    return chosen


def subscribe(
    repo: StateRepository,
    keys: Keys,
    channel: Channel,
    address: str,
    components: Sequence[str],
    language: str,
    *,
    known: Sequence[str],
    at: float,
    region: str = "CN",
) -> Asked:
    """Ask to subscribe ``address`` to ``components`` (pending until confirmed); a
    browser subscribes with ``subscribe_push``."""
    if channel == "webpush":
        raise ValueError("a browser subscribes with subscribe_push")
    normalized = normalize(channel, address, region)
    chosen = _components(components, known)
    digest = keys.digest(channel, normalized)
    with repo.transaction() as conn:
        row = conn.execute(
            select(_TABLE).where(_TABLE.c.channel == channel, _TABLE.c.address_digest == digest)
        ).first()
        if row is not None and row.state == SUBSCRIBER_ACTIVE:
            return Asked(_row(row), confirm=False)
        values = dict(
            state=SUBSCRIBER_PENDING, components=chosen, language=language, created_at=at,
            confirmed_at=None, ended_at=None, reason="", failures=0,
        )  # fmt: skip
        if row is None:
            subscriber_id = conn.execute(
                insert(_TABLE).values(
                    channel=channel, address_digest=digest, masked=mask(channel, normalized),
                    address_sealed=keys.box.seal(normalized, f"subscriber:{channel}"), **values,
                )
            ).inserted_primary_key[0]  # fmt: skip
        else:
            subscriber_id = row.id
            conn.execute(update(_TABLE).where(_TABLE.c.id == row.id).values(**values))
        return Asked(get(conn, int(subscriber_id)), confirm=True)


def subscribe_push(
    repo: StateRepository,
    keys: Keys,
    subscription: BrowserSubscription,
    components: Sequence[str],
    language: str,
    *,
    known: Sequence[str],
    at: float,
    push_hosts: Sequence[str] = PUSH_SERVICE_HOSTS,
) -> SubscriberRow:
    """A browser's subscription, active at once: the browser's own permission prompt is
    the opt-in, and only that browser holds the keys that read what is pushed to it (no
    one can subscribe someone else's). The same endpoint again takes the new keys,
    components and language, and starts again if it had ended. The endpoint's host must
    be on ``push_hosts``, checked before anything is stored."""
    endpoint = normalize("webpush", subscription.endpoint, push_hosts=push_hosts)
    try:
        p256dh, auth = check_keys(subscription.p256dh, subscription.auth)
    except ValueError as exc:
        raise AddressRefused(str(exc)) from None
    chosen = _components(components, known)
    sealed = keys.box.seal(
        BrowserSubscription(endpoint, p256dh, auth).to_json(), "subscriber:webpush"
    )
    digest = keys.digest("webpush", endpoint)
    values = dict(
        state=SUBSCRIBER_ACTIVE, components=chosen, language=language, address_sealed=sealed,
        confirmed_at=at, ended_at=None, reason="",
    )  # fmt: skip
    with repo.transaction() as conn:
        row = conn.execute(
            select(_TABLE.c.id).where(
                _TABLE.c.channel == "webpush", _TABLE.c.address_digest == digest
            )
        ).first()
        if row is None:
            subscriber_id = conn.execute(
                insert(_TABLE).values(
                    channel="webpush", address_digest=digest, masked=mask("webpush", endpoint),
                    created_at=at, failures=0, **values,
                )
            ).inserted_primary_key[0]  # fmt: skip
        else:
            subscriber_id = row.id
            conn.execute(update(_TABLE).where(_TABLE.c.id == row.id).values(**values))
        return get(conn, int(subscriber_id))


def find_push(conn: Connection, keys: Keys, endpoint: str) -> SubscriberRow | None:
    """The subscriber of a browser's endpoint (it is the capability: whoever knows it can
    push to that browser, so knowing it is enough to unsubscribe it)."""
    row = conn.execute(
        select(_TABLE).where(
            _TABLE.c.channel == "webpush",
            _TABLE.c.address_digest == keys.digest("webpush", endpoint.strip()),
        )
    ).first()
    return None if row is None else _row(row)


def confirm(repo: StateRepository, subscriber_id: int, *, at: float) -> SubscriberRow:
    with repo.transaction() as conn:
        row = get(conn, subscriber_id)
        if row.state == SUBSCRIBER_ACTIVE:
            return row  # a second click on the link is fine
        if row.state != SUBSCRIBER_PENDING:
            raise Conflict("this subscription has ended: subscribe again")
        conn.execute(
            update(_TABLE)
            .where(_TABLE.c.id == subscriber_id)
            .values(state=SUBSCRIBER_ACTIVE, confirmed_at=at)
        )
        return get(conn, subscriber_id)


def set_components(
    repo: StateRepository, subscriber_id: int, components: Sequence[str], *,
    known: Sequence[str], at: float,
) -> SubscriberRow:  # fmt: skip
    chosen = _components(components, known)
    with repo.transaction() as conn:
        row = get(conn, subscriber_id)
        if row.state not in (SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING):
            raise Conflict("this subscription has ended: subscribe again")
        conn.execute(update(_TABLE).where(_TABLE.c.id == subscriber_id).values(components=chosen))
        return get(conn, subscriber_id)


def unsubscribe(repo: StateRepository, subscriber_id: int, *, at: float) -> SubscriberRow:
    """Stop every notice to this subscriber (one click; a second click changes nothing)."""
    with repo.transaction() as conn:
        row = get(conn, subscriber_id)
        if row.state in (SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING):
            conn.execute(
                update(_TABLE)
                .where(_TABLE.c.id == subscriber_id)
                .values(state=SUBSCRIBER_UNSUBSCRIBED, ended_at=at)
            )
        return get(conn, subscriber_id)


def retire(repo: StateRepository, subscriber_id: int, reason: str, *, at: float) -> SubscriberRow:
    """No more notices to an address that bounced or a push endpoint that is gone."""
    with repo.transaction() as conn:
        get(conn, subscriber_id)
        conn.execute(
            update(_TABLE)
            .where(_TABLE.c.id == subscriber_id)
            .values(
                state=SUBSCRIBER_RETIRED,
                ended_at=at,
                reason=reason[:500],
                failures=_TABLE.c.failures + 1,
            )  # fmt: skip
        )
        return get(conn, subscriber_id)


def erase(repo: StateRepository, subscriber_id: int) -> None:
    """Delete a subscriber and their address for good (an admin, on request)."""
    with repo.transaction() as conn:
        get(conn, subscriber_id)
        conn.execute(delete(_TABLE).where(_TABLE.c.id == subscriber_id))


def export(conn: Connection, keys: Keys, subscriber_id: int) -> dict[str, Any]:
    """Everything kept about one subscriber, the address opened (an admin, on request)."""
    row = get(conn, subscriber_id)
    return {
        "id": row.id,
        "channel": row.channel,
        "address": address_of(conn, keys, subscriber_id),
        "language": row.language,
        "components": list(row.components),
        "state": row.state,
        "created_at": row.created_at,
        "confirmed_at": row.confirmed_at,
        "ended_at": row.ended_at,
        "reason": row.reason,
    }


# -- SMS verification codes ----------------------------------------------------------------
def _code_digest(keys: Keys, subscriber_id: int, code: str) -> str:
    return hmac.new(
        keys.lookup, f"code:{subscriber_id}:{code}".encode(), hashlib.sha256
    ).hexdigest()


def codes_sent_today(conn: Connection, at: float) -> int:
    """Verification texts sent to every number in the 24 hours before ``at``."""
    rows = conn.execute(
        select(_TABLE.c.codes_sent).where(
            _TABLE.c.channel == "sms", _TABLE.c.codes_sent.isnot(None)
        )
    ).scalars()
    return sum(1 for sent in rows for t in (sent or []) if t > at - DAY)


def issue_code(
    repo: StateRepository,
    keys: Keys,
    subscriber_id: int,
    *,
    at: float,
    per_day: int,
    total_per_day: int | None = None,
) -> str:
    """A new 6-digit code for a pending SMS subscriber, valid ``CODE_FOR``; at most
    ``per_day`` codes to one number and ``total_per_day`` to all numbers in any 24 hours
    (SMS pumping costs money). Counted in the state DB: a restart forgives nothing."""
    with repo.transaction() as conn:
        if total_per_day is not None and codes_sent_today(conn, at) >= total_per_day:
            raise LimitReached("too many verification texts today: try again tomorrow")
        row = conn.execute(select(_TABLE).where(_TABLE.c.id == subscriber_id)).first()
        if row is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        if row.channel != "sms":
            raise ValueError("verification codes are for text-message subscriptions")
        recent = [t for t in (row.codes_sent or []) if t > at - DAY]
        if len(recent) >= per_day:
            raise LimitReached("too many codes to this number today: try again tomorrow")
        code = f"{secrets.randbelow(1_000_000):06d}"
        conn.execute(
            update(_TABLE)
            .where(_TABLE.c.id == subscriber_id)
            .values(
                code_digest=_code_digest(keys, subscriber_id, code),
                code_expires_at=at + CODE_FOR,
                code_tries=0,
                codes_sent=[*recent, at],
            )  # fmt: skip
        )
        return code


def check_code(
    repo: StateRepository, keys: Keys, subscriber_id: int, code: str, *, at: float
) -> SubscriberRow:
    """Confirm a pending SMS subscriber with the code they got; ``TokenRefused`` with a
    sentence otherwise (wrong, expired, too many tries)."""
    with repo.transaction() as conn:
        row = conn.execute(select(_TABLE).where(_TABLE.c.id == subscriber_id)).first()
        if row is None:
            raise NotFound(f"no subscriber {subscriber_id}")
        if row.code_digest is None or row.code_expires_at is None or at > row.code_expires_at:
            raise TokenRefused("this code has expired: ask for a new one")
        if row.code_tries >= CODE_TRIES:
            raise TokenRefused("too many wrong codes: ask for a new one")
        good = hmac.compare_digest(row.code_digest, _code_digest(keys, subscriber_id, code.strip()))
        if not good:
            # Counted, and committed: the refusal is raised after the transaction.
            conn.execute(update(_TABLE).where(_TABLE.c.id == subscriber_id)
                         .values(code_tries=_TABLE.c.code_tries + 1))  # fmt: skip
        else:
            conn.execute(
                update(_TABLE)
                .where(_TABLE.c.id == subscriber_id)
                .values(code_digest=None, code_expires_at=None, code_tries=0)
            )
    if not good:
        raise TokenRefused("this is not the code we sent")
    return confirm(repo, subscriber_id, at=at)


STOP_WORDS = frozenset({"stop", "unsubscribe", "td", "退订", "取消", "退订通知"})
"""Replies that end a text-message subscription (STOP, 退订...)."""


def stop_by_reply(repo: StateRepository, keys: Keys, number: str, text: str, *, at: float) -> bool:
    """A reply from ``number``: unsubscribes it when the text is a stop word. Returns
    whether it did (an inbound SMS callback of the provider calls this)."""
    if text.strip().lower() not in STOP_WORDS:
        return False
    try:
        normalized = normalize("sms", number)
    except AddressRefused:
        return False
    digest = keys.digest("sms", normalized)
    with repo.transaction() as conn:
        row = conn.execute(
            select(_TABLE.c.id).where(_TABLE.c.channel == "sms", _TABLE.c.address_digest == digest)
        ).first()
    if row is None:
        return False
    unsubscribe(repo, row.id, at=at)
    return True
