"""Read side of the embedded metrics store, for the dashboard and the API.

Each thread gets its own read-only connection; in WAL mode reads see the last
committed batch and never wait for the writer. Results are plain tuples with
times in epoch milliseconds; ``monitor.metrics_query`` shapes them for charts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from core.observation import FieldValue
from monitor.points import FieldType
from monitor.store.metrics.schema import RAW, Tier, decode_fields
from monitor.store.metrics.store import connect


@dataclass(frozen=True)
class SeriesInfo:
    id: int
    measurement: str
    tags: dict[str, str]


RollupRow = tuple[int, float, float, float, int]
"""(ts_ms, min, max, sum, count)"""


def _placeholders(n: int) -> str:
    return ",".join("?" * n)


class MetricsReader:
    """Read-only access to ``metrics.db``; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    def _conn(self) -> sqlite3.Connection | None:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if not self.path.exists():
                return None  # nothing written yet: every query is empty
            conn = connect(self.path, create=False)
            conn.execute("PRAGMA query_only=ON")
            # One connection per web thread: a smaller cache than the writer's.
            conn.execute("PRAGMA cache_size=-16384")
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def _query(self, sql: str, params: tuple | list = ()) -> list[tuple]:
        conn = self._conn()
        if conn is None:
            return []
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []  # the writer has not laid out the schema yet
            raise

    # -- catalogue -------------------------------------------------------
    def find_series(
        self, target_id: str, measurement: str | None = None, tags: Mapping[str, str] | None = None
    ) -> list[SeriesInfo]:
        """Series of a target (optionally one measurement) whose tags include ``tags``."""
        if measurement is None:
            rows = self._query(
                "SELECT id, measurement, tags FROM series WHERE target = ? ORDER BY id",
                (target_id,),
            )
        else:
            rows = self._query(
                "SELECT id, measurement, tags FROM series WHERE target = ? AND measurement = ? "
                "ORDER BY id",
                (target_id, measurement),
            )
        wanted = dict(tags or {})
        found = []
        for sid, m, text in rows:
            series_tags = json.loads(text)
            if all(series_tags.get(k) == v for k, v in wanted.items()):
                found.append(SeriesInfo(sid, m, series_tags))
        return found

    def field(self, measurement: str, name: str) -> tuple[int, FieldType] | None:
        rows = self._query(
            "SELECT id, type FROM field WHERE measurement = ? AND name = ?", (measurement, name)
        )
        return (rows[0][0], FieldType(rows[0][1])) if rows else None

    def fields_of(self, measurement: str) -> list[tuple[int, str, FieldType]]:
        rows = self._query(
            "SELECT id, name, type FROM field WHERE measurement = ? ORDER BY name", (measurement,)
        )
        return [(fid, name, FieldType(t)) for fid, name, t in rows]

    def evicted_before(self, tier: Tier) -> int | None:
        """End (ms) of the newest bucket the size cap dropped from ``tier``, if any."""
        rows = self._query("SELECT value FROM meta WHERE key = ?", (f"evicted_before_{tier.name}",))
        return int(rows[0][0]) if rows else None

    # -- values ------------------------------------------------------------
    def read_raw(
        self, series_id: int, field_id: int, start_ms: int, end_ms: int
    ) -> list[tuple[int, FieldValue]]:
        buckets = RAW.buckets(start_ms, end_ms)
        if not buckets:
            return []
        rows = self._query(
            f"""SELECT bucket * {RAW.bucket_units} + off AS ts, fields FROM raw
            WHERE bucket IN ({_placeholders(len(buckets))}) AND series_id = ?
              AND ts BETWEEN ? AND ? ORDER BY bucket, off""",
            (*buckets, series_id, start_ms, end_ms),
        )
        out = []
        for ts, text in rows:
            fields = decode_fields(text)
            if field_id in fields:
                out.append((ts, fields[field_id]))
        return out  # type: ignore[return-value]

    def read_rollup(
        self, tier: Tier, series_id: int, field_id: int, start_ms: int, end_ms: int
    ) -> list[RollupRow]:
        """Rollup rows whose step starts in ``[start_ms, end_ms]``."""
        buckets = tier.buckets(start_ms, end_ms)
        if not buckets:
            return []
        ts = f"(bucket * {tier.bucket_units} + off) * {tier.unit_ms}"
        return self._query(
            f"""SELECT {ts} AS ts, vmin, vmax, vsum, n FROM {tier.table}
            WHERE bucket IN ({_placeholders(len(buckets))}) AND series_id = ? AND field_id = ?
              AND ts BETWEEN ? AND ? ORDER BY bucket, off""",
            (*buckets, series_id, field_id, start_ms, end_ms),
        )

    def latest_raw(self, series_id: int) -> dict[int, tuple[int, FieldValue]]:
        """``{field_id: (ts_ms, value)}``: the newest raw value of each field of a series."""
        span = self._query("SELECT min(bucket), max(bucket) FROM raw")
        if not span or span[0][0] is None:
            return {}
        oldest, newest = span[0]
        found: dict[int, tuple[int, FieldValue]] = {}
        for bucket in range(newest, oldest - 1, -1):
            # A few rows, in case the newest point lacks a field (a failed probe
            # may report fewer fields); the newest value of each field wins.
            rows = self._query(
                "SELECT off, fields FROM raw WHERE bucket = ? AND series_id = ? "
                "ORDER BY off DESC LIMIT 10",
                (bucket, series_id),
            )
            for off, text in rows:
                for fid, value in decode_fields(text).items():
                    found.setdefault(fid, (RAW.join(bucket, off), value))  # type: ignore[arg-type]
            if rows:
                return found
        return found

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()
        self._local = threading.local()
