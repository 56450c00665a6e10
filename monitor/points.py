"""Metric point enrichment, the series cap per target, and field types.

Between a probe and the sinks every point goes through three steps:

1. ``tag_points`` (pure): add the standard tags ``target``, ``kind``, ``site``
   and the target's configured ``tags``, and stamp ``time_ns`` from the
   observation's time when the probe left it 0.
2. ``SeriesLimit``: a target may produce at most ``max_series`` distinct
   label sets (measurement + probe tags). A probe that labels by something
   unbounded (a call id, a random port) would otherwise fill the metrics store
   with series nobody can chart. Points of new series over the cap are dropped
   and counted, and the target gets one warning log, not one per point.
3. ``FieldTypes``: each ``(measurement, field)`` keeps the type it first had,
   for life. InfluxDB rejects a write that changes a field's type ("field type
   conflict") and the embedded store's rollups need numbers, so an ``int``
   arriving for a ``float`` field becomes a float, an integral float arriving
   for an ``int`` field becomes an int, and anything else that does not fit
   (a string for a number, a bool for a number, NaN) is dropped and counted.

``Enricher`` bundles the three; the engine keeps one and calls ``enrich``.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from core.config import TargetBase
from core.observation import FieldValue, MetricPoint

log = logging.getLogger(__name__)

STANDARD_TAGS = ("target", "kind", "site")
"""Tags the engine sets on every point; they win over configured and probe tags."""

DEFAULT_MAX_SERIES_PER_TARGET = 200


def tag_points(
    points: Iterable[MetricPoint], target: TargetBase, site_name: str, obs_time: float
) -> list[MetricPoint]:
    """Add the standard and configured tags and the time to each point.

    Precedence (later wins): configured target tags, then the probe's own tags,
    then the standard tags — so a probe label like ``mount`` is never hidden
    by configuration, and nothing can fake another target's ``target`` tag.
    """
    standard = {"target": target.id, "kind": target.kind, "site": site_name}
    # A float of epoch seconds holds about microseconds; more digits would be noise.
    default_ns = round(obs_time * 1e6) * 1000
    return [
        MetricPoint(
            measurement=p.measurement,
            fields=p.fields,
            tags={**target.tags, **p.tags, **standard},
            time_ns=p.time_ns or default_ns,
        )
        for p in points
    ]


# -- series cap -------------------------------------------------------------


SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def series_key(point: MetricPoint) -> SeriesKey:
    """Identity of the series a point belongs to: measurement plus sorted tags."""
    return point.measurement, tuple(sorted(point.tags.items()))


class SeriesLimit:
    """Caps the number of distinct series each target may produce.

    Thread-safe; remembers the series it admitted (so an admitted series keeps
    flowing after the cap is hit) until ``forget`` is called for the target.
    """

    def __init__(self, max_series: int = DEFAULT_MAX_SERIES_PER_TARGET) -> None:
        self.max_series = max_series
        self._seen: dict[str, set[SeriesKey]] = {}
        # One object per distinct key for all targets: most targets of a kind
        # produce the same few keys.
        self._keys: dict[SeriesKey, SeriesKey] = {}
        self._warned: set[str] = set()
        self._dropped: dict[str, int] = {}
        self._lock = threading.Lock()

    def admit(self, target_id: str, points: Sequence[MetricPoint]) -> list[MetricPoint]:
        """The points whose series is known or still fits under the cap."""
        kept: list[MetricPoint] = []
        dropped = 0
        with self._lock:
            seen = self._seen.setdefault(target_id, set())
            for point in points:
                key = series_key(point)
                if key in seen:
                    kept.append(point)
                elif len(seen) < self.max_series:
                    seen.add(self._keys.setdefault(key, key))
                    kept.append(point)
                else:
                    dropped += 1
            if dropped:
                self._dropped[target_id] = self._dropped.get(target_id, 0) + dropped
                first_time = target_id not in self._warned
                self._warned.add(target_id)
            else:
                first_time = False
        if first_time:
            log.warning(
                "target %s produces more than %d distinct series; points of new series "
                "are dropped (is a probe labelling points by something unbounded?)",
                target_id,
                self.max_series,
            )
        return kept

    def dropped(self, target_id: str | None = None) -> int:
        """Points dropped for one target, or for all targets."""
        with self._lock:
            if target_id is None:
                return sum(self._dropped.values())
            return self._dropped.get(target_id, 0)

    def series_count(self, target_id: str) -> int:
        with self._lock:
            return len(self._seen.get(target_id, ()))

    def forget(self, target_id: str) -> None:
        """Start counting afresh, e.g. after the target was removed or reconfigured."""
        with self._lock:
            self._seen.pop(target_id, None)
            self._warned.discard(target_id)
            self._dropped.pop(target_id, None)


# -- field types -------------------------------------------------------------


class FieldType(StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    STR = "str"

    @property
    def numeric(self) -> bool:
        """Whether rollups (min/max/avg) make sense; a bool rolls up as 0/1."""
        return self is not FieldType.STR


def type_of(value: FieldValue) -> FieldType | None:
    """The field type of a value; None for a value no sink can store (NaN, inf, other types)."""
    # bool first: in Python a bool is also an int.
    if isinstance(value, bool):
        return FieldType.BOOL
    if isinstance(value, int):
        return FieldType.INT
    if isinstance(value, float):
        return FieldType.FLOAT if math.isfinite(value) else None
    if isinstance(value, str):
        return FieldType.STR
    return None


UNFIT = object()
"""What ``coerce`` returns for a value that does not fit the field's type."""


def coerce(value: FieldValue, wanted: FieldType) -> FieldValue | object:
    """``value`` converted to ``wanted`` when that loses nothing, else ``UNFIT``."""
    got = type_of(value)
    if got is None:
        return UNFIT
    if got is wanted:
        return value
    if wanted is FieldType.FLOAT and got is FieldType.INT:
        return float(value)
    if wanted is FieldType.INT and got is FieldType.FLOAT and float(value).is_integer():
        return int(value)
    return UNFIT


@dataclass
class FieldTypeCounts:
    converted: int = 0
    dropped: int = 0


class FieldTypes:
    """Registry: each ``(measurement, field)`` keeps the type it first had.

    Seed it with the types a store already holds (``FieldTypes(store.field_types())``)
    so a restart does not let a field change type. Thread-safe.
    """

    def __init__(self, known: Mapping[tuple[str, str], FieldType | str] | None = None) -> None:
        self._types: dict[tuple[str, str], FieldType] = {
            key: FieldType(t) for key, t in (known or {}).items()
        }
        self.counts = FieldTypeCounts()
        self._lock = threading.Lock()

    def get(self, measurement: str, field: str) -> FieldType | None:
        with self._lock:
            return self._types.get((measurement, field))

    def known(self) -> dict[tuple[str, str], FieldType]:
        with self._lock:
            return dict(self._types)

    def apply(self, points: Iterable[MetricPoint]) -> list[MetricPoint]:
        """Points with every field in its registered type; unfit values removed.

        A point left with no field is dropped. The first value ever seen for a
        field fixes its type (unless it is unstorable, like NaN).
        """
        out: list[MetricPoint] = []
        with self._lock:
            for point in points:
                fields: dict[str, FieldValue] = {}
                changed = False
                for name, value in point.fields.items():
                    key = (point.measurement, name)
                    wanted = self._types.get(key)
                    if wanted is None:
                        wanted = type_of(value)
                        if wanted is None:
                            self.counts.dropped += 1
                            changed = True
                            continue
                        self._types[key] = wanted
                    fitted = coerce(value, wanted)
                    if fitted is UNFIT:
                        self.counts.dropped += 1
                        changed = True
                        continue
                    if type(fitted) is not type(value):
                        self.counts.converted += 1
                        changed = True
                    fields[name] = fitted  # type: ignore[assignment]
                if not fields:
                    continue
                if changed:
                    point = MetricPoint(point.measurement, fields, point.tags, point.time_ns)
                out.append(point)
        return out


# -- the pipeline --------------------------------------------------------------


class Enricher:
    """Tags, caps and types the points of each observation before the sinks see them."""

    def __init__(
        self,
        max_series_per_target: int = DEFAULT_MAX_SERIES_PER_TARGET,
        field_types: FieldTypes | None = None,
    ) -> None:
        self.series_limit = SeriesLimit(max_series_per_target)
        self.field_types = field_types if field_types is not None else FieldTypes()

    def enrich(
        self,
        points: Iterable[MetricPoint],
        target: TargetBase,
        site_name: str,
        obs_time: float,
    ) -> list[MetricPoint]:
        typed = self.field_types.apply(points)
        # Capped before tagging: within one target, a series is its measurement
        # and the probe's own labels (target and site tags are the same for all
        # its points), so the cap remembers small keys, shared across targets.
        admitted = self.series_limit.admit(target.id, typed)
        return tag_points(admitted, target, site_name, obs_time)

    def dropped(self) -> int:
        """Points or values dropped so far (series cap + unfit field values)."""
        return self.series_limit.dropped() + self.field_types.counts.dropped


_default = Enricher()


def enrich(
    points: Iterable[MetricPoint],
    target: TargetBase,
    site_name: str,
    obs_time: float,
    enricher: Enricher | None = None,
) -> list[MetricPoint]:
    """Enrich one observation's points with ``enricher`` (default: one per process)."""
    return (enricher or _default).enrich(points, target, site_name, obs_time)
