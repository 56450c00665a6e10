"""Layout of the embedded metrics store (``<data_dir>/metrics.db``): tiers, tables, keys.

Three tiers hold the same series at different resolutions:

* ``raw``  — every value, kept ``storage.raw_retention`` (default 3 h);
* ``1m``   — min/max/sum/count per field per minute, kept 30 days;
* ``1h``   — the same per hour, kept a year.

A series is a measurement plus its full tag set (``series`` table, tags as
canonical JSON); a field is a ``(measurement, name)`` with the type it first
had (``field`` table). Value rows carry only small integers: the series id,
the field id and the time.

Raw holds one row per point, keyed ``(bucket, series_id, off)``, its fields
packed as ``[field_id, value, ...]``; each rollup table holds one row per field,
keyed ``(bucket, series_id, field_id, off)``. All are ``WITHOUT ROWID``.
``bucket`` is a slice of time (10 min of raw, an hour of 1m rollups, a day of
1h rollups) and ``off`` the position inside it. Bucket first keeps the hot path local — every insert lands in the
newest bucket, so the pages being written stay in cache — and lets retention
and the size cap drop whole buckets as one range delete instead of scanning.
A query of one series seeks once per bucket (``bucket IN (...)``). Storing
``off`` rather than the full time saves 3–4 bytes per row.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

SCHEMA_VERSION = 2
"""1: one raw row per value (never released); 2: one raw row per point."""


@dataclass(frozen=True)
class Tier:
    """One resolution. A time in ms is ``(bucket * bucket_units + off) * unit_ms``."""

    name: str
    table: str
    unit_ms: int
    """Resolution of ``off``: 1 ms for raw, the rollup step for rollups."""
    bucket_units: int
    """How many units one bucket spans."""

    @property
    def bucket_ms(self) -> int:
        return self.unit_ms * self.bucket_units

    @property
    def step(self) -> float:
        """Seconds between two rollup points (0 for raw: as often as probed)."""
        return 0.0 if self.name == "raw" else self.unit_ms / 1000

    def split(self, ts_ms: int) -> tuple[int, int]:
        """(bucket, off) for a time; rollups round down to their step."""
        return divmod(ts_ms // self.unit_ms, self.bucket_units)

    def join(self, bucket: int, off: int) -> int:
        return (bucket * self.bucket_units + off) * self.unit_ms

    def buckets(self, start_ms: int, end_ms: int) -> list[int]:
        """Every bucket that holds a time in ``[start_ms, end_ms]``."""
        if end_ms < start_ms:
            return []
        return list(range(start_ms // self.bucket_ms, end_ms // self.bucket_ms + 1))


RAW = Tier("raw", "raw", unit_ms=1, bucket_units=600_000)
M1 = Tier("1m", "rollup_1m", unit_ms=60_000, bucket_units=60)
H1 = Tier("1h", "rollup_1h", unit_ms=3_600_000, bucket_units=24)
TIERS = (RAW, M1, H1)

# An M1 bucket is exactly one hour: the hourly rollup of hour H reads M1 bucket H.
assert M1.bucket_ms == H1.unit_ms

DDL = (
    "CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE IF NOT EXISTS series(
        id INTEGER PRIMARY KEY,
        target TEXT NOT NULL,
        measurement TEXT NOT NULL,
        tags TEXT NOT NULL,
        UNIQUE(measurement, tags))""",
    "CREATE INDEX IF NOT EXISTS series_by_target ON series(target, measurement)",
    """CREATE TABLE IF NOT EXISTS field(
        id INTEGER PRIMARY KEY,
        measurement TEXT NOT NULL,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        UNIQUE(measurement, name))""",
    # One row per point: ``fields`` is a JSON array ``[field_id, value, ...]``.
    # Measured against one row per value (bench/metrics_store_disk.py): half
    # the bytes and several times the insert rate, and JSON gives every int,
    # float, bool and string back exactly.
    """CREATE TABLE IF NOT EXISTS raw(
        bucket INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        off INTEGER NOT NULL,
        fields TEXT NOT NULL,
        PRIMARY KEY(bucket, series_id, off)) WITHOUT ROWID""",
    *(
        f"""CREATE TABLE IF NOT EXISTS {tier.table}(
        bucket INTEGER NOT NULL,
        series_id INTEGER NOT NULL,
        field_id INTEGER NOT NULL,
        off INTEGER NOT NULL,
        vmin REAL NOT NULL,
        vmax REAL NOT NULL,
        vsum REAL NOT NULL,
        n INTEGER NOT NULL,
        PRIMARY KEY(bucket, series_id, field_id, off)) WITHOUT ROWID"""
        for tier in (M1, H1)
    ),
)


# One encoder for all rows: json.dumps with options builds a new one per call.
_ENCODE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def encode_fields(pairs: list[object]) -> str:
    """``[field_id, value, field_id, value, ...]`` as compact JSON."""
    return _ENCODE(pairs)


def decode_fields(text: str) -> dict[int, object]:
    """``{field_id: value}`` from a raw row's ``fields``."""
    flat = json.loads(text)
    return dict(zip(flat[::2], flat[1::2], strict=True))


def canonical_tags(tags: Mapping[str, str]) -> str:
    """The one text form of a tag set: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(dict(sorted(tags.items())), separators=(",", ":"), ensure_ascii=False)
