"""API tokens: 32 random bytes shown once, stored as SHA-256, scoped to a role.

A token is checked on every API call, so it is stored as a fast hash, not a
password hash: 256 random bits need no slowing down to resist guessing. The
role that applies is the lower of the token's and its owner's, and a token
of a disabled user stops working. ``last_used_at`` is written at most once a
minute per token, so a busy script does not turn reads into writes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, bindparam, insert, select, update

from monitor import audit
from monitor.staff.roles import check_role, lower
from monitor.staff.users import USER, NotFound, find_user
from monitor.store.models import ApiToken
from monitor.store.repository import StateRepository

TOKEN: Table = ApiToken.__table__  # type: ignore[assignment]
PREFIX = "dw_"
LAST_USED_EVERY = 60.0
MAX_NAME = 64


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token as listed (never its value)."""

    id: int
    user: str
    name: str
    prefix: str
    role: str
    created_at: float
    created_by: str
    expires_at: float | None
    last_used_at: float | None
    revoked_at: float | None

    def state(self, now: float) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class TokenIdentity:
    """Who a presented token speaks for, and with which role."""

    token_id: int
    user_id: int
    user: str
    role: str

    @property
    def actor(self) -> str:
        return f"token:{self.token_id}"


def token_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def new_token_value() -> str:
    return PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row.id,
        user=row.user_name,
        name=row.name,
        prefix=row.prefix,
        role=row.role,
        created_at=row.created_at,
        created_by=row.created_by,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def _listing() -> Any:
    return select(TOKEN, USER.c.name.label("user_name")).join(USER, USER.c.id == TOKEN.c.user_id)


def create_token(
    repo: StateRepository,
    actor: str,
    user: str,
    *,
    role: str | None = None,
    expires_in: float | None = None,
    name: str = "",
    address: str = "",
    at: float | None = None,
) -> tuple[TokenInfo, str]:
    """A new token for ``user``; returns it and its value (shown once, never stored)."""
    at = time.time() if at is None else float(at)
    if expires_in is not None and not expires_in > 0:
        raise ValueError("a token's expiry must be in the future")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise ValueError(f"a token name is text of at most {MAX_NAME} characters")
    value = new_token_value()
    with repo.transaction() as conn:
        owner = find_user(conn, user)
        if owner is None:
            raise NotFound(f"no user named {user!r}")
        if owner.disabled_at is not None:
            raise ValueError(f"user {owner.name} is disabled")
        scoped = check_role(role) if role is not None else owner.role
        if lower(scoped, owner.role) != scoped:
            raise ValueError(
                f"a token cannot have more than its owner's role ({owner.name} is {owner.role})"
            )
        token_id = conn.execute(
            insert(TOKEN).values(
                user_id=owner.id,
                name=name.strip(),
                token_hash=token_hash(value),
                prefix=value[: len(PREFIX) + 6],
                role=scoped,
                created_at=at,
                created_by=actor,
                expires_at=at + expires_in if expires_in is not None else None,
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="token.create",
            object=f"token:{token_id}",
            after={
                "user": owner.name,
                "role": scoped,
                "name": name.strip(),
                "expires_in_s": expires_in,
            },
        )
        row = conn.execute(_listing().where(TOKEN.c.id == token_id)).one()
        return _info(row), value


def revoke_token(
    repo: StateRepository,
    actor: str,
    token_id: int,
    *,
    address: str = "",
    at: float | None = None,
) -> TokenInfo:
    at = time.time() if at is None else float(at)
    with repo.transaction() as conn:
        row = conn.execute(_listing().where(TOKEN.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no token {token_id}")
        if row.revoked_at is not None:
            raise ValueError(f"token {token_id} was revoked already")
        conn.execute(
            update(TOKEN).where(TOKEN.c.id == token_id).values(revoked_at=at, revoked_by=actor)
        )
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="token.revoke",
            object=f"token:{token_id}",
            before={"user": row.user_name, "role": row.role},
        )
        return _info(conn.execute(_listing().where(TOKEN.c.id == token_id)).one())


def list_tokens(conn: Connection, user: str | None = None) -> list[TokenInfo]:
    query = _listing().order_by(TOKEN.c.id)
    if user is not None:
        query = query.where(USER.c.name == user.strip().lower())
    return [_info(r) for r in conn.execute(query)]


_BY_HASH = (
    select(
        TOKEN,
        USER.c.name.label("user_name"),
        USER.c.role.label("user_role"),
        USER.c.disabled_at.label("user_disabled_at"),
    )
    .join(USER, USER.c.id == TOKEN.c.user_id)
    .where(TOKEN.c.token_hash == bindparam("digest"))
)
"""Built once: every API call runs it, and building the statement and its cache key
each time cost about as much as running it (in-process profile)."""


def authenticate(
    repo: StateRepository, value: str, *, at: float | None = None
) -> TokenIdentity | None:
    """Who ``value`` speaks for, or None (unknown, revoked, expired, or its user disabled)."""
    if not value.startswith(PREFIX) or len(value) > 100:
        return None
    at = time.time() if at is None else float(at)
    digest = token_hash(value)
    with repo.engine.connect() as conn:
        row = conn.execute(_BY_HASH, {"digest": digest}).first()
    # The lookup is by hash (an index), so the comparison below is belt and braces.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    if row.revoked_at is not None or row.user_disabled_at is not None:
        return None
    if row.expires_at is not None and row.expires_at <= at:
        return None
    if row.last_used_at is None or at - row.last_used_at >= LAST_USED_EVERY:
        with repo.transaction() as conn:
            conn.execute(update(TOKEN).where(TOKEN.c.id == row.id).values(last_used_at=at))
    return TokenIdentity(row.id, row.user_id, row.user_name, lower(row.role, row.user_role))
