"""Staff users: add, change, disable, list — and check a login's password.

Each change takes the repository, an ``actor`` (``user:alice``, ``cli``,
``setup``) and the client ``address`` when there is one, checks its input
(``ValueError`` with the reason, ``NotFound``) before writing, and writes
the change and its audit entry in one transaction. The last enabled admin
cannot be disabled or demoted: someone must always be able to manage users.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Table, func, insert, select, update

from monitor import audit
from monitor.staff import passwords
from monitor.staff.roles import check_role
from monitor.store.models import StaffSession, StaffUser
from monitor.store.repository import NotFound, StateRepository

__all__ = [
    "NotFound",
    "StaffMember",
    "add_user",
    "check_login",
    "count_users",
    "disable_user",
    "enable_user",
    "find_user",
    "list_users",
    "normal_name",
    "set_password",
    "set_role",
]

USER: Table = StaffUser.__table__  # type: ignore[assignment]
_SESSION: Table = StaffSession.__table__  # type: ignore[assignment]
_NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_DISPLAY_NAME = 100


@dataclass(frozen=True, slots=True)
class StaffMember:
    """A user as the rest of the appliance sees one (never the hashes or the seed)."""

    id: int
    name: str
    display_name: str
    role: str
    disabled: bool
    second_factor: bool
    created_at: float
    password_changed_at: float
    language: str | None

    @property
    def actor(self) -> str:
        return f"user:{self.name}"


def member(row: Any) -> StaffMember:
    return StaffMember(
        id=row.id,
        name=row.name,
        display_name=row.display_name,
        role=row.role,
        disabled=row.disabled_at is not None,
        second_factor=row.totp_enabled_at is not None,
        created_at=row.created_at,
        password_changed_at=row.password_changed_at,
        language=row.language,
    )


def normal_name(name: object) -> str:
    """The stored form of a login name: lower case, 1–64 of a-z 0-9 . _ - (starting alphanumeric)."""
    if not isinstance(name, str):
        raise ValueError("a user name is text")
    folded = name.strip().lower()
    if not _NAME.fullmatch(folded):
        raise ValueError(
            f"user name {name!r} must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return folded


def _checked_password(name: str, password: object) -> str:
    if not isinstance(password, str):
        raise ValueError("a password is text")
    problems = passwords.policy_problems(name, password)
    if problems:
        raise ValueError("; ".join(problems))
    return password


def _now(at: float | None) -> float:
    return time.time() if at is None else float(at)


# -- reads --------------------------------------------------------------------------
def count_users(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(USER)).scalar_one())


def list_users(conn: Connection) -> list[StaffMember]:
    return [member(r) for r in conn.execute(select(USER).order_by(USER.c.name))]


def find_user(conn: Connection, name: str | None = None, *, user_id: int | None = None) -> Any:
    """The user's row (with hashes: for this package only), or None."""
    query = select(USER)
    if user_id is not None:
        query = query.where(USER.c.id == user_id)
    else:
        try:
            query = query.where(USER.c.name == normal_name(name))
        except ValueError:
            return None
    return conn.execute(query).first()


def _existing(conn: Connection, name: str) -> Any:
    row = find_user(conn, name)
    if row is None:
        raise NotFound(f"no user named {name!r}")
    return row


def _enabled_admins(conn: Connection) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(USER)
            .where(USER.c.role == "admin", USER.c.disabled_at.is_(None))
        ).scalar_one()
    )


# -- changes ------------------------------------------------------------------------
def add_user(
    repo: StateRepository,
    actor: str,
    name: str,
    role: str,
    password: str,
    *,
    display_name: str = "",
    address: str = "",
    at: float | None = None,
) -> StaffMember:
    at = _now(at)
    name = normal_name(name)
    role = check_role(role)
    password = _checked_password(name, password)
    if not isinstance(display_name, str) or len(display_name) > MAX_DISPLAY_NAME:
        raise ValueError(f"a display name is text of at most {MAX_DISPLAY_NAME} characters")
    hashed = passwords.hash_password(password)  # slow: outside the write transaction
    with repo.transaction() as conn:
        if find_user(conn, name) is not None:
            raise ValueError(f"a user named {name!r} exists already")
        user_id = conn.execute(
            insert(USER).values(
                name=name,
                display_name=display_name.strip(),
                role=role,
                password_hash=hashed,
                password_changed_at=at,
                created_at=at,
                created_by=actor,
                recovery_codes=[],
            )
        ).inserted_primary_key[0]  # type: ignore[index]
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.add",
            object=f"user:{name}",
            after={"role": role, "display_name": display_name.strip()},
        )
        return member(find_user(conn, user_id=int(user_id)))


def set_password(
    repo: StateRepository,
    actor: str,
    name: str,
    password: str,
    *,
    address: str = "",
    at: float | None = None,
    end_sessions: bool = True,
) -> None:
    """A new password; the user's other sessions end (a changed password locks out whoever
    knew the old one)."""
    at = _now(at)
    name = normal_name(name)
    password = _checked_password(name, password)
    hashed = passwords.hash_password(password)
    with repo.transaction() as conn:
        row = _existing(conn, name)
        conn.execute(
            update(USER)
            .where(USER.c.id == row.id)
            .values(password_hash=hashed, password_changed_at=at)
        )
        ended = _end_sessions_of(conn, row.id, actor, at) if end_sessions else 0
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.password",
            object=f"user:{name}",
            detail=f"{ended} session(s) ended",
        )


def set_role(
    repo: StateRepository,
    actor: str,
    name: str,
    role: str,
    *,
    address: str = "",
    at: float | None = None,
) -> StaffMember:
    at = _now(at)
    role = check_role(role)
    with repo.transaction() as conn:
        row = _existing(conn, name)
        demoting = row.role == "admin" and role != "admin" and row.disabled_at is None
        if demoting and _enabled_admins(conn) <= 1:
            raise ValueError(f"{row.name} is the last admin: make another admin first")
        conn.execute(update(USER).where(USER.c.id == row.id).values(role=role))
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.role",
            object=f"user:{row.name}",
            before={"role": row.role},
            after={"role": role},
        )
        return member(find_user(conn, user_id=row.id))


def disable_user(
    repo: StateRepository, actor: str, name: str, *, address: str = "", at: float | None = None
) -> int:
    """Disable a user and end their sessions (their tokens stop working too); returns
    the number of sessions ended."""
    at = _now(at)
    with repo.transaction() as conn:
        row = _existing(conn, name)
        if row.disabled_at is not None:
            raise ValueError(f"user {row.name} is disabled already")
        if row.role == "admin" and _enabled_admins(conn) <= 1:
            raise ValueError(f"{row.name} is the last admin: make another admin first")
        conn.execute(update(USER).where(USER.c.id == row.id).values(disabled_at=at))
        ended = _end_sessions_of(conn, row.id, actor, at)
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.disable",
            object=f"user:{row.name}",
            detail=f"{ended} session(s) ended",
        )
        return ended


def enable_user(
    repo: StateRepository, actor: str, name: str, *, address: str = "", at: float | None = None
) -> None:
    at = _now(at)
    with repo.transaction() as conn:
        row = _existing(conn, name)
        if row.disabled_at is None:
            raise ValueError(f"user {row.name} is not disabled")
        conn.execute(update(USER).where(USER.c.id == row.id).values(disabled_at=None))
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.enable",
            object=f"user:{row.name}",
        )


def _end_sessions_of(conn: Connection, user_id: int, actor: str, at: float) -> int:
    result = conn.execute(
        update(_SESSION)
        .where(_SESSION.c.user_id == user_id, _SESSION.c.ended_at.is_(None))
        .values(ended_at=at, ended_by=actor)
    )
    return int(result.rowcount or 0)


# -- login --------------------------------------------------------------------------
def check_login(
    repo: StateRepository, name: str, password: str, *, at: float | None = None
) -> StaffMember | None:
    """The user when ``name`` and ``password`` match an enabled user, else None.

    Costs one Argon2 verification whether or not the user exists (no user
    enumeration by timing). A hash made with older parameters is re-made.
    Auditing the attempt is the caller's (it knows the address and the
    throttle's verdict).
    """
    at = _now(at)
    with repo.engine.connect() as conn:
        row = find_user(conn, name)
    ok = passwords.verify_password(row.password_hash if row is not None else None, password)
    if not ok or row is None or row.disabled_at is not None:
        return None
    if passwords.needs_rehash(row.password_hash):
        hashed = passwords.hash_password(password)
        with repo.transaction() as conn:
            conn.execute(update(USER).where(USER.c.id == row.id).values(password_hash=hashed))
    return member(row)
