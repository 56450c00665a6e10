"""Who is asking, and may they: one guard in front of every page and API route.

``guard_request`` runs before every request. Routes are staff-only unless
marked ``@public``; ``@require("operator")`` (or ``"admin"``) raises the
role a route needs above the default ``viewer``, so a route someone forgot
to mark is closed, not open. For staff routes it checks, in order: the Host
header (DNS rebinding), who is asking (a login session cookie or an
``Authorization: Bearer`` API token), the role, the second factor where
``web.require_2fa_for`` asks for one, and — for a state change made with a
session cookie — the Origin and the CSRF token. A public route's state
changes need the Origin and the CSRF token too, unless it is a
``@signed_link`` (the one-click unsubscribe a mail client posts). Anonymous pages redirect to
``/login``; anonymous API calls get a 401 with the reason; a role too low
gets a 403 naming the role needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import (
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_wtf.csrf import CSRFProtect

from monitor.staff import sessions, tokens
from monitor.staff.roles import at_least, lower
from monitor.store.repository import StateRepository
from web import hosts, proxies
from web.services import WebServices

F = TypeVar("F", bound=Callable[..., Any])
SESSION_COOKIE = "dialwatch_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_PUBLIC = "_dialwatch_public"
_ROLE = "_dialwatch_role"
_ANY_2FA_STATE = "_dialwatch_before_2fa"
_SIGNED_LINK = "_dialwatch_signed_link"

csrf = CSRFProtect()


def require(role: str) -> Callable[[F], F]:
    """The role a route needs (default for every staff route: ``viewer``)."""

    def mark(view: F) -> F:
        setattr(view, _ROLE, role)
        return view

    return mark


def public(view: F) -> F:
    """A route anyone may use: the status page, /healthz, the login pages."""
    setattr(view, _PUBLIC, True)
    return view


def signed_link(view: F) -> F:
    """A public POST whose URL carries a signed token that is all its authentication: no
    Origin check and no CSRF token. Only for the RFC 8058 one-click unsubscribe, which a
    mail client posts on its own (``List-Unsubscribe=One-Click``, no cookie, no token,
    its own Origin or none); a forged request would need the token, and whoever has the
    token can make the request anyway. Use with ``@public``."""
    setattr(view, _SIGNED_LINK, True)
    return view


def provider_callback(view: F) -> F:
    """A public POST a service provider makes (an SMS provider forwarding a reply): no
    Origin check and no CSRF token, because the provider has neither; the view must check
    the provider's own signature before it reads anything. Use with ``@public``."""
    setattr(view, _SIGNED_LINK, True)
    return view


def before_second_factor(view: F) -> F:
    """A staff route a user who must set up a second factor may still use (to set it up)."""
    setattr(view, _ANY_2FA_STATE, True)
    return view


@dataclass(frozen=True, slots=True)
class Who:
    """The person (or script) behind a request."""

    actor: str
    """``user:alice`` for a login session, ``token:7`` for an API token."""
    user: str
    user_id: int
    role: str
    via: str
    """``session`` or ``token``."""
    session_key: str | None = None
    second_factor: bool = False
    kiosk: bool = False


def services() -> WebServices:
    return current_app.extensions["dialwatch"]


def repo() -> StateRepository:
    return current_app.extensions["dialwatch.repo"]


def who() -> Who | None:
    return g.get("who")


def client_address() -> str:
    client = g.get("client")
    return client.address if client is not None else (request.remote_addr or "")


def is_secure() -> bool:
    client = g.get("client")
    return bool(client.secure) if client is not None else request.is_secure


def is_api() -> bool:
    return request.path.startswith("/api/") or request.path == "/healthz"


def session_policy() -> sessions.SessionPolicy:
    web = services().config().web
    return sessions.SessionPolicy(idle=web.session_idle, max_age=web.session_max_age)


def bearer_token() -> str | None:
    scheme, _sep, value = request.headers.get("Authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _authenticate() -> tuple[Who | None, str | None]:
    """Who is asking, or None with the reason a credential that was sent failed."""
    svc = services()
    now = svc.clock()
    token = bearer_token()
    if token is not None:
        identity = tokens.authenticate(repo(), token, at=now)
        if identity is None:
            return None, "the API token is unknown, revoked or expired"
        return Who(identity.actor, identity.user, identity.user_id, identity.role, "token"), None
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        info = sessions.resolve(repo(), cookie, policy=session_policy(), at=now)
        if info is None or info.stage != "full":
            return None, "the login session has ended; log in again"
        role = lower(info.role, "viewer") if info.kiosk else info.role
        return (
            Who(
                info.actor,
                info.user,
                info.user_id,
                role,
                "session",
                info.key,
                info.second_factor,
                info.kiosk,
            ),
            None,
        )
    return None, None


def _refuse(code: int, message: str) -> tuple[Response | str, int]:
    if is_api():
        resp = jsonify(error=message)
        if code == 401:
            resp.headers["WWW-Authenticate"] = 'Bearer realm="dialwatch"'
        return resp, code
    return render_template("error.html", code=code, message=message), code


def _allowed_origins() -> set[str]:
    cfg = services().config().web
    origins = {f"{'https' if is_secure() else 'http'}://{request.host.lower()}"}
    if cfg.base_url:
        parts = urlsplit(cfg.base_url)
        origins.add(f"{parts.scheme}://{parts.netloc.lower()}")
    return origins


def _cross_site() -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # scripts send none; the CSRF token still has to match
    return origin == "null" or origin.lower().rstrip("/") not in _allowed_origins()


def guard_request() -> Any:
    svc = services()
    cfg = svc.config()
    g.client = proxies.client(
        request.remote_addr,
        request.headers.get("X-Forwarded-For"),
        request.headers.get("X-Forwarded-Proto"),
        request.is_secure,
        cfg.web.trusted_proxies,
    )
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    if limit is not None and (request.content_length or 0) > limit:
        abort(413)  # before anything reads it, and whether or not the route would
    view = current_app.view_functions.get(request.endpoint) if request.endpoint else None
    g.who, failure = _authenticate() if view is not None or is_api() else (None, None)
    if view is None:
        return None  # 404 / 405: the error handlers answer (and show routes only to staff)
    if request.endpoint == "static" or getattr(view, _PUBLIC, False):
        if request.method not in SAFE_METHODS and not getattr(view, _SIGNED_LINK, False):
            if _cross_site():
                return _refuse(403, _("Cross-site requests are refused."))
            csrf.protect()
        return None
    allowed = hosts.allowed_hosts(
        cfg.web.base_url, cfg.web.allowed_hosts, svc.listen_host, svc.listen_port
    )
    if not hosts.host_allowed(request.host, allowed):
        return _refuse(
            400,
            f"this console does not answer to the host name {request.host!r}; "
            "use the address in web.base_url (or add it to web.allowed_hosts)",
        )
    current = g.who
    if current is None:
        if is_api():
            return _refuse(
                401,
                failure
                or "log in, or send Authorization: Bearer <token> "
                "(make one with `dialwatch token create --user NAME`)",
            )
        target = request.full_path if request.query_string else request.path
        return redirect(url_for("login.login_page", next=target))
    needed = getattr(view, _ROLE, "viewer")
    if not at_least(current.role, needed):
        return _refuse(
            403,
            _(
                "This needs the %(needed)s role; you have %(role)s.",
                needed=needed,
                role=current.role,
            ),
        )
    if (
        current.via == "session"
        and current.role in cfg.web.require_2fa_for
        and not current.second_factor
        and not getattr(view, _ANY_2FA_STATE, False)
    ):
        if is_api():
            return _refuse(403, "set up a second factor (TOTP) first: your role requires one")
        return redirect(url_for("account.second_factor_page"))
    if request.method not in SAFE_METHODS:
        # Origin for everyone (a script sends none); the CSRF token for cookie logins
        # only: a browser never attaches a bearer token on its own.
        if _cross_site():
            return _refuse(403, _("Cross-site requests are refused."))
        if current.via == "session":
            csrf.protect()
    return None
