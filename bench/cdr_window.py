"""Benchmark: the dialer probe's SQL CDR window over 1M CDR rows in PostgreSQL.

A 200-seat outbound center places ~50 calls/s, so a 15-minute window holds
~45,000 CDR rows. This loads ``--rows`` rows (default 1,000,000) at that
rate — 5.5 hours of history, the newest 15 minutes being the window — into
Asterisk's ``cdr`` layout in a throwaway PostgreSQL cluster (started like the
test fixture), with an index on ``calldate``, and times, in the same run:

- ``aggregate: sql``: the probe's GROUP BY query (the database counts);
- ``aggregate: rows``: the probe fetches the window's rows and counts them;
- the same two without the ``calldate`` index, as the reference for what
  the index buys;
- the grouped query with the trunk cut out by a regular expression on every
  row (the first design), as the reference for the suffix-trimmed key.

Each runs through the probe's own code (``cdr_sql.query_window``) with one
warm-up and ``--rounds`` timed runs; wall time is min, median and max (the
machine may be shared: min is the least disturbed run), client
CPU is the probe process's CPU time per poll. Usage::

    .venv/bin/python bench/cdr_window.py [--rows 1000000] [--rounds 11]
"""

from __future__ import annotations

import argparse
import platform
import re
import statistics
import sys
import time
import zoneinfo
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from probes.dialer.cdr_sql import (  # noqa: E402
    aggregate_query,
    build_engine,
    query_window,
    window_bounds,
)
from probes.dialer.config import SqlSource  # noqa: E402
from probes.dialer.kpi import total  # noqa: E402
from tests.peers.postgres import run_postgres  # noqa: E402

SCAN = re.compile(
    r"((?:Parallel )?(?:Seq|Index|Index Only|Bitmap Heap) Scan(?: using \S+)? on \S+)"
)
CALLS_PER_SECOND = 50
WINDOW = 900.0

DDL = """
CREATE TABLE cdr (
    calldate timestamp NOT NULL, clid varchar(80) DEFAULT '', src varchar(80) DEFAULT '',
    dst varchar(80) DEFAULT '', dcontext varchar(80) DEFAULT '', channel varchar(80) DEFAULT '',
    dstchannel varchar(80) DEFAULT '', lastapp varchar(80) DEFAULT '',
    lastdata varchar(80) DEFAULT '', duration integer DEFAULT 0, billsec integer,
    disposition varchar(45) DEFAULT '', amaflags integer DEFAULT 3,
    accountcode varchar(20) DEFAULT '', uniqueid varchar(32) DEFAULT '',
    userfield varchar(255) DEFAULT '', hangupcause integer
)
"""

# One row per call, newest at `now`, 1/CALLS_PER_SECOND s apart; a fixed mix of
# outcomes over 8 trunks (hash of the row number, so every run loads the same data).
FILL = """
INSERT INTO cdr (calldate, clid, src, dst, dcontext, channel, dstchannel, lastapp, lastdata,
                 duration, billsec, disposition, uniqueid, hangupcause)
SELECT
    (to_timestamp(:epoch) AT TIME ZONE 'UTC') - make_interval(secs => i::float8 / :cps),
    '"Campaign" <1001>', '1001', '138' || lpad((i % 100000000)::text, 8, '0'), 'from-dialer',
    'Local/' || i || '@dialer-' || lpad(to_hex(i), 8, '0') || ';1',
    CASE WHEN h < 3 THEN '' ELSE 'PJSIP/trunk-' || (i % 8) || '-' || lpad(to_hex(i), 8, '0') END,
    CASE WHEN h < 40 THEN 'Queue' ELSE 'Dial' END, 'sales,t',
    20 + (i % 60),
    CASE WHEN h < 40 THEN (i % 300) ELSE 0 END,
    CASE WHEN h < 40 THEN 'ANSWERED' WHEN h < 70 THEN 'NO ANSWER' WHEN h < 85 THEN 'BUSY'
         WHEN h < 93 THEN 'FAILED' ELSE 'CONGESTION' END,
    i::text,
    CASE WHEN h < 40 THEN 16 WHEN h < 70 THEN 19 WHEN h < 85 THEN 17
         WHEN h < 93 THEN 38 ELSE 34 END
FROM (SELECT i, abs(hashint4(i)) % 100 AS h FROM generate_series(0, :rows - 1) AS i) s
"""


def timed(engine: sa.Engine, source: SqlSource, start, end, rounds: int) -> dict[str, float]:
    query_window(engine, source, start, end, 60.0)  # warm-up: connection, plan, cache
    walls, cpus = [], []
    result = None
    for _ in range(rounds):
        w0, c0 = time.perf_counter(), time.process_time()
        result = query_window(engine, source, start, end, 60.0)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    assert result is not None
    counts = total(result.tally.trunks.values())
    return {
        "min_ms": min(walls) * 1000,
        "median_ms": statistics.median(walls) * 1000,
        "max_ms": max(walls) * 1000,
        "cpu_ms": statistics.median(cpus) * 1000,
        "attempts": counts.attempts,
        "answered": counts.answered,
        "system_lost": counts.system_lost,
        "abandoned": counts.abandoned,
    }


def explain(engine: sa.Engine, source: SqlSource, start: datetime, end: datetime) -> None:
    """The server's own time for the aggregate query and how it reads the table."""
    query = aggregate_query(source, start, end, "postgresql")
    compiled = query.compile(dialect=engine.dialect, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        plan = [
            row[0]
            for row in conn.exec_driver_sql(
                "EXPLAIN (ANALYZE, TIMING OFF) " + str(compiled).replace("%", "%%")
            )
        ]
    scans = sorted({m.group(1) for line in plan if (m := SCAN.search(line))})
    total = next((line for line in plan if line.startswith("Execution Time")), "?")
    print(f"  server: {total}; {', '.join(scans)}")


def regex_per_row(
    engine: sa.Engine, source: SqlSource, start: datetime, end: datetime, rounds: int
) -> float:
    """Reference: the same grouping with the trunk cut out by a regular expression on every row
    (``substring(dstchannel, pattern)``, the design before the suffix-trimmed key). Min, median ms."""
    query = sa.text(
        "SELECT substring(dstchannel, :pattern) AS trunk, disposition, hangupcause, "
        "CASE WHEN lower(lastapp) IN ('queue') AND billsec <= 5 THEN 1 ELSE 0 END AS abandoned, "
        "count(*), count(billsec), sum(billsec) FROM cdr "
        "WHERE calldate >= :start AND calldate <= :end GROUP BY 1, 2, 3, 4"
    )
    params = {"pattern": source.trunk_pattern, "start": start, "end": end}
    walls = []
    with engine.connect() as conn:
        conn.execute(query, params).all()
        for _ in range(rounds):
            w0 = time.perf_counter()
            conn.execute(query, params).all()
            walls.append(time.perf_counter() - w0)
    return min(walls) * 1000, statistics.median(walls) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=11)
    args = parser.parse_args()
    print(f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
          f"Python {platform.python_version()}, load {Path('/proc/loadavg').read_text().split()[:3]}")  # fmt: skip
    with run_postgres() as server:
        dsn = server.create_database()
        engine = build_engine(dsn, 60.0)
        now = time.time()
        t0 = time.perf_counter()
        with engine.begin() as conn:
            conn.exec_driver_sql(DDL)
            conn.execute(sa.text(FILL), {"epoch": now, "cps": CALLS_PER_SECOND, "rows": args.rows})
        load_s = time.perf_counter() - t0
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE cdr")
            size = conn.exec_driver_sql(
                "SELECT pg_size_pretty(pg_total_relation_size('cdr'))"
            ).scalar()
        print(f"loaded {args.rows:,} rows ({size}) in {load_s:.1f} s")
        start, end = window_bounds(now, WINDOW, zoneinfo.ZoneInfo("UTC"))
        base = {
            "type": "sql",
            "dsn": dsn,
            "timezone": "UTC",
            "columns": {"hangupcause": "hangupcause"},
        }
        results: dict[str, dict[str, float]] = {}
        for indexed in (False, True):
            if indexed:
                t0 = time.perf_counter()
                with engine.begin() as conn:
                    conn.exec_driver_sql("CREATE INDEX cdr_calldate ON cdr (calldate)")
                    conn.exec_driver_sql("ANALYZE cdr")
                print(f"index on calldate built in {time.perf_counter() - t0:.1f} s")
            explain(engine, SqlSource.model_validate({**base, "aggregate": "sql"}), start, end)
            for mode in ("sql", "rows"):
                source = SqlSource.model_validate({**base, "aggregate": mode})
                name = f"aggregate: {mode}, {'with' if indexed else 'no'} index"
                results[name] = timed(engine, source, start, end, args.rounds)
                r = results[name]
                print(f"{name:28s} min {r['min_ms']:7.1f} ms  median {r['median_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms  "
                      f"client CPU {r['cpu_ms']:7.1f} ms  attempts {r['attempts']:,}  "
                      f"answered {r['answered']:,}  system lost {r['system_lost']:,}  "
                      f"abandoned {r['abandoned']:,}")  # fmt: skip
        low, mid = regex_per_row(engine, SqlSource.model_validate(base), start, end, args.rounds)
        print(f"reference: regex per row, with index  min {low:7.1f} ms  median {mid:7.1f} ms")
        engine.dispose()
    counts = {tuple(v for k, v in r.items() if not k.endswith("_ms")) for r in results.values()}
    print("all four give the same counts" if len(counts) == 1 else f"COUNTS DIFFER: {counts}")
    return 0 if len(counts) == 1 else 1


if __name__ == "__main__":
    raise SystemExit(main())
