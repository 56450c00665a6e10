"""JSON API for the incident workflow, under ``/api/v1``.

Acknowledge, internal notes, customer updates, edits (cause, ETA, summary,
severity), resolve and declare; silences and maintenance windows started by
hand. Each change is ``web.incident_ops`` (the same functions the console's
pages call): the monitor's own function run through ``web.actions.perform``,
as the person asking, on the appliance's clock, audited when done and when
refused. Changes need an operator (or an
admin); the lists are for any staff.

Bodies are strict JSON objects (``web.bodies``); query parameters are strict
too (``web.params``): anything wrong is a 4xx ``{"error": reason}`` naming the
field, never a 500. ``web.openapi`` documents every route here from the same
body models.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, jsonify, request

from monitor.store import queries
from web import guard, params
from web import incident_ops as ops
from web.actions import ActionRefused
from web.bodies import Body, BodyError, parse_body
from web.i18n import iso
from web.incident_bodies import (
    CustomerUpdateBody,
    DeclareBody,
    EmptyBody,
    IncidentPatch,
    MaintenanceBody,
    NoteBody,
    ResolveBody,
    SilenceBody,
)
from web.views import current_services, incident_json, json_error

bp = Blueprint("api_incidents", __name__, url_prefix="/api/v1")
# Before any route below is added: the rules need the converter when they are compiled.
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))


# -- errors ------------------------------------------------------------------------------
@bp.errorhandler(params.ParamError)
def _bad_param(exc: params.ParamError) -> tuple[Response, int]:
    return json_error(str(exc), 400)


@bp.errorhandler(BodyError)
def _bad_body(exc: BodyError) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


@bp.errorhandler(ActionRefused)
def _refused(exc: ActionRefused) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


# -- plumbing ----------------------------------------------------------------------------
def _no_query() -> None:
    params.reject_unknown(request.args.to_dict(flat=False), ())


def _incident(incident_id: int, code: int = 200) -> tuple[Response, int]:
    row = queries.incident(current_services().db, incident_id)
    if row is None:  # pruned between the change and this read: say what happened
        return json_error(f"no incident {incident_id}", 404)
    return jsonify(incident_json(row)), code


def silence_json(row: queries.SilenceRow, now: float) -> dict[str, object]:
    return {
        "id": row.id,
        "target_id": row.target_id,
        "component_id": row.component_id,
        "incident_id": row.incident_id,
        "starts_at": iso(row.starts_at),
        "ends_at": iso(row.ends_at),
        "created_by": row.created_by,
        "reason": row.reason,
        "lifted_at": iso(row.lifted_at),
        "lifted_by": row.lifted_by,
        "active": row.active(now),
    }


def window_json(row: queries.MaintenanceRow, now: float) -> dict[str, object]:
    return {
        "id": row.id,
        "target_id": row.target_id,
        "starts_at": iso(row.starts_at),
        "ends_at": iso(row.ends_at),
        "created_by": row.created_by,
        "reason": row.reason,
        "ended_at": iso(row.ended_at),
        "ended_by": row.ended_by,
        "active": row.active(now),
    }


# -- incidents ---------------------------------------------------------------------------
@bp.get("/incidents/<id:incident_id>")
def incident(incident_id: int) -> tuple[Response, int]:
    """One incident with its timeline and customer updates."""
    _no_query()
    svc = current_services()
    row = queries.incident(svc.db, incident_id)
    if row is None:
        return json_error(f"no incident {incident_id}", 404)
    body = incident_json(row)
    body["members"] = [
        {
            "target_id": m.target_id,
            "role": m.role,
            "joined_at": iso(m.joined_at),
            "recovered_at": iso(m.recovered_at),
        }
        for m in row.members
    ]
    body["timeline"] = [
        {"at": iso(e.at), "kind": e.kind, "target_id": e.target_id, "text": e.text}
        for e in queries.incident_events(svc.db, incident_id)
    ]
    body["customer_updates"] = [
        {"id": u.id, "published_at": iso(u.published_at), "text": dict(u.text)}
        for u in queries.customer_updates(svc.db, [incident_id])[incident_id]
    ]
    return jsonify(body), 200


@bp.post("/incidents/<id:incident_id>/ack")
@guard.require("operator")
def acknowledge(incident_id: int) -> tuple[Response, int]:
    _no_query()
    parse_body(EmptyBody, required=False)
    try:
        ops.acknowledge(incident_id)
    except ops.AlreadyAcknowledged as exc:
        return json_error(
            exc.reason,
            409,
            acknowledged_by=exc.by,
            acknowledged_by_user=exc.person,
            acknowledged_at=iso(exc.at),
        )
    return _incident(incident_id)


@bp.post("/incidents/<id:incident_id>/notes")
@guard.require("operator")
def add_note(incident_id: int) -> tuple[Response, int]:
    _no_query()
    event = ops.add_note(incident_id, parse_body(NoteBody))
    incident, _code = _incident(incident_id)
    note = {"at": iso(event.at), "by": event.actor, "text": event.payload["text"]}
    return jsonify(note=note, incident=incident.get_json()), 201


@bp.post("/incidents/<id:incident_id>/updates")
@guard.require("operator")
def publish_update(incident_id: int) -> tuple[Response, int]:
    _no_query()
    event = ops.publish_update(incident_id, parse_body(CustomerUpdateBody))
    update = {
        "id": event.payload["update_id"],
        "published_at": iso(event.at),
        "published_by": event.actor,
        "text": dict(event.payload["text"]),
    }
    incident, _code = _incident(incident_id)
    return jsonify(customer_update=update, incident=incident.get_json()), 201


@bp.post("/incidents/<id:incident_id>/resolve")
@guard.require("operator")
def resolve(incident_id: int) -> tuple[Response, int]:
    _no_query()
    ops.resolve(incident_id, parse_body(ResolveBody))
    return _incident(incident_id)


@bp.patch("/incidents/<id:incident_id>")
@guard.require("operator")
def edit(incident_id: int) -> tuple[Response, int]:
    _no_query()
    ops.edit(incident_id, parse_body(IncidentPatch))
    return _incident(incident_id)


@bp.post("/incidents")
@guard.require("operator")
def declare() -> tuple[Response, int]:
    _no_query()
    return _incident(ops.declare(parse_body(DeclareBody)), 201)


# -- silences ----------------------------------------------------------------------------
@bp.get("/silences")
def silences() -> Response:
    args = request.args.to_dict(flat=False)
    params.reject_unknown(args, ("page", "per_page"))
    page = params.page(args)
    now = ops.now()
    result = queries.active_silences(current_services().db, now, page)
    return jsonify(
        items=[silence_json(r, now) for r in result.items],
        page=page.page,
        per_page=page.per_page,
        total=result.total,
    )


@bp.post("/silences")
@guard.require("operator")
def add_silence() -> tuple[Response, int]:
    _no_query()
    return _silence(ops.add_silence(parse_body(SilenceBody)), 201)


@bp.post("/silences/<id:silence_id>/lift")
@guard.require("operator")
def lift_silence(silence_id: int) -> tuple[Response, int]:
    _no_query()
    parse_body(EmptyBody, required=False)
    ops.lift_silence(silence_id)
    return _silence(silence_id)


def _silence(silence_id: int, code: int = 200) -> tuple[Response, int]:
    row = queries.silence(current_services().db, silence_id)
    if row is None:
        return json_error(f"no silence {silence_id}", 404)
    return jsonify(silence_json(row, ops.now())), code


# -- maintenance windows -----------------------------------------------------------------
@bp.get("/maintenance")
def maintenance() -> Response:
    args = request.args.to_dict(flat=False)
    params.reject_unknown(args, ("page", "per_page"))
    page = params.page(args)
    now = ops.now()
    result = queries.active_maintenance(current_services().db, now, page)
    return jsonify(
        items=[window_json(r, now) for r in result.items],
        page=page.page,
        per_page=page.per_page,
        total=result.total,
    )


@bp.post("/maintenance")
@guard.require("operator")
def start_maintenance() -> tuple[Response, int]:
    _no_query()
    return _windows(ops.start_maintenance(parse_body(MaintenanceBody)), 201)


@bp.post("/maintenance/<id:window_id>/end")
@guard.require("operator")
def end_maintenance(window_id: int) -> tuple[Response, int]:
    _no_query()
    parse_body(EmptyBody, required=False)
    ops.end_maintenance(window_id)
    row = queries.maintenance_window(current_services().db, window_id)
    if row is None:
        return json_error(f"no maintenance window {window_id}", 404)
    return jsonify(window_json(row, ops.now())), 200


def _windows(window_ids: list[int], code: int) -> tuple[Response, int]:
    db, now = current_services().db, ops.now()
    rows = [queries.maintenance_window(db, i) for i in window_ids]
    return jsonify(items=[window_json(r, now) for r in rows if r is not None]), code


ROUTE_BODIES: Mapping[str, type[Body]] = {
    "api_incidents.acknowledge": EmptyBody,
    "api_incidents.add_note": NoteBody,
    "api_incidents.publish_update": CustomerUpdateBody,
    "api_incidents.resolve": ResolveBody,
    "api_incidents.edit": IncidentPatch,
    "api_incidents.declare": DeclareBody,
    "api_incidents.add_silence": SilenceBody,
    "api_incidents.lift_silence": EmptyBody,
    "api_incidents.start_maintenance": MaintenanceBody,
    "api_incidents.end_maintenance": EmptyBody,
}
"""The body each route takes, by endpoint (for the OpenAPI document)."""
OPTIONAL_BODY = frozenset(k for k, v in ROUTE_BODIES.items() if v is EmptyBody)
