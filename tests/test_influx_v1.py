"""The ``influxdb-v1`` sink against a real InfluxDB 1.x: exact round trips,
database creation, bad points quarantined, oversized batches split."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from core.observation import MetricPoint
from monitor.sinks.influx_v1 import InfluxV1Sink
from tests.peers.influxdb import (
    InfluxServer,
    influxdb_fixture,  # noqa: F401 - fixture
    self_signed_cert,
)

pytestmark = pytest.mark.peer

T0 = 1_750_000_000_000_000_000


def make_sink(server: InfluxServer, tmp_path: Path, **options: object) -> InfluxV1Sink:
    options = {"flush_interval": 0.05, "retry_initial": 0.2, "retry_max": 0.5} | options
    sink = InfluxV1Sink(
        "influx-test",
        server.url,
        options.pop("database", "dialwatch"),  # type: ignore[arg-type]
        tmp_path / "spool",
        **options,  # type: ignore[arg-type]
    )
    sink.start()
    return sink


def wait_until(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


TRICKY = [
    MetricPoint(
        "sip",
        {"rtt_ms": 12.25, "status": 0, "up": True},
        {"target": "trunk-a", "kind": "sip"},
        T0 + 1,
    ),
    MetricPoint(
        "server",
        {"detail": 'disk "/" is 91% full\\ok'},
        {"target": "db 1", "mount": "/var,log=x"},
        T0 + 2,
    ),
    MetricPoint(
        "snmp if",
        {"in_octets": 2**62, "ratio": -0.5},
        {"target": "edge", "interface": "Gi0/1"},
        T0 + 3,
    ),
    MetricPoint(
        "dialer", {"asr": 0.4}, {"target": "q", "queue": "外呼 队列", "site": "上海"}, T0 + 4
    ),
    MetricPoint(
        "server", {"detail": "line one\nline two"}, {"target": "t", "path": "C:\\Users"}, T0 + 5
    ),
]

# What InfluxDB must give back for TRICKY: measurement, tags, fields, time.
EXPECTED = [
    (
        "sip",
        {"target": "trunk-a", "kind": "sip"},
        {"rtt_ms": 12.25, "status": 0, "up": True},
        T0 + 1,
    ),
    (
        "server",
        {"target": "db 1", "mount": "/var,log=x"},
        {"detail": 'disk "/" is 91% full\\ok'},
        T0 + 2,
    ),
    (
        "snmp if",
        {"target": "edge", "interface": "Gi0/1"},
        {"in_octets": 2**62, "ratio": -0.5},
        T0 + 3,
    ),
    ("dialer", {"target": "q", "queue": "外呼 队列", "site": "上海"}, {"asr": 0.4}, T0 + 4),
    ("server", {"target": "t", "path": "C:/Users"}, {"detail": "line one line two"}, T0 + 5),
]


def read_back(server: InfluxServer, db: str = "dialwatch") -> list[tuple[str, dict, dict, int]]:
    result = server.query("SELECT * FROM /.*/ GROUP BY *", db)["results"][0]
    rows = []
    for series in result.get("series", []):
        for values in series["values"]:
            row = dict(zip(series["columns"], values, strict=True))
            t = row.pop("time")
            fields = {k: v for k, v in row.items() if v is not None}
            tags = {k: v for k, v in series.get("tags", {}).items() if v}
            rows.append((series["name"], tags, fields, t))
    return sorted(rows, key=lambda r: r[3])


@pytest.mark.parametrize("gzip_body", [False, True], ids=["plain", "gzip"])
def test_points_read_back_from_influxdb_exactly_as_written(
    influxdb: InfluxServer, tmp_path: Path, gzip_body: bool
) -> None:
    sink = make_sink(influxdb, tmp_path, gzip_body=gzip_body)
    sink.submit(TRICKY)
    sink.close()
    assert sink.health().points_written == len(TRICKY)
    got = read_back(influxdb)
    assert [(m, dict(sorted(t.items())), f, ts) for m, t, f, ts in got] == [
        (m, dict(sorted(t.items())), f, ts) for m, t, f, ts in EXPECTED
    ]


def test_integer_and_float_fields_keep_their_types_in_influxdb(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    sink = make_sink(influxdb, tmp_path)
    sink.submit([MetricPoint("m", {"count": 3, "ratio": 3.0, "flag": False, "text": "x"}, {}, T0)])
    sink.close()
    result = influxdb.query("SHOW FIELD KEYS FROM m", "dialwatch")["results"][0]
    assert sorted(result["series"][0]["values"]) == [
        ["count", "integer"],
        ["flag", "boolean"],
        ["ratio", "float"],
        ["text", "string"],
    ]


def test_missing_database_is_a_clear_error_when_creation_is_not_allowed_and_points_wait(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    sink = make_sink(influxdb, tmp_path, database="ops", create_database=False)
    sink.submit([MetricPoint("m", {"v": i}, {}, T0 + i) for i in range(10)])
    wait_until(lambda: sink.health().points_spooled == 10)
    health = sink.health()
    assert not health.up
    assert "database 'ops' does not exist" in health.message
    assert "create_database: true" in health.message
    influxdb.query("CREATE DATABASE ops")
    wait_until(lambda: sink.health().points_spooled == 0)
    sink.close()
    assert [r[3] for r in read_back(influxdb, "ops")] == [T0 + i for i in range(10)]
    assert sink.health().up


def test_one_bad_point_is_quarantined_and_its_neighbours_are_written(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    sink = make_sink(influxdb, tmp_path)
    sink.submit([MetricPoint("sip", {"rtt_ms": 1.0}, {"target": "a"}, T0)])
    wait_until(lambda: sink.health().points_written == 1)
    # A string where InfluxDB already has a float: "field type conflict", HTTP 400.
    points = [
        MetricPoint("sip", {"rtt_ms": float(i)}, {"target": "a"}, T0 + i) for i in range(1, 41)
    ]
    points[17] = MetricPoint("sip", {"rtt_ms": "oops"}, {"target": "a"}, T0 + 18)
    sink.submit(points)
    sink.close()
    health = sink.health()
    assert health.points_quarantined == 1
    assert health.alert is not None and "field type conflict" in health.alert
    assert health.points_spooled == 0
    quarantined = (tmp_path / "spool" / "quarantine").glob("*.lp")
    text = "".join(p.read_text() for p in quarantined)
    assert f'sip,target=a rtt_ms="oops" {T0 + 18}\n' in text
    assert "field type conflict" in text
    assert [r[3] for r in read_back(influxdb)] == [T0 + i for i in range(41) if i != 18]


def test_a_batch_too_large_for_the_server_is_split_and_written(tmp_path: Path) -> None:
    server = InfluxServer(tmp_path, max_body_size=3000)
    server.start()
    try:
        sink = make_sink(server, tmp_path, batch_size=1000)
        points = [MetricPoint("m", {"v": i}, {"target": "t"}, T0 + i) for i in range(300)]
        sink.submit(points)
        sink.close()
        health = sink.health()
        assert health.points_quarantined == 0
        assert health.points_written == 300
        assert [r[3] for r in read_back(server)] == [T0 + i for i in range(300)]
    finally:
        server.stop()


def test_malformed_points_never_stop_the_writer_and_are_quarantined_with_reasons(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    sink = make_sink(influxdb, tmp_path)
    malformed = [
        MetricPoint("m", {"v": float("nan")}, {}, T0 + 1),
        MetricPoint("m", {"v": float("-inf"), "ok": 1.0}, {}, T0 + 2),
        MetricPoint("m", {"v": 2**70}, {}, T0 + 3),
        MetricPoint("", {"v": 1.0}, {}, T0 + 4),
        MetricPoint("m", {}, {}, T0 + 5),
        MetricPoint("m", {"v": None}, {}, T0 + 6),  # type: ignore[dict-item]
        MetricPoint("m", {"s": "x" * 200_000}, {"t": "\n\t,= \\"}, T0 + 7),
        MetricPoint("m", {"v": 1.0}, {"n": 7}, T0 + 8),  # type: ignore[dict-item]
    ]
    sink.submit(malformed)
    sink.submit([MetricPoint("m", {"ok": 3.0}, {}, T0 + 9)])
    sink.close()
    rows = {r[3]: (r[1], r[2]) for r in read_back(influxdb)}
    assert sorted(rows) == [T0 + 2, T0 + 7, T0 + 8, T0 + 9]
    assert rows[T0 + 2] == ({}, {"ok": 1.0})
    assert rows[T0 + 7][0] == {"t": "  ,= /"}  # line break and tab → spaces, \\ → /
    assert rows[T0 + 7][1]["s"] == "x" * (64 * 1024 - 1)
    assert rows[T0 + 8] == ({"n": "7"}, {"v": 1.0})
    health = sink.health()
    assert health.up and health.points_quarantined == 5
    text = "".join(p.read_text() for p in (tmp_path / "spool" / "quarantine").glob("*.lp"))
    for reason in (
        "nan is not a finite number",
        "integer outside the 64-bit range",
        "point has no measurement",
        "no fields",
        "unsupported type NoneType",
    ):
        assert reason in text


def test_writes_go_into_the_configured_retention_policy(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    influxdb.query("CREATE DATABASE dialwatch")
    influxdb.query('CREATE RETENTION POLICY "week" ON dialwatch DURATION 7d REPLICATION 1')
    now = time.time_ns()
    sink = make_sink(influxdb, tmp_path, retention_policy="week")
    sink.submit([MetricPoint("m", {"v": 1.0}, {}, now)])
    sink.close()
    assert influxdb.select('SELECT v FROM "week"."m"', "dialwatch") == [{"time": now, "v": 1.0}]
    assert influxdb.select('SELECT v FROM "autogen"."m"', "dialwatch") == []


def test_wrong_password_is_spooled_with_the_server_message_and_replayed_once_fixed(
    tmp_path: Path,
) -> None:
    server = InfluxServer(tmp_path, auth=True)
    server.start()
    try:
        # The first admin may be created without credentials; everything after needs them.
        server.query("CREATE USER admin WITH PASSWORD 'right' WITH ALL PRIVILEGES")
        server.query("CREATE DATABASE dialwatch", auth=("admin", "right"))
        server.query("CREATE USER writer WITH PASSWORD 'old'", auth=("admin", "right"))
        server.query('GRANT WRITE ON "dialwatch" TO "writer"', auth=("admin", "right"))
        server.query("SET PASSWORD FOR writer = 'new'", auth=("admin", "right"))
        sink = make_sink(server, tmp_path, username="writer", password="old", create_database=False)
        sink.submit([MetricPoint("m", {"v": float(i)}, {}, T0 + i) for i in range(5)])
        wait_until(lambda: sink.health().points_spooled == 5)
        assert "HTTP 401: authorization failed" in sink.health().message
        server.query("SET PASSWORD FOR writer = 'old'", auth=("admin", "right"))
        wait_until(lambda: sink.health().points_spooled == 0)
        sink.close()
        got = server.query("SELECT v FROM m", "dialwatch", auth=("admin", "right"))
        assert [v[0] for v in got["results"][0]["series"][0]["values"]] == [
            T0 + i for i in range(5)
        ]
    finally:
        server.stop()


def test_https_with_the_servers_ca_writes_and_without_it_waits_in_the_spool(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    server = InfluxServer(tmp_path, tls=(cert, key))
    server.start()
    try:
        trusted = make_sink(server, tmp_path / "a", ca_file=str(cert))
        trusted.submit([MetricPoint("m", {"v": 1.0}, {}, T0)])
        trusted.close()
        assert trusted.health().points_written == 1
        untrusted = make_sink(server, tmp_path / "b")
        untrusted.submit([MetricPoint("m", {"v": 2.0}, {}, T0 + 1)])
        wait_until(lambda: untrusted.health().points_spooled == 1)
        untrusted.close()
        assert "certificate verify failed" in untrusted.health().message
        assert [r[3] for r in read_back(server)] == [T0]
    finally:
        server.stop()
