"""The public status page (``/status``) and ``/healthz``.

Shows components and incidents in customer words only: component names,
states, the summary/cause/ETA staff wrote and the customer updates they
published (never internal notes). Target ids, addresses and credentials never
appear; every text also passes through ``redact``.

The page is served from a snapshot (``web.status_snapshot``), one per
language, rebuilt when an event says something changed: a crowd of visitors
costs one build every few seconds at most, whatever the number of targets.
A config without components shows the appliance's own one, so the page never
claims "all systems operational" about nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass

from flask import Blueprint, Flask, Response, abort, current_app, jsonify, render_template, request
from flask_babel import force_locale
from flask_babel import gettext as _

from monitor import components as members_of
from monitor.config.models import ComponentConfig
from monitor.config.schema import Config
from monitor.health import Health
from monitor.redact import redact, sensitive_strings
from monitor.store import queries
from monitor.store.models import INCIDENT_OPEN
from probes import PROBES
from web import components as comp
from web import guard
from web.i18n import LOCALES, iso, lang_tag
from web.services import WebServices
from web.status_snapshot import Rendered, conditional_response, snapshots_of
from web.views import current_services

bp = Blueprint("status", __name__)

RECENT_DAYS = 7
MAX_AGE = 5
"""Seconds a browser or proxy may reuse the page without asking (then If-None-Match → 304)."""
APPLIANCE_COMPONENT_ID = "dialwatch"
"""The id of the component shown when the config has none: the appliance itself."""


@dataclass(frozen=True)
class PublicComponent:
    name: str
    description: str
    state: comp.ComponentState


@dataclass(frozen=True)
class PublicUpdate:
    at: float
    iso: str
    text: str


@dataclass(frozen=True)
class PublicIncident:
    state: str
    summary: str
    cause: str
    eta: float | None
    opened_at: float
    resolved_at: float | None
    components: list[str]
    updates: list[PublicUpdate]
    """Newest first."""


@bp.get("/healthz")
@guard.public
def healthz() -> Response:
    return jsonify(status="ok")


# -- which components -------------------------------------------------------------
def appliance_target_ids(cfg: Config) -> list[str]:
    """The targets the engine runs for the probe kinds that have a built-in target (the
    appliance's check of itself): the configured ones of that kind, else the built-in one
    (as ``Engine._effective_targets`` decides)."""
    ids: list[str] = []
    for kind in PROBES.values():
        if kind.builtin is None:
            continue
        configured = [t.id for t in cfg.targets if t.kind == kind.kind and t.enabled]
        ids.extend(configured or [kind.builtin(cfg).target.id])
    return ids


def appliance_component(cfg: Config) -> ComponentConfig:
    """The component a config without components shows: the appliance's own health."""
    names: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    for locale, tag in LOCALES.items():
        with force_locale(locale):
            names[tag] = _("Monitoring")
            descriptions[tag] = _("The system that watches the services of this center")
    return ComponentConfig(
        id=APPLIANCE_COMPONENT_ID,
        name=names,
        description=descriptions,
        targets=appliance_target_ids(cfg),
    )


@dataclass(frozen=True)
class ShownComponents:
    """The components the status page (and ``/api/v1/components``) shows, with their members."""

    config: Config
    components: list[ComponentConfig]
    members: dict[str, list[str]]
    """Member target ids by component id."""


_shown: ShownComponents | None = None


def shown_components(cfg: Config) -> ShownComponents:
    """The configured components (else the appliance's own) and their members.

    Worked out once per config: resolving the selectors is config-only, and at
    10,000 targets it was 70 % of a status page build (bench/status_crowd.py).
    """
    global _shown
    found = _shown
    if found is None or found.config is not cfg:
        shown = list(cfg.components) or [appliance_component(cfg)]
        members = {c.id: members_of.members(c, cfg.targets) for c in shown}
        found = _shown = ShownComponents(cfg, shown, members)
    return found


@dataclass(frozen=True)
class Choice:
    """A component a visitor may subscribe to: its id (the form's value) and its name."""

    id: str
    name: str


def subscribe_choices(cfg: Config, lang: str) -> list[Choice]:
    """The shown components, named as the status page names them in ``lang``."""
    hidden = sensitive_strings(cfg)
    return [
        Choice(c.id, redact(comp.localized(c.name, lang, c.id), hidden))
        for c in shown_components(cfg).components
    ]


def email_subscriptions_open(svc: WebServices) -> bool:
    """Whether visitors can subscribe by e-mail: the notifications run in this process
    and ``customers.email_channel`` names the channel that sends the mail."""
    customers = getattr(svc.config(), "customers", None)
    return svc.notifications is not None and getattr(customers, "email_channel", None) is not None


def component_health(svc: WebServices, shown: ShownComponents) -> dict[str, Health]:
    """The stored health of every member of the shown components (one query per 1,000)."""
    return queries.health_of(svc.db, (i for ids in shown.members.values() for i in ids))


# -- the snapshots ----------------------------------------------------------------
def change_mark(svc: WebServices) -> Hashable:
    """What a status snapshot is built from: the newest event and the config (a reload)."""
    return (queries.last_change(svc.db), svc.config())


def snapshot(app: Flask, key: Hashable, build: Callable[[], Rendered]) -> Rendered:
    """The app's snapshot of ``key``, rebuilt by ``build`` when the change mark moved."""
    svc: WebServices = app.extensions["dialwatch"]

    def build_in_app() -> Rendered:
        # The build may run on the cache's own thread, outside any request.
        with app.app_context():
            return build()

    return snapshots_of(app).get(key, lambda: change_mark(svc), build_in_app)


@bp.get("/status")
@guard.public
def status_page() -> Response:
    svc = current_services()
    cfg = svc.config()
    public = cfg.web.public_status
    if not public and guard.who() is None:
        abort(404)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lang, root = lang_tag(), request.script_root
    rendered = snapshot(app, ("status", lang, root), lambda: _render_status(app, lang, root))
    return conditional_response(
        rendered,
        "text/html",
        f"{'public' if public else 'private'}, max-age={MAX_AGE}",
        vary=("Accept-Language", "Cookie"),
    )


def _render_status(app: Flask, lang: str, script_root: str) -> Rendered:
    """The page as a visitor with nothing but ``?lang=`` gets it.

    Rendered in a request of its own, so nothing of the request that happened
    to trigger the build (its query, headers, cookies) can reach the page that
    every visitor is then served.
    """
    with (
        app.app_context(),
        app.test_request_context(
            "/status", base_url=f"http://status.invalid{script_root}", query_string={"lang": lang}
        ),
    ):
        return Rendered.of(_status_html(current_services(), lang).encode("utf-8"))


def _status_html(svc: WebServices, lang: str) -> str:
    cfg = svc.config()
    hidden = sensitive_strings(cfg)
    shown = shown_components(cfg)
    health = component_health(svc, shown)
    public: list[PublicComponent] = []
    component_of: dict[str, list[str]] = {}
    for c in shown.components:
        ids = shown.members[c.id]
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
    now = time.time()
    # Only incidents touching a public component: an internal server's outage is
    # no business of the customers' and would only alarm them.
    open_rows = [
        r
        for r in queries.incidents_page(svc.db, (INCIDENT_OPEN,), queries.Page(1, 50)).items
        if any(t in component_of for t in r.member_ids)
    ]
    recent = [
        r
        for r in queries.resolved_for_status(svc.db, now - RECENT_DAYS * 86400)
        if any(t in component_of for t in r.member_ids)
    ]
    updates = queries.customer_updates(svc.db, [r.id for r in (*open_rows, *recent)])

    def shown_incident(row: queries.IncidentRow) -> PublicIncident:
        return _public_incident(row, updates.get(row.id, ()), component_of, lang, hidden)

    return render_template(
        "status.html",
        components=public,
        overall=comp.overall_state(c.state for c in public),
        state_labels=comp.STATE_LABELS,
        overall_labels=comp.OVERALL_LABELS,
        open_incidents=[shown_incident(r) for r in open_rows],
        recent_incidents=[shown_incident(r) for r in recent],
        recent_days=RECENT_DAYS,
        now=now,
        subscribe_open=email_subscriptions_open(svc),
        subscribe_choices=subscribe_choices(cfg, lang),
    )


def _public_incident(
    row: queries.IncidentRow,
    updates: Sequence[queries.CustomerUpdateRow],
    component_of: dict[str, list[str]],
    lang: str,
    hidden: list[str],
) -> PublicIncident:
    names: list[str] = []
    for target_id in row.member_ids:
        for name in component_of.get(target_id, []):
            if name not in names:
                names.append(name)
    return PublicIncident(
        state=row.state,
        summary=redact(comp.localized(row.summary, lang), hidden),
        cause=redact(row.cause or "", hidden),
        eta=row.eta,
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        components=names,
        updates=[
            PublicUpdate(u.published_at, iso(u.published_at) or "", text)
            for u in updates
            if (text := redact(comp.localized(u.text, lang), hidden))
        ],
    )
