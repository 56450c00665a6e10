"""Console users' web push subscriptions: add, remove, list; a push service's verdict on one.

A subscription is what a browser's ``PushManager.subscribe`` returned: the
push service's endpoint URL and the browser's keys (``p256dh``, ``auth``).
It belongs to the console user who pressed Subscribe; the ``webpush``
channel (``notify.channels.webpush``) pushes a message for that user to
each of them. An endpoint is unique: subscribing the same browser again
(a new key after the browser rotated it, or another user on a shared
screen) replaces the row, so one browser never gets a page twice.

``add`` and ``remove`` have the shape of the web's actions
(``fn(repo, actor, ..., at=)``): ``web.actions.perform`` runs them as the
person asking and writes the audit entry in the same transaction. What
goes into that entry is never the keys: ``label`` names a subscription by
its push service and a short digest of its endpoint.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import Connection, Table, delete, insert, select, update

from monitor.staff.users import find_user
from monitor.store.models import PushSubscription
from monitor.store.repository import NotFound, StateRepository

SUBSCRIPTION: Table = PushSubscription.__table__  # type: ignore[assignment]
MAX_ENDPOINT = 1024
MAX_PER_USER = 20
"""Subscriptions one user may have (browsers and devices); more is refused with a reason."""
MAX_AGENT = 200


@dataclass(frozen=True, slots=True)
class Subscription:
    """One browser's subscription."""

    id: int
    user_id: int
    endpoint: str
    p256dh: str
    auth: str
    created_at: float
    last_success_at: float | None
    user_agent: str

    @property
    def label(self) -> str:
        return label(self.endpoint)

    def info(self) -> dict[str, str]:
        """What pywebpush takes as ``subscription_info``."""
        return {"endpoint": self.endpoint, "keys": {"p256dh": self.p256dh, "auth": self.auth}}  # type: ignore[dict-item]


def label(endpoint: str) -> str:
    """``fcm.googleapis.com #3f2a1b9c``: the push service and a digest, never the whole URL
    (the endpoint is a capability: whoever knows it can push to that browser)."""
    host = urlsplit(endpoint).hostname or "?"
    return f"{host} #{hashlib.sha256(endpoint.encode()).hexdigest()[:8]}"


def _subscription(row: Any) -> Subscription:
    return Subscription(
        id=row.id,
        user_id=row.user_id,
        endpoint=row.endpoint,
        p256dh=row.p256dh,
        auth=row.auth,
        created_at=row.created_at,
        last_success_at=row.last_success_at,
        user_agent=row.user_agent,
    )


def check_key(value: object, name: str, size: int) -> str:
    """A URL-safe base64 key of ``size`` bytes, as the browser wrote it (padding dropped)."""
    if not isinstance(value, str) or not value.isascii() or len(value) > 200:
        raise ValueError(f"keys.{name} must be URL-safe base64 text")
    text = value.strip().rstrip("=")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"keys.{name} must be URL-safe base64 text") from None
    if len(raw) != size or (name == "p256dh" and raw[0] != 4):
        what = "an uncompressed P-256 public key (65 bytes)" if size == 65 else f"{size} bytes"
        raise ValueError(f"keys.{name} must be {what}, not {len(raw)} bytes")
    return text


def check_endpoint(endpoint: object) -> str:
    """``endpoint`` if it is an http(s):// URL without a user or password; ``ValueError``
    otherwise. Which push service hosts are allowed is the ``webpush`` channel's
    allow-list, checked by the caller (the web) and again before every push."""
    if not isinstance(endpoint, str) or not endpoint or len(endpoint) > MAX_ENDPOINT:
        raise ValueError(f"endpoint must be a URL of at most {MAX_ENDPOINT} characters")
    parts = urlsplit(endpoint)
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        raise ValueError("endpoint must be an https:// URL of a push service")
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError:
        raise ValueError("endpoint's port must be a number from 1 to 65535") from None
    return endpoint


def check_keys(p256dh: object, auth: object) -> tuple[str, str]:
    """A browser's ``keys.p256dh`` and ``keys.auth`` as stored; ``ValueError`` naming the bad one."""
    return check_key(p256dh, "p256dh", 65), check_key(auth, "auth", 16)


def add(
    repo: StateRepository,
    actor: str,
    user: str,
    endpoint: str,
    p256dh: str,
    auth: str,
    *,
    user_agent: str = "",
    at: float,
) -> Subscription:
    """Subscribe one browser for ``user`` (replacing the row of the same endpoint)."""
    endpoint = check_endpoint(endpoint)
    p256dh, auth = check_keys(p256dh, auth)
    agent = " ".join(str(user_agent).split())[:MAX_AGENT]
    with repo.transaction() as conn:
        owner = find_user(conn, user)
        if owner is None:
            raise NotFound(f"no user named {user!r}")
        conn.execute(delete(SUBSCRIPTION).where(SUBSCRIPTION.c.endpoint == endpoint))
        if len(list_for(conn, owner.id)) >= MAX_PER_USER:
            raise ValueError(
                f"{owner.name} has {MAX_PER_USER} push subscriptions already; "
                "unsubscribe an old browser first"
            )
        new_id = conn.execute(
            insert(SUBSCRIPTION).values(
                user_id=owner.id,
                endpoint=endpoint,
                p256dh=p256dh,
                auth=auth,
                created_at=at,
                user_agent=agent,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        row = conn.execute(select(SUBSCRIPTION).where(SUBSCRIPTION.c.id == new_id)).one()
        return _subscription(row)


def remove(repo: StateRepository, actor: str, user: str, endpoint: str, *, at: float) -> int:
    """Unsubscribe ``user``'s browser at ``endpoint``; ``NotFound`` when they have none there."""
    with repo.transaction() as conn:
        owner = find_user(conn, user)
        if owner is None:
            raise NotFound(f"no user named {user!r}")
        gone = conn.execute(
            delete(SUBSCRIPTION).where(
                SUBSCRIPTION.c.user_id == owner.id, SUBSCRIPTION.c.endpoint == endpoint
            )
        ).rowcount
        if not gone:
            raise NotFound(f"{owner.name} has no push subscription at {label(endpoint)}")
        return int(gone)


def list_for(conn: Connection, user_id: int) -> list[Subscription]:
    """``user_id``'s subscriptions, oldest first."""
    rows = conn.execute(
        select(SUBSCRIPTION).where(SUBSCRIPTION.c.user_id == user_id).order_by(SUBSCRIPTION.c.id)
    )
    return [_subscription(r) for r in rows]


def list_for_user(conn: Connection, user: str) -> list[Subscription] | None:
    """The subscriptions of the console user named ``user``; None: no such user."""
    owner = find_user(conn, user)
    return None if owner is None else list_for(conn, owner.id)


def succeeded(repo: StateRepository, subscription_id: int, *, at: float) -> None:
    """A push service accepted a message for it."""
    with repo.writing() as conn:
        conn.execute(
            update(SUBSCRIPTION)
            .where(SUBSCRIPTION.c.id == subscription_id)
            .values(last_success_at=at)
        )


def gone(repo: StateRepository, subscription_id: int) -> None:
    """The push service said the subscription no longer exists (404/410): delete it."""
    with repo.writing() as conn:
        conn.execute(delete(SUBSCRIPTION).where(SUBSCRIPTION.c.id == subscription_id))
