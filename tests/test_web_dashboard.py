"""The staff dashboard pages, rendered by the Flask test client over a real SQLite state DB."""

from __future__ import annotations

import json
import re
import time

import pytest

from core.observation import MetricPoint
from monitor.metrics_query import EmbeddedMetricsQuery
from monitor.store.metrics import MetricsStore
from tests.test_web_support import (
    add_incident,
    add_targets,
    add_transition,
    make_world,
    standard_rows,
)
from web import charts


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
    assert "rtt_ms <b>12.5</b>" in html  # key metric
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
    assert cfg["targetsUrl"] == "/api/v1/targets?kind=sip&health=down%2Cup"
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
    assert "Last 6 hours" not in html  # no metrics interface, no chart section


def test_unknown_target_page_is_a_404_page(world) -> None:
    r = world.client().get("/targets/nope?lang=en")
    assert r.status_code == 404 and "This page does not exist." in r.get_data(as_text=True)


def test_target_page_draws_charts_from_the_embedded_metrics_store(tmp_path) -> None:
    store = MetricsStore(tmp_path / "metrics.db")
    now = time.time()
    try:
        store.write(
            [
                MetricPoint(
                    "sip",
                    {"rtt_ms": 10.0 if i < 25 else 20.0},
                    {"target": "trunk-a", "kind": "sip", "site": "sh"},
                    int((now - 3000 + i * 60) * 1e9),
                )
                for i in range(50)
            ]
        )
        w = make_world(tmp_path, metrics=EmbeddedMetricsQuery(store.path))
        add_targets(w.db, [{"target_id": "trunk-a", "last_metrics": {"sip.rtt_ms": 14.0}}])
        html = w.client().get("/targets/trunk-a?lang=en").get_data(as_text=True)
    finally:
        store.close()
    assert "Last 6 hours" in html
    polyline = re.search(r'<polyline class="chart-line" points="([^"]+)"', html)
    # the store picks raw values or rollups and downsamples; the chart draws what it gets
    assert polyline is not None and 10 <= len(polyline.group(1).split()) <= 50
    assert "sip.rtt_ms" in html
    assert "min 10 · max 20" in html


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


def test_line_chart_scales_into_its_box() -> None:
    chart = charts.line_chart("x", [(0.0, 0.0), (10.0, 10.0)], width=100, height=50, pad=0)
    assert chart is not None and chart.polyline == "0.0,50.0 100.0,0.0"
    assert charts.line_chart("x", []) is None
    flat = charts.line_chart("x", [(0.0, 3.0), (1.0, 3.0)], width=100, height=50, pad=0)
    assert flat is not None and flat.polyline == "0.0,25.0 100.0,25.0"


def test_chartable_keys_are_numeric_and_distinct_per_field() -> None:
    metrics = {
        "server_disk.percent[mount=/]": 40.0,
        "server_disk.percent[mount=/var]": 70.0,
        "sip.rtt_ms": 3.0,
        "sip.reason": "OK",
        "sip.up": True,
    }
    assert charts.chartable_keys(metrics) == [("server_disk", "percent"), ("sip", "rtt_ms")]


def test_chart_titles_leave_out_the_standard_tags_but_keep_the_others() -> None:
    class Series:
        def __init__(self, tags: dict[str, str]) -> None:
            self.tags = tags
            self.points = [(1.0, 2.0), (2.0, 3.0)]

    got = charts.charts_for(
        "server_disk",
        "percent",
        [Series({"target": "db1", "kind": "server", "site": "sh", "mount": "/var"}), Series({})],
    )
    assert [c.title for c in got] == ["server_disk.percent mount=/var", "server_disk.percent"]


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
