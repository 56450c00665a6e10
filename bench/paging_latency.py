"""Incident opened → first staff message accepted by the receiver, at 10,000 targets probed.

What runs is the real appliance (``dialwatch run``) with N tcp targets on a
60 s interval against a healthy listener (``bench.status_crowd``'s setup)
and ``--pages`` pager targets, each on a port of its own with a 1 s
interval. One at a time, a pager's port is closed: the engine opens an
incident, the ``escalate:`` rule pages a person, and the message goes out.
Measured per page: from the incident's ``opened_at`` (the engine's clock,
written in the state DB) to the moment a local receiver accepted the
message (the same machine's clock).

Two channels are measured in the same run, each as its own person:

- ``up``: a webhook to a local receiver (the reference: the channel is up);
- ``fallback``: the person's first channel is an SMTP server that accepts
  the connection and never answers (``smtp.timeout: 2s``, no retries), the
  second the same webhook: the goal is the message on the second channel
  within the first's timeout + 1 s.

Goal (issue 11): p99 ≤ 1 s when the channel is up.

Usage (repository root)::

    .venv/bin/python -m bench.paging_latency
    .venv/bin/python -m bench.paging_latency --targets 10000 --pages 20
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from bench.status_crowd import HERE, Listener, appliance, wait_probed
from tests.peers import free_port

SECRET = "0123456789abcdef0123456789"


class Receiver:
    """A webhook receiver that notes when each message arrived, by the incident it is about."""

    def __init__(self) -> None:
        self.arrived: dict[int, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                incident = json.loads(body).get("data", {}).get("incident_id")
                if isinstance(incident, int):
                    outer.arrived.setdefault(incident, at)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SilentSmtp:
    """Accepts SMTP connections and never says a word (a hanging provider)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)

    def close(self) -> None:
        for c in self.held:
            c.close()
        self.sock.close()


def write_config(
    path: Path, targets: int, peer: int, pagers: list[int], hook: int, smtp: int
) -> None:
    lines = ["site: {name: Bench center, timezone: Asia/Shanghai, language: zh-CN}", "targets:"]
    for n in range(targets):
        lines.append(
            f"  - {{id: trunk-{n:05d}, kind: tcp, address: '127.0.0.1:{peer}', interval: 60s,"
            " timeout: 2s, tags: {role: trunk}}"
        )
    for n, port in enumerate(pagers):
        who = "up" if n % 2 == 0 else "fallback"
        lines.append(
            f"  - {{id: pager-{n:02d}, kind: tcp, address: '127.0.0.1:{port}', interval: 1s,"
            f" timeout: 500ms, fail_after: 1, recover_after: 1, tags: {{role: pager, who: {who}}}}}"
        )
    lines += [
        "channels:",
        f"  - {{id: hook, kind: webhook, url: 'http://127.0.0.1:{hook}/hook', secret: '{SECRET}',"
        " allow_private: true}",
        "  - {id: mail, kind: email, from: 'NOC <noc@example.cn>', smtp: {host: 127.0.0.1,"
        f" port: {smtp}, tls: none, timeout: 2s}}}}",
        "people:",
        "  - {id: up, user: up, name: Up, contact: [hook]}",
        "  - {id: fb, user: fb, name: Fallback, email: fb@example.cn, contact: [mail, hook]}",
        "escalations:",
        "  - {id: up, levels: [{notify: [person:up]}]}",
        "  - {id: fb, levels: [{notify: [person:fb]}]}",
        "rules:",
        "  - {id: page-up, when: {event: opened, tags: {who: up}}, escalate: up}",
        "  - {id: page-fb, when: {event: opened, tags: {who: fallback}}, escalate: fb}",
        "paging: {retries: 0, rate_limit: 1000}",
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def opened_at(db: Path) -> dict[str, tuple[int, float]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT id, root_target_id, opened_at FROM incident").fetchall()
    return {target: (incident, at) for incident, target, at in rows}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--pages", type=int, default=20, help="pager targets, half per channel")
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between two outages")
    args = parser.parse_args()
    peer, receiver, smtp = Listener(), Receiver(), SilentSmtp()
    pagers = [Listener(free_port()) for _ in range(args.pages)]
    load = os.getloadavg()
    print(
        f"{args.targets} tcp targets at 60 s + {args.pages} pager targets at 1 s; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="paging-latency-") as tmp:
        work = Path(tmp)
        config = work / "dialwatch.yaml"
        write_config(
            config, args.targets, peer.port, [p.port for p in pagers], receiver.port, smtp.port
        )
        data = work / "data"
        with appliance(HERE, config, work, data) as app:
            took = wait_probed(app, args.targets + args.pages)
            print(f"every target probed after {took:.0f} s", flush=True)
            for pager in pagers:
                pager.close()
                time.sleep(args.gap)
            deadline = time.monotonic() + 30
            while len(receiver.arrived) < args.pages and time.monotonic() < deadline:
                time.sleep(0.2)
            opened = opened_at(data / "state.db")
    for closer in (peer, receiver, smtp):
        closer.close()
    lat: dict[str, list[float]] = {"up": [], "fallback": []}
    missing = 0
    for n in range(args.pages):
        found = opened.get(f"pager-{n:02d}")
        who = "up" if n % 2 == 0 else "fallback"
        if found is None or found[0] not in receiver.arrived:
            missing += 1
            continue
        incident, at = found
        lat[who].append(receiver.arrived[incident] - at)
    print()
    print("| channel | pages | p50 s | p99 s | max s | goal |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for who, goal in (("up", "p99 ≤ 1 s"), ("fallback", "≤ 2 s timeout + 1 s")):
        v = lat[who]
        if not v:
            print(f"| {who} | 0 | - | - | - | {goal} |")
            continue
        print(
            f"| {who} | {len(v)} | {statistics.median(v):.3f} | {percentile(v, 0.99):.3f} |"
            f" {max(v):.3f} | {goal} |"
        )
    if missing:
        print(f"\n{missing} page(s) never arrived", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
