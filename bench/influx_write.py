"""Benchmark: InfluxDB sinks into real servers, spool write/replay, and a reference writer.

Starts its own influxd (1.x) and VictoriaMetrics on loopback ports with temp
dirs (the same helpers the tests use), then measures from this one process:

1. reference writer — pre-encoded line protocol posted in 50,000-line bodies
   with plain ``http.client``: roughly the server's own limit on this machine;
2. the ``influxdb-v1`` sink into InfluxDB 1.x and the ``influxdb`` (v2 API)
   sink into VictoriaMetrics: points/s from ``submit`` to acknowledged, CPU
   seconds and peak RSS of this process; every point is counted back;
3. spool write rate (fsync on) and replay rate: a ``--outage-minutes`` outage
   at ``--rate`` points/s is simulated by writing the spool directly (as the
   sink does while the server is away, one record per flush interval), then a
   sink replays it into each server and the points are counted back;
4. ``--live-outage N``: a steady ``--rate`` stream through the v2 sink into
   VictoriaMetrics, the server stopped for N seconds in the middle, then every
   sample counted (VictoriaMetrics keeps duplicates, so "exactly once" shows).

Run: ``.venv/bin/python bench/influx_write.py [--points 500000] [--live-outage 30]``
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import shutil
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.observation import MetricPoint
from monitor.sinks.influx_v1 import InfluxV1Sink  # noqa: E402
from monitor.sinks.influx_v2 import InfluxV2Sink  # noqa: E402
from monitor.sinks.lineprotocol import encode_batch  # noqa: E402
from monitor.sinks.spool import Spool, SpoolingSink  # noqa: E402
from tests.peers.influxdb import InfluxServer  # noqa: E402
from tests.peers.victoriametrics import VictoriaMetricsServer  # noqa: E402

TARGETS = 1000
BASE_MS = int(time.time() * 1000) - 6 * 3600 * 1000  # inside VictoriaMetrics' window


def make_points(n: int, offset: int = 0, measurement: str = "sip") -> list[MetricPoint]:
    """``n`` SIP-probe-like points over TARGETS series, 1 ms apart within a series."""
    points = []
    for i in range(offset, offset + n):
        target = i % TARGETS
        ms = BASE_MS + i // TARGETS
        points.append(
            MetricPoint(
                measurement,
                {"rtt_ms": 10.0 + (i % 97) * 0.25, "status": i % 3},
                {
                    "target": f"trunk-{target:04d}",
                    "kind": "sip",
                    "site": "shanghai",
                    "carrier": "ct" if target % 2 else "cu",
                },
                ms * 1_000_000,
            )
        )
    return points


class Meter:
    """Wall time, CPU seconds and peak RSS of this process over a block."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.peak_rss = 0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_rss = max(self.peak_rss, self.proc.memory_info().rss)

    def __enter__(self) -> Meter:
        self.start_rss = self.peak_rss = self.proc.memory_info().rss
        cpu = self.proc.cpu_times()
        self._cpu0 = cpu.user + cpu.system
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        cpu = self.proc.cpu_times()
        self.cpu = cpu.user + cpu.system - self._cpu0
        self._stop.set()
        self._thread.join()


def post_all(url: str, path: str, bodies: list[bytes], headers: dict[str, str]) -> None:
    parsed = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
    for body in bodies:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status not in (200, 204):
            raise RuntimeError(f"{path}: HTTP {response.status}: {data[:200]!r}")
    conn.close()


def influx_count(server: InfluxServer, db: str, measurement: str) -> int:
    result = server.query(f'SELECT count("rtt_ms") FROM "{measurement}"', db)["results"][0]
    series = result.get("series")
    return int(series[0]["values"][0][1]) if series else 0


def vm_count(server: VictoriaMetricsServer, metric: str) -> tuple[int, int]:
    """(samples, distinct (series, timestamp) pairs) of one metric."""
    samples = distinct = 0
    for series in server.export(f'{{__name__="{metric}"}}'):
        samples += len(series["timestamps"])
        distinct += len(set(series["timestamps"]))
    return samples, distinct


def wait_drained(sink: SpoolingSink, expected: int, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        h = sink.health()
        if h.queued == 0 and h.points_spooled == 0 and h.points_written >= expected:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"sink did not drain: {h}")
        time.sleep(0.01)


def feed(sink: SpoolingSink, points: list[MetricPoint], chunk: int = 1000) -> None:
    """Submit as fast as the sink takes them, never overflowing its queue (nothing dropped)."""
    for i in range(0, len(points), chunk):
        while sink.health().queued > 150_000:
            time.sleep(0.001)
        sink.submit(points[i : i + chunk])


def row(name: str, points: int, meter: Meter, note: str = "") -> str:
    return (
        f"| {name} | {points:,} | {points / meter.wall:,.0f} | {meter.wall:.2f} | "
        f"{meter.cpu:.2f} | {meter.start_rss / 2**20:.0f} → {meter.peak_rss / 2**20:.0f} | {note} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--points", type=int, default=500_000)
    parser.add_argument("--rate", type=int, default=2000, help="points/s during outages")
    parser.add_argument("--outage-minutes", type=float, default=10.0)
    parser.add_argument("--live-outage", type=float, default=0.0, help="seconds; 0 skips")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="dialwatch-bench-"))
    influx = InfluxServer(root / "influx" if (root / "influx").mkdir() is None else root)
    vm = VictoriaMetricsServer(root / "vm" if (root / "vm").mkdir() is None else root)
    influx.start()
    vm.start()
    rows: list[str] = []
    checks: list[str] = []
    try:
        print(
            f"# {platform.node()} · {psutil.cpu_count()} CPUs · Python {platform.python_version()}"
        )
        points = make_points(args.points)
        lines = encode_batch(points).lines
        bodies = [b"\n".join(lines[i : i + 50_000]) for i in range(0, len(lines), 50_000)]

        # 1. reference writer
        influx.query("CREATE DATABASE ref")
        with Meter() as m:
            post_all(influx.url, "/write?db=ref&precision=ns", bodies, {})
        rows.append(row("reference: raw LP, 50k-line posts → InfluxDB 1.x", len(lines), m))
        checks.append(f"reference → InfluxDB 1.x: {influx_count(influx, 'ref', 'sip'):,} stored")
        with Meter() as m:
            post_all(vm.url, "/api/v2/write?org=o&bucket=ref&precision=ns", bodies, {})
        rows.append(row("reference: raw LP, 50k-line posts → VictoriaMetrics", len(lines), m))

        # 2. sinks, from submit() to acknowledged
        v1_points = make_points(args.points, measurement="sip_v1")
        sink_v1 = InfluxV1Sink("bench-v1", influx.url, "dialwatch", root / "spool-v1")
        sink_v1.start()
        with Meter() as m:
            feed(sink_v1, v1_points)
            wait_drained(sink_v1, len(v1_points))
        sink_v1.close()
        rows.append(row("`influxdb-v1` sink → InfluxDB 1.x", len(v1_points), m, "encode + HTTP"))
        stored = influx_count(influx, "dialwatch", "sip_v1")
        checks.append(f"`influxdb-v1` sink: {stored:,} of {len(v1_points):,} stored")

        v2_points = make_points(args.points, measurement="sip_v2")
        sink_v2 = InfluxV2Sink("bench-v2", vm.url, "o", "b", "t", root / "spool-v2")
        sink_v2.start()
        with Meter() as m:
            feed(sink_v2, v2_points)
            wait_drained(sink_v2, len(v2_points))
        sink_v2.close()
        rows.append(row("`influxdb` (v2 API) sink → VictoriaMetrics", len(v2_points), m, "gzip on"))
        samples, distinct = vm_count(vm, "sip_v2_rtt_ms")
        checks.append(
            f"`influxdb` sink: {samples:,} samples, {distinct:,} distinct of {len(v2_points):,}"
        )

        # 3. outage simulated by writing the spool directly, then replay
        outage_points = int(args.outage_minutes * 60 * args.rate)
        for label, make_sink, count_back in _replay_targets(influx, vm, root):
            spool_dir = root / f"spool-replay-{label}"
            spool = Spool(spool_dir)
            pts = make_points(outage_points, measurement=f"out_{label}")
            with Meter() as m:
                for i in range(0, len(pts), args.rate):  # one record per 1 s flush
                    spool.append(encode_batch(pts[i : i + args.rate]).lines)
            spool_mb = spool.bytes / 2**20
            spool.close()
            rows.append(
                row(
                    f"spool write (fsync per record), {args.rate}-point records",
                    len(pts),
                    m,
                    f"{spool_mb:.0f} MiB on disk",
                )
            )
            sink = make_sink(spool_dir)
            with Meter() as m:
                sink.start()
                wait_drained(sink, len(pts))
            sink.close()
            rows.append(
                row(
                    f"replay of a {args.outage_minutes:g}-min outage → {label}",
                    len(pts),
                    m,
                    f"{m.wall:.1f} s (goal < 60 s)",
                )
            )
            checks.append(f"replay → {label}: {count_back(pts):s}")

        # 4. live outage
        if args.live_outage:
            checks.append(_live_outage(vm, root, args.rate, args.live_outage))
    finally:
        influx.stop()
        vm.stop()
        shutil.rmtree(root, ignore_errors=True)

    # RSS includes the pre-built points of the run (they stand in for the engine's);
    # the growth from start to peak is what the sink itself held.
    print("| run | points | points/s | wall s | CPU s | RSS MiB start → peak | note |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        print(r)
    print()
    for c in checks:
        print(f"- {c}")
    return 0


def _replay_targets(
    influx: InfluxServer, vm: VictoriaMetricsServer, root: Path
) -> list[tuple[str, Callable[[Path], SpoolingSink], Callable[[list[MetricPoint]], str]]]:
    def v1(spool_dir: Path) -> SpoolingSink:
        return InfluxV1Sink("replay-v1", influx.url, "replay", spool_dir)

    def v2(spool_dir: Path) -> SpoolingSink:
        return InfluxV2Sink("replay-v2", vm.url, "o", "b", "t", spool_dir)

    def count_v1(pts: list[MetricPoint]) -> str:
        return f"{influx_count(influx, 'replay', pts[0].measurement):,} of {len(pts):,} stored"

    def count_v2(pts: list[MetricPoint]) -> str:
        samples, distinct = vm_count(vm, f"{pts[0].measurement}_rtt_ms")
        return f"{samples:,} samples, {distinct:,} distinct of {len(pts):,}"

    return [("InfluxDB 1.x", v1, count_v1), ("VictoriaMetrics", v2, count_v2)]


def _live_outage(vm: VictoriaMetricsServer, root: Path, rate: int, outage: float) -> str:
    """Stream ``rate`` points/s; stop the server ``outage`` s in the middle; count back."""
    sink = InfluxV2Sink("live", vm.url, "o", "b", "t", root / "spool-live", timeout=2.0)
    sink.start()
    sent = 0
    stop = threading.Event()

    def stream() -> None:
        nonlocal sent
        tick = time.monotonic()
        while not stop.is_set():
            batch = make_points(rate // 10, offset=sent, measurement="live")
            sink.submit(batch)
            sent += len(batch)
            tick += 0.1
            time.sleep(max(0.0, tick - time.monotonic()))

    writer = threading.Thread(target=stream)
    writer.start()
    time.sleep(10)
    vm.stop()
    time.sleep(outage)
    spooled = sink.health().points_spooled
    vm.start()
    restarted = time.monotonic()
    caught_up = None
    while time.monotonic() - restarted < 10 or caught_up is None:
        if caught_up is None and sink.health().points_spooled == 0:
            caught_up = time.monotonic() - restarted
        time.sleep(0.05)
    stop.set()
    writer.join()
    wait_drained(sink, sent)
    sink.close()
    samples, distinct = vm_count(vm, "live_rtt_ms")
    return (
        f"live {outage:g} s outage at {rate} points/s → VictoriaMetrics: {sent:,} sent, "
        f"{spooled:,} spooled during the outage, {samples:,} samples stored, {distinct:,} "
        f"distinct; sink up again: {json.dumps(sink.health().up)}; spool empty {caught_up:.1f} s "
        "after the server came back"
    )


if __name__ == "__main__":
    sys.exit(main())
