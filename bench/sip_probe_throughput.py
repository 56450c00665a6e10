"""The Foundation benchmark: N SIP targets on a 10 s interval through the whole engine.

What runs is the real appliance path: APScheduler → runner → ``probes.sip``
→ health state machine → state DB checkpoints (SQLite) and the embedded
metrics store (every point stored, not just sent). The peers are several
SIPp UAS processes answering OPTIONS on loopback; with ``--silent-share``
a part of the targets points at UDP ports that are bound but never answer,
so their probes sit in flight until their timeout.

Reported per run: probes/s sustained, late (started > 1 s after its slot)
and missed slots, CPU and peak RSS of the engine (run in a process of its
own, which imports only what the appliance's engine imports), rows stored. In the same run, the reference: a SIPp UAC sending OPTIONS to the
same peers as fast as it can (``-r`` high), i.e. what a dedicated C++ SIP
load generator reaches on this machine.

Usage (repository root)::

    .venv/bin/python -m bench.sip_probe_throughput --targets 10000 --duration 60
    .venv/bin/python -m bench.sip_probe_throughput --targets 10000 --duration 60 --silent-share 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from monitor.config import load_config_isolated
from monitor.engine import Engine
from monitor.sinks.embedded import EmbeddedSink
from monitor.store.db import open_database
from monitor.store.repository import StateRepository

UAC_SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="options-uac">
  <send retrans="500">
    <![CDATA[
      OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
      To: <sip:[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200"/>
</scenario>
"""


def start_uas(workdir: Path, sipp: str) -> tuple[int, subprocess.Popen[bytes]]:
    from tests.peers import free_port
    from tests.peers.sipp import options_scenario

    port = free_port(socket.SOCK_DGRAM)
    scenario = workdir / f"uas-{port}.xml"
    scenario.write_text(options_scenario(200, "OK"))
    proc = subprocess.Popen(
        [sipp, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-t", "u1",
         "-cp", str(free_port(socket.SOCK_DGRAM)), "-nostdin", "-buff_size", "8388608"],
        cwd=workdir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    return port, proc


def write_config(
    path: Path,
    n: int,
    peer_ports: list[int],
    silent_ports: list[int],
    silent_share: float,
    interval: int,
) -> None:
    n_silent = int(n * silent_share)
    lines = [
        "site: {name: bench, timezone: Asia/Shanghai}",
        "appliance: {concurrency: 2048}",
        "targets:",
    ]
    for i in range(n):
        port = (
            silent_ports[i % len(silent_ports)] if i < n_silent else peer_ports[i % len(peer_ports)]
        )
        lines += [
            f"  - id: trunk-{i}",
            "    kind: sip",
            f"    uri: sip:127.0.0.1:{port}",
            f"    interval: {interval}s",
            "    timeout: 4s",
            "    tags: {carrier: bench}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def run_engine(cfg: Path, data: Path, warmup: float, duration: float) -> dict[str, float]:
    loaded = load_config_isolated(cfg)
    db = open_database(None, data)
    repo = StateRepository(db)
    sink = EmbeddedSink.from_config(loaded.config.storage, data)
    engine = Engine(loaded, repo, data, [sink], state_db_path=data / "state.db")
    proc = psutil.Process()
    await engine.start()
    rss_started = proc.memory_info().rss
    await asyncio.sleep(warmup)
    sched, stats = engine.scheduler, engine.runner.stats
    runs0, late0, missed0, fin0 = sched.runs, sched.late, sched.missed, stats.finished
    cpu0 = sum(proc.cpu_times()[:2])
    t0 = time.monotonic()
    peak_rss = 0
    while time.monotonic() - t0 < duration:
        await asyncio.sleep(1)
        peak_rss = max(peak_rss, proc.memory_info().rss)
    elapsed = time.monotonic() - t0
    cpu = sum(proc.cpu_times()[:2]) - cpu0
    names = {t.native_id: t.name for t in threading.enumerate()}
    per_thread: dict[str, float] = {}
    for t in proc.threads():
        name = names.get(t.id, "other")
        per_thread[name] = per_thread.get(name, 0.0) + t.user_time + t.system_time
    result = {
        "slots": sched.runs - runs0 + sched.missed - missed0,
        "runs": sched.runs - runs0,
        "finished": stats.finished - fin0,
        "late": sched.late - late0,
        "missed": sched.missed - missed0,
        "elapsed": elapsed,
        "cpu": cpu,
        "peak_rss_mb": peak_rss / 2**20,
        "started_rss_mb": rss_started / 2**20,
        "lag_p95_ms": sched.lag_p95() * 1000,
        "by_status": dict(stats.by_status),
        "sink_dropped": sink.health().points_dropped,
        "threads": per_thread,
    }
    reasons = collections.Counter(
        re.sub(r"[0-9.]+", "N", rt.last.detail)
        for rt in engine.targets.values()
        if rt.last is not None and rt.last.status.value != "ok"
    )
    result["fail_reasons"] = reasons.most_common(3)
    await engine.stop()
    repo.close()
    db.dispose()
    with contextlib.closing(sqlite3.connect(data / "metrics.db")) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        raw = next((t for t in tables if t.startswith("raw")), None)
        result["raw_rows"] = (
            conn.execute(f"SELECT count(*) FROM {raw}").fetchone()[0] if raw else -1
        )
    with contextlib.closing(sqlite3.connect(data / "state.db")) as conn:
        result["state_rows"] = conn.execute(
            "SELECT count(*) FROM target_state WHERE last_observed_at IS NOT NULL"
        ).fetchone()[0]
    return result


def run_reference(
    workdir: Path, sipp: str, peer_ports: list[int], seconds: float = 5.0
) -> tuple[float, int]:
    """Best OPTIONS/s a SIPp UAC reaches against the same peers (one UAC per peer, in parallel).

    SIPp over-driven collapses (drops, retransmissions), so the requested rate
    is stepped up and the best achieved aggregate rate is reported.
    """
    from tests.peers import free_port

    scenario = workdir / "uac.xml"
    scenario.write_text(UAC_SCENARIO)
    best = (0.0, 0)
    for rate in (250, 500, 1000):
        per_peer = int(rate * seconds)
        started = time.monotonic()
        procs = [
            subprocess.Popen(
                [
                    sipp,
                    "-sf",
                    str(scenario),
                    "-i",
                    "127.0.0.1",
                    "-p",
                    str(free_port(socket.SOCK_DGRAM)),
                    "-cp",
                    str(free_port(socket.SOCK_DGRAM)),
                    "-r",
                    str(rate),
                    "-m",
                    str(per_peer),
                    "-nostdin",
                    "-timeout",
                    f"{int(seconds * 3)}s",
                    f"127.0.0.1:{port}",
                ],
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
            for port in peer_ports
        ]
        for p in procs:
            p.wait(120)
        achieved = per_peer * len(peer_ports) / (time.monotonic() - started)
        print(
            f"reference: SIPp UAC asked {rate}/s per peer × {len(peer_ports)} → {achieved:,.0f} OPTIONS/s"
        )
        if achieved > best[0]:
            best = (achieved, rate)
    return best


def report(args: argparse.Namespace, r: dict) -> None:
    expected = args.targets / args.interval * r["elapsed"]
    bad = r["late"] + r["missed"]
    print(
        f"targets {args.targets}, interval {args.interval}s, silent {args.silent_share:.0%}, measured {r['elapsed']:.0f}s"
    )
    print(
        f"probe starts: {r['runs']:,} (expected {expected:,.0f}) = {r['runs'] / r['elapsed']:,.0f}/s; finished {r['finished']:,}"
    )
    print(
        f"late (>1 s): {r['late']:,}  missed: {r['missed']:,}  = {bad / max(1, r['slots']):.3%} of slots; lag p95 {r['lag_p95_ms']:.1f} ms"
    )
    print(f"statuses (whole run): {r['by_status']}")
    print(f"last failure reasons: {r['fail_reasons']}")
    threads = ", ".join(
        f"{k} {v:.1f}s" for k, v in sorted(r["threads"].items(), key=lambda kv: -kv[1])
    )
    print(f"CPU by thread (whole run): {threads}")
    print(
        f"engine CPU: {r['cpu'] / r['elapsed']:.0%} of one core; peak RSS {r['peak_rss_mb']:.0f} MB "
        f"({r['started_rss_mb']:.0f} MB right after start)"
    )
    print(
        f"stored: {r['raw_rows']:,} raw metric rows, {r['state_rows']:,} target states; sink dropped {r['sink_dropped']}"
    )


def run_engine_process(cfg: Path, data: Path, warmup: float, duration: float) -> dict:
    """``run_engine`` in a process of its own, so its RSS is the engine's alone:
    this process also imports pytest and the peer helpers (~20 MB) the
    appliance never loads."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.sip_probe_throughput", "--engine-only",
         str(cfg), str(data), str(warmup), str(duration)],
        stdout=subprocess.PIPE, check=True, timeout=warmup + duration + 600,
    )  # fmt: skip
    return json.loads(done.stdout)


def engine_only(argv: list[str]) -> None:
    """Child side of ``run_engine_process``: the result as JSON on stdout."""
    logging.basicConfig(level=logging.ERROR)
    cfg, data, warmup, duration = Path(argv[0]), Path(argv[1]), float(argv[2]), float(argv[3])
    result = asyncio.run(run_engine(cfg, data, warmup, duration))
    json.dump(result, sys.stdout)


def main() -> None:
    if sys.argv[1:2] == ["--engine-only"]:
        engine_only(sys.argv[2:])
        return
    from tests.peers import require_binary

    logging.basicConfig(level=logging.ERROR)
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--targets", type=int, default=10_000)
    ap.add_argument("--interval", type=int, default=10)
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds after warm-up")
    ap.add_argument("--peers", type=int, default=4, help="SIPp UAS processes")
    ap.add_argument(
        "--silent-share", type=float, default=0.0, help="share of targets on silent ports"
    )
    args = ap.parse_args()

    sipp = require_binary("sipp")
    with tempfile.TemporaryDirectory(prefix="dw-bench-") as tmp:
        work = Path(tmp)
        peers = [start_uas(work, sipp) for _ in range(args.peers)]
        silent = []
        for _ in range(8):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            silent.append(s)
        try:
            time.sleep(0.5)
            ports = [p for p, _ in peers]
            cfg = work / "bench.yaml"
            write_config(
                cfg,
                args.targets,
                ports,
                [s.getsockname()[1] for s in silent],
                args.silent_share,
                args.interval,
            )
            t = time.perf_counter()
            load_config_isolated(cfg)
            print(f"config: {args.targets} targets loaded in {time.perf_counter() - t:.2f} s")
            r = run_engine_process(cfg, work / "data", args.interval + 2, args.duration)
            report(args, r)
            ref, ref_rate = run_reference(work, sipp, ports)
        finally:
            for _, proc in peers:
                proc.terminate()
            for s in silent:
                s.close()

    print(
        f"reference: best SIPp UAC rate {ref:,.0f} OPTIONS/s against the same {args.peers} peers (asked {ref_rate}/s each)"
    )


if __name__ == "__main__":
    main()
