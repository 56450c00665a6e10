"""The Dialwatch web app: public status page, staff console and JSON API.

``create_app(services)`` builds the Flask app: no scheduler and no threads
start here (the engine runs those; ``web.server.serve`` serves the app with
waitress). Every request passes ``web.guard`` first: staff routes need a
login session or an API token, on any listener.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from urllib.parse import urlencode

from flask import Flask, Response, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from core.config import format_duration
from monitor.store.repository import StateRepository
from web import format as fmt
from web import guard
from web.i18n import (
    HEALTH_LABELS,
    LANG_COOKIE,
    LANGUAGE_NAMES,
    LOCALES,
    DialwatchBabel,
    absolute_time,
    choose_locale,
    iso,
    lang_tag,
    locale_for_tag,
    relative_time,
    valid_timezone,
)
from web.login_throttle import LoginThrottle
from web.rate_limit import WindowLimit
from web.services import WebServices
from web.views import current_services

__all__ = ["WebServices", "create_app"]

_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _select_locale() -> str:
    cfg = current_services().config()
    return choose_locale(
        request.args.get("lang"),
        request.cookies.get(LANG_COOKIE),
        [tag for tag, _q in request.accept_languages],
        cfg.site.language,
    )


def _select_timezone() -> str:
    return valid_timezone(current_services().config().site.timezone)


def _remember_language(response: Response) -> Response:
    """``?lang=`` on a page also sets the cookie, so the choice sticks across pages."""
    loc = locale_for_tag(request.args.get("lang"))
    if loc is not None and not request.path.startswith("/api/"):
        response.set_cookie(
            LANG_COOKIE, LOCALES[loc], max_age=365 * 86400, samesite="Lax", httponly=True
        )
    return response


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on
    # same-site form posts, which the CSRF Origin check must refuse.
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", _CSP)
    return response


MAX_BODY = 1024 * 1024
"""Bytes a request body may have: forms and JSON here are small; more is a 413."""


class _CsrfCookie(SecureCookieSessionInterface):
    """Flask's signed cookie, holding only the CSRF token; Secure when served over HTTPS
    (directly or through a trusted proxy), which Flask's static setting cannot say."""

    def get_cookie_secure(self, app: Flask) -> bool:
        return guard.is_secure()


def api_routes(app: Flask) -> list[str]:
    """``METHOD /path`` of every API route, from the app's own url_map."""
    listed = []
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/") or rule.rule == "/healthz":
            methods = sorted(m for m in rule.methods or () if m not in ("HEAD", "OPTIONS"))
            listed.extend(f"{m} {rule.rule}" for m in methods)
    return sorted(listed, key=lambda r: (r.split(" ", 1)[1], r))


def _handle_http_error(exc: HTTPException) -> tuple[Response | str, int]:
    from flask import current_app

    code = exc.code or 500
    original = getattr(exc, "original_exception", None)
    if code == 500 and original is not None:
        # An unhandled error in a view (Flask has logged its traceback): an engine
        # fault in the audit log, merged per route and error class like a probe crash.
        svc: WebServices = current_app.extensions["dialwatch"]
        svc.faults.report(f"web:{request.endpoint or 'unrouted'}", original, object=request.path)
    if request.path.startswith("/api/") or request.path == "/healthz":
        if code == 404:
            message = f"no such API route: {request.method} {request.path}"
            if guard.who() is not None:  # the route list is for staff only
                message += "; routes: " + ", ".join(api_routes(current_app))  # type: ignore[arg-type]
        elif code == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        else:
            message = exc.description or exc.name
        response = jsonify(error=message)
        if code == 405:  # RFC 9110: a 405 lists the methods the route takes
            response.headers.update(dict(exc.get_headers()))
            response.headers["Content-Type"] = "application/json"
        return response, code
    messages = {
        404: _("This page does not exist."),
        405: _("This method is not allowed here."),
        413: _("The request is too large."),
    }
    if code == 400 and exc.description:
        return render_template("error.html", code=code, message=exc.description), code
    return render_template("error.html", code=code, message=messages.get(code, exc.name)), code


def _lang_switch() -> list[tuple[str, str, bool, str]]:
    """(tag, label, current, href) for the language links in the header.

    ``href`` is the same page with every query argument but ``lang`` kept, so
    switching language keeps the dashboard's filters and page.
    """
    current = lang_tag()
    kept = [(key, value) for key, value in request.args.items(multi=True) if key != "lang"]
    return [
        (tag, label, tag == current, "?" + urlencode([*kept, ("lang", tag)]))
        for tag, label in LANGUAGE_NAMES.items()
    ]


def create_app(services: WebServices) -> Flask:
    """Build the web app around the engine's services (see ``WebServices``)."""
    from web import (
        account,
        ack_pages,
        admin_audit,
        admin_tokens,
        admin_users,
        api,
        api_audit,
        api_failover,
        api_incidents,
        api_paging,
        api_runbooks,
        api_subscribers,
        dashboard,
        incident_pages,
        login,
        oncall_page,
        openapi,
        push,
        runbook_pages,
        silences,
        sms_inbound,
        status,
        status_history,
        status_subscribe,
        status_subscribe_push,
        status_subscribe_sms,
    )

    app = Flask(__name__)
    app.extensions["dialwatch"] = services
    app.extensions["dialwatch.repo"] = services.repo or StateRepository(services.db)
    app.extensions["dialwatch.login_throttle"] = LoginThrottle(services.clock)
    app.extensions[status_subscribe.LIMIT_EXTENSION] = WindowLimit(services.clock)
    app.extensions[status_subscribe_sms.DAY_LIMIT_EXTENSION] = WindowLimit(
        services.clock, window=86400.0
    )
    app.secret_key = services.secret_key or secrets.token_bytes(32)
    app.config.update(
        MAX_CONTENT_LENGTH=MAX_BODY,
        SESSION_COOKIE_NAME="dialwatch_csrf",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_CHECK_DEFAULT=False,  # web.guard decides which requests need it
        WTF_CSRF_SSL_STRICT=False,  # the guard checks Origin against web.base_url itself
        WTF_CSRF_TIME_LIMIT=None,  # valid as long as the login session is
    )
    app.session_interface = _CsrfCookie()
    guard.csrf.init_app(app)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    DialwatchBabel(
        app,
        str(Path(app.root_path) / "translations"),
        locale_selector=_select_locale,
        timezone_selector=_select_timezone,
    )

    app.jinja_env.autoescape = True
    app.jinja_env.filters.update(
        abs_time=absolute_time,
        rel_time=relative_time,
        iso=iso,
        latency=fmt.latency,
        duration=format_duration,
        metric_value=fmt.value,
        key_metrics=fmt.key_metrics,
        health_label=lambda h: HEALTH_LABELS.get(h, h),
    )

    @app.context_processor
    def _page_globals() -> dict[str, object]:
        cfg = current_services().config()
        return {
            "site_name": cfg.site.name,
            "site_timezone": valid_timezone(cfg.site.timezone),
            "lang": lang_tag(),
            "lang_switch": _lang_switch(),
            # No version for anonymous callers: it tells an attacker what to try.
            "version": current_services().version if guard.who() is not None else "",
            "who": guard.who(),
        }

    app.register_blueprint(status.bp)
    app.register_blueprint(status_history.bp)
    app.register_blueprint(status_subscribe.bp)
    app.register_blueprint(status_subscribe_sms.bp)
    app.register_blueprint(status_subscribe_push.bp)
    app.register_blueprint(sms_inbound.bp)
    app.register_blueprint(login.bp)
    app.register_blueprint(account.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(incident_pages.bp)
    app.register_blueprint(silences.bp)
    app.register_blueprint(oncall_page.bp)
    app.register_blueprint(runbook_pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(api_incidents.bp)
    app.register_blueprint(api_audit.bp)
    app.register_blueprint(admin_users.bp)
    app.register_blueprint(admin_tokens.bp)
    app.register_blueprint(admin_audit.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(api_paging.bp)
    app.register_blueprint(api_failover.bp)
    app.register_blueprint(api_runbooks.bp)
    app.register_blueprint(api_subscribers.bp)
    app.register_blueprint(ack_pages.bp)
    app.register_blueprint(push.bp)
    app.before_request(guard.guard_request)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.after_request(_remember_language)
    app.after_request(_security_headers)
    return app
