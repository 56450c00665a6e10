"""Values the engine reports about itself (the appliance self-check reads them)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SinkHealth:
    """What the appliance self-check and the dashboard show about a sink."""

    name: str
    up: bool
    message: str
    points_written: int
    points_dropped: int
    queued: int
    last_write_at: float | None = None
    last_write_seconds: float | None = None
    spool_bytes: int = 0
    spool_oldest_age: float | None = None
    points_spooled: int = 0
    """Points waiting on disk for the server (spooling sinks)."""
    points_evicted: int = 0
    """Points the spool cap pushed out, oldest first (also counted in points_dropped)."""
    points_quarantined: int = 0
    """Points the server refused as bad (HTTP 400), kept in a quarantine file."""
    alert: str | None = None
    """Something an operator must look at even while the sink is up (e.g. quarantined points)."""
