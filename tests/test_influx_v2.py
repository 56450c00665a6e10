"""The ``influxdb`` (v2 API) sink: round trips through a real VictoriaMetrics,
and the v2 answers VictoriaMetrics cannot give (token, bucket, rate limits,
bad points) from a local HTTP server that answers as the InfluxDB 2 docs say."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from core.observation import MetricPoint
from monitor.sinks.influx_v2 import InfluxV2Sink
from tests.peers.influxdb import self_signed_cert
from tests.peers.victoriametrics import (
    VictoriaMetricsServer,
    victoriametrics_fixture,  # noqa: F401 - fixture
)

NOW_MS = int(time.time() * 1000) - 3_600_000  # an hour ago: inside VictoriaMetrics' window
T0 = NOW_MS * 1_000_000


def make_sink(url: str, tmp_path: Path, **options: object) -> InfluxV2Sink:
    options = {"flush_interval": 0.05, "retry_initial": 0.2, "retry_max": 0.5} | options
    sink = InfluxV2Sink(
        "v2-test",
        url,
        "ops",
        "dialwatch",
        "s3cret",
        tmp_path / "spool",
        **options,  # type: ignore[arg-type]
    )
    sink.start()
    return sink


def wait_until(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def series(exported: list[dict]) -> dict[tuple, list[tuple[int, float]]]:
    """{(name, sorted labels): [(ms, value), ...]} from a VictoriaMetrics export."""
    out = {}
    for s in exported:
        labels = dict(s["metric"])
        name = labels.pop("__name__")
        key = (name, tuple(sorted(labels.items())))
        out[key] = list(zip(s["timestamps"], s["values"], strict=True))
    return out


@pytest.mark.peer
def test_points_read_back_from_victoriametrics_exactly_as_written(
    victoriametrics: VictoriaMetricsServer, tmp_path: Path
) -> None:
    sink = make_sink(victoriametrics.url, tmp_path)
    sink.submit(
        [
            MetricPoint(
                "sip", {"rtt_ms": 12.25, "status": 0}, {"target": "trunk-a", "carrier": "ct"}, T0
            ),
            MetricPoint(
                "sip",
                {"rtt_ms": 13.5, "status": 2},
                {"target": "trunk-a", "carrier": "ct"},
                T0 + 1_000_000,
            ),
            MetricPoint(
                "server",
                {"disk_used_pct": 91.0, "up": True},
                {"target": "db-1", "mount": "/var log"},
                T0,
            ),
            MetricPoint("dialer", {"asr": 0.4}, {"target": "q", "queue": "外呼,队列"}, T0),
        ]
    )
    sink.close()
    assert sink.health().points_written == 4
    assert series(victoriametrics.export()) == {
        ("sip_rtt_ms", (("carrier", "ct"), ("target", "trunk-a"))): [
            (NOW_MS, 12.25),
            (NOW_MS + 1, 13.5),
        ],
        ("sip_status", (("carrier", "ct"), ("target", "trunk-a"))): [
            (NOW_MS, 0.0),
            (NOW_MS + 1, 2.0),
        ],
        ("server_disk_used_pct", (("mount", "/var log"), ("target", "db-1"))): [(NOW_MS, 91.0)],
        ("server_up", (("mount", "/var log"), ("target", "db-1"))): [(NOW_MS, 1.0)],
        ("dialer_asr", (("queue", "外呼,队列"), ("target", "q"))): [(NOW_MS, 0.4)],
    }


class OrderRecordingSink(InfluxV2Sink):
    """The real sink, noting the timestamps of every batch the server acknowledged."""

    acknowledged: list[int]

    def post(self, body: bytes) -> None:
        super().post(body)
        self.acknowledged.extend(int(line.rsplit(b" ", 1)[1]) for line in body.split(b"\n"))


OUTAGE_SECONDS = 30.0


@pytest.mark.peer
def test_server_outage_mid_stream_loses_nothing_and_resends_nothing(
    victoriametrics: VictoriaMetricsServer, tmp_path: Path
) -> None:
    sink = OrderRecordingSink(
        "v2-test",
        victoriametrics.url,
        "ops",
        "dialwatch",
        "t",
        tmp_path / "spool",
        flush_interval=0.05,
        retry_initial=0.2,
        retry_max=0.5,
        # Long: a write the server stored but answered late (a loaded CI machine) would
        # time out and be sent again, a duplicate VictoriaMetrics keeps. The outage
        # itself is a stopped server: refused at once, whatever the timeout.
        timeout=15.0,
    )
    sink.acknowledged = []
    sink.start()
    sent: list[int] = []
    stop = threading.Event()

    def stream() -> None:  # a steady 200 points/s, like a busy engine
        i = 0
        while not stop.is_set():
            ms = NOW_MS + i
            sink.submit(
                [MetricPoint("sip", {"rtt_ms": float(i)}, {"target": "trunk-a"}, ms * 1_000_000)]
            )
            sent.append(ms)
            i += 1
            time.sleep(0.005)

    writer = threading.Thread(target=stream)
    writer.start()
    try:
        time.sleep(1.0)
        victoriametrics.stop()
        down_at = time.monotonic()
        wait_until(lambda: sink.health().points_spooled > 0)
        # the outage the issue names: 30 s of a steady stream into a stopped server
        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        assert not sink.health().up
        victoriametrics.start()
        time.sleep(1.0)
    finally:
        stop.set()
        writer.join()
    wait_until(lambda: sink.health().points_spooled == 0 and sink.health().queued == 0)
    sink.close()
    exported = series(victoriametrics.export('{__name__="sip_rtt_ms"}'))
    stored = exported[("sip_rtt_ms", (("target", "trunk-a"),))]
    assert [ms for ms, _ in stored] == sent  # every point, once (VictoriaMetrics keeps duplicates)
    assert [v for _, v in stored] == [float(ms - NOW_MS) for ms in sent]
    assert sink.acknowledged == [ms * 1_000_000 for ms in sent]  # acknowledged in submit order
    assert sink.health().up


WRITER = """
import sys, time
from core.observation import MetricPoint
from monitor.sinks.influx_v2 import InfluxV2Sink
mode, url, spool, start, count = sys.argv[1:3] + sys.argv[3:4] + [int(a) for a in sys.argv[4:]]
sink = InfluxV2Sink("v2", url, "ops", "dialwatch", "t", spool, flush_interval=0.05,
                    retry_initial=0.2, retry_max=0.5, timeout=2.0)
sink.start()
sink.submit([MetricPoint("sip", {"n": i}, {"target": "a"}, (start + i) * 1_000_000) for i in range(count)])
def settled():
    h = sink.health()
    return h.queued == 0 and h.points_spooled == (count if mode == "spool" else 0)
while not settled():
    time.sleep(0.05)
if mode == "spool":
    print("spooled", sink.health().points_spooled, flush=True)
    time.sleep(3600)  # until kill -9
sink.close()
print("replayed", sink.health().points_written, sink.health().points_spooled, flush=True)
"""


def run_writer(mode: str, url: str, spool: Path, count: int) -> subprocess.Popen[str]:
    """Start a separate writer process (an engine stand-in) on ``spool``."""
    root = Path(__file__).resolve().parent.parent
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, mode, url, str(spool), str(NOW_MS), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ | {"PYTHONPATH": str(root)},
        cwd=root,
        text=True,
    )


@pytest.mark.peer
def test_writer_killed_with_a_full_spool_replays_everything_on_restart(
    victoriametrics: VictoriaMetricsServer, tmp_path: Path
) -> None:
    spool = tmp_path / "spool"
    victoriametrics.stop()
    first = run_writer("spool", victoriametrics.url, spool, 3000)
    try:
        assert first.stdout is not None
        assert first.stdout.readline().split() == ["spooled", "3000"]
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()
    victoriametrics.start()
    second = run_writer("replay", victoriametrics.url, spool, 0)
    out, err = second.communicate(timeout=60)
    assert out.split() == ["replayed", "3000", "0"], err
    stored = series(victoriametrics.export('{__name__="sip_n"}'))[("sip_n", (("target", "a"),))]
    assert [ms for ms, _ in stored] == [NOW_MS + i for i in range(3000)]
    assert [v for _, v in stored] == [float(i) for i in range(3000)]


# -- a local HTTP server that answers as the InfluxDB 2 docs say ---------------


class FakeInfluxDB2:
    """Local stand-in for InfluxDB 2's ``POST /api/v2/write`` (no real 2.x is installable here).

    It checks each request as InfluxDB 2 would (path, org, bucket, precision,
    ``Authorization: Token``, gzip) and answers from ``answers``: a function of
    the line-protocol body giving (status, headers, JSON body) per the docs'
    error shape ``{"code": ..., "message": ...}``.
    """

    def __init__(self, answer: Callable[[bytes], tuple[int, dict[str, str], dict | None]]) -> None:
        self.answer = answer
        self.requests: list[tuple[float, bytes]] = []
        self.accepted: list[bytes] = []  # lines of the requests answered 204, in order
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server API
                url = urlparse(self.path)
                query = parse_qs(url.query)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                # The sink gzips by default (InfluxDB 2 accepts Content-Encoding: gzip).
                assert self.headers.get("Content-Encoding") == "gzip"
                assert self.headers["Content-Type"].startswith("text/plain")
                body = gzip.decompress(body)
                assert url.path == "/api/v2/write", url.path
                assert query["org"] == ["ops"] and query["bucket"] == ["dialwatch"], query
                assert query["precision"] == ["ns"], query
                assert self.headers["Authorization"] == "Token s3cret"
                fake.requests.append((time.monotonic(), body))
                status, headers, payload = fake.answer(body)
                if status == 204:
                    fake.accepted.extend(body.split(b"\n"))
                data = json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                if data:
                    self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_influxdb2() -> Iterator[Callable[..., FakeInfluxDB2]]:
    servers: list[FakeInfluxDB2] = []

    def start(answer: Callable[[bytes], tuple[int, dict[str, str], dict | None]]) -> FakeInfluxDB2:
        servers.append(FakeInfluxDB2(answer))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


REFUSALS = [
    ("token invalid", 401, {}, {"code": "unauthorized", "message": "unauthorized access"}),
    (
        "token lacks permission",
        403,
        {},
        {"code": "forbidden", "message": "insufficient permissions for write"},
    ),
    ("bucket missing", 404, {}, {"code": "not found", "message": 'bucket "dialwatch" not found'}),
    (
        "server overloaded",
        503,
        {"Retry-After": "0"},
        {"code": "unavailable", "message": "service unavailable"},
    ),
    (
        "rate limited",
        429,
        {"Retry-After": "0"},
        {"code": "too many requests", "message": "org ops over quota"},
    ),
]


@pytest.mark.parametrize(
    ("status", "headers", "payload"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS]
)
def test_refusals_time_can_fix_are_spooled_with_the_server_message_then_replayed_in_order(
    fake_influxdb2: Callable[..., FakeInfluxDB2],
    tmp_path: Path,
    status: int,
    headers: dict,
    payload: dict,
) -> None:
    refusing = threading.Event()
    refusing.set()
    server = fake_influxdb2(
        lambda body: (status, headers, payload) if refusing.is_set() else (204, {}, None)
    )
    sink = make_sink(server.url, tmp_path)
    sink.submit([MetricPoint("m", {"v": i}, {}, T0 + i) for i in range(5)])
    wait_until(lambda: sink.health().points_spooled == 5)
    sink.submit([MetricPoint("m", {"v": i}, {}, T0 + i) for i in range(5, 8)])
    wait_until(lambda: sink.health().points_spooled == 8)
    health = sink.health()
    assert not health.up
    assert f"HTTP {status}: {payload['message']}" in health.message
    refusing.clear()
    wait_until(lambda: sink.health().points_spooled == 0)
    sink.close()
    assert server.accepted == [f"m v={i}i {T0 + i}".encode() for i in range(8)]
    assert sink.health().up
    assert sink.health().points_written == 8


def test_retry_after_from_a_429_is_honoured(
    fake_influxdb2: Callable[..., FakeInfluxDB2], tmp_path: Path
) -> None:
    answers = iter(
        [(429, {"Retry-After": "2"}, {"code": "too many requests", "message": "slow down"})]
    )
    server = fake_influxdb2(lambda body: next(answers, (204, {}, None)))
    sink = make_sink(server.url, tmp_path)
    sink.submit([MetricPoint("m", {"v": 1}, {}, T0)])
    wait_until(lambda: len(server.requests) == 2)
    sink.close()
    (first, _), (second, _) = server.requests
    assert second - first >= 1.9  # our configured backoff is 0.2 s; the server asked for 2 s


def test_a_400_for_one_bad_point_quarantines_it_and_writes_its_neighbours(
    fake_influxdb2: Callable[..., FakeInfluxDB2], tmp_path: Path
) -> None:
    def answer(body: bytes) -> tuple[int, dict[str, str], dict | None]:
        if b"v=13i" in body:  # as InfluxDB 2 does, rejecting the batch it cannot parse
            return (
                400,
                {},
                {"code": "invalid", "message": "unable to parse 'm v=13i': field type conflict"},
            )
        return 204, {}, None

    server = fake_influxdb2(answer)
    sink = make_sink(server.url, tmp_path, batch_size=100)
    sink.submit([MetricPoint("m", {"v": i}, {}, T0 + i) for i in range(40)])
    sink.close()
    assert server.accepted == [f"m v={i}i {T0 + i}".encode() for i in range(40) if i != 13]
    health = sink.health()
    assert health.points_quarantined == 1 and health.points_written == 39
    assert health.up and "field type conflict" in (health.alert or "")
    text = "".join(p.read_text() for p in (tmp_path / "spool" / "quarantine").glob("*.lp"))
    assert f"m v=13i {T0 + 13}\n" in text and "unable to parse 'm v=13i'" in text


@pytest.mark.peer
def test_https_with_the_servers_ca_writes_and_without_it_waits_in_the_spool(tmp_path: Path) -> None:
    cert, key = self_signed_cert(tmp_path)
    server = VictoriaMetricsServer(tmp_path, tls=(cert, key))
    server.start()
    try:
        trusted = make_sink(server.url, tmp_path / "a", ca_file=str(cert))
        trusted.submit([MetricPoint("sip", {"rtt_ms": 1.0}, {"target": "a"}, T0)])
        trusted.close()
        assert trusted.health().points_written == 1
        untrusted = make_sink(server.url, tmp_path / "b")
        untrusted.submit([MetricPoint("sip", {"rtt_ms": 2.0}, {"target": "a"}, T0 + 1_000_000)])
        wait_until(lambda: untrusted.health().points_spooled == 1)
        untrusted.close()
        assert "certificate verify failed" in untrusted.health().message
        assert series(server.export()) == {("sip_rtt_ms", (("target", "a"),)): [(NOW_MS, 1.0)]}
    finally:
        server.stop()


def test_replay_split_around_a_bad_point_and_cut_by_an_outage_resends_nothing(
    fake_influxdb2: Callable[..., FakeInfluxDB2], tmp_path: Path
) -> None:
    state = {"up": False, "accepted_once": False, "flaked": False}

    def answer(body: bytes) -> tuple[int, dict[str, str], dict | None]:
        if not state["up"]:
            return 503, {}, {"code": "unavailable", "message": "starting"}
        if b"v=13i" in body:
            return 400, {}, {"code": "invalid", "message": "field type conflict at v=13i"}
        if state["accepted_once"] and not state["flaked"]:
            state["flaked"] = True  # the server goes away once, mid-split
            return 503, {}, {"code": "unavailable", "message": "restarting"}
        state["accepted_once"] = True
        return 204, {}, None

    server = fake_influxdb2(answer)
    sink = make_sink(server.url, tmp_path)
    for start in range(0, 40, 10):  # four spooled records of ten points
        sink.submit([MetricPoint("m", {"v": i}, {}, T0 + i) for i in range(start, start + 10)])
        wait_until(lambda n=start + 10: sink.health().points_spooled == n)
    state["up"] = True
    wait_until(lambda: sink.health().points_spooled == 0)
    sink.close()
    assert state["flaked"]
    assert server.accepted == [f"m v={i}i {T0 + i}".encode() for i in range(40) if i != 13]
    assert sink.health().points_quarantined == 1
