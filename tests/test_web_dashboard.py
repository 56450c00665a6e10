"""The staff dashboard pages, rendered by the Flask test client over a real SQLite state DB."""

from __future__ import annotations

import json
import re
import time

import pytest

from core.observation import MetricPoint
from monitor.health import Health
from monitor.metrics_query import EmbeddedMetricsQuery
from monitor.store import queries
from monitor.store.metrics import MetricsStore
from probes import PROBES
from tests.test_web_support import (
    OnePointMetrics,
    add_incident,
    add_targets,
    add_transition,
    make_world,
    require_uplot,
    standard_rows,
)
from web import charts, dashboard


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    return w


def rows_in(html: str) -> list[tuple[str, str]]:
    """(target id, health) of every row of the target table, in order."""
    return re.findall(r'<tr class="row-\w+" data-id="([^"]+)" data-health="(\w+)">', html)


def test_dashboard_lists_targets_worst_first_with_markers_and_totals(world) -> None:
    html = world.client().get("/?lang=en").get_data(as_text=True)
    assert rows_in(html) == [
        ("trunk-a", "down"),
        ("crm-db", "degraded"),
        ("router", "unknown"),
        ("trunk-b", "up"),
    ]
    assert "Carrier A trunk" in html and "CRM database" in html
    assert 'class="flag flap">flapping' in html
    assert "affected by trunk-a" in html
    assert "no answer to OPTIONS after 7 retransmissions (4.0 s)" in html
    assert "12.3 ms" in html  # last latency
    assert "rtt_ms <b>12.5 ms</b>" in html  # the kind's key metric, with its unit
    assert re.search(r'id="total-down">1<', html) and re.search(r'id="total-all">4<', html)
    assert "No open incidents." in html


def test_dashboard_shows_open_incidents(world) -> None:
    add_incident(world.db, ["trunk-a", "router"], title="Carrier A down", eta=2_000_000_000.0)
    add_incident(world.db, ["crm-db"], state="resolved", title="CRM slow")
    html = world.client().get("/?lang=en").get_data(as_text=True)
    assert 'id="incident-count">1<' in html
    # the title is rendered from root target and severity in the reader's language
    assert "trunk-a is Down" in html and "trunk-a, router" in html
    assert "ETA 2033-05-18 11:33:20" in html
    assert "crm-db is" not in html
    zh = world.client().get("/?lang=zh-CN").get_data(as_text=True)
    assert "trunk-a 故障" in zh


@pytest.mark.parametrize(
    ("query", "ids"),
    [
        ("health=down", ["trunk-a"]),
        ("kind=tcp", ["crm-db", "router"]),
        ("q=carrier", ["trunk-a"]),
        ("kind=sip&health=up", ["trunk-b"]),
    ],
)
def test_dashboard_filters_like_the_api(world, query: str, ids: list[str]) -> None:
    html = world.client().get(f"/?{query}").get_data(as_text=True)
    assert [i for i, _h in rows_in(html)] == ids


def test_dashboard_paginates_and_links_pages_keeping_the_filter(tmp_path) -> None:
    w = make_world(tmp_path)
    add_targets(w.db, ({"target_id": f"edge-{i:04d}", "kind": "tcp"} for i in range(250)))
    c = w.client()
    first = c.get("/?kind=tcp&lang=en").get_data(as_text=True)
    assert len(rows_in(first)) == 100
    assert "Page 1 of 3" in first and 'href="/?kind=tcp&amp;page=2"' in first
    third = c.get("/?kind=tcp&page=3&lang=en").get_data(as_text=True)
    assert len(rows_in(third)) == 50 and rows_in(third)[-1][0] == "edge-0249"
    assert "201–250 of 250" in third


def test_dashboard_config_for_live_refresh_points_at_the_api_with_the_same_filter(world) -> None:
    html = world.client().get("/?kind=sip&health=down,up&lang=en").get_data(as_text=True)
    cfg = json.loads(
        re.search(r'<script id="dw-config" type="application/json">(.*?)</script>', html).group(1)
    )
    assert cfg["targetsUrl"] == "/api/v1/targets?kind=sip&health=down%2Cup&lang=en"
    assert cfg["incidentsUrl"] == "/api/v1/incidents?state=open&per_page=20"
    assert cfg["labels"]["health"]["down"] == "Down"
    # the URL it polls answers
    assert world.client().get(cfg["targetsUrl"]).status_code == 200


def test_dashboard_with_a_bad_parameter_is_a_400_page_naming_it(world) -> None:
    r = world.client().get("/?health=sick&lang=en")
    assert r.status_code == 400 and r.mimetype == "text/html"
    assert "health: unknown value &#39;sick&#39;" in r.get_data(as_text=True)


def test_target_names_and_details_are_escaped(world) -> None:
    add_targets(
        world.db,
        [{"target_id": "evil", "kind": "tcp", "last_detail": '<img src=x onerror="alert(1)">'}],
    )
    html = world.client().get("/").get_data(as_text=True)
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html


def test_target_page_shows_facts_transitions_and_incidents(world) -> None:
    now = time.time()
    add_transition(world.db, "trunk-a", now - 700, "unknown", "up", "first observation ok")
    add_transition(world.db, "trunk-a", now - 600, "up", "down", "2 failed probes in a row")
    incident_id = add_incident(world.db, ["trunk-a"], title="Carrier A down")
    html = world.client().get("/targets/trunk-a?lang=en").get_data(as_text=True)
    assert "Carrier A trunk" in html and "carrier=ct" in html
    assert html.index("2 failed probes in a row") < html.index(
        "first observation ok"
    )  # newest first
    assert "Carrier A down" in html and f"<td>{incident_id}</td>" in html
    # no metrics interface: no charts, but the up/down timeline from the transitions
    assert 'class="chart"' not in html
    assert 'class="tl h-down"' in html and 'class="tl h-up"' in html
    assert "No metric history" not in html


def test_unknown_target_page_is_a_404_page(world) -> None:
    r = world.client().get("/targets/nope?lang=en")
    assert r.status_code == 404 and "This page does not exist." in r.get_data(as_text=True)


def _chart_config(html: str) -> dict:
    found = re.search(r'<script id="dw-charts" type="application/json">(.*?)</script>', html)
    assert found is not None, "the page carries its chart data"
    return json.loads(found.group(1))


def test_target_page_draws_charts_from_the_embedded_metrics_store(tmp_path) -> None:
    store = MetricsStore(tmp_path / "metrics.db")
    now = time.time()
    try:
        store.write(
            [
                MetricPoint(
                    "sip",
                    {"rtt_ms": 10.0 if i < 25 else 20.0, "status_code": 200},
                    {"target": "trunk-a", "kind": "sip", "site": "sh"},
                    int((now - 3000 + i * 60) * 1e9),
                )
                for i in range(50)
            ]
        )
        w = make_world(tmp_path, metrics=EmbeddedMetricsQuery(store.path))
        add_targets(
            w.db,
            [
                {
                    "target_id": "trunk-a",
                    "last_metrics": {"sip.rtt_ms": 14.0, "sip.status_code": 200},
                }
            ],
        )
        html = w.client().get("/targets/trunk-a?lang=en").get_data(as_text=True)
    finally:
        store.close()
    assert "Last 6 hours" in html
    polyline = re.search(r'<polyline class="chart-line s-0" points="([^"]+)"', html)
    # the store picks raw values or rollups and downsamples; the chart draws what it gets
    assert polyline is not None and 10 <= len(polyline.group(1).split()) <= 50
    assert "sip.rtt_ms (ms)" in html
    assert "min 10 ms · max 20 ms" in html
    data = _chart_config(html)
    assert data["tz"] == "Asia/Shanghai"
    # key metrics first, in the kind's order, with their units; one chart per field
    assert [(c["title"], c["unit"]) for c in data["charts"]] == [
        ("sip.rtt_ms", "ms"),
        ("sip.status_code", ""),
    ]
    rtt = data["charts"][0]
    assert rtt["id"] == "chart-0" and 'id="chart-0"' in html
    assert [s["label"] for s in rtt["series"]] == ["rtt_ms"]
    assert len(rtt["x"]) == len(rtt["series"][0]["values"]) >= 10
    values = rtt["series"][0]["values"]
    assert min(values) == 10.0 and max(values) == 20.0


def test_target_page_loads_uplot_from_the_appliance_when_installed(tmp_path) -> None:
    require_uplot()
    w = make_world(tmp_path, metrics=OnePointMetrics())
    add_targets(w.db, [{"target_id": "trunk-a", "last_metrics": {"sip.rtt_ms": 14.0}}])
    c = w.client()
    html = c.get("/targets/trunk-a?lang=en").get_data(as_text=True)
    assert '<script src="/static/vendor/uPlot.iife.min.js" defer></script>' in html
    assert '<link rel="stylesheet" href="/static/vendor/uPlot.min.css">' in html
    assert 'id="uplot-missing"' not in html
    for path in ("/static/vendor/uPlot.iife.min.js", "/static/vendor/uPlot.min.css"):
        assert c.get(path).status_code == 200


def test_target_page_without_uplot_still_draws_lines_and_says_how_to_install_it(
    tmp_path, monkeypatch
) -> None:
    # a dev checkout that skipped install.sh has no web/static/vendor/
    monkeypatch.setattr(dashboard, "UPLOT_JS", "vendor/not-installed.js")
    w = make_world(tmp_path, metrics=OnePointMetrics())
    add_targets(w.db, [{"target_id": "trunk-a", "last_metrics": {"sip.rtt_ms": 14.0}}])
    r = w.client().get("/targets/trunk-a?lang=en")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert 'id="uplot-missing"' in html and "Run ./install.sh" in html
    assert "vendor/" not in html.replace("web/static/vendor/", "")  # nothing that would 404
    assert 'class="chart-line s-0"' in html  # the SVG lines stay


def test_target_page_survives_a_failing_metrics_store(tmp_path) -> None:
    class BrokenMetrics:
        """Stands in for a metrics store whose file went away."""

        def series(self, *args, **kwargs):
            raise OSError("metrics.db: no such file")

    w = make_world(tmp_path, metrics=BrokenMetrics())
    add_targets(w.db, [{"target_id": "trunk-a", "last_metrics": {"sip.rtt_ms": 14.0}}])
    r = w.client().get("/targets/trunk-a?lang=en")
    assert r.status_code == 200
    assert "The metrics store did not answer" in r.get_data(as_text=True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([(2.0, 5), (1.0, 4)], [(1.0, 4.0), (2.0, 5.0)]),
        ([(1.0, 1.0, 9.0, 5.0)], [(1.0, 5.0)]),  # rollup: the average
        ([(1.0, "OK"), (2.0, True), (3.0, 7)], [(3.0, 7.0)]),
        ([], []),
    ],
)
def test_chart_points_accept_raw_and_rolled_up_series(raw, expected) -> None:
    assert charts.points(raw) == expected


def test_chart_lines_share_one_scale_in_their_box() -> None:
    chart = charts.Chart(
        "x",
        "",
        (
            charts.ChartSeries("a", ((0.0, 0.0), (10.0, 10.0))),
            charts.ChartSeries("b", ((0.0, 5.0),)),
        ),
    )
    assert chart.polylines(width=100, height=50, pad=0) == [
        "0.0,50.0 100.0,0.0",
        "0.0,25.0 100.0,25.0",  # one point: a short flat line at its value
    ]
    flat = charts.Chart("x", "", (charts.ChartSeries("a", ((0.0, 3.0), (1.0, 3.0))),))
    assert flat.polylines(width=100, height=50, pad=0) == ["0.0,25.0 100.0,25.0"]


def test_uplot_data_joins_the_series_on_one_time_axis_with_gaps() -> None:
    chart = charts.Chart(
        "server_disk.used_percent",
        "%",
        (
            charts.ChartSeries("mount=/", ((1.0, 10.0), (2.0, 11.0))),
            charts.ChartSeries("mount=/var", ((2.0, 50.0), (3.0, 51.0))),
        ),
    )
    assert chart.uplot_data() == {
        "title": "server_disk.used_percent",
        "unit": "%",
        "x": [1.0, 2.0, 3.0],
        "series": [
            {"label": "mount=/", "values": [10.0, 11.0, None]},
            {"label": "mount=/var", "values": [None, 50.0, 51.0]},
        ],
    }


def test_chart_fields_put_the_kinds_key_metrics_first_with_units_then_other_numbers() -> None:
    metrics = {
        "server.cpu_count": 8,
        "server.memory_percent": 40.0,
        "server_disk.used_percent[mount=/]": 40.0,
        "server_disk.used_percent[mount=/var]": 70.0,
        "server.cpu_percent": 3.0,
        "server.state": "OK",
        "server.up": True,
    }
    got = charts.chart_fields(metrics, PROBES["server"].key_metrics, limit=4)
    assert [(f.title, f.unit) for f in got] == [
        ("server.cpu_percent", "%"),
        ("server.memory_percent", "%"),
        ("server_disk.used_percent", "%"),
        ("server.cpu_count", ""),  # not a key metric: after them, without a unit
    ]
    assert charts.chart_fields(metrics, (), limit=2)[0].title == "server.cpu_count"


def test_a_key_metric_with_tags_charts_only_that_series() -> None:
    metrics = {
        "snmp_cpu.load_percent[processor=1]": 5.0,
        "snmp_cpu.load_percent[processor=all]": 7.0,
    }
    (first,) = charts.chart_fields(metrics, PROBES["server"].key_metrics, limit=1)
    assert (first.title, first.unit, dict(first.tags)) == (
        "snmp_cpu.load_percent",
        "%",
        {"processor": "all"},
    )


def test_chart_series_labels_leave_out_the_standard_tags_but_keep_the_others() -> None:
    class Series:
        def __init__(self, tags: dict[str, str]) -> None:
            self.tags = tags
            self.points = [(1.0, 2.0), (2.0, 3.0)]

    chart = charts.chart_of(
        charts.ChartField("server_disk", "used_percent", "%"),
        [Series({"target": "db1", "kind": "server", "site": "sh", "mount": "/var"}), Series({})],
    )
    assert chart is not None and chart.title == "server_disk.used_percent"
    assert [s.label for s in chart.series] == ["mount=/var", "used_percent"]
    assert charts.chart_of(charts.ChartField("sip", "rtt_ms"), []) is None


def test_timeline_bars_place_the_spans_and_keep_short_ones_visible() -> None:
    spans = [
        queries.HealthSpan(0.0, 900.0, Health.UP),
        queries.HealthSpan(900.0, 901.0, Health.DOWN),
        queries.HealthSpan(901.0, 1000.0, Health.UP),
    ]
    bars = charts.timeline_bars(spans, 0.0, 1000.0, width=100)
    assert [(b.x, b.width, b.health) for b in bars] == [
        (0.0, 90.0, "up"),
        (90.0, 1.0, "down"),  # 0.1 px wide in truth: one pixel, so it shows
        (90.1, 9.9, "up"),
    ]
    assert charts.time_per_health(spans) == {"up": 999.0, "down": 1.0}


def test_the_filter_form_with_all_kinds_and_any_health_is_no_filter(world) -> None:
    r = world.client().get("/?q=trunk&kind=&health=")
    assert r.status_code == 200
    assert [i for i, _h in rows_in(r.get_data(as_text=True))] == ["trunk-a", "trunk-b"]


@pytest.mark.parametrize("path", ["/", "/targets/trunk-a", "/status", "/targets/nope"])
def test_pages_load_nothing_from_outside_the_appliance(world, path: str) -> None:
    html = world.client().get(path).get_data(as_text=True)
    refs = re.findall(r'(?:src|href|action)="([^"]*)"', html)
    assert refs, "the page links its own assets"
    assert [r for r in refs if not (r.startswith("/") or r.startswith("?"))] == []
    assert all(not r.startswith("//") for r in refs)
