"""The paging API: who is on call, every delivery attempt, channel health, "send test".

- ``GET /api/v1/oncall``: per schedule, who is on call now and who is next
  (with the handoff time), overrides included.
- ``GET /api/v1/deliveries?incident=ID``: every delivery about an incident
  (or the newest ones without ``incident``), each with its attempts: the
  channel, the outcome, the provider's answer, whether it was interrupted
  by a restart.
- ``GET /api/v1/channels``: each channel's kind, whether it is disabled, and
  its health from its last attempts (degraded after ``paging.degraded_after``
  failures in a row).
- ``POST /api/v1/channels/<id>/test`` (operators): send a test message over
  one channel, to one person (``{"person": "zhang"}``) or to the channel
  itself; the answer is the provider's, and it is audited.
- ``GET /api/v1/oncall/overrides``: the overrides in force and to come;
  ``POST`` (operators) adds one (``{schedule, person, from, to, reason}``),
  ``DELETE /api/v1/oncall/overrides/<id>`` (operators) removes one; both
  audited (``web.oncall_ops``, the same the ``/oncall`` page calls).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request

from monitor import audit
from notify import outbox
from notify.channels.base import DeliveryError
from notify.paging import overrides_at
from notify.roster import roster_of
from notify.schedules import on_call
from notify.service import Notifications, paging_of
from web import guard, params
from web import oncall_ops as ops
from web.actions import ActionRefused
from web.bodies import Body, BodyError, parse_body
from web.guard import client_address, who
from web.i18n import iso
from web.views import current_services, json_error

bp = Blueprint("api_paging", __name__, url_prefix="/api/v1")
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

ONCALL_HORIZON = 35 * 86400.0
"""How far ahead "next" is looked for: past the longest rotation in practice."""


class NoPaging(Exception):
    pass


def notifications() -> Notifications:
    found = current_services().notifications
    if found is None:
        raise NoPaging()
    return found


@bp.errorhandler(params.ParamError)
def _bad_param(exc: params.ParamError) -> tuple[Response, int]:
    return json_error(str(exc), 400)


@bp.errorhandler(BodyError)
def _bad_body(exc: BodyError) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


@bp.errorhandler(ActionRefused)
def _refused(exc: ActionRefused) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


@bp.errorhandler(NoPaging)
def _no_paging(exc: NoPaging) -> tuple[Response, int]:
    # The request was fine; this process (a test app, a tool) sends nothing.
    return json_error("paging is not running in this process", 409)


def _shift(shift: Any) -> dict[str, Any] | None:
    if shift is None:
        return None
    return {
        "person": shift.person,
        "from": iso(shift.start) if shift.start is not None else None,
        "until": iso(shift.end) if shift.end is not None else None,
    }


@bp.get("/oncall")
def oncall() -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    roster = roster_of(current_services().config())
    now = current_services().clock()
    with current_services().db.connect() as conn:
        overrides = overrides_at(conn, now)
    items = []
    for schedule in roster.schedules.values():
        found = on_call(schedule, now, overrides, horizon=ONCALL_HORIZON)
        items.append(
            {
                "schedule": schedule.id,
                "name": schedule.display_name,
                "timezone": schedule.timezone,
                "now": _shift(found.now),
                "next": _shift(found.next),
            }
        )
    return jsonify(items=items, at=iso(now))


@bp.get("/oncall/overrides")
def overrides() -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    now = current_services().clock()
    return jsonify(items=[ops.override_json(r, now) for r in ops.listed(now)])


@bp.post("/oncall/overrides")
@guard.require("operator")
def add_override() -> tuple[Response, int]:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    row = ops.add_override(parse_body(ops.OverrideBody))
    return jsonify(ops.override_json(row, current_services().clock())), 201


@bp.delete("/oncall/overrides/<id:override_id>")
@guard.require("operator")
def remove_override(override_id: int) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    row = ops.remove_override(override_id)
    return jsonify(removed=ops.override_json(row, current_services().clock()))


ROUTE_BODIES: Mapping[str, type[Body]] = {"api_paging.add_override": ops.OverrideBody}
"""The body each route takes, by endpoint (for the OpenAPI document)."""


def _attempt(a: outbox.AttemptRow) -> dict[str, Any]:
    return {
        "id": a.id,
        "channel": a.channel_id,
        "started_at": iso(a.started_at),
        "ended_at": iso(a.ended_at) if a.ended_at is not None else None,
        "outcome": a.outcome,
        "permanent": a.permanent,
        "error_class": a.error_class,
        "reason": a.reason,
        "provider_id": a.provider_id,
        "answer": a.answer,
    }


def delivery_json(view: outbox.DeliveryView) -> dict[str, Any]:
    d = view.delivery
    return {
        "id": d.id,
        "person": d.person_id,
        "kind": d.kind,
        "state": d.state,
        "created_at": iso(d.created_at),
        "due_at": iso(d.due_at),
        "sent_at": iso(d.sent_at) if d.sent_at is not None else None,
        "channels": list(d.channels),
        "channel": d.channel,
        "reason": d.reason,
        "notices": [n.to_json() for n in d.notices],
        "attempts": [_attempt(a) for a in view.attempts],
    }


@bp.get("/deliveries")
def deliveries() -> Response:
    args = request.args.to_dict(flat=False)
    params.reject_unknown(args, ("incident", "limit"))
    incident = None
    if params.single(args, "incident") is not None:
        incident = params.integer(args, "incident", 0, 1, 2**31 - 1)
    limit = params.integer(args, "limit", 100, 1, 500)
    with current_services().db.connect() as conn:
        if incident is not None:
            views = outbox.of_incident(conn, incident, limit)
        else:
            views = outbox.recent(conn, limit)
    return jsonify(items=[delivery_json(v) for v in views])


def channel_rows() -> list[dict[str, Any]]:
    """Each configured channel with its health from its last attempts (the API and /oncall)."""
    service = current_services().notifications
    config = current_services().config()
    last = paging_of(config).degraded_after
    disabled = service.disabled() if service is not None else {}
    items = []
    with current_services().db.connect() as conn:
        for entry in getattr(config, "channels", []):
            outcomes = outbox.channel_outcomes(conn, entry.id, last)
            if entry.id in disabled:
                health = "disabled"
            elif len(outcomes) >= last and all(o == "failed" for o in outcomes):
                health = "degraded"
            elif not outcomes:
                health = "unknown"
            else:
                health = "ok"
            items.append(
                {
                    "id": entry.id,
                    "kind": entry.kind,
                    "name": entry.display_name,
                    "health": health,
                    "disabled": disabled.get(entry.id),
                    "last_outcomes": outcomes,
                }
            )
    return items


class TestRefused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def send_test(channel_id: str, person: object) -> dict[str, Any]:
    """Send a test message over one channel (to one person, or None), audited; the outcome
    as a dict (``sent``, ``answer`` or ``reason``). TestRefused for an unknown channel or
    person, or when paging does not run here."""
    service = current_services().notifications
    if service is None:
        raise TestRefused(409, "paging is not running in this process")
    if person is not None and (not isinstance(person, str) or person not in service.roster.people):
        known = ", ".join(service.roster.people) or "none"
        raise TestRefused(404, f"no person {person!r} (people: {known})")
    config = current_services().config()
    channel_ids = [c.id for c in getattr(config, "channels", [])]
    if channel_id not in channel_ids:
        raise TestRefused(
            404, f"no channel {channel_id!r} (channels: {', '.join(channel_ids) or 'none'})"
        )
    current = who()
    assert current is not None  # the guard let only staff in
    now = current_services().clock()
    result: dict[str, Any]
    try:
        receipt = service.send_test(channel_id, person, current.actor, now)
        result = {"sent": True, "provider_id": receipt.provider_id, "answer": receipt.answer}
        outcome = "ok"
    except DeliveryError as exc:
        result = {"sent": False, "reason": exc.reason, "permanent": exc.permanent}
        outcome = "failed"
    except Exception as exc:  # a channel bug is this test's failure, not a 500
        result = {
            "sent": False,
            "reason": f"the channel failed: {type(exc).__name__}",
            "permanent": False,
        }
        outcome = "failed"
    with guard.repo().transaction() as conn:
        audit.record(
            conn,
            at=now,
            actor=current.actor,
            address=client_address(),
            action="channel.test",
            result=outcome,  # type: ignore[arg-type]
            object=f"channel:{channel_id}",
            after={"person": person, **{k: v for k, v in result.items() if k != "answer"}},
        )
    return {"channel": channel_id, "person": person, "at": iso(now), **result}


@bp.get("/channels")
def channels() -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    return jsonify(items=channel_rows())


@bp.post("/channels/<channel_id>/test")
@guard.require("operator")
def channel_test(channel_id: str) -> tuple[Response, int] | Response:
    body = request.get_json(silent=True)
    if body is None:
        body = {}
    if not isinstance(body, dict) or set(body) - {"person"}:
        return json_error('the body must be {} or {"person": "<person id>"}', 400)
    try:
        return jsonify(send_test(channel_id, body.get("person")))
    except TestRefused as exc:
        return json_error(exc.reason, exc.status)
