"""Server-side login sessions: started at login, ended at logout, expiry, or by an admin.

The cookie holds 32 random bytes; the row is keyed by their SHA-256, so a
copy of the DB logs nobody in. A login always starts a new session (no
fixation) and so does completing the second factor. A session expires when
idle for ``idle`` seconds (not a wall-screen one) or ``max_age`` after it
started, whichever comes first. ``last_seen_at`` is written at most once a
minute per session.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Table, bindparam, delete, insert, select, update

from monitor import audit
from monitor.staff.users import USER, NotFound, find_user
from monitor.store.models import StaffSession
from monitor.store.repository import StateRepository

SESSION: Table = StaffSession.__table__  # type: ignore[assignment]
Stage = Literal["password", "full"]
TOUCH_EVERY = 60.0
KIOSK_MAX_AGE = 30 * 86400.0
"""A wall screen stays logged in for a month (its token can be revoked sooner)."""
SECOND_FACTOR_WINDOW = 300.0
"""A half-logged-in session (password given, code not yet) lasts five minutes."""


@dataclass(frozen=True, slots=True)
class SessionPolicy:
    idle: float = 8 * 3600.0
    """Seconds without a request after which a session ends (a NOC shift leaves a tab open)."""
    max_age: float = 24 * 3600.0
    """Seconds after login after which a session ends, however busy."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """A live session and its user."""

    key: str
    """SHA-256 hex of the cookie value (the row's id)."""
    user_id: int
    user: str
    role: str
    stage: str
    kiosk: bool
    created_at: float
    expires_at: float
    second_factor: bool

    @property
    def actor(self) -> str:
        return f"user:{self.user}"


def session_key(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start(
    repo: StateRepository,
    user_id: int,
    *,
    stage: Stage,
    policy: SessionPolicy,
    address: str = "",
    user_agent: str = "",
    kiosk: bool = False,
    at: float | None = None,
) -> str:
    """A new session for the user; returns the cookie value."""
    at = time.time() if at is None else float(at)
    value = secrets.token_urlsafe(32)
    if stage == "password":
        expires = at + SECOND_FACTOR_WINDOW
    elif kiosk:
        expires = at + max(policy.max_age, KIOSK_MAX_AGE)
    else:
        expires = at + policy.max_age
    with repo.transaction() as conn:
        conn.execute(
            insert(SESSION).values(
                id=session_key(value),
                user_id=user_id,
                stage=stage,
                created_at=at,
                last_seen_at=at,
                expires_at=expires,
                kiosk=kiosk,
                address=address[:64],
                user_agent=user_agent[:300],
            )
        )
    return value


_BY_KEY = (
    select(
        SESSION,
        USER.c.name.label("user_name"),
        USER.c.role.label("role"),
        USER.c.disabled_at.label("user_disabled_at"),
        USER.c.totp_enabled_at.label("totp_enabled_at"),
    )
    .join(USER, USER.c.id == SESSION.c.user_id)
    .where(SESSION.c.id == bindparam("key"))
)
"""Built once, as every page view runs it (see ``tokens._BY_HASH``)."""


def resolve(
    repo: StateRepository, value: str | None, *, policy: SessionPolicy, at: float | None = None
) -> SessionInfo | None:
    """The live session the cookie names, or None (unknown, ended, expired, user disabled)."""
    if not value or len(value) > 100:
        return None
    at = time.time() if at is None else float(at)
    key = session_key(value)
    with repo.engine.connect() as conn:
        row = conn.execute(_BY_KEY, {"key": key}).first()
    if row is None or row.ended_at is not None or row.user_disabled_at is not None:
        return None
    if at >= row.expires_at or (not row.kiosk and at - row.last_seen_at >= policy.idle):
        return None
    if at - row.last_seen_at >= TOUCH_EVERY:
        with repo.transaction() as conn:
            conn.execute(update(SESSION).where(SESSION.c.id == key).values(last_seen_at=at))
    return _info(row)


def _info(row: Any) -> SessionInfo:
    return SessionInfo(
        key=row.id,
        user_id=row.user_id,
        user=row.user_name,
        role=row.role,
        stage=row.stage,
        kiosk=bool(row.kiosk),
        created_at=row.created_at,
        expires_at=row.expires_at,
        second_factor=row.totp_enabled_at is not None,
    )


def end(
    repo: StateRepository,
    key: str,
    actor: str,
    *,
    action: str = "logout",
    address: str = "",
    at: float | None = None,
) -> bool:
    """End one session by its key; audited. False when it was not live."""
    at = time.time() if at is None else float(at)
    with repo.transaction() as conn:
        row = conn.execute(
            select(SESSION.c.user_id, USER.c.name)
            .join(USER, USER.c.id == SESSION.c.user_id)
            .where(SESSION.c.id == key, SESSION.c.ended_at.is_(None))
        ).first()
        if row is None:
            return False
        conn.execute(update(SESSION).where(SESSION.c.id == key).values(ended_at=at, ended_by=actor))
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action=action,
            object=f"user:{row.name}",
        )
        return True


def end_all_of(
    repo: StateRepository, actor: str, user: str, *, address: str = "", at: float | None = None
) -> int:
    """End every live session of ``user`` (an admin's "log them out everywhere")."""
    at = time.time() if at is None else float(at)
    with repo.transaction() as conn:
        row = find_user(conn, user)
        if row is None:
            raise NotFound(f"no user named {user!r}")
        ended = conn.execute(
            update(SESSION)
            .where(SESSION.c.user_id == row.id, SESSION.c.ended_at.is_(None))
            .values(ended_at=at, ended_by=actor)
        ).rowcount
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.sessions.end",
            object=f"user:{row.name}",
            detail=f"{ended} session(s) ended",
        )
        return int(ended or 0)


def list_live(conn: Connection, *, at: float, user_id: int | None = None) -> list[Any]:
    query = (
        select(SESSION, USER.c.name.label("user_name"))
        .join(USER, USER.c.id == SESSION.c.user_id)
        .where(SESSION.c.ended_at.is_(None), SESSION.c.expires_at > at)
        .order_by(SESSION.c.last_seen_at.desc())
    )
    if user_id is not None:
        query = query.where(SESSION.c.user_id == user_id)
    return list(conn.execute(query))


def prune(conn: Connection, *, before: float) -> int:
    """Delete sessions that ended or expired before ``before`` (the retention job's)."""
    result = conn.execute(
        delete(SESSION).where(
            (SESSION.c.expires_at < before)
            | (SESSION.c.ended_at.is_not(None) & (SESSION.c.ended_at < before))
        )
    )
    return int(result.rowcount or 0)


def promote(
    repo: StateRepository,
    key: str,
    *,
    policy: SessionPolicy,
    address: str = "",
    user_agent: str = "",
    at: float | None = None,
) -> str:
    """The second factor passed: replace the half session by a full one (a new id)."""
    at = time.time() if at is None else float(at)
    with repo.transaction() as conn:
        row = conn.execute(
            select(SESSION.c.user_id).where(
                SESSION.c.id == key, SESSION.c.ended_at.is_(None), SESSION.c.stage == "password"
            )
        ).first()
        if row is None:
            raise NotFound("the login to finish has ended; log in again")
        conn.execute(
            update(SESSION).where(SESSION.c.id == key).values(ended_at=at, ended_by="login")
        )
        return start(
            repo,
            row.user_id,
            stage="full",
            policy=policy,
            address=address,
            user_agent=user_agent,
            at=at,
        )
