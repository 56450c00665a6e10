"""The embedded metrics store: writes, rollups, retention and the disk budget.

``MetricsStore`` owns the one writing connection (WAL mode, so readers in
other threads are never blocked; see ``reader.py``). Its hot path is
``write(points)``: one transaction per batch inserting one raw row per point.
The running minutes are aggregated in memory (min/max/sum/count per series and
field, in flat arrays: see ``OpenMinute``) and written to the 1-minute rollups
once each minute has closed; after a crash they are rebuilt from the raw rows
on open. Hourly rollups are built from the minute rollups of a closed hour in
``maintain``, which also applies retention and the size cap.

Nothing is doubled: a value already stored (same series, field and time) is
ignored, and only new values are folded into the rollups.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from core.observation import FieldValue, MetricPoint
from monitor.config.models import StorageConfig
from monitor.points import UNFIT, FieldType, coerce, type_of
from monitor.store.metrics.schema import (
    DDL,
    H1,
    M1,
    RAW,
    SCHEMA_VERSION,
    TIERS,
    Tier,
    canonical_tags,
    decode_fields,
    encode_fields,
)

log = logging.getLogger(__name__)

METRICS_DB = "metrics.db"
DEFAULT_RAW_RETENTION = 3 * 3600.0
DEFAULT_M1_RETENTION = 30 * 86400.0
DEFAULT_H1_RETENTION = 365 * 86400.0
DEFAULT_MAX_BYTES = 2 * 1024**3

MINUTE_CLOSE_GRACE_MS = 30_000
"""A minute stays open in memory until a point this much newer than its end arrives."""
HOUR_CLOSE_GRACE_MS = 120_000
"""A point may reach the store this long after its hour ended (probe timeout, queueing)."""
OPEN_HOUR_REFRESH = 300.0
"""Seconds between refreshes of the hourly rollup of the hour still running."""
HIGH_WATER = 0.95
LOW_WATER = 0.85
"""Over ``HIGH_WATER`` of the budget the cap evicts down to ``LOW_WATER``, so it
does not run again on the very next batch."""
EVICTION_FLOORS = ({RAW: 1, M1: 24, H1: 7}, {RAW: 0, M1: 0, H1: 0})
"""Buckets of each tier the cap keeps, per pass: first it spares the newest
10 minutes of raw, day of minute rollups and week of hourly rollups; only if
that is not enough does it take everything, oldest first."""


_PYTHON_TYPE = {
    FieldType.INT: int,
    FieldType.FLOAT: float,
    FieldType.BOOL: bool,
    FieldType.STR: str,
}


@dataclass
class WriteResult:
    written: int = 0
    """Values stored."""
    duplicates: int = 0
    """Values already stored with the same series, field and time (ignored)."""
    rejected: int = 0
    """Values whose type does not fit the field's (or that no store can hold)."""


@dataclass(frozen=True)
class StoreSize:
    file_bytes: int
    """The database file (pages in use plus free pages) plus its WAL."""
    used_bytes: int
    """Pages holding data."""
    wal_bytes: int


Agg = list
"""``[min, max, sum, count]`` of one field over one step: a list, not a class,
because the hot path updates one per value and attribute access costs more."""


def _fold(aggs: dict, key: tuple, value: FieldValue) -> None:
    v = float(value)  # type: ignore[arg-type]
    agg = aggs.get(key)
    if agg is None:
        aggs[key] = [v, v, v, 1]
    else:
        if v < agg[0]:
            agg[0] = v
        if v > agg[1]:
            agg[1] = v
        agg[2] += v
        agg[3] += 1


def _aggregate(values: list[tuple[int, int, int, FieldValue]]) -> dict[tuple[int, int, int], Agg]:
    """``(ts_ms, series_id, field_id, value)`` → ``{(minute, series_id, field_id): agg}``."""
    aggs: dict[tuple[int, int, int], Agg] = {}
    for ts_ms, sid, fid, value in values:
        _fold(aggs, (ts_ms // M1.unit_ms, sid, fid), value)
    return aggs


MinuteRow = tuple[int, int, int, int, float, float, float, int]
"""A 1m rollup row: ``(bucket, series_id, field_id, off, vmin, vmax, vsum, n)``."""


def _rows_of(aggs: dict[tuple[int, int, int], Agg]) -> Iterator[MinuteRow]:
    for (minute, sid, fid), (vmin, vmax, vsum, n) in sorted(aggs.items()):
        yield (minute // M1.bucket_units, sid, fid, minute % M1.bucket_units, vmin, vmax, vsum, n)


class OpenMinute:
    """min/max/sum/count of every ``(series, field)`` during one running minute.

    One flat ``array`` per field, four doubles per series, at the series'
    position among its measurement's series (``MetricsStore._positions``): a
    value costs 32 bytes and no Python object. A dict of per-key lists cost
    ~270 bytes a value, ~40 MB at 10,000 SIP targets with two minutes open
    (bench/sip_probe_throughput).
    """

    __slots__ = ("by_field",)

    def __init__(self) -> None:
        self.by_field: dict[int, array[float]] = {}

    def fold(self, fid: int, pos: int, value: float) -> None:
        aggs = self.by_field.get(fid)
        base = pos * 4
        if aggs is None or len(aggs) <= base:
            if aggs is None:
                aggs = self.by_field[fid] = array("d")
            # Grow by half again, so a site adding series does not copy per value.
            size = max(base + 4, (len(aggs) + len(aggs) // 2) // 4 * 4)
            aggs.frombytes(bytes(8 * (size - len(aggs))))
        if aggs[base + 3] == 0.0:
            aggs[base] = aggs[base + 1] = aggs[base + 2] = value
            aggs[base + 3] = 1.0
            return
        if value < aggs[base]:
            aggs[base] = value
        if value > aggs[base + 1]:
            aggs[base + 1] = value
        aggs[base + 2] += value
        aggs[base + 3] += 1.0


@dataclass
class Retention:
    raw: float = DEFAULT_RAW_RETENTION
    m1: float = DEFAULT_M1_RETENTION
    h1: float = DEFAULT_H1_RETENTION

    def of(self, tier: Tier) -> float:
        return {RAW: self.raw, M1: self.m1, H1: self.h1}[tier]

    @classmethod
    def from_config(cls, storage: StorageConfig) -> Retention:
        return cls(storage.raw_retention, storage.rollup_1m_retention, storage.rollup_1h_retention)


def connect(path: Path, *, create: bool) -> sqlite3.Connection:
    """A connection with the store's settings; ``create`` also lays out the schema."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    if create:
        # auto_vacuum only takes effect before the first table exists; it lets
        # the size cap hand freed pages back to the filesystem.
        conn.execute("PRAGMA auto_vacuum=INCREMENTAL")
    conn.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL cannot corrupt; a power cut may lose the last second of points.
    conn.execute("PRAGMA synchronous=NORMAL")
    # 16 MiB: the writer appends to recent pages; a bigger cache only held
    # RSS (64 MiB cost ~50 MB at 10,000 targets, bench/sip_probe_throughput).
    conn.execute("PRAGMA cache_size=-16384")
    # Keep the WAL from staying at the size of the biggest eviction.
    conn.execute("PRAGMA journal_size_limit=16777216")
    if create:
        for statement in DDL:
            conn.execute(statement)
    return conn


def _schema_version(path: Path) -> int | None:
    """The layout version recorded in an existing file; None for a new or empty one."""
    if not path.exists():
        return None
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return None if row is None else int(row[0])


def _move_aside_other_version(path: Path) -> None:
    """A file written with another layout is renamed, not read wrongly nor deleted."""
    found = _schema_version(path)
    if found is None or found == SCHEMA_VERSION:
        return
    aside = path.with_name(f"{path.name}.v{found}-{int(time.time())}")
    for suffix in ("", "-wal", "-shm"):
        old = Path(f"{path}{suffix}")
        if old.exists():
            old.rename(Path(f"{aside}{suffix}"))
    log.warning(
        "%s was written by another version of the metrics store (layout %d, this one is %d): "
        "moved it to %s and started a new one",
        path,
        found,
        SCHEMA_VERSION,
        aside,
    )


@dataclass
class _Pending:
    """Cache entries made inside the running transaction, undone if it rolls back."""

    series: list[tuple[str, str]] = field(default_factory=list)
    fast: list[tuple[str, ...]] = field(default_factory=list)
    fields: list[tuple[str, str]] = field(default_factory=list)


class MetricsStore:
    """The writer side of ``metrics.db``. Thread-safe; writes are serialised."""

    def __init__(
        self,
        path: str | Path,
        retention: Retention | None = None,
        max_bytes: int = DEFAULT_MAX_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.retention = retention or Retention()
        self.max_bytes = max_bytes
        self.clock = clock
        self._lock = threading.RLock()
        _move_aside_other_version(self.path)
        self._conn = connect(self.path, create=True)
        # The WAL counts against the budget: with a small budget, checkpoint sooner.
        wal_pages = max(16, min(1000, max_bytes // 4096 // 20))
        self._conn.execute(f"PRAGMA wal_autocheckpoint={wal_pages}")
        self._conn.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema_version', ?)",
            (str(SCHEMA_VERSION),),
        )
        self._series: dict[tuple[str, str], int] = {
            (m, t): i for i, m, t in self._conn.execute("SELECT id, measurement, tags FROM series")
        }
        self._series_fast: dict[tuple[str, ...], int] = {}
        self._fields: dict[tuple[str, str], tuple[int, FieldType]] = {
            (m, n): (i, FieldType(t))
            for i, m, n, t in self._conn.execute("SELECT id, measurement, name, type FROM field")
        }
        self._late_hours: set[int] = set()
        self._closed = False
        self._h1_done = self._meta_int("h1_done")
        flushed = self._meta_int("m1_flushed")
        self._m1_flushed = -1 if flushed is None else flushed
        self._open_minutes: dict[int, OpenMinute] = {}
        # Position of a series among the series of its measurement, and back:
        # the index into ``OpenMinute`` arrays.
        self._positions: dict[int, int] = {}
        self._members: dict[str, list[int]] = {}
        self._measurement_of: dict[int, str] = {fid: m for (m, _), (fid, _) in self._fields.items()}
        self._newest_ms = 0
        self._recover_open_minutes()
        self._open_hour_refreshed = 0.0
        self._last_maintenance = 0.0

    @classmethod
    def from_config(cls, storage: StorageConfig, data_dir: str | Path) -> MetricsStore:
        """The store at ``<data_dir>/metrics.db`` with the configured retention and budget."""
        return cls(
            Path(data_dir) / METRICS_DB,
            retention=Retention.from_config(storage),
            max_bytes=storage.max_bytes,
        )

    # -- lookups ---------------------------------------------------------
    def field_types(self) -> dict[tuple[str, str], FieldType]:
        """Types of every field ever stored, to seed ``monitor.points.FieldTypes``."""
        with self._lock:
            return {key: ftype for key, (_, ftype) in self._fields.items()}

    def _series_id(self, measurement: str, tags: Mapping[str, str], pending: _Pending) -> int:
        # Hot path: a flat tuple of the tags as given hashes faster than building
        # the canonical JSON, which is only needed for a series not seen yet.
        # It depends on the tags' order: the same series given in another order
        # gets a second cache entry, for the same id. A frozenset of the items
        # cost ~4x the memory (~15 MB at 10,000 SIP targets).
        fast = (measurement, *tags.keys(), *tags.values())
        sid = self._series_fast.get(fast)
        if sid is not None:
            return sid
        key = (measurement, canonical_tags(tags))
        sid = self._series.get(key)
        if sid is None:
            cur = self._conn.execute(
                "INSERT INTO series(target, measurement, tags) VALUES (?, ?, ?)",
                (tags.get("target", ""), measurement, key[1]),
            )
            sid = self._series[key] = int(cur.lastrowid)  # type: ignore[arg-type]
            pending.series.append(key)
            pending.fast.append(fast)
        self._series_fast[fast] = sid
        return sid

    def _field(
        self, measurement: str, name: str, value: FieldValue, pending: _Pending
    ) -> tuple[int, FieldType] | None:
        key = (measurement, name)
        known = self._fields.get(key)
        if known is None:
            ftype = type_of(value)
            if ftype is None:
                return None
            cur = self._conn.execute(
                "INSERT INTO field(measurement, name, type) VALUES (?, ?, ?)",
                (measurement, name, ftype.value),
            )
            known = self._fields[key] = (int(cur.lastrowid), ftype)  # type: ignore[arg-type]
            self._measurement_of[known[0]] = measurement
            pending.fields.append(key)
        return known

    # -- the hot path ------------------------------------------------------
    def write(self, points: Iterable[MetricPoint]) -> WriteResult:
        """Store a batch of enriched points in one transaction.

        Raises ``sqlite3.Error`` (the whole batch is then rolled back).
        """
        result = WriteResult()
        with self._lock:
            pending = _Pending()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            try:
                rows, values = self._rows(points, pending, result)
                new = self._insert_raw(rows, values, result)
                late = [v for v in new if v[0] // M1.unit_ms <= self._m1_flushed]
                # Late values (rare) go through a plain dict, not ``OpenMinute``:
                # they are folded inside the transaction, and a position given to
                # a series id that a rollback then frees could later point at
                # another measurement's series.
                if late:
                    self._upsert_minutes(_rows_of(_aggregate(late)))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                for key in pending.series:
                    self._series.pop(key, None)
                for fast in pending.fast:
                    self._series_fast.pop(fast, None)
                for fkey in pending.fields:
                    self._fields.pop(fkey, None)
                raise
            # Only now that the values are committed do they join the open
            # minutes; a crash before the next flush is repaired from raw on open.
            for ts_ms, sid, fid, value in new:
                self._fold_open(ts_ms, sid, fid, value)
            if rows:
                newest = max(RAW.join(r[0], r[2]) for r in rows)
                self._newest_ms = max(self._newest_ms, newest)
            try:
                self._flush_minutes(self._newest_ms - MINUTE_CLOSE_GRACE_MS)
            except sqlite3.Error:
                # The batch itself is committed: report it written. The open
                # minutes stay in memory and are flushed after the next batch.
                log.exception("metrics store: could not write closed minutes; will retry")
        return result

    def _rows(
        self, points: Iterable[MetricPoint], pending: _Pending, result: WriteResult
    ) -> tuple[list[tuple[int, int, int, str]], list[list[tuple[int, FieldValue, bool]]]]:
        """Raw rows ``(bucket, series_id, off, fields)`` and, per row, its
        ``(field_id, value, numeric)``."""
        rows: list[tuple[int, int, int, str]] = []
        values: list[list[tuple[int, FieldValue, bool]]] = []
        fields = self._fields
        for point in points:
            measurement = point.measurement
            sid = self._series_id(measurement, point.tags, pending)
            bucket, off = RAW.split(point.time_ns // 1_000_000)
            flat: list[object] = []
            kept: list[tuple[int, FieldValue, bool]] = []
            for name, value in point.fields.items():
                known = fields.get((measurement, name)) or self._field(
                    measurement, name, value, pending
                )
                if known is None:
                    result.rejected += 1
                    continue
                fid, ftype = known
                fitted: object = value
                # Fast path: the value already has the field's type (the engine's
                # FieldTypes made sure); ``v - v == 0`` is False for NaN and inf.
                if type(value) is not _PYTHON_TYPE[ftype] or (
                    ftype is FieldType.FLOAT and value - value != 0.0  # type: ignore[operator]
                ):
                    fitted = coerce(value, ftype)
                    if fitted is UNFIT:
                        result.rejected += 1
                        continue
                flat += (fid, fitted)
                kept.append((fid, fitted, ftype is not FieldType.STR))  # type: ignore[arg-type]
            if kept:
                rows.append((bucket, sid, off, encode_fields(flat)))
                values.append(kept)
        return rows, values

    def _insert_raw(
        self,
        rows: list[tuple[int, int, int, str]],
        values: list[list[tuple[int, FieldValue, bool]]],
        result: WriteResult,
    ) -> list[tuple[int, int, int, FieldValue]]:
        """Insert raw rows; the new numeric values as ``(ts_ms, series_id, field_id, value)``.

        Fast path: every row is new, which one count of changes proves.
        """
        conn = self._conn
        sql = "INSERT OR IGNORE INTO raw(bucket, series_id, off, fields) VALUES (?,?,?,?)"
        conn.execute("SAVEPOINT raw")
        before = conn.total_changes
        conn.executemany(sql, rows)
        if conn.total_changes - before == len(rows):
            conn.execute("RELEASE raw")
            result.written += sum(len(v) for v in values)
            return [
                (RAW.join(bucket, off), sid, fid, value)
                for (bucket, sid, off, _), kept in zip(rows, values, strict=True)
                for fid, value, numeric in kept
                if numeric
            ]
        # Some points were already there (sent twice, or the same series and
        # time with other fields): merge row by row, so a value is stored and
        # counted in the rollups once, and fields of the same instant add up.
        conn.execute("ROLLBACK TO raw")
        conn.execute("RELEASE raw")
        new: list[tuple[int, int, int, FieldValue]] = []
        for row, kept in zip(rows, values, strict=True):
            bucket, sid, off, _ = row
            if conn.execute(sql, row).rowcount != 1:
                (text,) = conn.execute(
                    "SELECT fields FROM raw WHERE bucket = ? AND series_id = ? AND off = ?",
                    (bucket, sid, off),
                ).fetchone()
                stored = decode_fields(text)
                fresh = [k for k in kept if k[0] not in stored]
                result.duplicates += len(kept) - len(fresh)
                if not fresh:
                    continue
                stored.update((fid, value) for fid, value, _ in fresh)
                conn.execute(
                    "UPDATE raw SET fields = ? WHERE bucket = ? AND series_id = ? AND off = ?",
                    (encode_fields([x for kv in stored.items() for x in kv]), bucket, sid, off),
                )
                kept = fresh
            result.written += len(kept)
            ts = RAW.join(bucket, off)
            new.extend((ts, sid, fid, value) for fid, value, numeric in kept if numeric)
        return new

    def _fold_open(self, ts_ms: int, sid: int, fid: int, value: FieldValue) -> None:
        minute = ts_ms // M1.unit_ms
        if minute <= self._m1_flushed:
            return
        pos = self._positions.get(sid)
        if pos is None:
            members = self._members.setdefault(self._measurement_of[fid], [])
            pos = self._positions[sid] = len(members)
            members.append(sid)
        open_minute = self._open_minutes.get(minute)
        if open_minute is None:
            open_minute = self._open_minutes[minute] = OpenMinute()
        open_minute.fold(fid, pos, float(value))  # type: ignore[arg-type]

    def _open_rows(self, minutes: list[int]) -> Iterator[MinuteRow]:
        """The rollup rows of open minutes, generated (never a list of them all),
        in (minute, measurement, series, field) order for page locality."""
        for minute in sorted(minutes):
            bucket, off = divmod(minute, M1.bucket_units)
            by_measurement: dict[str, list[tuple[int, array[float]]]] = {}
            for fid, aggs in sorted(self._open_minutes[minute].by_field.items()):
                by_measurement.setdefault(self._measurement_of[fid], []).append((fid, aggs))
            for measurement, columns in by_measurement.items():
                members = self._members[measurement]
                for pos in sorted(range(len(members)), key=members.__getitem__):
                    base = pos * 4
                    for fid, aggs in columns:
                        if base < len(aggs) and aggs[base + 3]:
                            yield (
                                bucket, members[pos], fid, off,
                                aggs[base], aggs[base + 1], aggs[base + 2], int(aggs[base + 3]),
                            )  # fmt: skip

    def _upsert_minutes(self, rows: Iterable[MinuteRow]) -> None:
        """Merge rollup rows into the 1m rollups."""
        buckets: set[int] = set()

        def noting_buckets() -> Iterator[MinuteRow]:
            for row in rows:
                buckets.add(row[0])
                yield row

        self._conn.executemany(
            f"""INSERT INTO {M1.table}(bucket, series_id, field_id, off, vmin, vmax, vsum, n)
            VALUES (?,?,?,?,?,?,?,?)
            ON CONFLICT DO UPDATE SET vmin = min(vmin, excluded.vmin),
                vmax = max(vmax, excluded.vmax), vsum = vsum + excluded.vsum, n = n + excluded.n""",
            noting_buckets(),
        )
        if self._h1_done is not None:
            # An M1 bucket is one hour.
            self._late_hours.update(h for h in buckets if h <= self._h1_done)

    def _flush_minutes(self, until_ms: float) -> None:
        """Write the open minutes that ended by ``until_ms`` to the 1m rollups.

        Minutes are aggregated in memory while they run and written once,
        which costs a sixth of an upsert per value at a 10 s interval.
        ``m1_flushed`` (in ``meta``, same transaction) marks the newest minute
        written: later values for it or older ones are merged at once instead.
        """
        through = int(until_ms // M1.unit_ms) - 1
        closed = [m for m in self._open_minutes if m <= through]
        if not closed:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._upsert_minutes(self._open_rows(closed))
            flushed = max(self._m1_flushed, max(closed))
            self._set_meta("m1_flushed", flushed)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        for minute in closed:
            del self._open_minutes[minute]
        self._m1_flushed = flushed

    def flush(self) -> None:
        """Write every open minute to the 1m rollups now (on close; in tests)."""
        with self._lock:
            if self._open_minutes:
                self._flush_minutes((max(self._open_minutes) + 1) * M1.unit_ms)

    def _recover_open_minutes(self) -> None:
        """Rebuild the open minutes lost by a crash from the raw values."""
        first_ms = (self._m1_flushed + 1) * M1.unit_ms
        types = {fid: ftype for fid, ftype in self._fields.values()}
        rows = self._conn.execute(
            "SELECT bucket, series_id, off, fields FROM raw WHERE bucket >= ?",
            (first_ms // RAW.bucket_ms,),
        )
        for bucket, sid, off, text in rows:
            ts = RAW.join(bucket, off)
            if ts < first_ms:
                continue
            self._newest_ms = max(self._newest_ms, ts)
            for fid, value in decode_fields(text).items():
                ftype = types.get(fid)
                if ftype is not None and ftype.numeric:
                    self._fold_open(ts, sid, fid, value)  # type: ignore[arg-type]

    # -- maintenance ---------------------------------------------------------
    def maintain(self, now: float | None = None, force: bool = False) -> None:
        """Hourly rollups, retention, the size cap. Cheap when nothing is due;
        the sink calls it after every batch, tests call it with ``now``."""
        now = self.clock() if now is None else now
        with self._lock:
            self._flush_minutes(now * 1000 - MINUTE_CLOSE_GRACE_MS)
            if force or now - self._last_maintenance >= 10.0:
                self._last_maintenance = now
                self._roll_up_hours(now)
                self._apply_retention(now)
            self.enforce_budget()

    def _meta_int(self, key: str) -> int | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else int(row[0])

    def _set_meta(self, key: str, value: int) -> None:
        self._conn.execute(
            "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def _roll_up_hour(self, hour: int) -> None:
        bucket, off = divmod(hour, H1.bucket_units)
        self._conn.execute(f"DELETE FROM {H1.table} WHERE bucket = ? AND off = ?", (bucket, off))
        self._conn.execute(
            f"""INSERT INTO {H1.table}(bucket, series_id, field_id, off, vmin, vmax, vsum, n)
            SELECT ?, series_id, field_id, ?, min(vmin), max(vmax), sum(vsum), sum(n)
            FROM {M1.table} WHERE bucket = ? GROUP BY series_id, field_id""",
            (bucket, off, hour),
        )

    def _roll_up_hours(self, now: float) -> None:
        now_ms = int(now * 1000)
        current = now_ms // H1.unit_ms
        closed_through = (now_ms - HOUR_CLOSE_GRACE_MS) // H1.unit_ms - 1
        done = self._h1_done
        if done is None:
            oldest = self._conn.execute(f"SELECT min(bucket) FROM {M1.table}").fetchone()[0]
            done = (oldest if oldest is not None else closed_through + 1) - 1
        # After a long stop, do not try to roll up hours older than the 1h tier keeps.
        first = max(done + 1, current - int(self.retention.h1 // 3600) - 1)
        hours = set(range(first, closed_through + 1)) | {h for h in self._late_hours if h < current}
        if now - self._open_hour_refreshed >= OPEN_HOUR_REFRESH:
            # The running hour, and the last one while its grace runs, so a
            # chart of hourly points does not end an hour early.
            hours.update(range(max(closed_through + 1, first), current + 1))
            self._open_hour_refreshed = now
        if not hours and closed_through <= done:
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            for hour in sorted(hours):
                self._roll_up_hour(hour)
            self._set_meta("h1_done", max(done, closed_through))
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._h1_done = max(done, closed_through)
        self._late_hours.clear()

    def _apply_retention(self, now: float) -> None:
        now_ms = int(now * 1000)
        for tier in TIERS:
            cutoff_bucket = (now_ms - int(self.retention.of(tier) * 1000)) // tier.bucket_ms
            self._conn.execute(f"DELETE FROM {tier.table} WHERE bucket < ?", (cutoff_bucket,))

    # -- the disk budget -------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._closed

    def size(self) -> StoreSize:
        if self._closed:
            main = self.path.stat().st_size if self.path.exists() else 0
            return StoreSize(main, main, 0)
        with self._lock:
            page_size = self._conn.execute("PRAGMA page_size").fetchone()[0]
            pages = self._conn.execute("PRAGMA page_count").fetchone()[0]
            free = self._conn.execute("PRAGMA freelist_count").fetchone()[0]
        wal = Path(f"{self.path}-wal")
        wal_bytes = wal.stat().st_size if wal.exists() else 0
        return StoreSize(pages * page_size + wal_bytes, (pages - free) * page_size, wal_bytes)

    def enforce_budget(self) -> bool:
        """Keep the file under ``max_bytes``; True when it had to act.

        Over 95 % of the budget: drop whole buckets, oldest raw first, then the
        oldest 1-minute rollups, then the oldest hourly rollups (see
        ``EVICTION_FLOORS``) until the data fits in 85 %, then give the freed
        pages back to the filesystem. Below that, pages freed by retention are
        reused by new rows and the file keeps its size.
        """
        with self._lock:
            high = self.max_bytes * HIGH_WATER
            if self.size().file_bytes <= high:
                return False
            # A long WAL alone can cross the line; folding it back costs no data.
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            if self.size().file_bytes <= high:
                return False
            low = self.max_bytes * LOW_WATER
            evicted = 0
            for floors in EVICTION_FLOORS:
                for tier in TIERS:
                    while self.size().used_bytes > low and self._evict_oldest(tier, floors[tier]):
                        evicted += 1
            # Through executescript: the sqlite3 module steps a pragma once, and
            # incremental_vacuum frees one page per step.
            self._conn.executescript("PRAGMA incremental_vacuum;")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            if evicted:
                log.warning(
                    "metrics store over its disk budget (%d bytes): dropped the %d oldest "
                    "buckets of data, now %d bytes",
                    self.max_bytes,
                    evicted,
                    self.size().file_bytes,
                )
            return True

    def _evict_oldest(self, tier: Tier, keep: int) -> bool:
        row = self._conn.execute(f"SELECT min(bucket), max(bucket) FROM {tier.table}").fetchone()
        if row[0] is None or row[0] > row[1] - keep:
            return False
        oldest = row[0]
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            self._conn.execute(f"DELETE FROM {tier.table} WHERE bucket = ?", (oldest,))
            self._set_meta(f"evicted_before_{tier.name}", (oldest + 1) * tier.bucket_ms)
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            try:
                self.flush()
            finally:
                self._closed = True
            try:
                self._conn.execute("PRAGMA optimize")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:
                self._conn.close()
