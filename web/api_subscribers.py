"""Status page subscribers for admins: who hears about what (masked), and their data on
request — the export of one subscriber (the address opened) and its erasure for good.

- ``GET /api/v1/subscribers`` (admins): every subscriber, newest first, addresses masked.
- ``GET /api/v1/subscribers/<id>/export`` (admins): everything kept about one, the address
  opened; audited as ``subscriber.export``.
- ``DELETE /api/v1/subscribers/<id>`` (admins): erase one and its address; audited as
  ``subscriber.erase``.

Subscriber data is personal data: nothing here is logged, and the list never opens an
address.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from notify import subscribers
from notify.service import Notifications
from notify.subscribers import SubscriberRow
from web import guard, params
from web.actions import ActionRefused, perform
from web.i18n import iso
from web.views import current_services, json_error

bp = Blueprint("api_subscribers", __name__, url_prefix="/api/v1")
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))


@bp.errorhandler(params.ParamError)
def _bad_param(exc: params.ParamError) -> tuple[Response, int]:
    return json_error(str(exc), 400)


@bp.errorhandler(ActionRefused)
def _refused(exc: ActionRefused) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


def _notifications() -> Notifications:
    found = current_services().notifications
    if found is None:
        raise ActionRefused(409, "notifications are not running in this process")
    return found


def subscriber_json(row: SubscriberRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "channel": row.channel,
        "address": row.masked,
        "language": row.language,
        "components": list(row.components),
        "state": row.state,
        "created_at": iso(row.created_at),
        "confirmed_at": iso(row.confirmed_at) if row.confirmed_at is not None else None,
        "ended_at": iso(row.ended_at) if row.ended_at is not None else None,
        "reason": row.reason or None,
        "failures": row.failures,
    }


@bp.get("/subscribers")
@guard.require("admin")
def list_subscribers() -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    with current_services().db.connect() as conn:
        return jsonify(items=[subscriber_json(r) for r in subscribers.listed(conn)])


@bp.get("/subscribers/<id:subscriber_id>/export")
@guard.require("admin")
def export(subscriber_id: int) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    keys = _notifications().subscriber_keys

    def read(repo: Any, actor: str, *, at: float) -> dict[str, Any]:
        with repo.reading() as conn:
            return subscribers.export(conn, keys, subscriber_id)

    data = perform("subscriber.export", f"subscriber:{subscriber_id}", read)
    for key in ("created_at", "confirmed_at", "ended_at"):
        data[key] = iso(data[key]) if data[key] is not None else None
    return jsonify(data)


@bp.delete("/subscribers/<id:subscriber_id>")
@guard.require("admin")
def erase(subscriber_id: int) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())

    def remove(repo: Any, actor: str, *, at: float) -> None:
        subscribers.erase(repo, subscriber_id)

    perform("subscriber.erase", f"subscriber:{subscriber_id}", remove)
    return jsonify(erased=subscriber_id)
