"""Logging in and out: ``/login`` (then ``/login/code`` with a second factor), ``/logout``,
``/setup`` (the first admin, with the setup code) and ``/wall/open`` (a wall screen's token).

Every attempt is audited. A wrong password and an unknown user get the same
answer after the same work; repeated failures per user name and per client
address are slowed by ``web.login_throttle``. A login always starts a new
session (no fixation), and so does passing the second factor.
"""

from __future__ import annotations

import math

from flask import (
    Blueprint,
    Response,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext as _

from monitor import audit
from monitor.staff import second_factor, sessions, tokens, users
from monitor.staff.users import normal_name
from web.guard import (
    SESSION_COOKIE,
    client_address,
    is_secure,
    public,
    repo,
    services,
    session_policy,
    who,
)
from web.login_throttle import LoginThrottle

bp = Blueprint("login", __name__)

MAX_FIELD = 300


def throttle() -> LoginThrottle:
    return current_app.extensions["dialwatch.login_throttle"]


def safe_next(value: str | None) -> str:
    """A local path to go to after login; anything else (another site, a scheme) is ``/``."""
    if not value or len(value) > 2000 or not value.startswith("/"):
        return "/"
    if (
        value.startswith(("//", "/\\"))
        or any(ch in value for ch in "\\\r\n\t")
        or ":" in value.split("?")[0]
    ):
        return "/"
    return value


def _set_session_cookie(resp: Response, value: str, max_age: float) -> Response:
    resp.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=int(max_age),
        httponly=True,
        samesite="Lax",
        secure=is_secure(),
        path="/",
    )
    return resp


def _audit_login(actor: str, result: str, name: str, detail: str = "") -> None:
    with repo().transaction() as conn:
        audit.record(
            conn,
            at=services().clock(),
            actor=actor,
            address=client_address(),
            action="login",
            object=f"user:{name}" if name else "",
            result=result,  # type: ignore[arg-type]
            detail=detail,
        )


def _form(name: str) -> str:
    value = request.form.get(name, "")
    return value[:MAX_FIELD]


def _has_users() -> bool:
    with services().db.connect() as conn:
        return users.count_users(conn) > 0


def _start_full_session(user_id: int, kiosk: bool = False) -> str:
    # A fresh CSRF token with the new login: a token planted before login is useless after.
    session.pop("csrf_token", None)
    return sessions.start(
        repo(),
        user_id,
        stage="full",
        policy=session_policy(),
        address=client_address(),
        user_agent=request.headers.get("User-Agent", ""),
        kiosk=kiosk,
        at=services().clock(),
    )


def _login_form(message: str | None = None, code: int = 200) -> tuple[str, int]:
    return (
        render_template(
            "login.html",
            message=message,
            next=safe_next(request.values.get("next")),
            username=_form("username") if request.method == "POST" else "",
        ),
        code,
    )


@bp.get("/login")
@public
def login_page() -> Response | tuple[str, int]:
    if not _has_users() and services().setup is not None:
        return redirect(url_for("login.setup_page"))
    if who() is not None:
        return redirect(safe_next(request.args.get("next")))
    return _login_form()


@bp.post("/login")
@public
def login_submit() -> Response | tuple[str, int]:
    raw_name = _form("username").strip()
    password = request.form.get("password", "")
    try:
        name = normal_name(raw_name)
    except ValueError:
        name = ""
    address_key = f"addr:{client_address()}"
    user_key = f"user:{name or raw_name.lower()}"
    wait = throttle().wait(address_key, user_key)
    if wait > 0:
        _audit_login("anonymous", "denied", name, f"throttled for {math.ceil(wait)} s")
        return _login_form(
            _("Too many failed logins. Try again in %(n)d seconds.", n=math.ceil(wait)), 429
        )
    member = users.check_login(repo(), name, password, at=services().clock()) if name else None
    if member is None:
        if not name:  # still spend the verification: same time as a wrong password
            users.check_login(repo(), "-", password)
        throttle().failed(address_key, user_key)
        _audit_login("anonymous", "failed", name or raw_name[:64], "wrong user name or password")
        return _login_form(_("Wrong user name or password."), 401)
    throttle().succeeded(user_key)
    nxt = safe_next(request.form.get("next"))
    if member.second_factor:
        value = sessions.start(
            repo(),
            member.id,
            stage="password",
            policy=session_policy(),
            address=client_address(),
            user_agent=request.headers.get("User-Agent", ""),
            at=services().clock(),
        )
        resp = redirect(url_for("login.code_page", next=nxt))
        return _set_session_cookie(resp, value, sessions.SECOND_FACTOR_WINDOW)
    value = _start_full_session(member.id)
    _audit_login(member.actor, "ok", member.name)
    return _set_session_cookie(redirect(nxt), value, session_policy().max_age)


def _half_session() -> sessions.SessionInfo | None:
    cookie = request.cookies.get(SESSION_COOKIE)
    info = sessions.resolve(repo(), cookie, policy=session_policy(), at=services().clock())
    return info if info is not None and info.stage == "password" else None


@bp.get("/login/code")
@public
def code_page() -> Response | tuple[str, int]:
    if _half_session() is None:
        return redirect(url_for("login.login_page"))
    return render_template(
        "login_code.html", message=None, next=safe_next(request.args.get("next"))
    ), 200


@bp.post("/login/code")
@public
def code_submit() -> Response | tuple[str, int]:
    half = _half_session()
    if half is None:
        return redirect(url_for("login.login_page"))
    nxt = safe_next(request.form.get("next"))
    user_key = f"user:{half.user}"
    address_key = f"addr:{client_address()}"
    wait = throttle().wait(address_key, user_key)
    if wait > 0:
        _audit_login("anonymous", "denied", half.user, f"code throttled for {math.ceil(wait)} s")
        message = _("Too many failed logins. Try again in %(n)d seconds.", n=math.ceil(wait))
        return render_template("login_code.html", message=message, next=nxt), 429
    box = services().secret_box
    used = (
        second_factor.check(repo(), box, half.user_id, _form("code"), at=services().clock())
        if box is not None
        else None
    )
    if used is None:
        throttle().failed(address_key, user_key)
        _audit_login("anonymous", "failed", half.user, "wrong second-factor code")
        return render_template(
            "login_code.html", message=_("That code is not valid."), next=nxt
        ), 401
    throttle().succeeded(user_key)
    session.pop("csrf_token", None)
    value = sessions.promote(
        repo(),
        half.key,
        policy=session_policy(),
        address=client_address(),
        user_agent=request.headers.get("User-Agent", ""),
        at=services().clock(),
    )
    _audit_login(half.actor, "ok", half.user, f"with a {used} code")
    return _set_session_cookie(redirect(nxt), value, session_policy().max_age)


@bp.post("/logout")
@public
def logout() -> Response:
    current = who()
    cookie = request.cookies.get(SESSION_COOKIE)
    if current is not None and current.session_key is not None:
        sessions.end(
            repo(),
            current.session_key,
            current.actor,
            address=client_address(),
            at=services().clock(),
        )
    elif cookie:
        # A half-finished login: end it quietly.
        sessions.end(repo(), sessions.session_key(cookie), "anonymous", at=services().clock())
    resp = redirect(url_for("login.login_page"))
    resp.delete_cookie(SESSION_COOKIE, path="/")
    session.clear()
    return resp


# -- first start -------------------------------------------------------------------------
@bp.get("/setup")
@public
def setup_page() -> Response | tuple[str, int]:
    if _has_users() or services().setup is None:
        return redirect(url_for("login.login_page"))
    return render_template("setup.html", message=None, username=""), 200


@bp.post("/setup")
@public
def setup_submit() -> Response | tuple[str, int]:
    setup = services().setup
    if _has_users() or setup is None:
        return redirect(url_for("login.login_page"))
    username = _form("username").strip()

    def again(message: str, code: int) -> tuple[str, int]:
        return render_template("setup.html", message=message, username=username), code

    address_key = f"addr:{client_address()}"
    if (wait := throttle().wait(address_key)) > 0:
        return again(
            _("Too many failed tries. Try again in %(n)d seconds.", n=math.ceil(wait)), 429
        )
    if not setup.matches(_form("setup_code")):
        throttle().failed(address_key)
        _audit_login("anonymous", "failed", "", "wrong setup code")
        return again(_("The setup code is wrong. It is in the appliance's log."), 403)
    password = request.form.get("password", "")
    if password != request.form.get("password2", ""):
        return again(_("The two passwords differ."), 400)
    try:
        member = users.add_user(
            repo(),
            "setup",
            username,
            "admin",
            password,
            address=client_address(),
            at=services().clock(),
        )
    except ValueError as exc:
        return again(str(exc), 400)
    setup.consume()
    value = _start_full_session(member.id)
    _audit_login(member.actor, "ok", member.name, "first admin, from the setup page")
    return _set_session_cookie(redirect("/"), value, session_policy().max_age)


# -- wall screens ---------------------------------------------------------------------------
@bp.get("/wall/open")
@public
def wall_open() -> Response | tuple[str, int]:
    """Trade a viewer API token in the URL for a wall-screen session (no idle expiry)."""
    value = request.args.get("token", "")
    identity = tokens.authenticate(repo(), value, at=services().clock()) if value else None
    if identity is None or identity.role != "viewer":
        _audit_login("anonymous", "failed", "", "wall screen: not a viewer token")
        message = _(
            "A wall screen needs a valid viewer token: dialwatch token create --role viewer"
        )
        return render_template("error.html", code=401, message=message), 401
    cookie = _start_full_session(identity.user_id, kiosk=True)
    _audit_login(identity.actor, "ok", identity.user, "wall screen")
    resp = make_response(redirect(url_for("dashboard.wall_page")))
    return _set_session_cookie(resp, cookie, session_policy().max_age)
