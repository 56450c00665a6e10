"""The public status page (``/status``), its JSON (``/status.json``) and ``/healthz``.

Shows components and incidents in customer words only: component names,
states, 90 days of uptime, the summary/cause/ETA staff wrote and the customer
updates they published (never internal notes). Target ids, addresses and
credentials never appear; every text also passes through ``redact``.

One read model serves the page, the JSON, the incident history and the feed
(``web.status_history``): ``read_status`` reads the state DB once,
``status_view`` words it in one language through a ``Publisher`` (which
incidents are public, how each text is redacted).

The page is served from a snapshot (``web.status_snapshot``), one per
language, rebuilt when an event says something changed: a crowd of visitors
costs one build every few seconds at most, whatever the number of targets.
A config without components shows the appliance's own one, so the page never
claims "all systems operational" about nothing.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    jsonify,
    render_template,
    request,
    url_for,
)
from flask_babel import force_locale
from flask_babel import gettext as _

from monitor import components as members_of
from monitor.config.models import ComponentConfig
from monitor.config.schema import Config
from monitor.health import Health
from monitor.redact import redact, sensitive_strings
from monitor.store import queries
from monitor.store.models import INCIDENT_OPEN
from monitor.store.uptime import COMPONENT
from monitor.uptime import HealthSeconds, day_of, uptime_ratio
from notify.customer_maintenance import occurrences as maintenance_occurrences
from probes import PROBES
from web import components as comp
from web import guard
from web.i18n import LOCALES, iso, lang_tag, valid_timezone
from web.services import WebServices
from web.status_snapshot import Rendered, conditional_response, snapshots_of
from web.views import current_services

bp = Blueprint("status", __name__)

RECENT_DAYS = 7
UPTIME_DAYS = 90
"""Days of uptime bars per component, today included."""
MAX_AGE = 5
"""Seconds a browser or proxy may reuse the page without asking (then If-None-Match → 304)."""
APPLIANCE_COMPONENT_ID = "dialwatch"
"""The id of the component shown when the config has none: the appliance itself."""


@dataclass(frozen=True)
class UptimeBar:
    """One day of a component's uptime bar (site timezone)."""

    day: date
    state: str
    """``up``, ``degraded``, ``down``, ``maintenance`` (the worst of the day), or ``none``:
    nothing counted that day."""
    percent: str
    """The day's uptime as shown (``99.95%``); empty when nothing was counted."""
    incidents: list[str]
    """Headlines of the incidents of the component that day."""

    @property
    def title(self) -> str:
        """The bar's tooltip: the date, the uptime and the day's incidents."""
        parts = [self.day.isoformat(), self.percent or _("No data")]
        parts.append("; ".join(self.incidents) if self.incidents else _("No incidents."))
        return " · ".join(parts)


@dataclass(frozen=True)
class ComponentUptime:
    days: list[UptimeBar]
    """Oldest first, ``UPTIME_DAYS`` of them, today last."""
    ratio: float | None
    """Over all those days (``monitor.uptime.uptime_ratio``); None: nothing counted."""

    @property
    def percent(self) -> str:
        return percent(self.ratio)


@dataclass(frozen=True)
class PublicComponent:
    id: str
    name: str
    description: str
    state: comp.ComponentState
    uptime: ComponentUptime


@dataclass(frozen=True)
class PublicUpdate:
    at: float
    iso: str
    text: str


@dataclass(frozen=True)
class PublicIncident:
    id: int
    state: str
    headline: str
    """The summary staff wrote, else a sentence that says what is known (never the title)."""
    summary: str
    cause: str
    eta: float | None
    opened_at: float
    resolved_at: float | None
    components: list[str]
    """The names of the shown components it affects."""
    component_ids: list[str]
    updates: list[PublicUpdate]
    """Newest first."""

    @property
    def updated_at(self) -> float:
        """Its latest change a customer can see: opened, an update, resolved."""
        return max([self.opened_at, self.resolved_at or 0.0, *(u.at for u in self.updates)])


@dataclass(frozen=True)
class PublicMaintenance:
    """A scheduled maintenance occurrence of shown components (now or in the next week)."""

    start: float
    end: float
    reason: str
    component_ids: list[str]
    components: list[str]
    """Their names in the page's language."""
    running: bool


MAINTENANCE_AHEAD = 7 * 86400.0
"""How far ahead the status page lists scheduled maintenance."""


@dataclass(frozen=True)
class StatusView:
    """What the public status page shows, in one language: the one read model of the
    page, ``/status.json``, the incident history and the feed."""

    lang: str
    now: float
    components: list[PublicComponent]
    overall: comp.ComponentState
    open_incidents: list[PublicIncident]
    recent_incidents: list[PublicIncident]
    """Resolved in the last ``RECENT_DAYS``, newest first."""
    maintenance: list[PublicMaintenance] = field(default_factory=list)
    """Scheduled maintenance running now or starting within ``MAINTENANCE_AHEAD``, by start."""


def percent(ratio: float | None) -> str:
    """``99.95%``, rounded down (a day with any downtime never shows 100.00%); '' for None."""
    if ratio is None:
        return ""
    return f"{math.floor(ratio * 10000) / 100:.2f}%"


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


def subscriptions_open(svc: WebServices, channel: str = "email") -> bool:
    """Whether visitors can subscribe by ``channel`` (email, sms): the notifications run
    in this process and ``customers:`` names the channel that sends to them."""
    customers = getattr(svc.config(), "customers", None)
    return (
        svc.notifications is not None
        and customers is not None
        and customers.channel_for(channel) is not None
    )


def public_services() -> WebServices:
    """The services, for a page of the status page's: 404 when ``web.public_status`` is
    off and nobody is logged in (a private status page does not exist for strangers)."""
    svc = current_services()
    if not svc.config().web.public_status and guard.who() is None:
        abort(404)
    return svc


def cache_control(svc: WebServices) -> str:
    """The snapshots' ``Cache-Control``: shared caches may keep a public page, not a private one."""
    return f"{'public' if svc.config().web.public_status else 'private'}, max-age={MAX_AGE}"


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
    svc = public_services()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lang, root = lang_tag(), request.script_root
    rendered = snapshot(app, ("status", lang, root), lambda: _render_status(app, lang, root))
    return conditional_response(
        rendered, "text/html", cache_control(svc), vary=("Accept-Language", "Cookie")
    )


@bp.get("/status.json")
@guard.public
def status_json() -> Response:
    """The page as JSON, for customers' own dashboards: every language at once."""
    svc = public_services()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    root = request.script_root
    rendered = snapshot(app, ("status.json", root), lambda: _render_json(app, root))
    response = conditional_response(rendered, "application/json", cache_control(svc),
                                    vary=("Cookie",))  # fmt: skip
    if svc.config().web.public_status:
        # Read-only, the same for everyone and sent without credentials: another site's
        # dashboard may fetch it from the browser.
        response.headers["Access-Control-Allow-Origin"] = "*"
    return response


def _render_json(app: Flask, script_root: str) -> Rendered:
    """``/status.json`` in a request of its own (see ``_render_status``)."""
    with (
        app.app_context(),
        app.test_request_context("/status.json", base_url=f"http://status.invalid{script_root}"),
    ):
        svc = current_services()
        read = read_status(svc)
        views: dict[str, StatusView] = {}
        overall: dict[str, str] = {}
        for locale, tag in LOCALES.items():
            with force_locale(locale):
                views[tag] = status_view(svc, tag, read)
                overall[tag] = str(comp.OVERALL_LABELS[views[tag].overall])
        body = status_document(svc.config().site.name, views, overall, read.now)
        return Rendered.of(jsonify(body).get_data())


def status_document(
    site: str, views: dict[str, StatusView], overall: dict[str, str], now: float
) -> dict[str, object]:
    """The ``/status.json`` body from the views in each language (the same components
    and incidents in the same order, read at one ``now``), ``overall``: the banner's words."""
    tags = list(views)
    first = views[tags[0]]

    def incident(n: int) -> dict[str, object]:
        i = first.open_incidents[n]
        each = {t: views[t].open_incidents[n] for t in tags}
        return {
            "id": i.id,
            "state": i.state,
            "title": {t: each[t].headline for t in tags},
            "summary": {t: each[t].summary for t in tags},
            "cause": i.cause or None,
            "eta": iso(i.eta),
            "started_at": iso(i.opened_at),
            "updated_at": iso(i.updated_at),
            "components": i.component_ids,
            "url": url_for("status_history.incident_page", incident_id=i.id),
            "updates": [
                {"published_at": u.iso, "text": {t: each[t].updates[k].text for t in tags}}
                for k, u in enumerate(i.updates)
            ],
        }

    def component(n: int) -> dict[str, object]:
        c = first.components[n]
        return {
            "id": c.id,
            "name": {t: views[t].components[n].name for t in tags},
            "description": {t: views[t].components[n].description for t in tags},
            "state": c.state.value,
            "uptime_90d": None if c.uptime.ratio is None else round(c.uptime.ratio * 100, 3),
        }

    return {
        "page": {"name": site, "url": url_for("status.status_page"), "updated_at": iso(now)},
        "status": {"state": first.overall.value, "description": overall},
        "components": [component(n) for n in range(len(first.components))],
        "incidents": [incident(n) for n in range(len(first.open_incidents))],
        "scheduled_maintenances": [
            {
                "starts_at": iso(m.start),
                "ends_at": iso(m.end),
                "running": m.running,
                "reason": m.reason or None,
                "components": m.component_ids,
            }
            for m in first.maintenance
        ],  # fmt: skip
    }


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
    view = status_view(svc, lang)
    return render_template(
        "status.html",
        components=view.components,
        overall=view.overall,
        state_labels=comp.STATE_LABELS,
        overall_labels=comp.OVERALL_LABELS,
        open_incidents=view.open_incidents,
        recent_incidents=view.recent_incidents,
        maintenance=view.maintenance,
        recent_days=RECENT_DAYS,
        uptime_days=UPTIME_DAYS,
        now=view.now,
        subscribe_open=subscriptions_open(svc, "email"),
        subscribe_choices=subscribe_choices(svc.config(), lang),
        feed_url=url_for("status_history.feed", lang=lang),
        history_url=url_for("status_history.incident_list"),
    )


@dataclass(frozen=True)
class Publisher:
    """How the shown components and incidents read in one language, with nothing internal."""

    lang: str
    hidden: list[str]
    """``sensitive_strings`` of the config: redacted from every text."""
    component_of: dict[str, list[tuple[str, str]]]
    """Member target id → (id, name) of the shown components it is in."""

    @classmethod
    def of(cls, cfg: Config, lang: str) -> Publisher:
        """Worked out once per config and language (like ``shown_components``: at 10,000
        targets mapping every member took 0.1 s of each build)."""
        found = _publishers.get(lang)
        if found is None or found[0] is not cfg:
            found = _publishers[lang] = (cfg, cls._of(cfg, lang))
        return found[1]

    @classmethod
    def _of(cls, cfg: Config, lang: str) -> Publisher:
        hidden = sensitive_strings(cfg)
        shown = shown_components(cfg)
        component_of: dict[str, list[tuple[str, str]]] = {}
        for c in shown.components:
            name = redact(comp.localized(c.name, lang, c.id), hidden)
            for target_id in shown.members[c.id]:
                component_of.setdefault(target_id, []).append((c.id, name))
        return cls(lang, hidden, component_of)

    def is_public(self, row: queries.IncidentRow) -> bool:
        """Whether it touches a shown component: an internal server's outage is no
        business of the customers' and would only alarm them."""
        return any(t in self.component_of for t in row.member_ids)

    def incident(
        self,
        row: queries.IncidentRow,
        updates: Sequence[queries.CustomerUpdateRow],
        brief: bool = False,
    ) -> PublicIncident:
        """``brief``: for a resolved incident only named in the uptime bars, the headline
        and times without the cause and updates (each text redacted costs a scan of every
        configured address: ~1 ms at 10,000 targets)."""
        if brief and row.state != INCIDENT_OPEN:
            row, updates = replace(row, cause=None), ()
        return _public_incident(row, updates, self.component_of, self.lang, self.hidden)


@dataclass(frozen=True)
class StatusRead:
    """What the status page is built from, read once from the state DB at ``now``:
    ``status_view`` then words it in each language."""

    now: float
    shown: ShownComponents
    health: dict[str, Health]
    open_rows: list[queries.IncidentRow]
    """Open incidents touching a shown component."""
    window: tuple[queries.IncidentRow, ...]
    """Resolved incidents (``queries.status_history``) of the uptime bars' days."""
    recent: list[queries.IncidentRow]
    """Of those, the ones resolved in the last ``RECENT_DAYS`` (at most 20)."""
    updates: dict[int, tuple[queries.CustomerUpdateRow, ...]]
    """Customer updates of the open and the recent incidents."""
    days: dict[str, dict[date, HealthSeconds]]
    """Rolled-up days by component id."""
    tz: ZoneInfo
    first_day: date
    today: date


def read_status(svc: WebServices, now: float | None = None) -> StatusRead:
    """One read of what the page shows (a fixed handful of statements)."""
    cfg = svc.config()
    now = time.time() if now is None else now
    shown = shown_components(cfg)
    members = [i for ids in shown.members.values() for i in ids]
    public = set(members)
    open_rows = [
        r
        for r in queries.incidents_page(svc.db, (INCIDENT_OPEN,), queries.Page(1, 50)).items
        if any(t in public for t in r.member_ids)
    ]
    tz = ZoneInfo(valid_timezone(cfg.site.timezone))
    today = day_of(now, tz)
    first_day = today - timedelta(days=UPTIME_DAYS - 1)
    window = queries.status_history(
        svc.db,
        members,
        queries.Page(1, queries.MAX_PER_PAGE),
        since=now - (UPTIME_DAYS + 1) * 86400,
    ).items
    recent = [r for r in window if (r.resolved_at or 0) >= now - RECENT_DAYS * 86400][:20]
    return StatusRead(
        now=now,
        shown=shown,
        health=component_health(svc, shown),
        open_rows=open_rows,
        window=window,
        recent=recent,
        # Updates only of the incidents listed: the bars need no more than a resolved
        # incident's headline, which its updates do not change.
        updates=queries.customer_updates(svc.db, [r.id for r in (*open_rows, *recent)]),
        days=queries.uptime_days(
            svc.db, COMPONENT, [c.id for c in shown.components], first_day, today
        ),
        tz=tz,
        first_day=first_day,
        today=today,
    )


_publishers: dict[str, tuple[Config, Publisher]] = {}
"""The publisher of the current config by language (a reload replaces it)."""


def status_view(svc: WebServices, lang: str, read: StatusRead | None = None) -> StatusView:
    """The status page's read model in ``lang`` (call it with that locale in force), from
    ``read`` (else a read of its own)."""
    got = read_status(svc) if read is None else read
    publisher = Publisher.of(svc.config(), lang)
    listed = {r.id for r in (*got.open_rows, *got.recent)}
    incidents = {
        r.id: publisher.incident(r, got.updates.get(r.id, ()), brief=r.id not in listed)
        for r in (*got.open_rows, *got.window)
    }
    public = [
        PublicComponent(
            id=c.id,
            name=redact(comp.localized(c.name, lang, c.id), publisher.hidden),
            description=redact(comp.localized(c.description, lang), publisher.hidden),
            state=comp.component_state(
                got.health.get(i, Health.UNKNOWN) for i in got.shown.members[c.id]
            ),
            uptime=_uptime(
                got.days.get(c.id, {}),
                [i for i in incidents.values() if c.id in i.component_ids],
                got.first_day,
                got.today,
                got.tz,
                got.now,
            ),
        )
        for c in got.shown.components
    ]
    return StatusView(
        lang=lang,
        now=got.now,
        components=public,
        overall=comp.overall_state(c.state for c in public),
        open_incidents=[incidents[r.id] for r in got.open_rows],
        recent_incidents=[incidents[r.id] for r in got.recent],
        maintenance=_maintenance(svc.config(), got, public, publisher.hidden),
    )


def _maintenance(
    cfg: Config, got: StatusRead, public: list[PublicComponent], hidden: list[str]
) -> list[PublicMaintenance]:
    """The shown components' scheduled windows (their members' ``maintenance:``), one
    entry per occurrence naming every component it covers; reasons redacted."""
    names = {c.id: c.name for c in public}
    targets = {t.id: t for t in cfg.targets}
    found: dict[tuple[float, float], tuple[str, list[str]]] = {}
    for c in got.shown.components:
        windows = [
            w for i in got.shown.members[c.id] if i in targets for w in targets[i].maintenance
        ]
        for o in maintenance_occurrences(windows, got.now, MAINTENANCE_AHEAD, cfg.site.timezone):
            if o.end <= got.now:
                continue
            reason, ids = found.setdefault((o.start, o.end), (o.reason, []))
            if c.id not in ids:
                ids.append(c.id)
    return [
        PublicMaintenance(
            start,
            end,
            redact(reason, hidden) if reason else "",
            ids,
            [names[i] for i in ids],
            start <= got.now,
        )  # fmt: skip
        for (start, end), (reason, ids) in sorted(found.items())
    ]


def _uptime(
    rolled: dict[date, HealthSeconds],
    incidents: Iterable[PublicIncident],
    first: date,
    last: date,
    tz: ZoneInfo,
    now: float,
) -> ComponentUptime:
    """A component's bars from its rolled-up days and the incidents that touched it."""
    by_day: dict[date, list[str]] = {}
    for i in sorted(incidents, key=lambda i: i.opened_at):
        day, end = max(day_of(i.opened_at, tz), first), day_of(i.resolved_at or now, tz)
        while day <= min(end, last):
            by_day.setdefault(day, []).append(i.headline)
            day += timedelta(days=1)
    bars = []
    for n in range((last - first).days + 1):
        day = first + timedelta(days=n)
        seconds = rolled.get(day)
        ratio = None if seconds is None else uptime_ratio([seconds])
        bars.append(UptimeBar(day, _day_state(seconds), percent(ratio), by_day.get(day, [])))
    return ComponentUptime(bars, uptime_ratio(rolled.values()))


def _day_state(seconds: HealthSeconds | None) -> str:
    if seconds is None or seconds.total - seconds.unknown <= 0:
        return "none"
    for name in ("down", "degraded", "maintenance"):
        if getattr(seconds, name) > 0:
            return name
    return "up"


def _headline(row: queries.IncidentRow, summary: str, cause: str, updated: bool) -> str:
    if summary:
        return summary
    if row.state != INCIDENT_OPEN:
        return _("A problem affected the service and has been resolved.")
    # What is known comes first; "investigating" only while nothing is.
    if cause:
        return _("We have found the cause and are working on a fix.")
    if row.eta or updated:
        return _("We are working on a problem affecting the service.")
    return _("We are investigating a problem and will post an update soon.")


def _public_incident(
    row: queries.IncidentRow,
    updates: Sequence[queries.CustomerUpdateRow],
    component_of: dict[str, list[tuple[str, str]]],
    lang: str,
    hidden: list[str],
) -> PublicIncident:
    shown: dict[str, str] = {}
    for target_id in row.member_ids:
        for component_id, name in component_of.get(target_id, []):
            shown.setdefault(component_id, name)
    summary = redact(comp.localized(row.summary, lang), hidden)
    cause = redact(row.cause or "", hidden)
    published = [
        PublicUpdate(u.published_at, iso(u.published_at) or "", text)
        for u in updates
        if (text := redact(comp.localized(u.text, lang), hidden))
    ]
    return PublicIncident(
        id=row.id,
        state=row.state,
        headline=_headline(row, summary, cause, bool(published)),
        summary=summary,
        cause=cause,
        eta=row.eta,
        opened_at=row.opened_at,
        resolved_at=row.resolved_at,
        components=list(shown.values()),
        component_ids=list(shown),
        updates=published,
    )
