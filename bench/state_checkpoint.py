"""Benchmark: checkpointing the latest state of 10,000 targets into the state DB.

At 10,000 targets and a 10 s interval the engine checkpoints every ~2 s, so
one checkpoint must take well under that. This compares, in the same run and
on fresh databases:

- ``orm-merge``: the naive design, one ORM object per row (``Session.merge``,
  which SELECTs each row to decide between INSERT and UPDATE), one commit;
- ``core-upsert``: one SQLAlchemy Core ``INSERT ... ON CONFLICT DO UPDATE``
  executed for all rows (``conn.execute(stmt, rows)``) in one transaction;
- ``bulk-upsert``: ``StateRepository.checkpoint``, the same statement handed
  straight to the driver's ``executemany`` (no per-row SQLAlchemy parameter
  processing).

Each is timed for the first checkpoint (every row new) and for later ones
(every row exists, values changed). Usage::

    .venv/bin/python bench/state_checkpoint.py [--targets 10000] [--rounds 5] [--postgres]

``--postgres`` also runs both against a throwaway PostgreSQL cluster started
like the test fixture (needs the Debian ``postgresql`` package).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import sqlalchemy
from sqlalchemy import Engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.store.db import open_database  # noqa: E402
from monitor.store.models import TargetState  # noqa: E402
from monitor.store.repository import StateRepository  # noqa: E402

HEALTHS = ("up", "up", "up", "degraded", "down")


def make_rows(n: int, round_no: int) -> list[dict[str, Any]]:
    """``n`` realistic target_state rows; ``round_no`` changes every row's values."""
    now = 1_700_000_000.0 + round_no * 2.0
    return [
        {
            "target_id": f"trunk-{i:05d}",
            "kind": "sip",
            "health": HEALTHS[(i + round_no) % len(HEALTHS)],
            "since": now - i,
            "flapping": False,
            "affected_by": None,
            "machine": {"history": [True] * 10, "fail_after": 2, "recover_after": 2},
            "last_status": "ok",
            "last_detail": f"200 OK in {10 + i % 40} ms",
            "last_latency": 0.010 + (i % 40) / 1000,
            "last_observed_at": now,
            "last_metrics": {"sip.rtt_ms": 10.0 + i % 40, "sip.code": 200},
            "probes_run": 100 + round_no,
            "probes_failed": 0,
            "probes_errored": 0,
            "config_hash": "0123456789abcdef",
        }
        for i in range(n)
    ]


def orm_merge(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with Session(engine) as session:
        for row in rows:
            session.merge(TargetState(**row))
        session.commit()


def core_upsert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    table = TargetState.__table__
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=["target_id"],
        set_={c.name: stmt.excluded[c.name] for c in table.columns if c.name != "target_id"},
    )
    with engine.begin() as conn:
        conn.execute(stmt, rows)


def bulk_upsert(engine: Engine, rows: list[dict[str, Any]]) -> None:
    StateRepository(engine).checkpoint(rows)


def timed(fn: Callable[[], None]) -> tuple[float, float]:
    """(wall seconds, this process's CPU seconds): on a busy machine the CPU time
    is the steadier figure for the SQLite runs, which do all their work in-process."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


def run(
    name: str, open_engine: Callable[[], Engine], n: int, rounds: int
) -> dict[str, tuple[tuple[float, float], tuple[float, float]]]:
    """{approach: ((first wall, cpu), (median later wall, cpu))} in seconds."""
    results = {}
    approaches = (
        ("orm-merge", orm_merge),
        ("core-upsert", core_upsert),
        ("bulk-upsert", bulk_upsert),
    )
    for approach, write in approaches:
        engine = open_engine()
        try:
            first = timed(lambda: write(engine, make_rows(n, 0)))  # noqa: B023 - called at once
            later = [
                timed(lambda r=r: write(engine, make_rows(n, r)))  # noqa: B023
                for r in range(1, rounds + 1)
            ]
            stored = len(StateRepository(engine).load_target_states())
            assert stored == n, f"{approach} stored {stored} rows, expected {n}"
        finally:
            engine.dispose()
        median = (statistics.median(w for w, _ in later), statistics.median(c for _, c in later))
        results[approach] = (first, median)
        print(
            f"{name:10} {approach:12} first {first[0]:7.3f} s (cpu {first[1]:.3f})   "
            f"later, median of {rounds}: {median[0]:7.3f} s (cpu {median[1]:.3f})",
            flush=True,
        )
    return results


@contextlib.contextmanager
def sqlite_backend() -> Iterator[Callable[[], Engine]]:
    with tempfile.TemporaryDirectory() as root:
        counter = iter(range(1_000_000))
        yield lambda: open_database(None, Path(root) / f"db{next(counter)}")


@contextlib.contextmanager
def postgres_backend() -> Iterator[Callable[[], Engine]]:
    from tests.peers.postgres import run_postgres

    with run_postgres() as server:
        yield lambda: open_database(server.create_database(), Path("."))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    args = parser.parse_args()

    print(
        f"# {args.targets} targets; Python {platform.python_version()}, SQLAlchemy "
        f"{sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start"
    )
    backends: list[tuple[str, Any]] = [("sqlite", sqlite_backend)]
    if args.postgres:
        backends.append(("postgresql", postgres_backend))
    table = [
        "| backend | approach | first checkpoint: wall (client CPU) "
        "| later checkpoints, median: wall (client CPU) |",
        "| --- | --- | --- | --- |",
    ]
    for name, backend in backends:
        with backend() as open_engine:
            results = run(name, open_engine, args.targets, args.rounds)
            for approach, ((first, first_cpu), (later, later_cpu)) in results.items():
                table.append(
                    f"| {name} | {approach} | {first:.3f} s ({first_cpu:.3f} s) "
                    f"| {later:.3f} s ({later_cpu:.3f} s) |"
                )
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
