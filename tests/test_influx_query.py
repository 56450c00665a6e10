"""Charts read back from a real InfluxDB 1.x with InfluxQL: raw when few points,
server-side min/max/mean buckets when many, tag filters, latest values."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.observation import MetricPoint
from monitor.metrics_query import QueryError
from monitor.sinks.influx_query import (
    ANSWER_MAX_BYTES,
    InfluxQLMetricsQuery,
    bucket_ms,
    where_clause,
)
from monitor.sinks.influx_v1 import InfluxV1Sink
from tests.peers import free_port
from tests.peers.influxdb import InfluxServer, influxdb_fixture  # noqa: F401 - fixture

START = 1_750_000_000.0  # epoch seconds
STD = {"target": "db-1", "kind": "server", "site": "sh"}


def write(server: InfluxServer, tmp_path: Path, points: list[MetricPoint]) -> None:
    sink = InfluxV1Sink("q", server.url, "dialwatch", tmp_path / "spool", flush_interval=0.05)
    sink.start()
    sink.submit(points)
    sink.close()
    assert sink.health().points_written == len(points)


def at(seconds: float) -> int:
    return int((START + seconds) * 1e9)


@pytest.fixture
def loaded(influxdb: InfluxServer, tmp_path: Path) -> Iterator[InfluxQLMetricsQuery]:
    points = [
        MetricPoint(
            "server_disk",
            {"used_percent": float(i % 50), "free_bytes": 1000 - i},
            STD | {"mount": "/"},
            at(i),
        )
        for i in range(1000)
    ]
    points += [
        MetricPoint(
            "server_disk", {"used_percent": 5.0, "free_bytes": 9}, STD | {"mount": "/var"}, at(0)
        )
    ]
    points += [
        MetricPoint(
            "sip",
            {"rtt_ms": 1.5 + i, "up": True},
            {"target": "trunk-a", "kind": "sip", "site": "sh"},
            at(i),
        )
        for i in range(3)
    ]
    points += [MetricPoint("server", {"state": f"s{i}"}, STD, at(i)) for i in range(100)]
    write(influxdb, tmp_path, points)
    query = InfluxQLMetricsQuery(influxdb.url, "dialwatch")
    yield query
    query.close()


@pytest.mark.peer
def test_few_points_come_back_raw_and_exact(loaded: InfluxQLMetricsQuery) -> None:
    (series,) = loaded.series("trunk-a", "sip", "rtt_ms", START, START + 60)
    assert (series.resolution, series.step, series.tags) == (
        "raw",
        0.0,
        {"kind": "sip", "site": "sh", "target": "trunk-a"},
    )
    assert series.points == [(START, 1.5), (START + 1, 2.5), (START + 2, 3.5)]


@pytest.mark.peer
def test_many_points_are_downsampled_by_the_server_to_min_max_mean(
    loaded: InfluxQLMetricsQuery,
) -> None:
    (series,) = loaded.series(
        "db-1",
        "server_disk",
        "used_percent",
        START,
        START + 1000,
        max_points=10,
        tags={"mount": "/"},
    )
    assert series.step == 100.0 and series.aggregated
    assert len(series.points) == 10
    for n, (ts, lo, hi, avg) in enumerate(series.points):
        values = [float(i % 50) for i in range(n * 100, n * 100 + 100)]
        assert (ts, lo, hi, avg) == (
            START + n * 100,
            min(values),
            max(values),
            sum(values) / len(values),
        )


@pytest.mark.peer
def test_each_tag_set_is_its_own_series_and_tags_filter_them(loaded: InfluxQLMetricsQuery) -> None:
    both = loaded.series("db-1", "server_disk", "free_bytes", START, START + 10)
    assert sorted(s.tags["mount"] for s in both) == ["/", "/var"]
    (var,) = loaded.series(
        "db-1", "server_disk", "free_bytes", START, START + 10, tags={"mount": "/var"}
    )
    assert var.points == [(START, 9)]
    assert isinstance(var.points[0][1], int)


@pytest.mark.peer
def test_string_fields_keep_the_last_value_of_each_bucket(loaded: InfluxQLMetricsQuery) -> None:
    (series,) = loaded.series("db-1", "server", "state", START, START + 100, max_points=4)
    assert series.step == 0.0 and series.resolution == "downsampled"
    assert [v for _, v in series.points] == ["s24", "s49", "s74", "s99"]


@pytest.mark.peer
def test_unknown_field_or_target_gives_no_series(loaded: InfluxQLMetricsQuery) -> None:
    assert loaded.series("db-1", "server_disk", "nope", START, START + 10) == []
    assert loaded.series("nobody", "server_disk", "free_bytes", START, START + 10) == []


@pytest.mark.peer
def test_latest_gives_the_newest_values_per_series_without_standard_tags(
    loaded: InfluxQLMetricsQuery,
) -> None:
    latest = loaded.latest("db-1")
    disks = sorted(latest["server_disk"], key=lambda row: row["tags"]["mount"])
    assert disks == [
        {
            "tags": {"mount": "/"},
            "time": START + 999,
            "fields": {"used_percent": 49.0, "free_bytes": 1},
        },
        {
            "tags": {"mount": "/var"},
            "time": START,
            "fields": {"used_percent": 5.0, "free_bytes": 9},
        },
    ]
    assert latest["server"] == [{"tags": {}, "time": START + 99, "fields": {"state": "s99"}}]
    assert "sip" not in latest


def test_unreachable_influxdb_is_a_query_error_naming_the_cause() -> None:
    query = InfluxQLMetricsQuery(f"http://127.0.0.1:{free_port()}", "dialwatch")
    with pytest.raises(QueryError, match="connection refused"):
        query.series("t", "m", "f", START, START + 1)


class _Flood(BaseHTTPRequestHandler):
    """Answers every query with more than the reader reads: a runaway answer."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        size = ANSWER_MAX_BYTES + 1024
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(size))
        self.end_headers()
        chunk = b" " * 1024**2
        with contextlib.suppress(OSError):  # the reader stops reading at its bound
            for start in range(0, size, len(chunk)):
                self.wfile.write(chunk[: size - start])


def test_an_answer_past_the_readers_bound_is_a_query_error_not_a_full_memory() -> None:
    flood = ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    flood.daemon_threads = True
    threading.Thread(target=flood.serve_forever, daemon=True).start()
    query = InfluxQLMetricsQuery(f"http://127.0.0.1:{flood.server_address[1]}", "dialwatch")
    try:
        with pytest.raises(QueryError, match=f"larger than {ANSWER_MAX_BYTES} bytes"):
            query.series("t", "m", "f", START, START + 1)
    finally:
        query.close()
        flood.shutdown()
        flood.server_close()


def test_where_clause_quotes_values_so_they_cannot_change_the_query() -> None:
    clause = where_clause("x' OR 1=1 --", 1.0, 2.0, {'we"ird': "a\\'b"})
    assert clause == (
        "WHERE \"target\" = 'x\\' OR 1=1 --' AND \"we\\\"ird\" = 'a\\\\\\'b' "
        "AND time >= 1000000000 AND time <= 2000000000"
    )


@pytest.mark.parametrize(
    ("span", "points", "width"), [(3600, 300, 12000), (1, 300, 4), (86400 * 7, 300, 2016000)]
)
def test_bucket_width_gives_at_most_max_points(span: float, points: int, width: int) -> None:
    assert bucket_ms(0, span, points) == width
    assert span * 1000 / width <= points
