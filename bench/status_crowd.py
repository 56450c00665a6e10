"""The status page under a crowd: ``/status`` at 10,000 tcp targets while they are probed.

What runs is the real appliance (``dialwatch run``: engine, probes, state DB,
waitress serving the Flask app) with N tcp targets on a 60 s interval, all
pointing at a listener of this benchmark, grouped into 10 components by a
carrier tag (the status page resolves every selector over every target).
Beside them, 40 targets on a 2 s interval point at ports this benchmark
opens and closes in turn (one change every ``--flap`` / 40 seconds): an
outage in progress, so health changes, incidents open and resolve, and
events arrive while the crowd reads the page.

Once every target has been probed, ``wrk`` (50 connections, one thread) reads
in turn ``/status``, ``/api/v1/components`` and, as the reference, a static
file served by the same waitress and Flask (``/static/app.css``): what the
server costs per request with no page logic at all. Reported per URL:
requests/s, p50/p99 latency, errors, the appliance's CPU during the run, and
the events written meanwhile. The previous design runs first, in the same
run: the same config through the code of ``--before`` (a checkout, e.g.
``git worktree add --detach /work/wt/before-status main``), imported instead
of this tree's.

Usage (repository root)::

    .venv/bin/python -m bench.status_crowd --before /work/wt/before-status
    .venv/bin/python -m bench.status_crowd --targets 10000 --duration 20 --connections 50
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.peers import free_port

HERE = Path(__file__).resolve().parent.parent
CARRIERS = 10
FLAPPY = 40
"""Targets on ports that open and close in turn (``Flappers``), probed every 2 s."""


# -- the peers the targets connect to ------------------------------------------------
class Listener:
    """A TCP port that accepts and closes every connection (a healthy peer) on a thread."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port), backlog=4096, reuse_port=False)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()
            self.accepted += 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class Flappers:
    """Ports that open and close in turn: port ``i`` is open for ``period`` seconds, then
    refuses for ``period``, shifted by ``i * stagger`` so that one of them changes every
    ``stagger`` seconds. Each target flips only every ``period`` seconds, slower than flap
    damping notices (5 changes in 10 min), so its every change is a transition and an event."""

    def __init__(self, count: int, period: float, stagger: float) -> None:
        self.ports = [free_port() for _ in range(count)]
        self.period, self.stagger = period, stagger
        self.flips = 0
        self._open: dict[int, Listener] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            elapsed = time.monotonic() - started
            for i, port in enumerate(self.ports):
                should_be_open = int((elapsed + i * self.stagger) // self.period) % 2 == 0
                if should_be_open and port not in self._open:
                    self._open[port] = Listener(port)
                    self.flips += 1
                elif not should_be_open and port in self._open:
                    self._open.pop(port).close()
                    self.flips += 1
            self._stop.wait(0.25)
        for listener in self._open.values():
            listener.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


# -- the appliance ---------------------------------------------------------------------
def write_config(path: Path, targets: int, peer: int, flappy_ports: list[int]) -> None:
    lines = [
        "site: {name: Bench center, timezone: Asia/Shanghai, language: zh-CN}",
        "targets:",
    ]
    for n in range(targets):
        lines.append(
            f"  - {{id: trunk-{n:05d}, kind: tcp, address: '127.0.0.1:{peer}', interval: 60s,"
            f" timeout: 2s, tags: {{role: trunk, carrier: c{n % CARRIERS}}}}}"
        )
    for n, port in enumerate(flappy_ports):
        lines.append(
            f"  - {{id: crm-{n:02d}, kind: tcp, address: '127.0.0.1:{port}', interval: 2s,"
            f" timeout: 1s, fail_after: 1, recover_after: 1, tags: {{role: crm}}}}"
        )
    lines.append("components:")
    for c in range(CARRIERS):
        lines.append(
            f"  - {{id: carrier-{c}, name: {{zh-CN: 运营商{c}线路, en: Carrier {c} lines}},"
            f" selector: {{carrier: c{c}}}}}"
        )
    lines.append("  - {id: crm, name: {zh-CN: 客户系统, en: CRM}, selector: {role: crm}}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@dataclass
class Appliance:
    tree: Path
    config: Path
    data: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(
        self, path: str, timeout: float = 60, headers: dict[str, str] | None = None
    ) -> tuple[bytes, dict[str, str]]:
        request = urllib.request.Request(self.url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.read(), dict(resp.headers)

    def state_db(self) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{self.data / 'state.db'}?mode=ro", uri=True)

    def last_event_id(self) -> int:
        with contextlib.closing(self.state_db()) as db:
            return int(db.execute("SELECT coalesce(max(id), 0) FROM event").fetchone()[0])


_MAKE_TOKEN = """
import secrets, sys
from pathlib import Path
from monitor.staff import tokens, users
from monitor.store.db import open_database
from monitor.store.repository import StateRepository
db = open_database(None, Path(sys.argv[1]))
repo = StateRepository(db)
users.add_user(repo, "cli", "bench", "viewer", secrets.token_urlsafe(24))
print(tokens.create_token(repo, "cli", "bench", name="status_crowd")[1])
db.dispose()
"""


def viewer_token(tree: Path, data: Path) -> str:
    """A viewer and an API token in a new data directory's state DB (the API needs one),
    made by the measured tree's own code, so its schema is the one that tree knows."""
    data.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    made = subprocess.run(
        [sys.executable, "-c", _MAKE_TOKEN, str(data)],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return made.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def appliance(tree: Path, config: Path, workdir: Path, data: Path) -> Iterator[Appliance]:
    port = free_port()
    log = workdir / "dialwatch.log"
    env = {**os.environ, "PYTHONPATH": str(tree), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "dialwatch.cli", "run", "--config", str(config)]
    cmd += ["--data", str(data), "--listen", f"127.0.0.1:{port}", "--log-level", "WARNING"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=out, stderr=subprocess.STDOUT)
    app = Appliance(tree, config, data, port, proc, log)
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"dialwatch exited {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            with contextlib.suppress(OSError):
                app.get("/healthz", timeout=2)
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the appliance did not answer /healthz within 180 s")
            time.sleep(0.5)
        yield app
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_probed(app: Appliance, targets: int, limit: float = 240) -> float:
    """Seconds until every target has a health other than unknown (each probed at least once)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with contextlib.suppress(sqlite3.Error):  # the appliance may still be migrating
            with contextlib.closing(app.state_db()) as db:
                known = db.execute(
                    "SELECT count(*) FROM target_state WHERE health != 'unknown'"
                ).fetchone()[0]
            if known >= targets:
                return time.monotonic() - started
        time.sleep(2)
    raise RuntimeError(f"not every target was probed within {limit:.0f} s")


# -- wrk -------------------------------------------------------------------------------
@dataclass
class Run:
    design: str
    path: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: str
    cpu_percent: float
    events: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def wrk_ms(text: str) -> float:
    """A wrk latency figure (``512.30us``, ``1.09s``) in milliseconds."""
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def wrk(
    app: Appliance, design: str, path: str, duration: int, connections: int, headers: list[str]
) -> Run:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "60s", "--latency"]
    for h in headers:
        cmd += ["-H", h]
    proc = psutil.Process(app.process.pid)
    proc.cpu_percent()
    events_before = app.last_event_id()
    out = subprocess.run([*cmd, app.url + path], capture_output=True, text=True, check=True).stdout
    cpu = proc.cpu_percent()
    events = app.last_event_id() - events_before
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = wrk_ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = wrk_ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = []
    if m := re.search(r"Socket errors: (.+)", out):
        errors.append(m.group(1).strip())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors.append(f"non-2xx {m.group(1)}")
    return Run(design, path, rps, p50, p99, total, "; ".join(errors) or "-", cpu, events)


def settle(app: Appliance, limit: float = 120) -> None:
    """Wait until the server has worked off what the last run left queued (the slow design
    keeps answering queued requests after wrk stops): three quick /healthz in a row."""
    deadline, quick = time.monotonic() + limit, 0
    while quick < 3 and time.monotonic() < deadline:
        quick = quick + 1 if one_request(app, "/healthz") < 0.1 else 0
        time.sleep(0.2)


def one_request(app: Appliance, path: str, headers: Sequence[str] = ()) -> float:
    started = time.perf_counter()
    app.get(path, headers=dict(h.split(": ", 1) for h in headers))
    return time.perf_counter() - started


def measure(
    design: str, tree: Path, args: argparse.Namespace, workdir: Path, peer: int, flappy: list[int]
) -> tuple[list[Run], dict[str, float]]:
    workdir.mkdir(parents=True)
    config = workdir / "dialwatch.yaml"
    write_config(config, args.targets, peer, flappy)
    data = workdir / "data"
    headers = [f"Authorization: Bearer {viewer_token(tree, data)}"]
    runs: list[Run] = []
    with appliance(tree, config, workdir, data) as app:
        probed = wait_probed(app, args.targets + FLAPPY)
        single = {
            "probed_after_s": probed,
            "status_first_s": one_request(app, "/status"),
            "status_second_s": one_request(app, "/status"),
            "components_first_s": one_request(app, "/api/v1/components", headers),
        }
        print(
            f"[{design}] every target probed after {probed:.0f} s; one /status "
            f"{single['status_first_s']:.3f} s, then {single['status_second_s']:.3f} s; "
            f"/api/v1/components {single['components_first_s']:.3f} s",
            flush=True,
        )
        for path, extra in (
            ("/status", []),
            ("/api/v1/components", headers),
            ("/static/app.css", []),
        ):
            settle(app)
            run = wrk(app, design, path, args.duration, args.connections, extra)
            print(
                f"[{design}] {path}: {run.requests_per_s:.1f} req/s, p50 {run.p50_ms:.1f} ms,"
                f" p99 {run.p99_ms:.1f} ms, errors {run.errors}",
                flush=True,
            )
            runs.append(run)
    return runs, single


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--duration", type=int, default=20, help="seconds of wrk per URL")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument(
        "--flap", type=float, default=160.0, help="seconds each flapping port stays open/closed"
    )
    parser.add_argument(
        "--before", type=Path, help="a checkout of the previous design to compare with"
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: apt-get install wrk (./install.sh --test does)", file=sys.stderr
        )
        return 2

    peer, flappers = Listener(), Flappers(FLAPPY, args.flap, args.flap / FLAPPY)
    load = os.getloadavg()
    print(
        f"{args.targets} tcp targets at 60 s + {FLAPPY} flapping at 2 s (a change every {args.flap / FLAPPY:g} s); wrk -t1 -c{args.connections}"
        f" -d{args.duration}s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f};"
        f" {os.cpu_count()} CPUs",
        flush=True,
    )
    designs = [("before", args.before)] if args.before else []
    designs.append(("after", HERE))
    results: list[Run] = []
    singles: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="status-crowd-") as tmp:
        for design, tree in designs:
            workdir = Path(tmp) / design
            runs, single = measure(design, tree, args, workdir, peer.port, flappers.ports)
            results.extend(runs)
            singles[design] = single
    flappers.close()
    peer.close()

    print()
    print(
        "| design | URL | requests/s | p50 ms | p99 ms | requests | errors | appliance CPU % | events during the run |"
    )
    print("| --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for r in results:
        ref = " (reference)" if r.path.startswith("/static/") else ""
        print(
            f"| {r.design} | `{r.path}`{ref} | {r.requests_per_s:,.1f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} |"
            f" {r.requests:,} | {r.errors} | {r.cpu_percent:.0f} | {r.events} |"
        )
    print()
    for design, single in singles.items():
        print(
            f"{design}: one /status {single['status_first_s']:.3f} s (first), "
            f"{single['status_second_s']:.3f} s (second); one /api/v1/components "
            f"{single['components_first_s']:.3f} s"
        )
    load = os.getloadavg()
    print(f"load average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
