"""The dashboard's query backend: InfluxDB when it answers, the embedded store when it does not."""

from __future__ import annotations

import time
from pathlib import Path

from core.observation import MetricPoint
from monitor.config.models import StorageConfig
from monitor.query_select import COOL_DOWN, FallbackMetricsQuery, build_metrics_query
from monitor.sinks.config import InfluxV1SinkConfig
from monitor.sinks.influx_v1 import InfluxV1Sink
from monitor.store.metrics import MetricsStore
from tests.peers.influxdb import InfluxServer, influxdb_fixture  # noqa: F401 - fixture

START = float(int(time.time()) - 120)  # recent: inside the embedded raw window
TAGS = {"target": "trunk-a", "kind": "sip", "site": "sh"}


def points(rtt: float) -> list[MetricPoint]:
    return [MetricPoint("sip", {"rtt_ms": rtt}, TAGS, int((START + i) * 1e9)) for i in range(5)]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_charts_read_influxdb_and_fall_back_to_the_embedded_store_while_it_is_down(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    # InfluxDB holds rtt 7.0, the embedded store rtt 3.0: the answer shows which one spoke.
    sink = InfluxV1Sink("q", influxdb.url, "dialwatch", tmp_path / "spool", flush_interval=0.05)
    sink.start()
    sink.submit(points(7.0))
    sink.close()
    store = MetricsStore(tmp_path / "data" / "metrics.db")
    store.write(points(3.0))
    store.close()

    config = InfluxV1SinkConfig(kind="influxdb-v1", url=influxdb.url, database="dialwatch")
    query = build_metrics_query(StorageConfig(), tmp_path / "data", [config])
    assert isinstance(query, FallbackMetricsQuery)
    clock = Clock()
    query._clock = clock
    try:

        def rtts() -> list[float]:
            [series] = query.series("trunk-a", "sip", "rtt_ms", START - 1, START + 10)
            return [p[1] for p in series.points]

        assert rtts() == [7.0] * 5
        influxdb.stop()
        assert rtts() == [3.0] * 5  # InfluxDB down: the embedded store answers
        influxdb.start()
        clock.now = COOL_DOWN / 2
        assert rtts() == [3.0] * 5  # still resting: InfluxDB is not asked yet
        clock.now = COOL_DOWN + 1
        assert rtts() == [7.0] * 5  # asked again, and it answers
    finally:
        query.close()


def test_without_an_influxdb_sink_charts_read_the_embedded_store(tmp_path: Path) -> None:
    query = build_metrics_query(StorageConfig(), tmp_path, [])
    assert not isinstance(query, FallbackMetricsQuery)
    query.close()
