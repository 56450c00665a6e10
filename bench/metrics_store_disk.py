"""Disk use and insert throughput of the embedded metrics store.

Simulates SIP targets probed every 10 s (4 fields a point: ``rtt_ms`` float,
``code`` int, ``up`` bool, ``retransmits`` int; tags target, kind, site,
carrier, gateway), written the way ``EmbeddedSink`` writes them: one batch per
second of observations, maintenance after each batch. Reports bytes per
target per hour for raw values and each rollup tier (measured with SQLite's
``dbstat``), extrapolated to the default retention (raw 3 h, 1-minute rollups
30 days, hourly rollups a year), and values inserted per second.

The same points are also written, in the same run, to two alternatives:

* ``naive`` — the reference: one row per value with the measurement, tag set
  (JSON) and field name as text, a rowid table plus the index a query by
  series needs; no series table;
* ``per-value`` — the layout first tried for raw: one ``WITHOUT ROWID`` row per
  value keyed ``(bucket, series_id, field_id, off)``; the store instead keeps
  one row per point with its fields packed, which this comparison justifies.

Usage::

    .venv/bin/python bench/metrics_store_disk.py                 # 1,000 targets x 1 h, 10,000 x 10 min
    .venv/bin/python bench/metrics_store_disk.py --targets 200 --minutes 20   # quick
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.observation import MetricPoint
from monitor.store.metrics import MetricsStore  # noqa: E402
from monitor.store.metrics.schema import canonical_tags  # noqa: E402

INTERVAL = 10
FIELDS_PER_POINT = 4
START = 1_700_006_400  # an hour boundary, so rollup tiers fill as in steady state
assert START % 3600 == 0
RETENTION_HOURS = {"raw": 3, "1m": 30 * 24, "1h": 365 * 24}
TABLES = {"raw": "raw", "1m": "rollup_1m", "1h": "rollup_1h"}


def sip_points(targets: int, seconds: int, seed: int = 7) -> Iterator[list[MetricPoint]]:
    """One list of points per simulated second; each target is probed once per INTERVAL."""
    rnd = random.Random(seed)
    tags = [
        {
            "target": f"trunk-{i:05d}",
            "kind": "sip",
            "site": "sh-1",
            "carrier": ("unicom", "telecom", "mobile")[i % 3],
            "gateway": f"10.{i // 250 % 256}.{i % 250}.1:5060",
        }
        for i in range(targets)
    ]
    for second in range(seconds):
        batch = []
        for i in range(second % INTERVAL, targets, INTERVAL):
            ok = rnd.random() > 0.01
            batch.append(
                MetricPoint(
                    "sip",
                    {
                        "rtt_ms": round(rnd.uniform(8, 60), 3) if ok else 0.0,
                        "code": 200 if ok else 503,
                        "up": ok,
                        "retransmits": 0 if ok else rnd.randint(1, 6),
                    },
                    tags[i],
                    (START + second) * 10**9 + rnd.randint(0, 999) * 10**6,
                )
            )
        yield batch


def table_bytes(path: Path) -> dict[str, int]:
    """Bytes of pages per table and index, from SQLite's dbstat."""
    conn = sqlite3.connect(path)
    try:
        return dict(conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"))
    finally:
        conn.close()


@dataclass
class Run:
    design: str
    targets: int
    hours: float
    values: int
    seconds: float
    bytes: dict[str, int]

    @property
    def values_per_second(self) -> float:
        return self.values / self.seconds

    def per_target_hour(self, name: str) -> float:
        # The hourly tier holds one row per started hour, however few minutes ran.
        hours = math.ceil(self.hours) if name == "rollup_1h" else self.hours
        return self.bytes.get(name, 0) / self.targets / hours


def run_store(targets: int, seconds: int, workdir: Path) -> Run:
    path = workdir / f"store-{targets}.db"
    store = MetricsStore(path, max_bytes=10**12)
    values = 0
    elapsed = 0.0
    last_now = START
    for second, batch in enumerate(sip_points(targets, seconds)):
        started = time.perf_counter()
        values += store.write(batch).written
        last_now = START + second + 1
        store.maintain(now=last_now)
        elapsed += time.perf_counter() - started
    # Close the last hour (as the running appliance would a little later) so
    # hourly rollups are measured, not only the running hour's.
    store.maintain(now=last_now + 3600, force=True)
    store.close()
    return Run("embedded", targets, seconds / 3600, values, elapsed, table_bytes(path))


def run_naive(targets: int, seconds: int, workdir: Path) -> Run:
    path = workdir / f"naive-{targets}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE naive(ts INTEGER, measurement TEXT, tags TEXT, field TEXT, value)")
    conn.execute("CREATE INDEX naive_series ON naive(measurement, tags, field, ts)")
    values = 0
    elapsed = 0.0
    for batch in sip_points(targets, seconds):
        started = time.perf_counter()
        rows = [
            (p.time_ns // 10**6, p.measurement, json.dumps(p.tags, sort_keys=True), name, value)
            for p in batch
            for name, value in p.fields.items()
        ]
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO naive VALUES (?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        values += len(rows)
        elapsed += time.perf_counter() - started
    conn.close()
    return Run("naive", targets, seconds / 3600, values, elapsed, table_bytes(path))


def run_per_value(targets: int, seconds: int, workdir: Path) -> Run:
    """The layout we measured first: one raw row per value, keyed by series and field."""
    path = workdir / f"per-value-{targets}.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE series(id INTEGER PRIMARY KEY, measurement TEXT, tags TEXT, UNIQUE(measurement, tags))"
    )
    conn.execute(
        "CREATE TABLE per_value(bucket INTEGER, series_id INTEGER, field_id INTEGER, off INTEGER, "
        "value, PRIMARY KEY(bucket, series_id, field_id, off)) WITHOUT ROWID"
    )
    ids: dict[tuple[str, str], int] = {}
    field_ids: dict[str, int] = {}
    values = 0
    elapsed = 0.0
    for batch in sip_points(targets, seconds):
        started = time.perf_counter()
        conn.execute("BEGIN")
        rows = []
        for p in batch:
            key = (p.measurement, canonical_tags(p.tags))
            sid = ids.get(key)
            if sid is None:
                sid = ids[key] = conn.execute(
                    "INSERT INTO series(measurement, tags) VALUES (?, ?)", key
                ).lastrowid
            bucket, off = divmod(p.time_ns // 10**6, 600_000)
            for name, value in p.fields.items():
                fid = field_ids.setdefault(name, len(field_ids) + 1)
                rows.append((bucket, sid, fid, off, value))
        conn.executemany("INSERT OR IGNORE INTO per_value VALUES (?,?,?,?,?)", rows)
        conn.execute("COMMIT")
        values += len(rows)
        elapsed += time.perf_counter() - started
    conn.close()
    return Run("per-value", targets, seconds / 3600, values, elapsed, table_bytes(path))


def mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n < 1e9 else f"{n / 1e9:,.1f} GB"


def report(store: Run, naive: Run, per_value: Run) -> list[str]:
    raw = store.per_target_hour("raw")
    m1 = store.per_target_hour("rollup_1m")
    h1 = store.per_target_hour("rollup_1h")
    retained = (
        raw * RETENTION_HOURS["raw"] + m1 * RETENTION_HOURS["1m"] + h1 * RETENTION_HOURS["1h"]
    )
    naive_raw = naive.per_target_hour("naive") + naive.per_target_hour("naive_series")
    per_value_raw = per_value.per_target_hour("per_value")
    values_per_target_hour = store.values / store.targets / store.hours
    lines = [
        f"### {store.targets:,} SIP targets, {store.hours * 60:g} simulated minutes "
        f"({store.values:,} values)",
        "",
        "| | bytes / target / hour | bytes / value | at default retention, per target |",
        "| --- | ---: | ---: | ---: |",
        f"| embedded raw (kept 3 h) | {raw:,.0f} | {raw / values_per_target_hour:.1f} | {mb(raw * 3)} |",
        f"| 1m rollups (30 d) | {m1:,.0f} | | {mb(m1 * RETENTION_HOURS['1m'])} |",
        f"| 1h rollups (1 y) | {h1:,.0f} | | {mb(h1 * RETENTION_HOURS['1h'])} |",
        f"| **total at default retention** | | | **{mb(retained)}** |",
        f"| naive raw (reference) | {naive_raw:,.0f} | {naive_raw / values_per_target_hour:.1f} | |",
        f"| per-value raw (alternative) | {per_value_raw:,.0f} "
        f"| {per_value_raw / values_per_target_hour:.1f} | |",
        "",
        f"At default retention: {mb(retained * 1000)} for 1,000 targets, "
        f"{mb(retained * 10_000)} for 10,000 targets (before the disk cap).",
        "",
        "| design | values/s inserted |",
        "| --- | ---: |",
        f"| embedded (raw + rollups + retention + budget check) | {store.values_per_second:,.0f} |",
        f"| naive (raw only) | {naive.values_per_second:,.0f} |",
        f"| per-value (raw only) | {per_value.values_per_second:,.0f} |",
        "",
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, action="append", help="targets (repeatable)")
    parser.add_argument(
        "--minutes", type=int, action="append", help="simulated minutes, one per --targets"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database files")
    args = parser.parse_args(argv)
    targets = args.targets or [1000, 10_000]
    minutes = args.minutes or ([60, 10] if args.targets is None else [60] * len(targets))
    if len(minutes) != len(targets):
        parser.error("give one --minutes per --targets")
    workdir = Path(tempfile.mkdtemp(prefix="dialwatch-bench-"))
    print(f"sqlite {sqlite3.sqlite_version}, python {sys.version.split()[0]}, files in {workdir}")
    print()
    for n, m in zip(targets, minutes, strict=True):
        seconds = m * 60
        store = run_store(n, seconds, workdir)
        naive = run_naive(n, seconds, workdir)
        per_value = run_per_value(n, seconds, workdir)
        print("\n".join(report(store, naive, per_value)), flush=True)
    if not args.keep:
        for f in workdir.iterdir():
            f.unlink()
        workdir.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
