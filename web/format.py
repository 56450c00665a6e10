"""Number formatting for pages (pure; language-neutral)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from probes.base import KeyMetric

_BINARY_PREFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi")


def latency(seconds: float | None) -> str:
    """0.0123 → ``12.3 ms``; 1.5 → ``1.50 s``; None → ``–``."""
    if seconds is None:
        return "–"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.1f} ms" if ms < 100 else f"{ms:.0f} ms"
    return f"{seconds:.2f} s"


def value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def with_unit(v: Any, unit: str) -> str:
    """A value and its unit as people read them: ``12.5 ms``, ``40.2%``, ``3/min``,
    ``1.5 GiB/s`` (bytes scale by 1024); a bare number without one."""
    if not unit or isinstance(v, bool) or not isinstance(v, int | float):
        return value(v)
    if unit in ("B", "B/s"):
        scaled, prefix = float(v), 0
        while abs(scaled) >= 1024 and prefix < len(_BINARY_PREFIXES) - 1:
            scaled, prefix = scaled / 1024, prefix + 1
        shown = value(v) if prefix == 0 else f"{scaled:.3g}"
        return f"{shown} {_BINARY_PREFIXES[prefix]}{unit}"
    if unit.startswith(("%", "/")):
        return f"{value(v)}{unit}"
    return f"{value(v)} {unit}"


def unit_of(key: str, declared: Sequence[KeyMetric]) -> str:
    """The unit a kind declares for a flat metric key (``""`` when it declares none)."""
    return next((m.unit for m in declared if m.matches(key)), "")


def choose_key_metrics(
    metrics: Mapping[str, Any], declared: Sequence[KeyMetric], limit: int = 3
) -> list[tuple[str, str]]:
    """The (flat key, unit) of the first ``limit`` metrics a target's kind declares as its key
    metrics that its last observation has, in the declared order (tag sets sorted).

    A kind that declares none, or whose declared ones are all absent (a kind no
    longer registered, a probe that failed before measuring), falls back to the
    first keys in sorted order, without units.
    """
    out: list[tuple[str, str]] = []
    keys = sorted(metrics)
    for metric in declared:
        for key in keys:
            if metric.matches(key) and all(k != key for k, _u in out):
                out.append((key, metric.unit))
                if len(out) == limit:
                    return out
    return out or [(key, "") for key in keys[:limit]]


def key_metrics(
    metrics: Mapping[str, Any], declared: Sequence[KeyMetric] = (), limit: int = 3
) -> list[tuple[str, str, str]]:
    """A target's key metrics (see ``choose_key_metrics``) as (key, short name, value with unit).

    Keys look like ``measurement.field[tag=v]``; the cell shows ``field[tag=v]``
    to stay short (the full key goes in the cell's title).
    """
    out: list[tuple[str, str, str]] = []
    for key, unit in choose_key_metrics(metrics, declared, limit):
        measurement, dot, rest = key.partition(".")
        out.append((key, rest if dot else measurement, with_unit(metrics[key], unit)))
    return out
