"""The public status page (``/status``) and ``/healthz``.

Shows components and incidents in customer words only: component names,
states, and the summary/cause/ETA staff wrote. Target ids, addresses and
credentials never appear; every text also passes through ``redact``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from flask import Blueprint, Response, abort, jsonify, render_template, request

from monitor.health import Health
from monitor.store import queries
from monitor.store.models import INCIDENT_OPEN
from web import components as comp
from web import guard
from web.i18n import lang_tag
from web.redact import redact, sensitive_strings
from web.views import component_members, current_services

bp = Blueprint("status", __name__)

RECENT_DAYS = 7


@dataclass(frozen=True)
class PublicComponent:
    name: str
    description: str
    state: comp.ComponentState


@dataclass(frozen=True)
class PublicIncident:
    state: str
    summary: str
    cause: str
    eta: float | None
    opened_at: float
    resolved_at: float | None
    components: list[str]


@bp.get("/healthz")
@guard.public
def healthz() -> Response:
    return jsonify(status="ok")


def _public_incident(
    row: queries.IncidentRow,
    component_of: dict[str, list[str]],
    lang: str,
    hidden: list[str],
) -> PublicIncident:
    names: list[str] = []
    for target_id in row.member_ids:
        for name in component_of.get(target_id, []):
            if name not in names:
                names.append(name)
    summary = comp.localized(row.summary, lang)
    return PublicIncident(
        state=row.state,
        summary=redact(summary, hidden),
        cause=redact(row.cause or "", hidden),
        eta=row.eta,
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        components=names,
    )


@bp.get("/status")
@guard.public
def status_page() -> str:
    svc = current_services()
    cfg = svc.config()
    if not cfg.web.public_status and guard.who() is None:
        abort(404)
    lang = lang_tag()
    hidden = sensitive_strings(cfg)
    public: list[PublicComponent] = []
    component_of: dict[str, list[str]] = {}
    members, health = component_members(svc, cfg)
    for c in cfg.components:
        ids = members[c.id]
        name = redact(comp.localized(c.name, lang, c.id), hidden)
        for target_id in ids:
            component_of.setdefault(target_id, []).append(name)
        public.append(
            PublicComponent(
                name=name,
                description=redact(comp.localized(c.description, lang), hidden),
                state=comp.component_state(health.get(i, Health.UNKNOWN) for i in ids),
            )
        )
    open_rows = queries.incidents_page(svc.db, (INCIDENT_OPEN,), queries.Page(1, 50)).items
    recent = queries.resolved_since(svc.db, time.time() - RECENT_DAYS * 86400)
    return render_template(
        "status.html",
        components=public,
        overall=comp.overall_state(c.state for c in public),
        state_labels=comp.STATE_LABELS,
        overall_labels=comp.OVERALL_LABELS,
        # Only incidents touching a public component: an internal server's
        # outage is no business of the customers' and would only alarm them.
        open_incidents=[
            _public_incident(r, component_of, lang, hidden)
            for r in open_rows
            if any(t in component_of for t in r.member_ids)
        ],
        recent_incidents=[
            _public_incident(r, component_of, lang, hidden)
            for r in recent
            if any(t in component_of for t in r.member_ids)
        ],
        recent_days=RECENT_DAYS,
        now=time.time(),
        path=request.path,
    )
