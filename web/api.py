"""JSON API ``/api/v1``: targets, incidents, components, reload.

Every route needs a login session or an API token (``web.guard``); reload needs an admin. Every bad or unknown
query parameter is a 400 with ``{"error": reason}``.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from monitor.health import Health
from monitor.store import queries
from web import components as comp
from web import guard, params, status
from web.i18n import LANGUAGES, iso, valid_timezone
from web.incident_filters import incident_query
from web.services import WebServices
from web.status_snapshot import Rendered, conditional_response
from web.views import (
    current_services,
    incident_json,
    json_error,
    known_kinds,
    name_matches,
    target_json,
    target_names,
)
from web.vocabulary import say

bp = Blueprint("api", __name__, url_prefix="/api/v1")


@bp.errorhandler(params.ParamError)
def _bad_param(exc: params.ParamError) -> tuple[Response, int]:
    return json_error(str(exc), 400)


def _args() -> params.Args:
    return request.args.to_dict(flat=False)


@bp.get("/targets")
def targets() -> Response:
    svc = current_services()
    cfg = svc.config()
    args = _args()
    flt, page = params.target_query(args, known_kinds(svc), extra_allowed=("lang",))
    # ?lang=: each observation also carries its detail as the pages show it in that
    # language ("detail_shown"); "detail" itself stays the probe's English for scripts.
    shown = bool(params.choices(args, "lang", LANGUAGES))
    result = queries.targets_page(svc.db, flt, page, name_matches(cfg, flt.q) if flt.q else ())
    names = target_names(cfg)
    items = [target_json(r, names) for r in result.items]
    if shown:
        for item in items:
            last = item["last_observation"]
            if isinstance(last, dict):
                last["detail_shown"] = say(last["detail"])
    return jsonify(
        items=items,
        page=page.page,
        per_page=page.per_page,
        total=result.total,
        totals={h.value: n for h, n in result.totals.items()},
    )


@bp.get("/targets/<target_id>")
def target(target_id: str) -> tuple[Response, int] | Response:
    svc = current_services()
    params.reject_unknown(_args(), ())
    row = queries.target(svc.db, target_id) if params.is_target_id(target_id) else None
    if row is None:
        return json_error(f"no target with id {target_id!r} in the state DB", 404)
    cfg = svc.config()
    body = target_json(row, target_names(cfg))
    configured = cfg.target(target_id)
    body["configured"] = configured is not None
    if configured is not None:
        body["interval"] = configured.interval
        body["tags"] = dict(configured.tags)
        body["depends_on"] = list(configured.depends_on)
    body["transitions"] = [
        {
            "at": iso(t.at),
            "from": t.from_health.value,
            "to": t.to_health.value,
            "reason": t.reason,
            "flapping": t.flapping,
            "affected_by": t.affected_by,
            "incident_id": t.incident_id,
        }
        for t in queries.transitions(svc.db, target_id, limit=50)
    ]
    body["incidents"] = [incident_json(i) for i in queries.incidents_for_target(svc.db, target_id)]
    return jsonify(body)


@bp.get("/incidents")
def incidents() -> Response:
    svc = current_services()
    cfg = svc.config()
    # The same parameters as the console's incident list (web.incident_filters).
    query = incident_query(_args(), cfg, valid_timezone(cfg.site.timezone), default_per_page=100)
    result = queries.incidents_page(svc.db, query.states, query.page, query.flt)
    return jsonify(
        items=[incident_json(r) for r in result.items],
        page=query.page.page,
        per_page=query.page.per_page,
        total=result.total,
    )


@bp.get("/components")
def components() -> Response:
    """Served from a snapshot like the status page (``web.status_snapshot``); who may see it
    is decided before (``_guard``), never by the snapshot."""
    params.reject_unknown(_args(), ())
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    rendered = status.snapshot(app, ("components",), lambda: _components_json(current_services()))
    return conditional_response(rendered, "application/json", COMPONENTS_CACHE_CONTROL)


COMPONENTS_CACHE_CONTROL = "private, max-age=5"
"""Staff data: a browser may keep it a few seconds, a shared cache never."""


def _components_json(svc: WebServices) -> Rendered:
    cfg = svc.config()
    shown = status.shown_components(cfg)
    health = status.component_health(svc, shown)
    items = []
    for c in shown.components:
        ids = shown.members[c.id]
        member_health = [health.get(i, Health.UNKNOWN) for i in ids]
        counts: dict[str, int] = {}
        for h in member_health:
            counts[h.value] = counts.get(h.value, 0) + 1
        items.append(
            {
                "id": c.id,
                "name": dict(c.name),
                "description": dict(c.description),
                "state": comp.component_state(member_health).value,
                "targets": ids,
                "counts": counts,
            }
        )
    return Rendered.of(jsonify(items=items).get_data())  # the bytes jsonify would send


@bp.post("/reload")
@guard.require("admin")
def reload() -> tuple[Response, int] | Response:
    svc = current_services()
    params.reject_unknown(_args(), ())
    if svc.reload is None:
        return json_error("reload is not available in this process", 501)
    current = guard.who()
    assert current is not None  # the guard lets only admins in
    # Who asked and from where, for the config.reload audit entry the reload writes.
    errors = svc.reload(current.actor, guard.client_address())
    if errors:
        return json_error(
            "the new config has errors; the running config is unchanged", 422, errors=errors
        )
    return jsonify(status="reloaded")
