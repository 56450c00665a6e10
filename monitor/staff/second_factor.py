"""The optional second factor: TOTP (RFC 6238, ``pyotp``) with one-time recovery codes.

Enrolment is two steps: ``begin`` stores a new seed (sealed with the key
file, ``core.secret_box``) and returns the ``otpauth://`` URI and its QR
code (rendered here, as SVG, by ``segno``: no image leaves the box);
``confirm`` switches it on once the user types a code from their app, and
returns ten recovery codes (shown once; stored as SHA-256). A code is
accepted from the step before to the step after now (30 s of clock drift
each way) and never twice: the step of the last accepted code is kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from typing import Any

import pyotp
import segno
from sqlalchemy import update

from core.secret_box import SecretBox
from monitor import audit
from monitor.staff.users import USER, NotFound, find_user
from monitor.store.repository import StateRepository

RECOVERY_CODES = 10
_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper


def _context(user_id: int) -> str:
    return f"staff_user:{user_id}:totp"


def _now(at: float | None) -> float:
    return time.time() if at is None else float(at)


def new_recovery_code() -> str:
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def recovery_hash(code: str) -> str:
    folded = "".join(ch for ch in code.lower() if ch.isalnum())
    return hashlib.sha256(folded.encode()).hexdigest()


def qr_data_uri(uri: str) -> str:
    """The URI as a QR code in a ``data:`` SVG (the console's CSP allows data: images)."""
    return segno.make(uri, error="m").svg_data_uri(scale=5, border=2)


def matching_step(seed: str, code: str, at: float, last_step: int | None) -> int | None:
    """The time step ``code`` is valid for (now ±1), or None; never one at or before
    ``last_step`` (a replayed code) — pure."""
    code = code.strip().replace(" ", "")
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        return None
    totp = pyotp.TOTP(seed)
    now_step = totp.timecode(at)
    for step in (now_step - 1, now_step, now_step + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def begin(
    repo: StateRepository,
    box: SecretBox,
    actor: str,
    user: str,
    *,
    issuer: str,
    address: str = "",
    at: float | None = None,
) -> tuple[str, str]:
    """A new (not yet active) seed for ``user``; returns the otpauth URI and its QR code."""
    at = _now(at)
    seed = pyotp.random_base32()
    with repo.transaction() as conn:
        row = find_user(conn, user)
        if row is None:
            raise NotFound(f"no user named {user!r}")
        if row.totp_enabled_at is not None:
            raise ValueError(f"{row.name} has a second factor already: turn it off first")
        conn.execute(
            update(USER)
            .where(USER.c.id == row.id)
            .values(totp_secret=box.seal(seed, _context(row.id)), totp_last_step=None)
        )
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.2fa.begin",
            object=f"user:{row.name}",
        )
        uri = pyotp.TOTP(seed).provisioning_uri(name=row.name, issuer_name=issuer)
    return uri, qr_data_uri(uri)


def confirm(
    repo: StateRepository,
    box: SecretBox,
    actor: str,
    user: str,
    code: str,
    *,
    address: str = "",
    at: float | None = None,
) -> list[str]:
    """Switch the second factor on with a first code; returns the recovery codes."""
    at = _now(at)
    codes = [new_recovery_code() for _ in range(RECOVERY_CODES)]
    with repo.transaction() as conn:
        row = find_user(conn, user)
        if row is None:
            raise NotFound(f"no user named {user!r}")
        if row.totp_enabled_at is not None or row.totp_secret is None:
            raise ValueError("start the second-factor set-up first")
        step = matching_step(box.open(row.totp_secret, _context(row.id)), code, at, None)
        if step is None:
            audit.record(
                conn,
                at=at,
                actor=actor,
                address=address,
                action="user.2fa.confirm",
                object=f"user:{row.name}",
                result="failed",
                detail="wrong code",
            )
            raise ValueError("that code is not the current one: check the phone's clock")
        conn.execute(
            update(USER)
            .where(USER.c.id == row.id)
            .values(
                totp_enabled_at=at,
                totp_last_step=step,
                recovery_codes=[recovery_hash(c) for c in codes],
            )
        )
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.2fa.enable",
            object=f"user:{row.name}",
        )
    return codes


def turn_off(
    repo: StateRepository, actor: str, user: str, *, address: str = "", at: float | None = None
) -> None:
    at = _now(at)
    with repo.transaction() as conn:
        row = find_user(conn, user)
        if row is None:
            raise NotFound(f"no user named {user!r}")
        conn.execute(
            update(USER)
            .where(USER.c.id == row.id)
            .values(totp_secret=None, totp_enabled_at=None, totp_last_step=None, recovery_codes=[])
        )
        audit.record(
            conn,
            at=at,
            actor=actor,
            address=address,
            action="user.2fa.disable",
            object=f"user:{row.name}",
        )


def check(
    repo: StateRepository,
    box: SecretBox,
    user_id: int,
    code: str,
    *,
    at: float | None = None,
) -> str | None:
    """Whether ``code`` (a TOTP code or an unused recovery code) passes for the user:
    ``"totp"`` or ``"recovery"``, or None. A recovery code is used up."""
    at = _now(at)
    with repo.transaction() as conn:
        row: Any = find_user(conn, user_id=user_id)
        if row is None or row.totp_enabled_at is None or row.totp_secret is None:
            return None
        step = matching_step(
            box.open(row.totp_secret, _context(row.id)), code, at, row.totp_last_step
        )
        if step is not None:
            conn.execute(update(USER).where(USER.c.id == row.id).values(totp_last_step=step))
            return "totp"
        digest = recovery_hash(code)
        stored = list(row.recovery_codes or [])
        for known in stored:
            if hmac.compare_digest(known, digest):
                stored.remove(known)
                conn.execute(update(USER).where(USER.c.id == row.id).values(recovery_codes=stored))
                return "recovery"
    return None
