"""The staff API and pages with a token at 10,000 targets, 100,000 incidents and 100,000 audit rows.

What runs is the real appliance (``dialwatch run``: engine, probes, SQLite
state DB, waitress serving the Flask app) with N tcp targets on a 60 s
interval against a listener of this benchmark (``bench.status_crowd``'s
setup, with its 40 flapping targets: health changes and incidents open while
the API is read). Before it starts, its state DB is given a year of history:
``--incidents`` resolved incidents (1-3 members each, a timeline of 3-5
lines, a third acknowledged, a tenth with a customer update) and
``--audit`` hash-chained audit entries (``bench.audit_page``'s mix).

Once every target has been probed, ``wrk`` (``--connections`` clients, one
thread) reads each URL in turn with an admin's API token: the first page of
``/api/v1/targets`` and ``/api/v1/incidents``, a filtered and a deep page of
each, the staff incidents page and the audit page (where this tree serves
them), and, as the reference, a static file served by the same server with
the same token (what the server and the guard cost with no query at all).
Reported per URL: requests/s, p50/p99/max latency, errors. The goal: p99 at
most 100 ms.

Usage (repository root)::

    .venv/bin/python -m bench.api_latency
    .venv/bin/python -m bench.api_latency --targets 10000 --incidents 100000 --audit 100000 \\
        --duration 15 --connections 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from bench.status_crowd import (
    FLAPPY,
    HERE,
    Appliance,
    Flappers,
    Listener,
    appliance,
    settle,
    wait_probed,
    write_config,
    wrk_ms,
)

_PREPARE = """
import json, random, secrets, sys, time
from pathlib import Path
from sqlalchemy import insert, text
sys.path.insert(0, sys.argv[1])
from bench.audit_page import fill
from monitor.staff import tokens, users
from monitor.store.db import open_database
from monitor.store.models import CustomerUpdate, Incident, IncidentEvent, IncidentTarget
from monitor.store.repository import StateRepository

data, targets, n_incidents, n_audit = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
db = open_database(None, data)
repo = StateRepository(db)
started = time.perf_counter()
fill(db, n_audit)  # first: it numbers the chain from 1
users.add_user(repo, "cli", "bench", "admin", secrets.token_urlsafe(24))
token = tokens.create_token(repo, "cli", "bench", name="api_latency")[1]
rng = random.Random(11)
now = time.time()
at = now - 365 * 86400.0
step = 365 * 86400.0 / max(n_incidents, 1)
def flush(conn, batch, members, lines, updates):
    for table, rows in ((Incident, batch), (IncidentTarget, members), (IncidentEvent, lines),
                        (CustomerUpdate, updates)):
        if rows:
            conn.execute(insert(table.__table__), rows)

with db.begin() as conn:
    batch, members, lines, updates = [], [], [], []
    for i in range(1, n_incidents + 1):
        at += rng.expovariate(1 / step)
        lasted = rng.expovariate(1 / 900.0) + 30
        root = f"trunk-{rng.randrange(targets):05d}"
        acked = rng.random() < 0.33
        batch.append({
            "id": i, "state": "resolved", "opened_at": at, "resolved_at": at + lasted,
            "root_target_id": root, "title": f"{root} is down", "severity": rng.choice(["down", "degraded"]),
            "cause": rng.choice([None, "carrier outage", "SBC restart"]), "eta": None,
            "summary": {}, "acknowledged_at": at + 60 if acked else None,
            "acknowledged_by": "user:op07" if acked else None,
        })
        extra = {f"trunk-{rng.randrange(targets):05d}" for _ in range(rng.randrange(3))} - {root}
        for j, t in enumerate([root, *sorted(extra)]):
            members.append({"incident_id": i, "target_id": t, "role": "root" if j == 0 else "affected",
                            "joined_at": at, "recovered_at": at + lasted})
        lines.append({"incident_id": i, "at": at, "kind": "opened", "target_id": root, "text": "down"})
        for k in range(rng.randrange(1, 4)):
            lines.append({"incident_id": i, "at": at + 30 * (k + 1), "kind": "note", "target_id": None,
                          "text": f"note {k}"})
        lines.append({"incident_id": i, "at": at + lasted, "kind": "resolved", "target_id": root, "text": ""})
        if rng.random() < 0.1:
            updates.append({"incident_id": i, "published_at": at + 120, "published_by": "user:op07",
                            "text": {"en": "Carrier rerouting", "zh-CN": "运营商正在切换线路"}})
        if len(batch) >= 5000:
            flush(conn, batch, members, lines, updates)
            batch, members, lines, updates = [], [], [], []
    if batch:
        flush(conn, batch, members, lines, updates)
    conn.execute(text("ANALYZE"))
db.dispose()
print(json.dumps({"token": token, "seconds": time.perf_counter() - started}))
"""


def prepare(tree: Path, data: Path, targets: int, incidents: int, audit: int) -> tuple[str, float]:
    """A state DB with the history, an admin and their API token, made by the tree's own code."""
    data.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "PYTHONPATH": str(tree)}
    args = [str(tree), str(data), str(targets), str(incidents), str(audit)]
    made = subprocess.run(
        [sys.executable, "-c", _PREPARE, *args],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
    )
    if made.returncode != 0:
        raise RuntimeError(f"could not prepare the state DB:\n{made.stderr[-3000:]}")
    out = json.loads(made.stdout.strip().splitlines()[-1])
    return out["token"], out["seconds"]


@dataclass
class Run:
    label: str
    path: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    requests: int
    errors: str


def wrk(app: Appliance, label: str, path: str, token: str, duration: int, connections: int) -> Run:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "30s", "--latency"]
    cmd += ["-H", f"Authorization: Bearer {token}", app.url + path]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout

    def found(pattern: str) -> str:
        return re.search(pattern, out).group(1)  # type: ignore[union-attr]

    errors = []
    if m := re.search(r"Socket errors: (.+)", out):
        errors.append(m.group(1).strip())
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors.append(f"non-2xx {m.group(1)}")
    return Run(
        label,
        path,
        float(found(r"Requests/sec:\s+([\d.]+)")),
        wrk_ms(found(r"\s50%\s+(\S+)")),
        wrk_ms(found(r"\s99%\s+(\S+)")),
        wrk_ms(found(r"Latency\s+\S+\s+\S+\s+(\S+)")),
        int(found(r"(\d+) requests in")),
        "; ".join(errors) or "-",
    )


def served(app: Appliance, path: str, token: str) -> tuple[bool, float]:
    """Whether this tree answers ``path`` with 200, and how long one request took."""
    started = time.perf_counter()
    try:
        app.get(path, headers={"Authorization": f"Bearer {token}"})
    except urllib.error.HTTPError as exc:
        if exc.code in (404, 405):  # a route this tree does not have (or not for GET)
            return False, 0.0
        raise RuntimeError(f"{path}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
    return True, time.perf_counter() - started


def urls(targets: int, incidents: int) -> list[tuple[str, str]]:
    deep_incidents = max(1, incidents // 50 // 2)  # half-way down, 50 a page
    deep_targets = max(1, targets // 50 // 2)
    return [
        ("targets, first page", "/api/v1/targets"),
        ("targets, health=down", "/api/v1/targets?health=down"),
        ("targets, page half-way", f"/api/v1/targets?page={deep_targets}"),
        ("incidents, first page", "/api/v1/incidents"),
        ("incidents, resolved", "/api/v1/incidents?state=resolved"),
        ("incidents, page half-way", f"/api/v1/incidents?state=resolved&page={deep_incidents}"),
        ("one incident", f"/api/v1/incidents/{random.Random(3).randrange(1, incidents)}"),
        ("incidents page", "/incidents"),
        ("incidents page, resolved, page 100", "/incidents?state=resolved&page=100"),
        ("audit page", "/admin/audit"),
        ("audit page, one actor", "/admin/audit?actor=user:op07"),
        ("audit API", "/api/v1/audit"),
        ("static file (reference)", "/static/app.css"),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--audit", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=15, help="seconds of wrk per URL")
    parser.add_argument("--connections", type=int, default=10)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print(
            "wrk is not installed: apt-get install wrk (./install.sh --test does)", file=sys.stderr
        )
        return 2
    load = os.getloadavg()
    print(
        f"{args.targets} tcp targets at 60 s + {FLAPPY} flapping at 2 s; {args.incidents:,}"
        f" incidents, {args.audit:,} audit entries; wrk -t1 -c{args.connections}"
        f" -d{args.duration}s; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f};"
        f" {os.cpu_count()} CPUs",
        flush=True,
    )
    peer, flappers = Listener(), Flappers(FLAPPY, 160.0, 4.0)
    results: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="api-latency-") as tmp:
        workdir = Path(tmp)
        config = workdir / "dialwatch.yaml"
        write_config(config, args.targets, peer.port, flappers.ports)
        token, seconds = prepare(HERE, workdir / "data", args.targets, args.incidents, args.audit)
        print(f"history written in {seconds:.0f} s", flush=True)
        with appliance(HERE, config, workdir, workdir / "data") as app:
            probed = wait_probed(app, args.targets + FLAPPY)
            with contextlib.closing(app.state_db()) as db:
                counted = db.execute("SELECT count(*) FROM incident").fetchone()[0]
            print(f"every target probed after {probed:.0f} s; {counted:,} incidents", flush=True)
            for label, path in urls(args.targets, args.incidents):
                ok, first = served(app, path, token)
                if not ok:
                    print(f"{path}: not served by this tree, skipped", flush=True)
                    continue
                settle(app)
                run = wrk(app, label, path, token, args.duration, args.connections)
                print(
                    f"{path}: one request {first * 1000:.0f} ms; {run.requests_per_s:.1f} req/s,"
                    f" p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms, max {run.max_ms:.0f} ms,"
                    f" errors {run.errors}",
                    flush=True,
                )
                results.append(run)
    flappers.close()
    peer.close()
    print()
    print("| what | URL | requests/s | p50 ms | p99 ms | max ms | requests | errors |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for r in results:
        print(
            f"| {r.label} | `{r.path}` | {r.requests_per_s:,.1f} | {r.p50_ms:.1f} | {r.p99_ms:.1f} |"
            f" {r.max_ms:.0f} | {r.requests:,} | {r.errors} |"
        )
    load = os.getloadavg()
    print(f"\nload average at the end {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
