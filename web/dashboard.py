"""The staff dashboard: the target list (``/``), one target's page (``/targets/<id>``)
and the wall screen (``/wall``).

The list is rendered on the server (it works without JS) and then refreshed in
place by ``static/dashboard.js``, which polls the JSON API with the same filter.
The target page draws its charts with uPlot (``static/charts.js``) over
server-rendered SVG, and its up/down timeline as SVG. The wall screen is drawn
by ``static/wall.js`` from ``/wall/data``. Every route here is behind the one
guard (``web.guard``); the views themselves decide nothing about access.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    jsonify,
    make_response,
    render_template,
    request,
    url_for,
)
from flask_babel import format_timedelta
from flask_babel import gettext as _

from monitor.health import HEALTH_ORDER
from monitor.store import queries
from monitor.store.models import INCIDENT_OPEN
from probes import PROBES
from probes.base import KeyMetric
from web import charts, params, wall
from web import format as fmt
from web.i18n import HEALTH_LABELS, lang_tag, valid_timezone
from web.incident_pages import who_acked
from web.views import (
    component_members,
    current_services,
    known_kinds,
    name_matches,
    target_names,
)

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)

DEFAULT_PER_PAGE = 100
REFRESH_MS = 5000
"""How often the list polls the API; ``app.config['DIALWATCH_REFRESH_MS']`` overrides it."""
CHART_WINDOW = 6 * 3600
MAX_CHARTS = 6
TIMELINE_WIDTH = 1000
"""The timeline SVG's viewBox width; CSS stretches it to the panel."""
WALL_INCIDENTS = 50
"""Open incidents the wall lists (newest first); the count shows them all."""

UPLOT_JS = "vendor/uPlot.iife.min.js"
UPLOT_CSS = "vendor/uPlot.min.css"
"""uPlot's files under ``static/``. ``install.sh`` copies them from the npm package (pinned
version) into the gitignored ``web/static/vendor/``; the appliance serves them itself."""


def _args() -> dict[str, list[str]]:
    # The filter form submits "All kinds"/"Any health" as empty values; here they mean
    # "no filter" (the API, used by programs, still rejects them).
    args = {k: [v for v in vs if v.strip()] for k, vs in request.args.to_dict(flat=False).items()}
    return {k: vs for k, vs in args.items() if vs}


def _url_with(**changes: object) -> str:
    """The current dashboard URL with some parameters changed (None removes one)."""
    args = {k: v for k, v in _args().items() if k != "lang"}
    for key, value in changes.items():
        if value is None:
            args.pop(key, None)
        else:
            args[key] = [str(value)]
    return url_for("dashboard.index") + ("?" + urlencode(args, doseq=True) if args else "")


def key_metrics_by_kind() -> dict[str, tuple[KeyMetric, ...]]:
    """Each registered probe kind's key metrics (``PROBES``), for the list and the charts."""
    return {kind: entry.key_metrics for kind, entry in PROBES.items()}


def uplot_installed() -> bool:
    """Are uPlot's files in ``static/vendor``? (A dev checkout may have skipped install.sh.)"""
    static = current_app.static_folder
    return static is not None and all(Path(static, f).is_file() for f in (UPLOT_JS, UPLOT_CSS))


def _js_labels() -> dict[str, object]:
    return {
        "health": {h.value: str(HEALTH_LABELS[h]) for h in HEALTH_ORDER},
        "flapping": _("flapping"),
        "affected_by": _("affected by %(target)s", target="{target}"),
        "updated": _("Updated %(time)s", time="{time}"),
        "stale": _("Connection lost, retrying…"),
        "no_targets": _("No targets match this filter."),
        "showing": _(
            "%(first)s–%(last)s of %(total)s", first="{first}", last="{last}", total="{total}"
        ),
        "opened": _("opened %(when)s", when="{when}"),
        "eta": _("ETA %(time)s", time="{time}"),
        "no_incidents": _("No open incidents."),
        "acked": _("acknowledged by %(who)s", who="{who}"),
        "not_acked": _("not acknowledged"),
        # rendered from structured fields so it follows the reader's language
        "incident_title": _("%(target)s is %(health)s", target="{target}", health="{health}"),
    }


@bp.get("/")
def index() -> str | tuple[str, int]:
    svc = current_services()
    cfg = svc.config()
    args = _args()
    kinds = known_kinds(svc)
    try:
        flt, page = params.target_query(
            args, kinds, default_per_page=DEFAULT_PER_PAGE, extra_allowed=("lang",)
        )
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    result = queries.targets_page(svc.db, flt, page, name_matches(cfg, flt.q) if flt.q else ())
    incidents = queries.incidents_page(svc.db, (INCIDENT_OPEN,), queries.Page(1, 20))
    key_metrics = key_metrics_by_kind()
    api_args = {k: v for k, v in args.items() if k in params.TARGET_LIST_PARAMS}
    api_args["lang"] = [lang_tag()]  # the refreshed rows' details in the page's language
    js_config = {
        "targetsUrl": url_for("api.targets")
        + ("?" + urlencode(api_args, doseq=True) if api_args else ""),
        "incidentsUrl": url_for("api.incidents", state="open", per_page=20),
        "detailUrl": url_for("dashboard.target_page", target_id="__ID__"),
        "incidentsPage": url_for("incident_pages.incident_list"),
        "refreshMs": current_app.config.get("DIALWATCH_REFRESH_MS", REFRESH_MS),
        "keyMetrics": {
            kind: [[m.key, m.unit] for m in declared] for kind, declared in key_metrics.items()
        },
        "labels": _js_labels(),
    }
    last_page = max(1, -(-result.total // page.per_page))
    return render_template(
        "dashboard.html",
        result=result,
        flt=flt,
        page=page,
        last_page=last_page,
        kinds=kinds,
        healths=HEALTH_ORDER,
        names=target_names(cfg),
        incidents=incidents.items,
        who_acked=who_acked,
        open_total=incidents.total,
        js_config=js_config,
        key_metrics=key_metrics,
        url_with=_url_with,
        now=time.time(),
    )


def _charts(
    target_id: str, kind: str, last_metrics: dict[str, object], start: float, end: float
) -> tuple[list[charts.Chart], bool]:
    """Charts for the target page, and whether the metrics store failed (the page still renders)."""
    metrics = current_services().metrics
    if metrics is None:
        return [], False
    declared = key_metrics_by_kind().get(kind, ())
    out: list[charts.Chart] = []
    try:
        for wanted in charts.chart_fields(last_metrics, declared, MAX_CHARTS):
            series = metrics.series(  # type: ignore[attr-defined]
                target_id,
                wanted.measurement,
                wanted.field,
                start,
                end,
                max_points=300,
                tags=dict(wanted.tags) or None,
            )
            if (chart := charts.chart_of(wanted, series)) is not None:
                out.append(chart)
    except Exception:  # the metrics store is optional; its failure must not hide the target
        log.exception("metrics query for %s failed", target_id)
        return out, True
    return out, False


def _chart_config(chart_list: list[charts.Chart]) -> dict[str, object]:
    """What ``static/charts.js`` reads from the page: the site timezone, labels, the data."""
    return {
        "tz": valid_timezone(current_services().config().site.timezone),
        "labels": {"time": _("Time")},
        "charts": [{"id": f"chart-{n}", **c.uplot_data()} for n, c in enumerate(chart_list)],
    }


def _time_per_health(spans: tuple[queries.HealthSpan, ...]) -> list[tuple[str, str]]:
    """(health, "2 hours") for the timeline's legend, worst health first."""
    seconds = charts.time_per_health(spans)
    return [
        (h.value, format_timedelta(seconds[h.value], threshold=1))
        for h in HEALTH_ORDER
        if seconds.get(h.value, 0) > 0
    ]


@bp.get("/targets/<target_id>")
def target_page(target_id: str) -> str | Response:
    svc = current_services()
    cfg = svc.config()
    # A segment that cannot be an id (a NUL: PostgreSQL refuses it, a 500) is no target.
    row = queries.target(svc.db, target_id) if params.is_target_id(target_id) else None
    if row is None:
        abort(404)
    end = time.time()
    start = end - CHART_WINDOW
    spans = queries.health_spans(svc.db, target_id, start, end)
    chart_list, charts_failed = _charts(target_id, row.kind, dict(row.last_metrics), start, end)
    return make_response(
        render_template(
            "target.html",
            row=row,
            name=target_names(cfg).get(target_id, target_id),
            configured=cfg.target(target_id),
            transitions=queries.transitions(svc.db, target_id, limit=50),
            incidents=queries.incidents_for_target(svc.db, target_id),
            charts=chart_list,
            charts_failed=charts_failed,
            chart_config=_chart_config(chart_list),
            uplot=uplot_installed(),
            uplot_files=(UPLOT_JS, UPLOT_CSS),
            with_unit=fmt.with_unit,
            unit_of=lambda key: fmt.unit_of(key, key_metrics_by_kind().get(row.kind, ())),
            svg_size=(charts.SVG_WIDTH, charts.SVG_HEIGHT),
            has_metrics=svc.metrics is not None,
            timeline=charts.timeline_bars(spans, start, end, TIMELINE_WIDTH),
            timeline_width=TIMELINE_WIDTH,
            timeline_start=start,
            timeline_end=end,
            health_time=_time_per_health(spans),
            now=end,
        )
    )


# -- the wall screen -------------------------------------------------------------------
def _wall_snapshot() -> dict[str, object]:
    svc = current_services()
    cfg = svc.config()
    if cfg.components:
        members, health = component_members(svc, cfg)
        tiles = wall.component_tiles(cfg, members, health, lang_tag())
        tile_kind = wall.TILE_COMPONENT
    else:
        tiles = wall.kind_tiles(queries.health_by_kind(svc.db))
        tile_kind = wall.TILE_KIND
    totals = queries.targets_page(svc.db, page=queries.Page(1, 1)).totals
    incidents = queries.incidents_page(svc.db, (INCIDENT_OPEN,), queries.Page(1, WALL_INCIDENTS))
    return wall.snapshot(
        totals=totals, tiles=tiles, tile_kind=tile_kind, incidents=incidents, now=time.time()
    )


def _wall_labels() -> dict[str, object]:
    return {
        "health": {h.value: str(HEALTH_LABELS[h]) for h in HEALTH_ORDER},
        "opened": _("opened %(when)s", when="{when}"),
        "eta": _("ETA %(time)s", time="{time}"),
        "acked": _("acknowledged by %(who)s", who="{who}"),
        "no_incidents": _("No open incidents."),
        "no_tiles": _("No targets yet."),
        "updated": _("Updated %(time)s", time="{time}"),
        "stale": _("Connection lost, retrying…"),
        "sound_on": _("Sound on"),
        "sound_off": _("Sound off"),
        "new_incident": _("New incident #%(id)s", id="{id}"),
    }


@bp.get("/wall")
def wall_page() -> str | tuple[str, int]:
    """The wall screen: read-only, dark, full-screen friendly (see ``web.wall``)."""
    try:
        params.reject_unknown(_args(), ("lang",))
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    js_config = {
        "dataUrl": url_for("dashboard.wall_data"),
        "refreshMs": current_app.config.get("DIALWATCH_REFRESH_MS", REFRESH_MS),
        "labels": _wall_labels(),
    }
    return render_template(
        "wall.html", wall=_wall_snapshot(), js_config=js_config, healths=HEALTH_ORDER
    )


@bp.get("/wall/data")
def wall_data() -> Response | tuple[Response, int]:
    """The wall's next paint, polled by ``static/wall.js``."""
    try:
        params.reject_unknown(request.args.to_dict(flat=False), ("lang",))
    except params.ParamError as exc:
        return jsonify(error=str(exc)), 400
    return jsonify(_wall_snapshot())
