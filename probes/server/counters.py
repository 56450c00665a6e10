"""Turning cumulative counters into per-second rates between two polls (pure)."""

from __future__ import annotations


def counter_delta(previous: int, current: int, bits: int | None = None) -> int:
    """How much a cumulative counter grew between two readings.

    A counter that went down either wrapped (``bits`` given: a fixed-width
    counter such as SNMP Counter32 passed its maximum) or was reset (interface
    re-created, driver reloaded): then it counted from zero, so ``current`` is
    the best lower bound of the growth.
    """
    if current >= previous:
        return current - previous
    if bits is not None and previous < 2**bits:
        return current + 2**bits - previous
    return current


def counter_rate(
    previous: int, current: int, seconds: float, bits: int | None = None
) -> float | None:
    """Per-second growth, or None when the elapsed time cannot give a rate."""
    if seconds <= 0:
        return None
    return counter_delta(previous, current, bits) / seconds


def busy_percent(
    previous_total: float, previous_busy: float, total: float, busy: float
) -> float | None:
    """CPU busy % between two cumulative readings; None if the clock went backwards."""
    elapsed = total - previous_total
    if elapsed <= 0 or busy < previous_busy:
        return None
    return max(0.0, min(100.0, 100.0 * (busy - previous_busy) / elapsed))
