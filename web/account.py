"""The logged-in user's own account: password, second factor (TOTP), sessions, web push."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf

from monitor.staff import second_factor, sessions, users
from web import push
from web.guard import before_second_factor, client_address, repo, services, who

bp = Blueprint("account", __name__, url_prefix="/account")


def _me() -> users.StaffMember:
    current = who()
    assert current is not None  # the guard let only staff in
    with services().db.connect() as conn:
        row = users.find_user(conn, user_id=current.user_id)
    return users.member(row)


def _page(message: str | None = None, code: int = 200, **extra: object) -> tuple[str, int]:
    me = _me()
    with services().db.connect() as conn:
        live = sessions.list_live(conn, at=services().clock(), user_id=me.id)
    return render_template(
        "account.html",
        me=me,
        live=live,
        message=message,
        push_subscriptions=push.own_subscriptions(),
        push_config=_push_config(),
        **extra,
    ), code


def _push_config() -> dict[str, object] | None:
    """What static/push.js needs: the routes, the CSRF token and its sentences (translated
    here: the script has no catalog). None: this appliance has no VAPID key."""
    if services().vapid_key is None:
        return None
    return {
        "worker": url_for("push.service_worker"),
        "key": url_for("push.public_key"),
        "subscriptions": url_for("push.subscribe"),
        "csrf": generate_csrf(),
        "text": {
            "subscribe": _("Subscribe"),
            "unsubscribe": _("Unsubscribe"),
            "subscribed": _("This browser gets notifications."),
            "not_subscribed": _("This browser does not get notifications."),
            "unsupported": _("This browser cannot receive web push notifications."),
            "denied": _("Notifications are blocked for this site in the browser's settings."),
            "failed": _("That did not work: %(reason)s", reason="{reason}"),
        },
    }


@bp.get("")
@before_second_factor
def account_page() -> tuple[str, int]:
    return _page()


@bp.post("/password")
@before_second_factor
def change_password() -> Response | tuple[str, int]:
    me = _me()
    current = request.form.get("current", "")
    new = request.form.get("password", "")
    if users.check_login(repo(), me.name, current, at=services().clock()) is None:
        return _page(_("The current password is wrong."), 403)
    if new != request.form.get("password2", ""):
        return _page(_("The two passwords differ."), 400)
    try:
        users.set_password(
            repo(),
            me.actor,
            me.name,
            new,
            address=client_address(),
            at=services().clock(),
        )
    except ValueError as exc:
        return _page(str(exc), 400)
    # Every session ended with the change, this one too: log in with the new password.
    return redirect(url_for("login.login_page"))


@bp.get("/2fa")
@before_second_factor
def second_factor_page() -> tuple[str, int]:
    me = _me()
    box = services().secret_box
    if me.second_factor:
        return _page()
    if box is None:
        return _page(_("This appliance has no key file, so a second factor cannot be set up."), 503)
    uri, qr = second_factor.begin(
        repo(),
        box,
        me.actor,
        me.name,
        issuer=services().config().site.name,
        address=client_address(),
        at=services().clock(),
    )
    secret = uri.split("secret=", 1)[1].split("&", 1)[0]
    return render_template("account_2fa.html", me=me, qr=qr, secret=secret, message=None), 200


@bp.post("/2fa")
@before_second_factor
def confirm_second_factor() -> tuple[str, int]:
    me = _me()
    box = services().secret_box
    if box is None or me.second_factor:
        return _page()
    try:
        codes = second_factor.confirm(
            repo(),
            box,
            me.actor,
            me.name,
            request.form.get("code", "")[:20],
            address=client_address(),
            at=services().clock(),
        )
    except ValueError as exc:
        return _page(str(exc), 400)
    return render_template("account_codes.html", me=me, codes=codes), 200


@bp.post("/2fa/off")
@before_second_factor
def second_factor_off() -> Response | tuple[str, int]:
    me = _me()
    if (
        users.check_login(repo(), me.name, request.form.get("current", ""), at=services().clock())
        is None
    ):
        return _page(_("The current password is wrong."), 403)
    if me.role in services().config().web.require_2fa_for:
        return _page(_("Your role requires a second factor; it cannot be turned off."), 409)
    second_factor.turn_off(
        repo(), me.actor, me.name, address=client_address(), at=services().clock()
    )
    return redirect(url_for("account.account_page"))
