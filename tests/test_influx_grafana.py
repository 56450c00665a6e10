"""The Grafana dashboard's InfluxQL queries run against a real InfluxDB 1.x holding
points written by the ``influxdb-v1`` sink, and return the series they chart."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from core.observation import MetricPoint
from monitor.sinks.influx_v1 import InfluxV1Sink
from tests.peers.influxdb import InfluxServer, influxdb_fixture  # noqa: F401 - fixture

DASHBOARD = (
    Path(__file__).resolve().parent.parent / "config" / "grafana" / "dialwatch-influxdb.json"
)
T0 = 1_750_000_000_000_000_000


def grafana_expand(query: str) -> str:
    """What Grafana sends for a query: its macros and ``All`` variables filled in."""
    query = query.replace(
        "$timeFilter", f"time >= {T0 - 3600 * 10**9} AND time <= {T0 + 3600 * 10**9}"
    )
    query = query.replace("$__interval", "1m")
    return re.sub(r"\$(site|target)\b", ".*", query)


def test_dashboard_is_valid_json_with_panels_for_trunks_servers_and_queues() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows == ["Trunks (SIP)", "Servers", "Queues (dialer)", "Dialwatch itself"]
    assert dashboard["__inputs"][0]["name"] == "DS_INFLUXDB"


@pytest.mark.peer
def test_every_dashboard_query_runs_on_influxdb_and_finds_its_series(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    tags = {"target": "trunk-a", "kind": "sip", "site": "shanghai"}
    server_tags = {"target": "db-1", "kind": "server", "site": "shanghai"}
    points = [
        MetricPoint(
            "sip", {"rtt_ms": 12.5, "up": 1, "status_code": 200, "retransmissions": 0}, tags, T0
        ),
        MetricPoint(
            "server",
            {"cpu_percent": 40.0, "memory_percent": 61.5, "load_per_core": 0.5},
            server_tags,
            T0,
        ),
        MetricPoint("server_disk", {"used_percent": 91.0}, server_tags | {"mount": "/"}, T0),
        MetricPoint(
            "server_net",
            {"errors_per_s": 0.0, "drops_per_s": 0.5},
            server_tags | {"interface": "eth0"},
            T0,
        ),
        MetricPoint(
            "dialer",
            {"asr": 0.42},
            {"target": "q1", "kind": "dialer", "site": "shanghai", "queue": "sales"},
            T0,
        ),
        MetricPoint("appliance_sink", {"up": 1, "spool_bytes": 0}, {"sink": "influxdb-v1"}, T0),
        MetricPoint("appliance", {"scheduler_lag_seconds": 0.01}, {}, T0),
    ]
    sink = InfluxV1Sink(
        "grafana", influxdb.url, "dialwatch", tmp_path / "spool", flush_interval=0.05
    )
    sink.start()
    sink.submit(points)
    sink.close()
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [t["query"] for p in dashboard["panels"] for t in p.get("targets", [])]
    queries += [v["query"] for v in dashboard["templating"]["list"]]
    assert len(queries) == 15
    for query in queries:
        result = influxdb.query(grafana_expand(query), "dialwatch")["results"][0]
        assert "error" not in result, (query, result)
        values = [v for s in result.get("series", []) for row in s["values"] for v in row[1:]]
        assert any(v not in (None, "") for v in values), f"no data for: {query}"
