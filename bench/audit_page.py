"""Benchmark: the audit page's query at 100,000 entries, with and without the composite indexes.

A state DB gets N hash-chained audit entries spread over a year, in the mix a
200-seat NOC makes: logins and their failures by 40 users, incident actions,
a few user and token changes, config reloads, merged engine exceptions. Then
``monitor.store.queries.audit_page`` is timed for the filters the page offers
(none, an actor, an action, an action prefix, an object substring, a day,
an actor over a month, a deep page), first with the indexes of migration
0004 alone (``at``, ``actor``, ``action``: the reference), then with the
composite ``(actor, at)`` and ``(action, at)`` indexes of migration 0005.
Also timed: ``monitor.audit.verify`` over the whole chain and the CSV export
of every entry (``monitor.store.queries.audit_entries`` + ``monitor.audit_csv``).

    .venv/bin/python bench/audit_page.py [--entries 100000] [--rounds 30] [--postgres]
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
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine, insert, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor import audit, audit_csv  # noqa: E402
from monitor.store import queries  # noqa: E402
from monitor.store.db import open_database  # noqa: E402

YEAR = 365 * 86400.0
START = 1_767_225_600.0  # 2026-01-01 UTC
COMPOSITE = {
    "ix_audit_entry_actor_at": "audit_entry (actor, at)",
    "ix_audit_entry_action_at": "audit_entry (action, at)",
}


def entries(n: int, seed: int = 7) -> Iterator[dict[str, Any]]:
    """N entries in time order, in a plausible mix."""
    rng = random.Random(seed)
    users = [f"user:op{i:02d}" for i in range(40)]
    at = START
    step = YEAR / n
    for i in range(n):
        at += rng.expovariate(1 / step)
        roll = rng.random()
        if roll < 0.35:
            actor, action, obj, result = rng.choice(users), "login", "", "ok"
            obj = f"user:{actor[5:]}"
        elif roll < 0.45:
            actor, action, result = "anonymous", "login", "failed"
            obj = f"user:{rng.choice(users)[5:]}"
        elif roll < 0.80:
            actor = rng.choice(users)
            action = rng.choice(["incident.ack", "incident.note", "incident.update"])
            obj, result = f"incident:{rng.randrange(1, 20_000)}", "ok"
        elif roll < 0.90:
            actor, action, result = "engine", "exception", "error"
            obj = rng.choice(["probe:sip", "sink:influxdb", "subscriber:rules", "job:checkpoint"])
        elif roll < 0.95:
            actor = rng.choice(users[:3])
            action = rng.choice(["user.add", "user.role", "user.disable", "token.create"])
            obj, result = f"user:op{rng.randrange(40):02d}", "ok"
        else:
            actor, action, obj, result = "system", "config.reload", "config:/etc/dialwatch", "ok"
        yield {
            "at": at,
            "actor": actor,
            "address": f"10.0.{rng.randrange(4)}.{rng.randrange(1, 250)}",
            "action": action,
            "object": obj,
            "result": result,
            "before": None,
            "after": None,
            "detail": "",
            "count": 1,
            "id": i + 1,
        }


def fill(engine: Engine, n: int) -> float:
    """Write N chained entries (hashes as ``audit.record`` makes them); seconds taken."""
    started = time.perf_counter()
    prev = audit.GENESIS
    batch: list[dict[str, Any]] = []
    with engine.begin() as conn:
        for entry in entries(n):
            digest = audit.entry_hash(prev, entry)
            batch.append({**entry, "prev_hash": prev, "hash": digest})
            prev = digest
            if len(batch) == 5000:
                conn.execute(insert(audit.ENTRY), batch)
                batch = []
        if batch:
            conn.execute(insert(audit.ENTRY), batch)
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT setval('audit_entry_id_seq', :n)"), {"n": n})
            conn.execute(text("ANALYZE audit_entry"))
        else:
            conn.execute(text("ANALYZE"))
    return time.perf_counter() - started


CASES: list[tuple[str, dict[str, Any]]] = [
    ("newest page", {}),
    ("page 1000", {"page": 1000}),
    ("actor (one user)", {"actor": "user:op07"}),
    ("actor engine", {"actor": "engine"}),
    ("action login", {"action": "login"}),
    ("action prefix user.", {"action": "user."}),
    ("object contains 1234", {"object_like": "1234"}),
    ("one day", {"since": START + 200 * 86400, "until": START + 201 * 86400}),
    (
        "one user, one month",
        {"actor": "user:op07", "since": START + 100 * 86400, "until": START + 130 * 86400},
    ),
    ("failed logins, page 3", {"action": "login", "actor": "anonymous", "page": 3}),
]


def timed(fn: Callable[[], Any], rounds: int) -> tuple[float, float]:
    """Median and worst of ``rounds`` calls, in ms (after one warm-up)."""
    fn()
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def run_cases(engine: Engine, rounds: int) -> dict[str, tuple[float, float]]:
    return {
        name: timed(lambda kw=kw: queries.audit_page(engine, **kw), rounds) for name, kw in CASES
    }


@contextlib.contextmanager
def sqlite_backend() -> Iterator[Engine]:
    with tempfile.TemporaryDirectory() as root:
        engine = open_database(None, Path(root))
        yield engine
        engine.dispose()


@contextlib.contextmanager
def postgres_backend() -> Iterator[Engine]:
    from tests.peers.postgres import run_postgres

    with run_postgres() as server:
        engine = open_database(server.create_database(), Path("."))
        yield engine
        engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    args = parser.parse_args()
    print(
        f"# {args.entries} audit entries; Python {platform.python_version()}, SQLAlchemy "
        f"{sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    backends: list[tuple[str, Any]] = [("sqlite", sqlite_backend)]
    if args.postgres:
        backends.append(("postgresql", postgres_backend))
    for name, backend in backends:
        with backend() as engine:
            filled = fill(engine, args.entries)
            print(f"\n## {name}: filled in {filled:.1f} s")
            with engine.begin() as conn:  # (migration 0005 has made them already)
                for index, columns in COMPOSITE.items():
                    conn.execute(text(f"CREATE INDEX IF NOT EXISTS {index} ON {columns}"))
            run_cases(engine, 3)  # warm the caches (the DB's and the OS's) before measuring
            with_composite = run_cases(engine, args.rounds)
            with engine.begin() as conn:
                for index in COMPOSITE:
                    conn.execute(text(f"DROP INDEX {index}"))
            reference = run_cases(engine, args.rounds)
            print(
                "| filter | 0004 indexes: median / worst ms | with (actor, at), (action, at): "
                "median / worst ms |"
            )
            print("| --- | --- | --- |")
            for case, _ in CASES:
                ref, new = reference[case], with_composite[case]
                print(f"| {case} | {ref[0]:.1f} / {ref[1]:.1f} | {new[0]:.1f} / {new[1]:.1f} |")
            with engine.connect() as conn:
                started = time.perf_counter()
                check = audit.verify(conn)
                verified = time.perf_counter() - started
            assert check.broken_at is None, check
            started = time.perf_counter()
            size = sum(len(line) for line in audit_csv.lines(queries.audit_entries(engine)))
            exported = time.perf_counter() - started
            print(
                f"\nverify: {check.checked} entries in {verified:.2f} s; "
                f"CSV export of every entry: {size / 1e6:.1f} MB in {exported:.2f} s"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
