"""Web push for console users: the service worker, the VAPID key, one's own subscriptions.

- ``GET /sw.js``: the service worker, served from the site root so its scope is the
  whole console (a worker under ``/static/`` could only control ``/static/``). It
  shows each push as a notification and opens the message's link on a click. Public:
  it is the same file for everyone and holds nothing secret, and a browser re-fetches
  it to check for updates after its user's session has ended.
- ``GET /api/v1/push/key``: the appliance's VAPID public key (``applicationServerKey``).
- ``POST`` / ``DELETE /api/v1/push/subscriptions``: subscribe or unsubscribe a browser
  for the person asking, whoever they are (a viewer too: it changes only what reaches
  them). The endpoint's host must be a push service on the ``webpush`` channel's
  allow-list. Through ``web.actions.perform``: audited, as the person asking.

The browser side is ``static/push.js`` on the account page; ``PushManager.subscribe``
runs only when a person presses Subscribe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from flask import Blueprint, Response, current_app, jsonify, request, send_file
from pydantic import StringConstraints

from monitor.staff import push_subscriptions as subs
from monitor.staff.users import find_user
from notify.channels.webpush import PUSH_SERVICE_HOSTS, endpoint_refusal
from web import guard, params
from web.actions import ActionRefused, perform
from web.bodies import PLAIN, Body, BodyError, parse_body
from web.i18n import iso
from web.views import current_services, json_error

bp = Blueprint("push", __name__)

_KEY = Annotated[str, StringConstraints(min_length=1, max_length=200), *PLAIN]


class PushKeys(Body):
    p256dh: _KEY
    """The browser's P-256 public key, URL-safe base64."""
    auth: _KEY
    """The browser's 16-byte auth secret, URL-safe base64."""


class SubscribeBody(Body):
    """``PushSubscription.toJSON()`` as the browser gives it."""

    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=subs.MAX_ENDPOINT), *PLAIN]
    keys: PushKeys
    expirationTime: int | float | None = None  # noqa: N815 - the browser's own name
    """Ignored: the push service says when it is gone (404/410)."""


class UnsubscribeBody(Body):
    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=subs.MAX_ENDPOINT), *PLAIN]


ROUTE_BODIES: dict[str, type[Body]] = {
    "push.subscribe": SubscribeBody,
    "push.unsubscribe": UnsubscribeBody,
}
"""The body each route takes, by endpoint (for the OpenAPI document)."""


@bp.errorhandler(params.ParamError)
def _bad_param(exc: params.ParamError) -> tuple[Response, int]:
    return json_error(str(exc), 400)


@bp.errorhandler(BodyError)
def _bad_body(exc: BodyError) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


@bp.errorhandler(ActionRefused)
def _refused(exc: ActionRefused) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


def allowed_hosts() -> frozenset[str]:
    """Push service hosts a subscription may name: those of the configured ``webpush``
    channels (the default list when there is none)."""
    hosts: set[str] = set()
    for channel in getattr(current_services().config(), "channels", ()) or ():
        if channel.kind == "webpush":
            hosts.update(channel.allowed_hosts)
    return frozenset(hosts or PUSH_SERVICE_HOSTS)


def _me() -> guard.Who:
    current = guard.who()
    assert current is not None  # the guard let only staff in
    return current


def subscription_json(s: subs.Subscription) -> dict[str, Any]:
    return {
        "id": s.id,
        "service": s.label,
        "created_at": iso(s.created_at),
        "last_success_at": iso(s.last_success_at),
        "user_agent": s.user_agent,
    }


@bp.get("/sw.js")
@guard.public
def service_worker() -> Response:
    path = Path(current_app.root_path) / "static" / "sw.js"
    response = send_file(path, mimetype="text/javascript", max_age=0)
    # Checked on every navigation by the browser anyway; never served stale by a cache.
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/api/v1/push/key")
def public_key() -> tuple[Response, int]:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    key = current_services().vapid_key
    if key is None:
        # 404, not 501: the route is there, the key is not (a 5xx would say the API broke).
        return json_error("web push is not set up on this appliance (no VAPID key)", 404)
    return jsonify(public_key=key.public_key), 200


@bp.post("/api/v1/push/subscriptions")
def subscribe() -> tuple[Response, int]:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    body = parse_body(SubscribeBody)
    me = _me()
    try:
        endpoint = subs.check_endpoint(body.endpoint)
    except ValueError as exc:
        return json_error(str(exc), 400)
    allowed = allowed_hosts()
    refusal = endpoint_refusal(endpoint, allowed)
    if refusal is not None:
        return json_error(
            f"{refusal}; allowed: {', '.join(sorted(allowed))} (an admin adds a push "
            "service to the webpush channel's allowed_hosts)",
            400,
        )
    created = perform(
        "push.subscribe",
        f"user:{me.user}",
        subs.add,
        me.user,
        endpoint,
        body.keys.p256dh,
        body.keys.auth,
        user_agent=request.headers.get("User-Agent", ""),
        after={"service": subs.label(endpoint)},
    )
    return jsonify(subscription=subscription_json(created)), 201


@bp.delete("/api/v1/push/subscriptions")
def unsubscribe() -> tuple[Response, int]:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    body = parse_body(UnsubscribeBody)
    me = _me()
    removed = perform(
        "push.unsubscribe",
        f"user:{me.user}",
        subs.remove,
        me.user,
        body.endpoint,
        before={"service": subs.label(body.endpoint)},
    )
    return jsonify(removed=removed), 200


def own_subscriptions() -> list[subs.Subscription]:
    """The subscriptions of the person asking (for the account page)."""
    with current_services().db.connect() as conn:
        row = find_user(conn, _me().user)
        return [] if row is None else subs.list_for(conn, row.id)


__all__ = ["ROUTE_BODIES", "bp", "own_subscriptions"]
