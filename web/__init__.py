"""The Dialwatch web app: public status page, staff dashboard and JSON API.

``create_app(services)`` builds a Flask app that only reads: no scheduler and
no threads start here (the engine runs those; ``web.server.serve`` serves the
app with waitress).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, jsonify, render_template, request
from flask_babel import gettext as _
from werkzeug.exceptions import HTTPException

from core.config import format_duration
from web import format as fmt
from web.i18n import (
    HEALTH_LABELS,
    LANG_COOKIE,
    LOCALES,
    DialwatchBabel,
    absolute_time,
    choose_locale,
    lang_tag,
    locale_for_tag,
    relative_time,
    valid_timezone,
)
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
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    if response.mimetype == "text/html":
        response.headers.setdefault("Content-Security-Policy", _CSP)
    return response


def _handle_http_error(exc: HTTPException) -> tuple[Response | str, int]:
    from web import api

    code = exc.code or 500
    if request.path.startswith("/api/") or request.path == "/healthz":
        if code == 404:
            message = f"no such API route: {request.method} {request.path}; routes: {api.ROUTES}"
        elif code == 405:
            message = f"method {request.method} is not allowed on {request.path}"
        else:
            message = exc.description or exc.name
        return jsonify(error=message), code
    messages = {404: _("This page does not exist."), 405: _("This method is not allowed here.")}
    return render_template("error.html", code=code, message=messages.get(code, exc.name)), code


def _lang_switch() -> list[tuple[str, str, bool]]:
    """(tag, label, current) for the language links in the header."""
    current = lang_tag()
    return [(tag, label, tag == current) for tag, label in (("zh-CN", "中文"), ("en", "English"))]


def create_app(services: WebServices) -> Flask:
    """Build the web app around the engine's services (see ``WebServices``)."""
    from web import api, dashboard, status

    app = Flask(__name__)
    app.extensions["dialwatch"] = services
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
            "version": current_services().version,
        }

    app.register_blueprint(status.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(api.bp)
    app.register_error_handler(HTTPException, _handle_http_error)
    app.after_request(_remember_language)
    app.after_request(_security_headers)
    return app
