"""Benchmark: the incident list at 100,000 incidents and 10,000 targets.

A migrated state DB gets N incidents spread over a year among 10,000 targets
(1 to 3 members each; 20 still open, some acknowledged), and a config with the
10,000 targets in 10 components of 1,000 by a carrier tag. Then, per filter the
console's list offers (none, open, a severity, a target, a component, a day, a
deep page), the query alone (``queries.incidents_page`` with the filter
``web.incident_filters`` builds) and the whole page (``GET /incidents`` through
the real app with an API token: guard, parameters, query, template) are
timed, and the API's ``GET /api/v1/incidents`` for the unfiltered list.

    .venv/bin/python bench/incidents_page.py [--incidents 100000] [--rounds 30] [--postgres]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.config.schema import Config  # noqa: E402
from monitor.staff import tokens, users  # noqa: E402
from monitor.store import queries  # noqa: E402
from monitor.store.db import open_database  # noqa: E402
from monitor.store.models import Incident, IncidentTarget  # noqa: E402
from monitor.store.repository import StateRepository  # noqa: E402
from web import WebServices, create_app  # noqa: E402
from web.incident_filters import incident_query  # noqa: E402

YEAR = 365 * 86400.0
TARGETS = 10_000
CARRIERS = 10
OPEN = 20


def config() -> Config:
    return Config.model_validate(
        {
            "site": {"name": "Bench", "timezone": "Asia/Shanghai", "language": "en"},
            "targets": [
                {
                    "id": f"trunk-{i:05d}",
                    "kind": "tcp",
                    "address": "127.0.0.1:9",
                    "tags": {"carrier": f"c{i % CARRIERS}"},
                }
                for i in range(TARGETS)
            ],
            "components": [
                {
                    "id": f"carrier-{c}",
                    "name": {"zh-CN": f"运营商{c}", "en": f"Carrier {c}"},
                    "selector": {"carrier": f"c{c}"},
                }
                for c in range(CARRIERS)
            ],
        }
    )


def fill(engine: Engine, n: int, now: float, seed: int = 11) -> float:
    """N incidents over the year before ``now``; seconds it took."""
    rng = random.Random(seed)
    started = time.perf_counter()
    incidents: list[dict[str, Any]] = []
    members: list[dict[str, Any]] = []
    for i in range(1, n + 1):
        opened = now - YEAR + (i / n) * YEAR - rng.uniform(0, 600)
        is_open = i > n - OPEN
        ids = rng.sample(range(TARGETS), rng.choice((1, 1, 2, 3)))
        incidents.append(
            {
                "id": i,
                "state": "open" if is_open else "resolved",
                "opened_at": opened,
                "resolved_at": None if is_open else opened + rng.uniform(60, 7200),
                "root_target_id": f"trunk-{ids[0]:05d}",
                "title": f"trunk-{ids[0]:05d} is down",
                "severity": rng.choice(("down", "down", "degraded")),
                "summary": {},
                "acknowledged_at": opened + 60 if rng.random() < 0.7 else None,
                "acknowledged_by": "user:bench" if rng.random() < 0.7 else None,
            }
        )
        for k, t in enumerate(ids):
            members.append(
                {
                    "incident_id": i,
                    "target_id": f"trunk-{t:05d}",
                    "role": "root" if k == 0 else "affected",
                    "joined_at": opened + k,
                    "recovered_at": None,
                }
            )
        if len(incidents) >= 5000:
            _write(engine, incidents, members)
    _write(engine, incidents, members)
    if engine.dialect.name == "postgresql":  # what autovacuum would have done after the load
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE incident, incident_target")
    return time.perf_counter() - started


def _write(engine: Engine, incidents: list[dict[str, Any]], members: list[dict[str, Any]]) -> None:
    if incidents:
        with engine.begin() as conn:
            conn.execute(insert(Incident), incidents)
            conn.execute(insert(IncidentTarget), members)
    incidents.clear()
    members.clear()


def timed(fn: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """Median and worst milliseconds over ``rounds`` calls, after one warm-up."""
    fn()
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples), max(samples)


def cases(now: float) -> dict[str, str]:
    day = datetime.fromtimestamp(now - 30 * 86400, UTC).strftime("%Y-%m-%d")
    return {
        "newest page": "",
        "open": "state=open",
        "degraded": "severity=degraded",
        "a target": "target=trunk-04242",
        "a component (1,000 targets)": "component=carrier-3",
        "a component, resolved, page 5": "component=carrier-3&state=resolved&page=5",
        "one day a month ago": f"from={day}&to={day}",
        "page 1000": "page=1000",
    }


def run(engine: Engine, rounds: int, now: float) -> list[tuple[str, float, float, float, float]]:
    cfg = config()
    repo = StateRepository(engine)
    users.add_user(repo, "bench", "bench", "viewer", "a long passphrase for timing")
    token = tokens.create_token(repo, "bench", "bench")[1]
    app = create_app(WebServices(config=lambda: cfg, db=engine, listen_port=80, clock=lambda: now))
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    rows = []
    for name, qs in cases(now).items():
        args = {k: [v] for k, v in (p.split("=", 1) for p in qs.split("&") if p)}
        query = incident_query(args, cfg, "Asia/Shanghai")

        def query_only(q: Any = query) -> None:
            queries.incidents_page(engine, q.states, q.page, q.flt)

        def page(qs: str = qs) -> None:
            r = client.get(f"/incidents?{qs}")
            assert r.status_code == 200, r.get_data(as_text=True)[-500:]

        rows.append((name, *timed(query_only, rounds), *timed(page, rounds)))
    api = timed(lambda: client.get("/api/v1/incidents?per_page=50"), rounds)
    rows.append(("API, newest 50", api[0], api[1], float("nan"), float("nan")))
    return rows


@contextlib.contextmanager
def sqlite_backend() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = open_database(None, Path(tmp))
        try:
            yield engine
        finally:
            engine.dispose()


@contextlib.contextmanager
def postgres_backend() -> Iterator[Engine]:
    from tests.peers.postgres import run_postgres

    with run_postgres() as server, tempfile.TemporaryDirectory() as tmp:
        engine = open_database(server.create_database(), Path(tmp))
        try:
            yield engine
        finally:
            engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="also on a local PostgreSQL")
    ns = parser.parse_args()
    print(
        f"{datetime.now(UTC):%Y-%m-%d}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"SQLAlchemy {sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    backends: list[tuple[str, Callable[[], Any]]] = [("SQLite", sqlite_backend)]
    if ns.postgres:
        backends.append(("PostgreSQL", postgres_backend))
    now = time.time()
    for name, backend in backends:
        with backend() as engine:
            filled = fill(engine, ns.incidents, now)
            print(f"\n## {name}: {ns.incidents:,} incidents filled in {filled:.1f} s")
            print("\n| filter | query: median / worst ms | page: median / worst ms |")
            print("| --- | --- | --- |")
            for case, qm, qw, pm, pw in run(engine, ns.rounds, now):
                page = "–" if pm != pm else f"{pm:.1f} / {pw:.1f}"
                print(f"| {case} | {qm:.1f} / {qw:.1f} | {page} |")
    print(f"\nload average at the end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
