"""The one interface the dashboard and the API use to read metrics.

``MetricsQuery`` is the protocol; ``EmbeddedMetricsQuery`` answers from the
embedded store (an InfluxDB-backed implementation can follow the same
protocol). A caller asks for a time range and at most ``max_points`` points;
the implementation picks the resolution (raw, 1-minute or hourly rollups) and
downsamples, so a chart of a year costs about as much as a chart of an hour.

Times are epoch seconds (float) in and out.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from core.observation import FieldValue
from monitor.config.models import StorageConfig
from monitor.points import STANDARD_TAGS, FieldType
from monitor.store.metrics import H1, M1, METRICS_DB, RAW, TIERS, MetricsReader, Retention, Tier

ValuePoint = tuple[float, FieldValue]
"""(ts, value): a raw value as probed."""
RangePoint = tuple[float, float, float, float]
"""(ts, min, max, avg) over the step starting at ts."""


@dataclass(frozen=True)
class Series:
    """One labelled series of one field, ready to chart."""

    measurement: str
    field: str
    tags: dict[str, str]
    resolution: str
    """Where the values came from: ``raw``, ``1m`` or ``1h``."""
    step: float
    """Seconds per point; 0 when the points are raw values as probed."""
    points: list[ValuePoint] | list[RangePoint] = field(default_factory=list)
    """``(ts, value)`` when ``step`` is 0, else ``(ts, min, max, avg)``."""

    @property
    def aggregated(self) -> bool:
        return self.step > 0


class QueryError(Exception):
    """A metrics store could not answer (unreachable, refused, or the query failed).

    What a ``MetricsQuery`` over another server raises; the dashboard then reads
    the embedded store instead (``monitor.query_select``).
    """


class MetricsQuery(Protocol):
    def series(
        self,
        target_id: str,
        measurement: str,
        field: str,
        start: float,
        end: float,
        max_points: int = 300,
        tags: Mapping[str, str] | None = None,
    ) -> list[Series]:
        """Every series of ``target_id``'s ``measurement`` whose tags include ``tags``,
        one ``field`` over ``[start, end]``, at most ``max_points`` points each."""
        ...

    def latest(self, target_id: str) -> dict[str, list[dict[str, Any]]]:
        """Newest values per measurement:
        ``{"sip": [{"tags": {...}, "time": ts, "fields": {"rtt_ms": 12.5}}]}``.
        Standard tags (target, kind, site) are left out of ``tags``."""
        ...


# -- pure helpers ---------------------------------------------------------------


def choose_tier(start: float, end: float, max_points: int, horizons: Mapping[Tier, float]) -> Tier:
    """The tier to read for a range.

    The coarsest tier whose step still gives ``max_points`` points over the
    range (fewest rows read, no visible loss), moved to a coarser tier while
    the chosen one no longer holds ``start`` (``horizons``: the oldest time
    each tier can hold, from its retention and the size cap).
    """
    wanted_step = (end - start) / max(max_points, 1)
    index = max(i for i, tier in enumerate(TIERS) if tier.step <= wanted_step)
    while index < len(TIERS) - 1 and horizons[TIERS[index]] > start:
        index += 1
    return TIERS[index]


def _bin_index(ts: float, start: float, width: float, bins: int) -> int:
    return min(max(int((ts - start) / width), 0), bins - 1)


def downsample_values(
    rows: Sequence[ValuePoint], start: float, end: float, max_points: int, numeric: bool
) -> tuple[float, list[ValuePoint] | list[RangePoint]]:
    """Raw values as they are when few enough, else ``max_points`` equal bins.

    Returns ``(step, points)``. Numbers bin to ``(ts, min, max, avg)``;
    strings keep the last value of each bin.
    """
    if len(rows) <= max_points:
        return 0.0, list(rows)
    width = (end - start) / max_points
    if not numeric:
        last: dict[int, ValuePoint] = {}
        for ts, value in rows:
            last[_bin_index(ts, start, width, max_points)] = (ts, value)
        return 0.0, [last[i] for i in sorted(last)]
    bins: dict[int, list[float]] = {}
    for ts, value in rows:
        v = float(value)  # type: ignore[arg-type]
        b = bins.get(i := _bin_index(ts, start, width, max_points))
        if b is None:
            bins[i] = [v, v, v, 1]
        else:
            b[0] = min(b[0], v)
            b[1] = max(b[1], v)
            b[2] += v
            b[3] += 1
    return width, [(start + i * width, b[0], b[1], b[2] / b[3]) for i, b in sorted(bins.items())]


def downsample_rollups(
    rows: Sequence[tuple[float, float, float, float, int]],
    start: float,
    end: float,
    max_points: int,
    step: float,
) -> tuple[float, list[RangePoint]]:
    """Rollup rows ``(ts, min, max, sum, count)`` → ``(step, [(ts, min, max, avg)])``,
    merged into ``max_points`` bins when there are more rows than that."""
    if len(rows) <= max_points:
        return step, [(ts, lo, hi, total / n) for ts, lo, hi, total, n in rows]
    width = (end - start) / max_points
    bins: dict[int, list[float]] = {}
    for ts, lo, hi, total, n in rows:
        b = bins.get(i := _bin_index(ts, start, width, max_points))
        if b is None:
            bins[i] = [lo, hi, total, n]
        else:
            b[0] = min(b[0], lo)
            b[1] = max(b[1], hi)
            b[2] += total
            b[3] += n
    return width, [(start + i * width, b[0], b[1], b[2] / b[3]) for i, b in sorted(bins.items())]


def _restore(value: FieldValue, ftype: FieldType) -> FieldValue:
    """Bools are stored as 0/1; give them back as bools."""
    return bool(value) if ftype is FieldType.BOOL else value


def _probe_tags(tags: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in STANDARD_TAGS}


# -- the embedded implementation ---------------------------------------------------


class EmbeddedMetricsQuery:
    """``MetricsQuery`` over the embedded store's file. Safe to share between threads."""

    def __init__(
        self,
        path: str | Path,
        retention: Retention | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.reader = MetricsReader(path)
        self.retention = retention or Retention()
        self.clock = clock

    @classmethod
    def from_config(cls, storage: StorageConfig, data_dir: str | Path) -> EmbeddedMetricsQuery:
        return cls(Path(data_dir) / METRICS_DB, Retention.from_config(storage))

    def horizons(self) -> dict[Tier, float]:
        """Oldest time (s) each tier can still hold."""
        now = self.clock()
        out = {}
        for tier in TIERS:
            horizon = now - self.retention.of(tier)
            evicted = self.reader.evicted_before(tier)
            out[tier] = max(horizon, evicted / 1000) if evicted is not None else horizon
        return out

    def series(
        self,
        target_id: str,
        measurement: str,
        field: str,
        start: float,
        end: float,
        max_points: int = 300,
        tags: Mapping[str, str] | None = None,
    ) -> list[Series]:
        if end < start:
            raise ValueError("end must not be before start")
        max_points = max(max_points, 1)
        known = self.reader.field(measurement, field)
        if known is None:
            return []
        field_id, ftype = known
        found = self.reader.find_series(target_id, measurement, tags)
        if not found:
            return []
        tier = RAW if not ftype.numeric else choose_tier(start, end, max_points, self.horizons())
        start_ms, end_ms = int(start * 1000), int(end * 1000)
        out = []
        for info in found:
            if tier is RAW:
                rows = [
                    (ts / 1000, _restore(v, ftype))
                    for ts, v in self.reader.read_raw(info.id, field_id, start_ms, end_ms)
                ]
                step, points = downsample_values(rows, start, end, max_points, ftype.numeric)
            else:
                # Include the step that started before ``start`` but covers it.
                aligned = start_ms - start_ms % tier.unit_ms
                rollups = [
                    (ts / 1000, lo, hi, total, n)
                    for ts, lo, hi, total, n in self.reader.read_rollup(
                        tier, info.id, field_id, aligned, end_ms
                    )
                ]
                step, points = downsample_rollups(rollups, start, end, max_points, tier.step)
            out.append(Series(measurement, field, info.tags, tier.name, step, points))
        return out

    def latest(self, target_id: str) -> dict[str, list[dict[str, Any]]]:
        out: dict[str, list[dict[str, Any]]] = {}
        field_cache: dict[str, list[tuple[int, str, FieldType]]] = {}
        for info in self.reader.find_series(target_id):
            fields = field_cache.get(info.measurement)
            if fields is None:
                fields = field_cache[info.measurement] = self.reader.fields_of(info.measurement)
            values: dict[str, FieldValue] = {}
            newest = 0
            names = {fid: (name, ftype) for fid, name, ftype in fields}
            for fid, (ts, value) in self.reader.latest_raw(info.id).items():
                if fid in names:
                    name, ftype = names[fid]
                    values[name] = _restore(value, ftype)
                    newest = max(newest, ts)
            if values:
                out.setdefault(info.measurement, []).append(
                    {"tags": _probe_tags(info.tags), "time": newest / 1000, "fields": values}
                )
        return out

    def close(self) -> None:
        self.reader.close()


__all__ = [
    "H1",
    "M1",
    "RAW",
    "EmbeddedMetricsQuery",
    "MetricsQuery",
    "RangePoint",
    "Series",
    "ValuePoint",
    "choose_tier",
    "downsample_rollups",
    "downsample_values",
]
