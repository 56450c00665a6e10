"""Subscribing on the public status page by web push: this browser, no account, no address.

- ``GET /status/sw.js`` — the status page's own service worker (its scope is
  ``/status/``, apart from the console's ``/sw.js``): it shows a pushed notice
  and opens the status page on a click. Public, the same file for everyone.
- ``POST /status/subscribe/push`` — JSON ``{"subscription": PushSubscription.toJSON(),
  "components": [...]}`` with the subscribe page's CSRF token (``X-CSRFToken``).
  The endpoint's host must be on the ``allowed_hosts`` of ``customers.push_channel``
  — checked before anything is stored, and again before every push, so a made-up
  endpoint never makes the appliance connect anywhere (SSRF). Active at once: the
  browser's permission prompt is the opt-in, and only that browser can read what is
  pushed to it. The same limits as the e-mail form (per endpoint and per client
  network an hour, 429). The page's ``?lang=`` is the subscriber's language.
- ``POST /status/subscribe/push/lookup`` — ``{"endpoint"}``: the components this
  browser hears about (the page pre-checks them), or that it hears nothing.
- ``POST /status/subscribe/push/unsubscribe`` — ``{"endpoint"}``: it hears nothing
  more. The endpoint is the capability (whoever knows it can push to that browser),
  so it is sent in a body, never in a URL, and is enough to unsubscribe.

The browser side is ``static/status_push.js`` on ``/status/subscribe``: without
JavaScript, or in a browser without push, the page is the e-mail form alone.
Errors are JSON ``{"error": sentence}`` in the page's language, never a 500.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from flask import Blueprint, Response, current_app, jsonify, send_file, url_for
from flask_babel import gettext as _
from flask_wtf.csrf import generate_csrf
from pydantic import Field, StringConstraints

from monitor.staff.push_subscriptions import MAX_ENDPOINT
from notify import subscribers
from notify.channels.webpush import PUSH_SERVICE_HOSTS, BrowserSubscription
from notify.subscribers import AddressRefused
from web import guard
from web.bodies import PLAIN, Body, BodyError, parse_body
from web.i18n import lang_tag
from web.rate_limit import network_of
from web.status import Choice, public_services, subscriptions_open
from web.status_subscribe import _address_sentence, _choices, _limit, _limits
from web.views import current_services, json_error

bp = Blueprint("status_subscribe_push", __name__)

_ENDPOINT = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ENDPOINT), *PLAIN]
_KEY = Annotated[str, StringConstraints(min_length=1, max_length=200), *PLAIN]
_COMPONENT = Annotated[str, StringConstraints(min_length=1, max_length=64), *PLAIN]


class BrowserKeys(Body):
    p256dh: _KEY
    auth: _KEY


class BrowserSubscriptionBody(Body):
    """``PushSubscription.toJSON()``."""

    endpoint: _ENDPOINT
    keys: BrowserKeys
    expirationTime: int | float | None = None  # noqa: N815 - the browser's own name


class PushSubscribeBody(Body):
    subscription: BrowserSubscriptionBody
    components: Annotated[list[_COMPONENT], Field(max_length=subscribers.MAX_COMPONENTS)]


class EndpointBody(Body):
    endpoint: _ENDPOINT


ROUTE_BODIES: dict[str, type[Body]] = {
    "status_subscribe_push.subscribe": PushSubscribeBody,
    "status_subscribe_push.lookup": EndpointBody,
    "status_subscribe_push.unsubscribe": EndpointBody,
}


class _Closed(Exception):
    """Push subscriptions are not offered here (503)."""


@bp.errorhandler(BodyError)
def _bad_body(exc: BodyError) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


@bp.errorhandler(_Closed)
def _closed(exc: _Closed) -> tuple[Response, int]:
    return json_error(_("Notifications in the browser are not available here."), 503)


def push_open() -> bool:
    """Whether visitors may subscribe a browser: ``customers.push_channel`` is set and the
    appliance has its VAPID key."""
    svc = current_services()
    return subscriptions_open(svc, "webpush") and svc.vapid_key is not None


def allowed_hosts() -> tuple[str, ...]:
    """The push services a subscriber's browser may use: the push channel's list."""
    cfg = current_services().config()
    name = cfg.customers.channel_for("webpush")
    for channel in cfg.channels:
        if channel.id == name and channel.kind == "webpush":
            return tuple(channel.allowed_hosts)
    return PUSH_SERVICE_HOSTS


def _open() -> None:
    public_services()  # a private status page has no subscribers among strangers
    if not push_open():
        raise _Closed()


def config_for_page(choices: list[Choice]) -> dict[str, Any] | None:
    """What static/status_push.js needs on the subscribe page (None: push is not offered):
    routes, the VAPID key, the CSRF token and its sentences (translated here)."""
    if not push_open() or not choices:
        return None
    key = current_services().vapid_key
    assert key is not None  # push_open
    lang = lang_tag()
    return {
        "worker": url_for("status_subscribe_push.service_worker"),
        "scope": "/status/",
        "key": key.public_key,
        "subscribe": url_for("status_subscribe_push.subscribe", lang=lang),
        "lookup": url_for("status_subscribe_push.lookup", lang=lang),
        "unsubscribe": url_for("status_subscribe_push.unsubscribe", lang=lang),
        "csrf": generate_csrf(),
        "text": {
            "subscribe": _("Notify this browser"),
            "update": _("Save the components for this browser"),
            "unsubscribe": _("Stop notifying this browser"),
            "subscribed": _("This browser gets notifications about the components ticked."),
            "not_subscribed": _("This browser does not get notifications."),
            "unsupported": _("This browser cannot receive notifications from this page."),
            "denied": _("Notifications are blocked for this site in the browser's settings."),
            "choose": _("Choose at least one component."),
            "failed": _("That did not work: %(reason)s", reason="{reason}"),
        },
    }


@bp.get("/status/sw.js")
@guard.public
def service_worker() -> Response:
    path = Path(current_app.root_path) / "static" / "status_sw.js"
    response = send_file(path, mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"  # the browser checks it for updates
    return response


@bp.post("/status/subscribe/push")
@guard.public
def subscribe() -> tuple[Response, int]:
    _open()
    body = parse_body(PushSubscribeBody)
    service = current_services().notifications
    assert service is not None  # push_open
    keys = service.subscriber_keys
    browser = BrowserSubscription(
        body.subscription.endpoint.strip(),
        body.subscription.keys.p256dh,
        body.subscription.keys.auth,
    )
    hosts = allowed_hosts()
    try:
        endpoint = subscribers.normalize("webpush", browser.endpoint, push_hosts=hosts)
    except AddressRefused as exc:
        return json_error(_push_sentence(exc), 400)
    limits = _limits()
    counted = {
        "push:" + keys.digest("webpush", endpoint): limits.per_address_per_hour,
        "network:" + network_of(guard.client_address()): limits.per_network_per_hour,
    }
    wait = _limit().take(counted)
    if wait > 0:
        answer = json_error(
            _("Too many requests for this browser or from your network: try again later."), 429
        )
        answer[0].headers["Retry-After"] = str(int(wait) + 1)
        return answer
    choices = _choices()
    try:
        row = subscribers.subscribe_push(
            guard.repo(), keys, browser, body.components, lang_tag(),
            known=[c.id for c in choices], at=current_services().clock(), push_hosts=hosts,
        )  # fmt: skip
    except AddressRefused as exc:
        _limit().give_back(counted)  # nothing was stored: it does not count
        return json_error(_push_sentence(exc), 400)
    return jsonify(subscribed=True, components=list(row.components)), 201


@bp.post("/status/subscribe/push/lookup")
@guard.public
def lookup() -> tuple[Response, int]:
    _open()
    row = _found(parse_body(EndpointBody).endpoint)
    if row is None or row.state != "active":
        return jsonify(subscribed=False, components=[]), 200
    return jsonify(subscribed=True, components=list(row.components)), 200


@bp.post("/status/subscribe/push/unsubscribe")
@guard.public
def unsubscribe() -> tuple[Response, int]:
    _open()
    row = _found(parse_body(EndpointBody).endpoint)
    if row is not None:
        subscribers.unsubscribe(guard.repo(), row.id, at=current_services().clock())
    # The same answer for an endpoint we never had: it hears nothing either way.
    return jsonify(subscribed=False), 200


def _found(endpoint: str) -> subscribers.SubscriberRow | None:
    service = current_services().notifications
    assert service is not None  # push_open
    with guard.repo().reading() as conn:
        return subscribers.find_push(conn, service.subscriber_keys, endpoint)


def _push_sentence(exc: AddressRefused) -> str:
    text = str(exc)
    if "not an allowed push service" in text or "https://" in text:
        return _("This browser's push service is not accepted here.")
    if text.startswith(("keys.", "endpoint")):
        return _("This browser sent a subscription that does not work.")
    return _address_sentence(exc)
