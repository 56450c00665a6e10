"""Tiny inline-SVG line charts for the target page (pure; no JS, no CDN).

``monitor.metrics_query`` is being written alongside; ``points`` accepts the
plausible shapes of its ``series()`` result: (time, value) pairs, mappings
with ``time``/``t`` and ``value``/``v``, or objects with those attributes,
optionally wrapped in an object with a ``points`` attribute. Times are epoch
seconds (or nanoseconds, detected by size).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


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


def _pick(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, Mapping) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    return None


def points(result: Any) -> list[tuple[float, float]]:
    """Normalise a series result to sorted (epoch seconds, value) pairs, dropping non-numbers."""
    if result is None:
        return []
    inner = _pick(result, "points")
    items: Iterable[Any] = inner if inner is not None else result
    out: list[tuple[float, float]] = []
    for item in items:
        if isinstance(item, tuple | list) and len(item) >= 2:
            t, v = item[0], item[1]
        else:
            t, v = _pick(item, "time", "t", "ts", "at"), _pick(item, "value", "v", "mean")
        if isinstance(v, bool) or not isinstance(v, int | float) or not isinstance(t, int | float):
            continue
        ts = float(t) / 1e9 if t > 1e14 else float(t)  # ns → s
        out.append((ts, float(v)))
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
        y = height - pad - (v - low) / span_v * (height - 2 * pad)
        coords.append(f"{x:.1f},{y:.1f}")
    if len(coords) == 1:  # one point: a flat line so it is visible
        coords.append(f"{width - pad:.1f},{coords[0].split(',')[1]}")
    return Chart(title, " ".join(coords), width, height, low, high, values[-1], t0, t1)


def chartable_keys(last_metrics: Mapping[str, Any], limit: int = 4) -> list[tuple[str, str]]:
    """(measurement, field) pairs worth a chart: numeric, untagged keys of the last observation."""
    out: list[tuple[str, str]] = []
    for key in sorted(last_metrics):
        value = last_metrics[key]
        if "[" in key or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        measurement, dot, field = key.partition(".")
        if dot and field:
            out.append((measurement, field))
        if len(out) == limit:
            break
    return out
