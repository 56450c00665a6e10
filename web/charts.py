"""What the target page charts, and the shapes it draws them from (pure).

- ``chart_fields``: which fields of a target to chart, its kind's key metrics
  first (with their units), then its other numeric fields.
- ``chart_of``: one ``Chart`` per field from what the metrics store returns,
  one series per tag set. The page hands ``Chart.uplot_data()`` to uPlot
  (``static/charts.js``: axes with units, a time scale, a legend, hover values,
  zoom) and draws ``Chart.polylines()`` as inline SVG underneath, which is
  what a browser without JavaScript, or a checkout without uPlot, shows.
- ``timeline_bars``: the up/down timeline, inline SVG from health spans.

Input is what ``monitor.metrics_query.MetricsQuery.series`` returns: a list of
``Series`` (one per tag set), each with ``points`` of ``(ts, value)`` when raw
or ``(ts, min, max, avg)`` when rolled up. Only the shape is relied on (duck
typing), so this module does not import the metrics store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from probes.base import KeyMetric

PAGE_TAGS = frozenset({"target", "kind", "site"})
"""Standard tags the engine adds to every point; on one target's page they say nothing."""

SVG_WIDTH = 560
SVG_HEIGHT = 90


@dataclass(frozen=True)
class ChartField:
    """One field to chart: ``measurement.field``, its unit, and the tags that pick its series."""

    measurement: str
    field: str
    unit: str = ""
    tags: Mapping[str, str] = field(default_factory=dict)
    """Only the series with these tags (a key metric such as ``[processor=all]``); empty: all."""

    @property
    def title(self) -> str:
        return f"{self.measurement}.{self.field}"


@dataclass(frozen=True)
class ChartSeries:
    label: str
    """The series' own tags (``mount=/var``), or the field's name when it has none."""
    points: tuple[tuple[float, float], ...]
    """``(ts, value)``, sorted by time."""


@dataclass(frozen=True)
class Chart:
    """One field of one target over time: one series per tag set, one unit."""

    title: str
    unit: str
    series: tuple[ChartSeries, ...]

    @property
    def start(self) -> float:
        return min(s.points[0][0] for s in self.series)

    @property
    def end(self) -> float:
        return max(s.points[-1][0] for s in self.series)

    @property
    def low(self) -> float:
        return min(v for s in self.series for _t, v in s.points)

    @property
    def high(self) -> float:
        return max(v for s in self.series for _t, v in s.points)

    @property
    def last(self) -> float:
        """The newest value of the first series."""
        return self.series[0].points[-1][1]

    def polylines(
        self, width: int = SVG_WIDTH, height: int = SVG_HEIGHT, pad: int = 3
    ) -> list[str]:
        """SVG ``points`` attribute values, one per series, on one shared scale."""
        t0, span_t = self.start, (self.end - self.start) or 1.0
        low, high = self.low, self.high
        span_v = (high - low) or 1.0
        out = []
        for s in self.series:
            coords = []
            for t, v in s.points:
                x = pad + (t - t0) / span_t * (width - 2 * pad)
                # a flat chart sits in the middle rather than on the floor
                y = (
                    height / 2
                    if high == low
                    else height - pad - (v - low) / span_v * (height - 2 * pad)
                )
                coords.append(f"{x:.1f},{y:.1f}")
            if len(coords) == 1:  # one point: draw a short flat line so it is visible
                coords.append(f"{width - pad:.1f},{coords[0].split(',')[1]}")
            out.append(" ".join(coords))
        return out

    def uplot_data(self) -> dict[str, Any]:
        """What ``static/charts.js`` draws: the series joined on one time axis (seconds),
        ``None`` where a series has no value at a time (uPlot's aligned-data shape)."""
        xs = sorted({t for s in self.series for t, _v in s.points})
        columns = []
        for s in self.series:
            by_time = dict(s.points)
            columns.append({"label": s.label, "values": [by_time.get(t) for t in xs]})
        return {"title": self.title, "unit": self.unit, "x": xs, "series": columns}


def points(raw: Iterable[Sequence[Any]]) -> list[tuple[float, float]]:
    """``(ts, value)`` or ``(ts, min, max, avg)`` → sorted ``(ts, value)`` (avg for rollups),
    dropping values that are not numbers (strings, booleans)."""
    out: list[tuple[float, float]] = []
    for p in raw:
        if len(p) < 2:
            continue
        ts, value = p[0], (p[3] if len(p) >= 4 else p[1])
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out.append((float(ts), float(value)))
    out.sort()
    return out


def _parse_tags(text: str) -> dict[str, str]:
    """``mount=/,x=y`` → ``{"mount": "/", "x": "y"}``."""
    pairs = (item.partition("=") for item in text.split(",") if item)
    return {k: v for k, _eq, v in pairs}


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, int | float)


def chart_fields(
    last_metrics: Mapping[str, Any], declared: Sequence[KeyMetric] = (), limit: int = 6
) -> list[ChartField]:
    """What to chart for a target, from its last observation's flat keys
    (``server_disk.used_percent[mount=/]``): the key metrics its kind declares
    that it has, in their order and with their units, then its other numeric
    fields in key order; one entry per field, at most ``limit``."""
    numeric = sorted(k for k, v in last_metrics.items() if _is_number(v))
    out: list[ChartField] = []
    seen: set[str] = set()
    for metric in declared:
        if metric.base in seen or not any(metric.matches(k) for k in numeric):
            continue
        measurement, _dot, name = metric.base.partition(".")
        tags = _parse_tags(metric.key[len(metric.base) + 1 : -1]) if "[" in metric.key else {}
        out.append(ChartField(measurement, name, metric.unit, tags))
        seen.add(metric.base)
    for key in numeric:
        base = key.split("[", 1)[0]
        measurement, dot, name = base.partition(".")
        if dot and name and base not in seen:
            out.append(ChartField(measurement, name))
            seen.add(base)
    return out[:limit]


def chart_of(chart_field: ChartField, series: Iterable[Any], limit: int = 4) -> Chart | None:
    """One chart of one field, a series per tag set (at most ``limit``, in the order the
    store returned them); None when no series has a number to draw."""
    drawn: list[ChartSeries] = []
    for s in series:
        pts = points(getattr(s, "points", []))
        if not pts:
            continue
        tags = {k: v for k, v in (getattr(s, "tags", {}) or {}).items() if k not in PAGE_TAGS}
        label = " ".join(f"{k}={v}" for k, v in sorted(tags.items())) or chart_field.field
        drawn.append(ChartSeries(label, tuple(pts)))
        if len(drawn) == limit:
            break
    if not drawn:
        return None
    return Chart(chart_field.title, chart_field.unit, tuple(drawn))


@dataclass(frozen=True)
class TimelineBar:
    """One health span of the up/down timeline, placed in a ``width`` wide SVG."""

    x: float
    width: float
    health: str
    start: float
    end: float


def timeline_bars(
    spans: Iterable[Any], start: float, end: float, width: int = SVG_WIDTH
) -> list[TimelineBar]:
    """Health spans (``start``, ``end``, ``health`` — ``queries.HealthSpan``) → bars over
    ``[start, end]``; a span too short to see still gets one pixel."""
    span_t = (end - start) or 1.0
    out = []
    for s in spans:
        lo, hi = max(s.start, start), min(s.end, end)
        if hi <= lo:
            continue
        x = (lo - start) / span_t * width
        out.append(
            TimelineBar(
                round(x, 1),
                round(max((hi - lo) / span_t * width, 1.0), 1),
                str(getattr(s.health, "value", s.health)),
                lo,
                hi,
            )
        )
    return out


def time_per_health(spans: Iterable[Any]) -> dict[str, float]:
    """Seconds spent in each health over the spans, in first-seen order."""
    out: dict[str, float] = {}
    for s in spans:
        health = str(getattr(s.health, "value", s.health))
        out[health] = out.get(health, 0.0) + (s.end - s.start)
    return out
