"""``/admin/users``: staff users — add, change role, reset password, disable/enable, end sessions.

Admins only. Each change is the ``monitor.staff`` function the CLI calls
(``dialwatch user ...``), run through ``web.actions.perform`` as the admin
asking, from their client address: the function checks its input (the
password policy, the last-admin rule, a name taken) and writes the change
with its audit entry; a refusal is a ``failed`` audit entry and the page again
with the reason and a 4xx, never a 500.
"""

from __future__ import annotations

from collections import Counter

from flask import Blueprint, Response, redirect, render_template, url_for
from flask_babel import gettext as _

from monitor.staff import sessions, users
from monitor.store import queries
from monitor.store.models import ROLES
from web.actions import ActionRefused, perform
from web.admin import done, field
from web.guard import require, services, session_policy
from web.vocabulary import say

bp = Blueprint("admin_users", __name__, url_prefix="/admin/users")


def _live_counts(now: float) -> Counter[int]:
    """Live sessions per user id: not ended, not past their end, not idle too long."""
    idle = session_policy().idle
    with services().db.connect() as conn:
        live = sessions.list_live(conn, at=now)
    return Counter(
        s.user_id for s in live if s.stage == "full" and (s.kiosk or now - s.last_seen_at < idle)
    )


def _page(
    error: str | None = None, code: int = 200, form: dict[str, str] | None = None
) -> tuple[str, int]:
    svc = services()
    now = svc.clock()
    with svc.db.connect() as conn:
        members = users.list_users(conn)
    return (
        render_template(
            "admin_users.html",
            members=members,
            live=_live_counts(now),
            last_login=queries.last_logins(svc.db),
            roles=ROLES,
            error=error,
            form=form or {},
        ),
        code,
    )


def _refused(exc: ActionRefused, form: dict[str, str] | None = None) -> tuple[str, int]:
    return _page(say(exc.reason), exc.status, form)


def _back() -> Response:
    return redirect(url_for("admin_users.users_page"))  # type: ignore[return-value]


@bp.get("")
@require("admin")
def users_page() -> tuple[str, int]:
    return _page()


@bp.post("")
@require("admin")
def add_user() -> Response | tuple[str, int]:
    name, role = field("name", 100).strip(), field("role", 16)
    display_name = field("display_name", 200)
    kept = {"name": name, "role": role, "display_name": display_name}  # never the password
    password = field("password")
    if password != field("password2"):
        return _page(_("The two passwords differ."), 400, kept)
    try:
        added = perform(
            "user.add",
            f"user:{name}",
            users.add_user,
            name,
            role,
            password,
            display_name=display_name,
            after={"role": role},
            self_audited=True,
        )
    except ActionRefused as exc:
        return _refused(exc, kept)
    done(_("Added %(name)s (%(role)s).", name=added.name, role=added.role))
    return _back()


@bp.post("/<name>/role")
@require("admin")
def change_role(name: str) -> Response | tuple[str, int]:
    role = field("role", 16)
    try:
        changed = perform(
            "user.role",
            f"user:{name}",
            users.set_role,
            name,
            role,
            after={"role": role},
            self_audited=True,
        )
    except ActionRefused as exc:
        return _refused(exc)
    done(_("%(name)s is now %(role)s.", name=changed.name, role=changed.role))
    return _back()


@bp.post("/<name>/password")
@require("admin")
def reset_password(name: str) -> Response | tuple[str, int]:
    password = field("password")
    if password != field("password2"):
        return _page(_("The two passwords differ."), 400)
    try:
        perform(
            "user.password", f"user:{name}", users.set_password, name, password, self_audited=True
        )
    except ActionRefused as exc:
        return _refused(exc)
    done(_("The password of %(name)s was changed; their sessions have ended.", name=name))
    return _back()


@bp.post("/<name>/disable")
@require("admin")
def disable(name: str) -> Response | tuple[str, int]:
    try:
        ended = perform("user.disable", f"user:{name}", users.disable_user, name, self_audited=True)
    except ActionRefused as exc:
        return _refused(exc)
    done(
        _(
            "%(name)s is disabled; %(n)s session(s) ended and their tokens stop working.",
            name=name,
            n=ended,
        )
    )
    return _back()


@bp.post("/<name>/enable")
@require("admin")
def enable(name: str) -> Response | tuple[str, int]:
    try:
        perform("user.enable", f"user:{name}", users.enable_user, name, self_audited=True)
    except ActionRefused as exc:
        return _refused(exc)
    done(_("%(name)s is enabled.", name=name))
    return _back()


@bp.post("/<name>/sessions/end")
@require("admin")
def end_sessions(name: str) -> Response | tuple[str, int]:
    try:
        ended = perform(
            "user.sessions.end", f"user:{name}", sessions.end_all_of, name, self_audited=True
        )
    except ActionRefused as exc:
        return _refused(exc)
    done(_("%(n)s session(s) of %(name)s ended.", n=ended, name=name))
    return _back()
