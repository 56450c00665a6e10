"""SNMP benchmark: ``server`` targets ``via: snmp`` (profile ``host``) polled per second, vs ``snmpbulkwalk``.

What runs is the probe path the runner drives: ``probes.server.check`` for N
targets in one asyncio loop with a concurrency cap, each target with its own
probe state and its own pysnmp engine kept in ``ctx.shared`` (as in the
engine), polling a real Net-SNMP ``snmpd`` on loopback back to back for a
fixed time. Every poll is checked: it must read disks and memory.

Reported: polls/s, poll latency (p50/p95), CPU seconds of this process (the
engine's side) per poll, and the agent's CPU — snmpd walks hrStorage and
reads /proc for every request, so on one machine both compete for the cores.

In the same run, the reference: Net-SNMP's own command-line tools asking the
same agent for the same OIDs — one ``snmpget`` for sysUpTime.0 and laLoad.1-3
plus one ``snmpbulkwalk -Cr25`` per column (hrProcessorLoad and the five
hrStorage columns), i.e. seven processes per poll, with the same number in
flight. Their CPU is measured as children's CPU time.

With ``--engine``, the whole appliance path instead: N targets on a fixed
``--interval`` through ``monitor.engine.Engine`` (APScheduler, runner, health
state machine, state DB checkpoints and the embedded metrics store), reporting
polls started per second against what the schedule asks, late and missed
slots, statuses, and the engine's CPU.

Usage (repository root)::

    .venv/bin/python -m bench.snmp_poll --targets 50 --concurrency 16 --duration 20
    .venv/bin/python -m bench.snmp_poll --engine --targets 150 --interval 10 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from core.observation import Status
from core.shared import SharedResources
from monitor.config import load_config
from monitor.engine import Engine
from monitor.sinks.embedded import EmbeddedSink
from monitor.store.db import open_database
from monitor.store.repository import StateRepository
from probes.base import ProbeContext
from probes.server import ServerTarget, check
from probes.server.snmp_profiles import HR_PROCESSOR_LOAD, HR_STORAGE_COLUMNS, LA_LOAD, SYS_UPTIME
from tests.peers import require_binary
from tests.peers.snmpd import SnmpdAgent, start_snmpd

QUIET = {"cpu_percent": None, "load_per_core": None, "memory_percent": None, "disk_percent": None}


def make_target(index: int, agent: SnmpdAgent, version: str) -> ServerTarget:
    snmp = agent.v2c() if version == "2c" else agent.v3()
    return ServerTarget.model_validate(
        {
            "id": f"snmp-{index:05d}",
            "kind": "server",
            "via": "snmp",
            "interval": "10s",
            "timeout": "5s",
            "thresholds": QUIET,
            "snmp": {**snmp, "profiles": ["host"]},
        }
    )


async def run_probe(
    targets: list[ServerTarget], concurrency: int, duration: float
) -> tuple[int, int, list[float]]:
    """Poll every target back to back for ``duration`` s; (good polls, bad polls, latencies)."""
    shared = SharedResources()
    contexts = [ProbeContext(t.id, t.timeout, shared=shared) for t in targets]
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    good = bad = 0
    deadline = time.perf_counter() + duration

    async def loop(target: ServerTarget, ctx: ProbeContext) -> None:
        nonlocal good, bad
        while time.perf_counter() < deadline:
            async with gate:
                started = time.perf_counter()
                observation = await check(target, ctx)
                latencies.append(time.perf_counter() - started)
            disks = [p for p in observation.metrics if p.measurement == "server_disk"]
            if observation.status is Status.OK and disks:
                good += 1
            else:
                bad += 1
                if bad <= 3:
                    print(f"  bad poll: {observation.status} {observation.detail}")

    try:
        await asyncio.gather(*(loop(t, c) for t, c in zip(targets, contexts, strict=True)))
    finally:
        await shared.aclose()
    return good, bad, latencies


def write_engine_config(path: Path, agent: SnmpdAgent, targets: int, interval: int) -> None:
    lines = ["site: {name: bench}", "targets:"]
    for i in range(targets):
        lines += [
            f"  - id: snmp-{i:05d}",
            "    kind: server",
            "    via: snmp",
            f"    interval: {interval}s",
            "    timeout: 5s",
            "    thresholds: {cpu_percent: null, load_per_core: null, memory_percent: null,"
            " disk_percent: null}",
            f"    snmp: {{host: 127.0.0.1, port: {agent.port}, community: {agent.community},"
            " profiles: [host]}",
        ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


async def run_engine(config: Path, data: Path, warmup: float, duration: float) -> dict[str, Any]:
    """Run the appliance engine on ``config``; counters over ``duration`` after ``warmup``."""
    loaded = load_config(config)
    db = open_database(None, data)
    repo = StateRepository(db)
    sink = EmbeddedSink.from_config(loaded.config.storage, data)
    engine = Engine(loaded, repo, data, [sink], state_db_path=data / "state.db")
    me = psutil.Process()
    await engine.start()
    try:
        await asyncio.sleep(warmup)
        scheduler, stats = engine.scheduler, engine.runner.stats
        runs, late, missed = scheduler.runs, scheduler.late, scheduler.missed
        finished, statuses = stats.finished, dict(stats.by_status)
        cpu, started = cpu_of(me), time.monotonic()
        await asyncio.sleep(duration)
        elapsed = time.monotonic() - started
        return {
            "elapsed": elapsed,
            "runs": scheduler.runs - runs,
            "late": scheduler.late - late,
            "missed": scheduler.missed - missed,
            "finished": stats.finished - finished,
            "statuses": {
                k: v - statuses.get(k, 0)
                for k, v in stats.by_status.items()
                if v - statuses.get(k, 0)
            },
            "cpu": cpu_of(me) - cpu,
            "lag_p95_ms": scheduler.lag_p95() * 1000,
        }
    finally:
        await engine.stop()
        repo.close()
        db.dispose()


def reference_commands(agent: SnmpdAgent, version: str) -> list[list[str]]:
    """One poll's worth of Net-SNMP CLI calls for the same OIDs, with the same credentials."""
    snmpget = require_binary("snmpget")
    snmpbulkwalk = require_binary("snmpbulkwalk")
    if version == "2c":
        credentials = ["-v2c", "-c", agent.community]
    else:
        credentials = ["-v3", "-l", "authPriv", "-u", agent.user, "-a", "SHA", "-A",
                       agent.auth_key, "-x", "AES", "-X", agent.priv_key]  # fmt: skip
    common = [*credentials, "-On", "-t", "5", "-r", "1", agent.address]
    commands = [[snmpget, *common, SYS_UPTIME, *LA_LOAD]]
    for column in (HR_PROCESSOR_LOAD, *HR_STORAGE_COLUMNS):
        commands.append([snmpbulkwalk, "-Cr25", *common, column])
    return commands


def run_reference(
    agent: SnmpdAgent, version: str, concurrency: int, duration: float
) -> tuple[int, int]:
    """Run poll-equivalents (seven processes each) with ``concurrency`` in flight; (polls, failures)."""
    commands = reference_commands(agent, version)
    running: list[list[subprocess.Popen[bytes]]] = []
    polls = failures = 0
    deadline = time.perf_counter() + duration

    def start() -> list[subprocess.Popen[bytes]]:
        return [
            subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for c in commands
        ]

    while time.perf_counter() < deadline or running:
        while time.perf_counter() < deadline and len(running) < concurrency:
            running.append(start())
        still: list[list[subprocess.Popen[bytes]]] = []
        for group in running:
            if all(p.poll() is not None for p in group):
                polls += 1
                failures += any(p.returncode for p in group)
            else:
                still.append(group)
        running = still
        time.sleep(0.001)
    return polls, failures


def cpu_of(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def engine_run(
    args: argparse.Namespace, agent: SnmpdAgent, snmpd: psutil.Process, tmp: Path
) -> None:
    config = tmp / "site.yaml"
    write_engine_config(config, agent, args.targets, args.interval)
    data = tmp / "data"
    data.mkdir()
    agent0 = cpu_of(snmpd)
    r = asyncio.run(run_engine(config, data, args.warmup, args.duration))
    agent_cpu = cpu_of(snmpd) - agent0
    asked = args.targets / args.interval
    print(
        f"engine: {args.targets} targets every {args.interval} s (asks {asked:.1f} polls/s), "
        f"measured {r['elapsed']:.0f} s after {args.warmup:g} s warm-up; load average "
        f"{psutil.getloadavg()}"
    )
    print(
        f"  polls started {r['runs']} = {r['runs'] / r['elapsed']:.1f}/s, finished "
        f"{r['finished']}; late (>1 s) {r['late']}, missed {r['missed']}; scheduler lag p95 "
        f"{r['lag_p95_ms']:.0f} ms; statuses {r['statuses']}"
    )
    print(
        f"  engine CPU {r['cpu']:.2f} s = {r['cpu'] / r['elapsed'] * 100:.0f}% of one core, "
        f"{r['cpu'] / max(r['finished'], 1) * 1000:.2f} ms per poll (probe, state, metrics); "
        f"snmpd CPU {agent_cpu:.2f} s (includes the warm-up)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--version", choices=["2c", "3"], default="2c")
    parser.add_argument("--engine", action="store_true", help="the whole engine, on a schedule")
    parser.add_argument("--interval", type=int, default=10, help="with --engine: seconds")
    parser.add_argument("--warmup", type=float, default=15.0, help="with --engine: seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with tempfile.TemporaryDirectory(prefix="dw-bench-snmp-") as tmp:
        agent = start_snmpd(Path(tmp) / "snmpd")
        try:
            assert agent.process is not None
            snmpd = psutil.Process(agent.process.pid)
            me = psutil.Process()
            if args.engine:
                engine_run(args, agent, snmpd, Path(tmp))
                return
            targets = [make_target(i, agent, args.version) for i in range(args.targets)]
            print(
                f"{args.targets} targets, profile host, SNMP v{args.version}, concurrency "
                f"{args.concurrency}, {args.duration:g} s; load average {psutil.getloadavg()}"
            )

            cpu0, agent0, wall0 = cpu_of(me), cpu_of(snmpd), time.perf_counter()
            good, bad, latencies = asyncio.run(run_probe(targets, args.concurrency, args.duration))
            wall = time.perf_counter() - wall0
            cpu, agent_cpu = cpu_of(me) - cpu0, cpu_of(snmpd) - agent0
            polls = good + bad
            latencies.sort()
            p95 = latencies[int(0.95 * (len(latencies) - 1))] if latencies else 0.0
            print(
                f"probe:     {polls} polls ({bad} bad) in {wall:.1f} s = {polls / wall:.1f} polls/s; "
                f"latency p50 {statistics.median(latencies) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms; "
                f"engine CPU {cpu:.2f} s = {cpu / max(polls, 1) * 1000:.2f} ms/poll "
                f"({cpu / wall * 100:.0f}% of one core); snmpd CPU {agent_cpu:.2f} s "
                f"= {agent_cpu / max(polls, 1) * 1000:.2f} ms/poll"
            )

            child0, agent0, wall0 = children_cpu(), cpu_of(snmpd), time.perf_counter()
            ref_polls, ref_failures = run_reference(
                agent, args.version, args.concurrency, args.duration
            )
            wall = time.perf_counter() - wall0
            child_cpu, agent_cpu = children_cpu() - child0, cpu_of(snmpd) - agent0
            print(
                f"reference: {ref_polls} poll-equivalents ({ref_failures} failed) in {wall:.1f} s "
                f"= {ref_polls / wall:.1f}/s (7 processes each); CLI CPU {child_cpu:.2f} s = "
                f"{child_cpu / max(ref_polls, 1) * 1000:.2f} ms/poll; snmpd CPU {agent_cpu:.2f} s "
                f"= {agent_cpu / max(ref_polls, 1) * 1000:.2f} ms/poll"
            )
        finally:
            agent.stop()


if __name__ == "__main__":
    main()
