"""JSON API for the incident workflow, under ``/api/v1``.

Acknowledge, internal notes, customer updates, edits (cause, ETA, summary,
severity), resolve and declare; silences and maintenance windows started by
hand. Each change is the monitor's own function (``monitor.incident_actions``)
run through ``web.actions.perform``: as the person asking, on the appliance's
clock, audited when done and when refused. Changes need an operator (or an
admin); the lists are for any staff.

Bodies are strict JSON objects (``web.bodies``); query parameters are strict
too (``web.params``): anything wrong is a 4xx ``{"error": reason}`` naming the
field, never a 500. ``web.openapi`` documents every route here from the same
body models.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import Field, StringConstraints, WithJsonSchema, model_validator
from pydantic.functional_validators import BeforeValidator

from core.config import Language, TargetId, parse_duration
from monitor import components, incident_actions
from monitor.config.schema import Config
from monitor.events import Event
from monitor.staff import tokens
from monitor.store import queries
from monitor.store.repository import NotFound, StateRepository
from web import guard, params
from web.actions import ActionRefused, perform
from web.bodies import PLAIN, VISIBLE, Body, BodyError, Id, parse_body
from web.eta import HINT as WHEN_HINT
from web.eta import PATTERN as WHEN_PATTERN
from web.eta import parse_when
from web.i18n import iso, valid_timezone
from web.views import current_services, incident_json, json_error

bp = Blueprint("api_incidents", __name__, url_prefix="/api/v1")
# Before any route below is added: the rules need the converter when they are compiled.
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

# -- what the bodies hold ---------------------------------------------------------------
Note = Annotated[str, StringConstraints(max_length=incident_actions.MAX_TEXT), *VISIBLE]
Reason = Annotated[str, StringConstraints(max_length=incident_actions.MAX_TEXT), *PLAIN]
Title = Annotated[str, StringConstraints(max_length=incident_actions.MAX_TITLE), *VISIBLE]
CustomerText = Annotated[
    str, StringConstraints(max_length=incident_actions.MAX_CUSTOMER_TEXT), *VISIBLE
]
PerLanguage = Annotated[dict[Language, CustomerText], Field(min_length=1)]
Severity = Literal["down", "degraded"]
When = Annotated[
    str,
    StringConstraints(max_length=64),
    Field(description=f"When: {WHEN_HINT}.", json_schema_extra={"pattern": WHEN_PATTERN}),
]


def _duration(value: Any) -> float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_duration(value)
    raise ValueError("must be a duration like 30m, 2h or 1d, or a number of seconds")


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "description": "How long: 30m, 2h, 1d (ms, s, m, h, d), or a number of seconds; "
            "at most 30 days.",
            "anyOf": [
                {"type": "string", "pattern": "^[0-9]{1,6}(\\.[0-9]{1,3})?(ms|s|m|h|d)$"},
                {"type": "number", "exclusiveMinimum": 0, "maximum": incident_actions.MAX_SILENCE},
            ],
        }
    ),
]
MAX_IDS = 1000
"""Targets or components one declaration may name."""


class EmptyBody(Body):
    """No fields: the call needs none (send no body, or ``{}``)."""


class NoteBody(Body):
    """An internal note on the incident's timeline; customers never see it."""

    text: Note


class CustomerUpdateBody(Body):
    """A message for the status page under this incident, per language."""

    text: PerLanguage = Field(
        description='Per language: {"zh-CN": "...", "en": "..."}.',
        examples=[
            {"zh-CN": "运营商线路故障，正在切换备用线路。", "en": "Carrier outage; failing over."}
        ],
    )


class ResolveBody(Body):
    """Resolve by hand, saying why (the note goes on the timeline)."""

    note: Note


class IncidentPatch(Body):
    """What changed; only the fields given change, ``null`` clears cause, ETA or summary."""

    cause: Reason | None = None
    eta: When | None = None
    summary: PerLanguage | None = None
    severity: Severity | None = None

    @model_validator(mode="after")
    def _severity_stays(self) -> IncidentPatch:
        if "severity" in self.model_fields_set and self.severity is None:
            raise ValueError("severity: cannot be cleared; give down or degraded")
        return self


class DeclareBody(Body):
    """Open an incident by hand for targets and/or every target of components."""

    title: Title
    severity: Severity = "down"
    targets: Annotated[list[TargetId], Field(max_length=MAX_IDS)] = []
    components: Annotated[list[TargetId], Field(max_length=MAX_IDS)] = []

    @model_validator(mode="after")
    def _something(self) -> DeclareBody:
        if not self.targets and not self.components:
            raise ValueError("give targets or components (or both)")
        return self


class SilenceBody(Body):
    """Hold back notifications about one target, component or open incident for a while."""

    target_id: TargetId | None = None
    component_id: TargetId | None = None
    incident_id: Id | None = None
    duration: Duration
    reason: Reason = ""

    @model_validator(mode="after")
    def _one_subject(self) -> SilenceBody:
        subjects = (self.target_id, self.component_id, self.incident_id)
        given = [s for s in subjects if s is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of target_id, component_id or incident_id")
        return self


class MaintenanceBody(Body):
    """Start maintenance now for a target or every target of a component."""

    target_id: TargetId | None = None
    component_id: TargetId | None = None
    until: When | None = Field(
        default=None, description=f"When it ends: {WHEN_HINT}; none: until someone ends it."
    )
    reason: Reason = ""

    @model_validator(mode="after")
    def _one_subject(self) -> MaintenanceBody:
        if (self.target_id is None) == (self.component_id is None):
            raise ValueError("give exactly one of target_id or component_id")
        return self


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


def _now() -> float:
    return current_services().clock()


def _config() -> Config:
    return current_services().config()


def _when(value: str, field: str) -> float:
    try:
        return parse_when(value, _now(), valid_timezone(_config().site.timezone))
    except ValueError as exc:
        raise BodyError(f"{field}: {exc}") from None


def _members(config: Config, component_id: str) -> list[str]:
    """The target ids of a configured component; NotFound (so audited as a 404) if none."""
    for c in config.components:
        if c.id == component_id:
            ids = components.members(c, config.targets)
            if not ids:
                raise ValueError(f"component {component_id!r} has no targets")
            return ids
    known = ", ".join(c.id for c in config.components) or "none configured"
    raise NotFound(f"no component {component_id!r} in the config (components: {known})")


def _person(actor: str) -> str | None:
    """The user behind ``user:NAME`` or ``token:ID``; None for rules, runbooks, the CLI."""
    kind, _sep, name = actor.partition(":")
    if kind == "user":
        return name
    if kind == "token" and name.isascii() and name.isdigit():
        with current_services().db.connect() as conn:
            for token in tokens.list_tokens(conn):
                if token.id == int(name):
                    return token.user
    return None


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


def _incident_state(row: queries.IncidentRow, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The audit's view of the fields of ``row`` named in ``fields`` (before a change)."""
    current = {
        "cause": row.cause,
        "eta": iso(row.eta),
        "summary": dict(row.summary) or None,
        "severity": row.severity.value,
    }
    return {name: current[name] for name in fields}


# -- incidents ---------------------------------------------------------------------------
@bp.post("/incidents/<id:incident_id>/ack")
@guard.require("operator")
def acknowledge(incident_id: int) -> tuple[Response, int]:
    _no_query()
    parse_body(EmptyBody, required=False)
    try:
        perform(
            "incident.ack", f"incident:{incident_id}", incident_actions.acknowledge, incident_id
        )
    except ActionRefused as exc:
        row = queries.incident(current_services().db, incident_id)
        if exc.status != 409 or row is None or row.acknowledged_by is None:
            raise
        # Name the person too: an API token acts as ``token:7``, which says little to a NOC.
        person = _person(row.acknowledged_by)
        reason = exc.reason
        if person is not None and person not in row.acknowledged_by:
            reason = reason.replace(row.acknowledged_by, f"{row.acknowledged_by} ({person})", 1)
        return json_error(
            reason,
            409,
            acknowledged_by=row.acknowledged_by,
            acknowledged_by_user=person,
            acknowledged_at=iso(row.acknowledged_at),
        )
    return _incident(incident_id)


@bp.post("/incidents/<id:incident_id>/notes")
@guard.require("operator")
def add_note(incident_id: int) -> tuple[Response, int]:
    _no_query()
    body = parse_body(NoteBody)
    event = perform(
        "incident.note",
        f"incident:{incident_id}",
        incident_actions.add_note,
        incident_id,
        body.text,
        after={"text": body.text},
    )
    incident, _code = _incident(incident_id)
    note = {"at": iso(event.at), "by": event.actor, "text": event.payload["text"]}
    return jsonify(note=note, incident=incident.get_json()), 201


@bp.post("/incidents/<id:incident_id>/updates")
@guard.require("operator")
def publish_update(incident_id: int) -> tuple[Response, int]:
    _no_query()
    body = parse_body(CustomerUpdateBody)
    event = perform(
        "incident.customer_update",
        f"incident:{incident_id}",
        incident_actions.publish_customer_update,
        incident_id,
        dict(body.text),
        after={"text": dict(body.text)},
    )
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
    body = parse_body(ResolveBody)
    perform(
        "incident.resolve",
        f"incident:{incident_id}",
        incident_actions.resolve,
        incident_id,
        reason=body.note,
        after={"note": body.note},
    )
    return _incident(incident_id)


@bp.patch("/incidents/<id:incident_id>")
@guard.require("operator")
def edit(incident_id: int) -> tuple[Response, int]:
    _no_query()
    body = parse_body(IncidentPatch)
    given = body.model_fields_set
    if not given:
        raise BodyError("nothing to change: give cause, eta, summary or severity")
    changes: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name in ("cause", "eta", "summary", "severity"):
        if name not in given:
            continue
        value = getattr(body, name)
        if name == "eta" and value is not None:
            changes[name] = _when(value, "eta")
            after[name] = iso(changes[name])
        elif name == "summary" and value is not None:
            changes[name] = after[name] = dict(value)
        else:
            changes[name] = after[name] = value
    row = queries.incident(current_services().db, incident_id)
    perform(
        "incident.update",
        f"incident:{incident_id}",
        incident_actions.update,
        incident_id,
        before=_incident_state(row, after) if row is not None else None,
        after=after,
        **changes,
    )
    return _incident(incident_id)


@bp.post("/incidents")
@guard.require("operator")
def declare() -> tuple[Response, int]:
    _no_query()
    body = parse_body(DeclareBody)
    config = _config()

    def declare_them(repo: StateRepository, actor: str, *, at: float) -> Event:
        ids = list(body.targets)
        for component_id in body.components:
            ids.extend(_members(config, component_id))
        return incident_actions.declare(
            repo, actor, list(dict.fromkeys(ids)), body.title, severity=body.severity, at=at
        )

    subject = ",".join(
        [*(f"target:{t}" for t in body.targets), *(f"component:{c}" for c in body.components)]
    )
    event = perform("incident.declare", subject, declare_them, after=body.model_dump(mode="json"))
    assert event.incident_id is not None
    return _incident(event.incident_id, 201)


# -- silences ----------------------------------------------------------------------------
@bp.get("/silences")
def silences() -> Response:
    args = request.args.to_dict(flat=False)
    params.reject_unknown(args, ("page", "per_page"))
    page = params.page(args)
    now = _now()
    result = queries.active_silences(current_services().db, now, page)
    return jsonify(
        items=[silence_json(r, now) for r in result.items],
        page=page.page,
        per_page=page.per_page,
        total=result.total,
    )


def _subject(body: SilenceBody | MaintenanceBody) -> str:
    if body.target_id is not None:
        return f"target:{body.target_id}"
    if body.component_id is not None:
        return f"component:{body.component_id}"
    return f"incident:{getattr(body, 'incident_id', '')}"


@bp.post("/silences")
@guard.require("operator")
def add_silence() -> tuple[Response, int]:
    _no_query()
    body = parse_body(SilenceBody)
    config = _config()

    def silence(repo: StateRepository, actor: str, *, at: float) -> Event:
        if body.component_id is not None:
            _members(config, body.component_id)  # it must exist now; members may change later
        return incident_actions.silence(
            repo,
            actor,
            target_id=body.target_id,
            component_id=body.component_id,
            incident_id=body.incident_id,
            duration=body.duration,
            reason=body.reason,
            at=at,
        )

    event = perform("silence.start", _subject(body), silence, after=body.model_dump(mode="json"))
    return _silence(int(event.payload["silence_id"]), 201)


@bp.post("/silences/<id:silence_id>/lift")
@guard.require("operator")
def lift_silence(silence_id: int) -> tuple[Response, int]:
    _no_query()
    parse_body(EmptyBody, required=False)
    perform("silence.lift", f"silence:{silence_id}", incident_actions.lift_silence, silence_id)
    return _silence(silence_id)


def _silence(silence_id: int, code: int = 200) -> tuple[Response, int]:
    row = queries.silence(current_services().db, silence_id)
    if row is None:
        return json_error(f"no silence {silence_id}", 404)
    return jsonify(silence_json(row, _now())), code


# -- maintenance windows -----------------------------------------------------------------
@bp.get("/maintenance")
def maintenance() -> Response:
    args = request.args.to_dict(flat=False)
    params.reject_unknown(args, ("page", "per_page"))
    page = params.page(args)
    now = _now()
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
    body = parse_body(MaintenanceBody)
    until = _when(body.until, "until") if body.until is not None else None
    config = _config()

    def start(repo: StateRepository, actor: str, *, at: float) -> list[int]:
        # One window per target, all in perform's transaction: all start, or none does.
        if body.component_id is not None:
            ids = _members(config, body.component_id)
        else:
            assert body.target_id is not None
            ids = [body.target_id]
        started = [
            incident_actions.start_maintenance(
                repo, actor, target_id, until=until, reason=body.reason, at=at
            )
            for target_id in ids
        ]
        return [int(e.payload["window_id"]) for e in started]

    after = {**body.model_dump(mode="json"), "until": iso(until)}
    window_ids = perform("maintenance.start", _subject(body), start, after=after)
    return _windows(window_ids, 201)


@bp.post("/maintenance/<id:window_id>/end")
@guard.require("operator")
def end_maintenance(window_id: int) -> tuple[Response, int]:
    _no_query()
    parse_body(EmptyBody, required=False)
    perform(
        "maintenance.end",
        f"maintenance:{window_id}",
        incident_actions.end_maintenance,
        window_id,
    )
    row = queries.maintenance_window(current_services().db, window_id)
    if row is None:
        return json_error(f"no maintenance window {window_id}", 404)
    return jsonify(window_json(row, _now())), 200


def _windows(window_ids: list[int], code: int) -> tuple[Response, int]:
    db, now = current_services().db, _now()
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
