"""The staff dashboard: the target list (``/``) and one target's page (``/targets/<id>``).

The list is rendered on the server (it works without JS) and then refreshed in
place by ``static/dashboard.js``, which polls the JSON API with the same filter.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    make_response,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _

from monitor.health import HEALTH_ORDER
from monitor.store import queries
from monitor.store.models import INCIDENT_OPEN
from web import charts, params
from web.i18n import HEALTH_LABELS
from web.views import current_services, known_kinds, name_matches, target_names

log = logging.getLogger(__name__)

bp = Blueprint("dashboard", __name__)

DEFAULT_PER_PAGE = 100
REFRESH_MS = 5000
"""How often the list polls the API; ``app.config['DIALWATCH_REFRESH_MS']`` overrides it."""
CHART_WINDOW = 6 * 3600
MAX_CHARTS = 6


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
    api_args = {k: v for k, v in args.items() if k in params.TARGET_LIST_PARAMS}
    js_config = {
        "targetsUrl": url_for("api.targets")
        + ("?" + urlencode(api_args, doseq=True) if api_args else ""),
        "incidentsUrl": url_for("api.incidents", state="open", per_page=20),
        "detailUrl": url_for("dashboard.target_page", target_id="__ID__"),
        "refreshMs": current_app.config.get("DIALWATCH_REFRESH_MS", REFRESH_MS),
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
        open_total=incidents.total,
        js_config=js_config,
        url_with=_url_with,
        now=time.time(),
    )


def _charts(target_id: str, last_metrics: dict[str, object]) -> tuple[list[charts.Chart], bool]:
    """Charts for the target page, and whether the metrics store failed (the page still renders)."""
    metrics = current_services().metrics
    if metrics is None:
        return [], False
    end = time.time()
    out: list[charts.Chart] = []
    try:
        for measurement, field in charts.chartable_keys(last_metrics):
            series = metrics.series(  # type: ignore[attr-defined]
                target_id, measurement, field, end - CHART_WINDOW, end, max_points=300
            )
            out.extend(charts.charts_for(measurement, field, series))
            if len(out) >= MAX_CHARTS:
                return out[:MAX_CHARTS], False
    except Exception:  # the metrics store is optional; its failure must not hide the target
        log.exception("metrics query for %s failed", target_id)
        return out, True
    return out, False


@bp.get("/targets/<target_id>")
def target_page(target_id: str) -> str | Response:
    svc = current_services()
    cfg = svc.config()
    row = queries.target(svc.db, target_id)
    if row is None:
        abort(404)
    chart_list, charts_failed = _charts(target_id, row.last_metrics)
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
            has_metrics=svc.metrics is not None,
            now=time.time(),
        )
    )
