"""Tiny inline-SVG line charts for the target page (pure; no JS, no CDN).

Input is what ``monitor.metrics_query.MetricsQuery.series`` returns: a list of
``Series`` (one per tag set), each with ``points`` of ``(ts, value)`` when raw
or ``(ts, min, max, avg)`` when rolled up. Only the shape is relied on (duck
typing), so this module does not import the metrics store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PAGE_TAGS = frozenset({"target", "kind", "site"})
"""Standard tags the engine adds to every point; on one target's page they say nothing."""


@dataclass(frozen=True)
class Chart:
    title: str
    polyline: str
    """SVG ``points`` attribute value."""
    width: int
    height: int
    low: float
    high: float
    last: float
    start: float
    end: float


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


def line_chart(
    title: str, pts: list[tuple[float, float]], width: int = 560, height: int = 90, pad: int = 3
) -> Chart | None:
    """Scale points into a ``width``×``height`` box; None when there is nothing to draw."""
    if not pts:
        return None
    t0, t1 = pts[0][0], pts[-1][0]
    values = [v for _t, v in pts]
    low, high = min(values), max(values)
    span_t = (t1 - t0) or 1.0
    span_v = (high - low) or 1.0
    coords = []
    for t, v in pts:
        x = pad + (t - t0) / span_t * (width - 2 * pad)
        # a flat series sits in the middle rather than on the floor
        y = height / 2 if high == low else height - pad - (v - low) / span_v * (height - 2 * pad)
        coords.append(f"{x:.1f},{y:.1f}")
    if len(coords) == 1:  # one point: draw a short flat line so it is visible
        coords.append(f"{width - pad:.1f},{coords[0].split(',')[1]}")
    return Chart(title, " ".join(coords), width, height, low, high, values[-1], t0, t1)


def chartable_keys(last_metrics: Mapping[str, Any], limit: int = 4) -> list[tuple[str, str]]:
    """Distinct (measurement, field) pairs with a numeric last value, from keys like
    ``server_disk.percent[mount=/]``; at most ``limit``."""
    out: list[tuple[str, str]] = []
    for key in sorted(last_metrics):
        value = last_metrics[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        measurement, dot, rest = key.partition(".")
        field = rest.split("[", 1)[0]
        if dot and field and (measurement, field) not in out:
            out.append((measurement, field))
        if len(out) == limit:
            break
    return out


def charts_for(measurement: str, field: str, series: Iterable[Any], limit: int = 4) -> list[Chart]:
    """One chart per series (tag set) of one field, titled ``measurement.field tag=v``."""
    out: list[Chart] = []
    for s in series:
        tags = {k: v for k, v in (getattr(s, "tags", {}) or {}).items() if k not in PAGE_TAGS}
        label = " ".join(f"{k}={v}" for k, v in sorted(tags.items()))
        title = f"{measurement}.{field}" + (f" {label}" if label else "")
        chart = line_chart(title, points(getattr(s, "points", [])))
        if chart is not None:
            out.append(chart)
        if len(out) == limit:
            break
    return out
