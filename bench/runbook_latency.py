"""Incident opened → the first runbook step started, at 10,000 targets probed.

What runs is the real appliance (``dialwatch run``) with N tcp targets on a
60 s interval against a healthy listener (``bench.status_crowd``'s setup) and
``--outages`` targets of their own on a 1 s interval. One at a time, such a
target's port is closed: the engine opens an incident; a rule with ``run:``
starts a runbook whose first step is a local command; the same incident is
also paged over a webhook (``escalate:``) — the reference in the same run:
paging is the other subscriber of the same events (``bench.paging_latency``).

Measured per incident, on the appliance's own clock for the runbook (both in
the state DB): the incident's ``opened_at`` → its run's first step's
``started_at``; for the reference, ``opened_at`` → the webhook receiver's
arrival time (the same machine's clock).

Goal (issue 12): p99 ≤ 1 s.

Usage (repository root)::

    .venv/bin/python -m bench.runbook_latency
    .venv/bin/python -m bench.runbook_latency --targets 10000 --outages 20
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.paging_latency import SECRET, Receiver, opened_at, percentile
from bench.status_crowd import HERE, Listener, appliance, wait_probed
from tests.peers import free_port


def write_config(path: Path, targets: int, peer: int, outages: list[int], hook: int) -> None:
    lines = ["site: {name: Bench center, timezone: Asia/Shanghai, language: zh-CN}", "targets:"]
    for n in range(targets):
        lines.append(
            f"  - {{id: trunk-{n:05d}, kind: tcp, address: '127.0.0.1:{peer}', interval: 60s,"
            " timeout: 2s, tags: {role: trunk}}"
        )
    for n, port in enumerate(outages):
        lines.append(
            f"  - {{id: pbx-{n:02d}, kind: tcp, address: '127.0.0.1:{port}', interval: 1s,"
            " timeout: 500ms, fail_after: 1, recover_after: 1, tags: {role: pbx}}"
        )
    lines += [
        "runbooks:",
        "  - id: react",
        "    steps:",
        "      - {kind: shell, command: '/bin/true {{ incident.id }}'}",
        "runbook_settings: {shell_allow: [/bin/true]}",
        "channels:",
        f"  - {{id: hook, kind: webhook, url: 'http://127.0.0.1:{hook}/hook', secret: '{SECRET}',"
        " allow_private: true}",
        "people:",
        "  - {id: up, user: up, name: Up, contact: [hook]}",
        "escalations:",
        "  - {id: up, levels: [{notify: [person:up]}]}",
        "rules:",
        "  - {id: react, when: {event: opened, tags: {role: pbx}}, run: react}",
        "  - {id: page, when: {event: opened, tags: {role: pbx}}, escalate: up}",
        "paging: {retries: 0, rate_limit: 1000}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def first_steps(db: Path) -> dict[int, float]:
    """Incident id → when its run's first step started."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute(
            "SELECT r.incident_id, min(s.started_at) FROM runbook_run r"
            " JOIN runbook_step s ON s.run_id = r.id WHERE r.incident_id IS NOT NULL"
            " GROUP BY r.incident_id"
        ).fetchall()
    return {incident: at for incident, at in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--outages", type=int, default=20)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between two outages")
    args = parser.parse_args()
    peer, receiver = Listener(), Receiver()
    outages = [Listener(free_port()) for _ in range(args.outages)]
    load = os.getloadavg()
    print(
        f"{args.targets} tcp targets at 60 s + {args.outages} outage targets at 1 s; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="runbook-latency-") as tmp:
        work = Path(tmp)
        config = work / "dialwatch.yaml"
        write_config(config, args.targets, peer.port, [o.port for o in outages], receiver.port)
        data = work / "data"
        with appliance(HERE, config, work, data) as app:
            took = wait_probed(app, args.targets + args.outages)
            print(f"every target probed after {took:.0f} s", flush=True)
            for outage in outages:
                outage.close()
                time.sleep(args.gap)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                steps = first_steps(data / "state.db")
                if len(steps) >= args.outages and len(receiver.arrived) >= args.outages:
                    break
                time.sleep(0.2)
            opened = opened_at(data / "state.db")
            steps = first_steps(data / "state.db")
    peer.close()
    receiver.close()
    lat: dict[str, list[float]] = {"runbook": [], "paging": []}
    missing = 0
    for n in range(args.outages):
        found = opened.get(f"pbx-{n:02d}")
        if found is None or found[0] not in steps or found[0] not in receiver.arrived:
            missing += 1
            continue
        incident, at = found
        lat["runbook"].append(steps[incident] - at)
        lat["paging"].append(receiver.arrived[incident] - at)
    print()
    print("| path | incidents | p50 s | p99 s | max s | goal |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for path, goal in (("runbook", "p99 ≤ 1 s"), ("paging", "reference (same events)")):
        v = lat[path]
        if not v:
            print(f"| {path} | 0 | - | - | - | {goal} |")
            continue
        if path == "runbook":
            goal += " — **met**" if percentile(v, 0.99) <= 1 else " — missed"
        print(
            f"| {path} | {len(v)} | {statistics.median(v):.3f} | {percentile(v, 0.99):.3f} |"
            f" {max(v):.3f} | {goal} |"
        )
    if missing:
        print(f"\n{missing} incident(s) without a run or a page", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
