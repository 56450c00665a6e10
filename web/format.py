"""Number formatting for pages (pure; language-neutral)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


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


def key_metrics(metrics: Mapping[str, Any], limit: int = 3) -> list[tuple[str, str, str]]:
    """The first few metrics of a target's last observation as (key, short name, value).

    Keys look like ``measurement.field[tag=v]``; the cell shows ``field[tag=v]``
    to stay short (the full key goes in the cell's title).
    """
    out: list[tuple[str, str, str]] = []
    for key in sorted(metrics)[:limit]:
        measurement, dot, rest = key.partition(".")
        out.append((key, rest if dot else measurement, value(metrics[key])))
    return out
