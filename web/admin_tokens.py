"""``/admin/tokens``: API tokens — list, create (the value shown exactly once), revoke.

Admins only. ``monitor.staff.tokens`` does the work, as ``dialwatch token
create|revoke`` does: a token's role is at most its owner's, its value is
never stored (only its SHA-256), and each change is audited with the admin
and their client address. The page that shows a new value is answered
``Cache-Control: no-store`` and the value goes nowhere else — not into the
flash cookie, not into a URL.
"""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, url_for
from flask_babel import gettext as _

from core.config import parse_duration
from monitor.staff import tokens, users
from monitor.store.models import ROLES
from web import params
from web.actions import ActionRefused, perform
from web.admin import done, field
from web.guard import require, services
from web.vocabulary import say

bp = Blueprint("admin_tokens", __name__, url_prefix="/admin/tokens")
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

MAX_EXPIRY = 3650 * 86400.0
"""Ten years: a longer expiry is a typo (use none for a token that never expires)."""


def parse_expiry(raw: str) -> float | None:
    """``30d``, ``12h``, ``90m`` → seconds; empty → None (never expires); ValueError else."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        seconds = parse_duration(raw)
    except ValueError:
        raise ValueError(
            _("Expires must be a duration like 30d, 12h or 90m, not %(value)s.", value=raw)
        ) from None
    if seconds > MAX_EXPIRY:
        raise ValueError(_("Expires may be at most 3650d; leave it empty for no expiry."))
    return seconds


def _page(
    error: str | None = None,
    code: int = 200,
    created: tuple[tokens.TokenInfo, str] | None = None,
    form: dict[str, str] | None = None,
) -> tuple[str, int]:
    svc = services()
    with svc.db.connect() as conn:
        listed = tokens.list_tokens(conn)
        members = [m for m in users.list_users(conn) if not m.disabled]
    return (
        render_template(
            "admin_tokens.html",
            tokens=sorted(listed, key=lambda t: t.id, reverse=True),
            members=members,
            roles=ROLES,
            now=svc.clock(),
            created=created,
            error=error,
            form=form or {},
        ),
        code,
    )


@bp.get("")
@require("admin")
def tokens_page() -> tuple[str, int]:
    return _page()


@bp.post("")
@require("admin")
def create_token() -> Response | tuple[str, int]:
    owner, role = field("user", 100).strip(), field("role", 16).strip()
    name = field("name", 100)
    kept = {"user": owner, "role": role, "name": name, "expires": field("expires", 40)}
    try:
        expires_in = parse_expiry(kept["expires"])
    except ValueError as exc:
        return _page(str(exc), 400, form=kept)
    try:
        created = perform(
            "token.create",
            f"user:{owner}",
            tokens.create_token,
            owner,
            role=role or None,
            expires_in=expires_in,
            name=name,
            after={"role": role or None, "expires_in_s": expires_in},
            self_audited=True,
        )
    except ActionRefused as exc:
        return _page(say(exc.reason), exc.status, form=kept)
    body, code = _page(created=created, code=201)
    response = Response(body, code, mimetype="text/html")
    # The one time the value is shown: no cache may keep a copy of this page.
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/<id:token_id>/revoke")
@require("admin")
def revoke(token_id: int) -> Response | tuple[str, int]:
    try:
        info = perform(
            "token.revoke", f"token:{token_id}", tokens.revoke_token, token_id, self_audited=True
        )
    except ActionRefused as exc:
        return _page(say(exc.reason), exc.status)
    done(_("Token %(id)s of %(user)s is revoked.", id=info.id, user=info.user))
    return redirect(url_for("admin_tokens.tokens_page"))  # type: ignore[return-value]
