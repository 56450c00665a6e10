"""Scheduled maintenance told to customers ahead, at its start and at its end (pure).

A component's scheduled maintenance is the windows (``maintenance:`` of its
member targets) it is covered by; each occurrence of one is told in stages:

- ``ahead`` — at each configured lead before the start (``customers.maintenance_notice``,
  default 24 h and 1 h);
- ``start`` — when it begins;
- ``end`` — when it is over.

The rules, for one occurrence at a moment ``now`` (``due``):

- Once it has ended: the end notice, but only if its start was told (an
  occurrence that came and went while the appliance was off is not news),
  and only within ``END_GRACE`` of the end.
- While it runs: the start notice, once. The ahead notices still owed are
  dropped with it.
- Before it starts: of the leads whose moment has come and that were not told,
  only the nearest one is sent and the others are marked told with it — a
  window added 30 minutes before it starts gets one notice, not a burst of
  "in 24 hours" and "in 1 hour".
- Quiet hours (the customers' rule) hold every stage; when they end, the
  rules above pick what is still worth saying.

Marks are per (component, occurrence start, stage) and live in the state DB
(``customer_maintenance_mark``), written in the transaction that queues the
notices: a restart or a second tick never repeats one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.config import MaintenanceWindow
from monitor.maintenance import cron_trigger, parse_datetime

END_GRACE = 3600.0
"""How long after an occurrence ended its end notice may still go."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    start: float
    end: float
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Due:
    occurrence: Occurrence
    stage: str
    """``ahead``, ``start`` or ``end``: the notice to send."""
    marks: tuple[str, ...]
    """Every stage this settles (the one sent and the ones it makes pointless)."""


def ahead_stage(lead: float) -> str:
    return f"ahead:{int(lead)}"


def occurrences(
    windows: Iterable[MaintenanceWindow], now: float, horizon: float, tz: str
) -> list[Occurrence]:
    """Occurrences that end after ``now - END_GRACE`` and start before ``now + horizon``,
    by start; the same (start, end) from two windows (two members) counted once."""
    low, high = now - END_GRACE, now + horizon
    found: dict[tuple[float, float], Occurrence] = {}
    for window in windows:
        for start, end in _spans(window, low, high, tz):
            if end > low and start < high:
                found.setdefault((start, end), Occurrence(start, end, window.reason))
    return sorted(found.values(), key=lambda o: (o.start, o.end))


def _spans(
    window: MaintenanceWindow, low: float, high: float, tz: str
) -> list[tuple[float, float]]:
    if window.cron is None:
        assert window.start is not None and window.end is not None
        start = parse_datetime(window.start, tz, "start").timestamp()
        return [(start, parse_datetime(window.end, tz, "end").timestamp())]
    assert window.duration is not None
    trigger = cron_trigger(window.cron, tz)
    spans: list[tuple[float, float]] = []
    at = datetime.fromtimestamp(low - window.duration, UTC).astimezone(trigger.timezone)
    previous = None
    while len(spans) < 50:  # a minutely cron with a long lead: enough, and bounded
        fire = trigger.get_next_fire_time(previous, at)
        if fire is None or fire.timestamp() >= high:
            break
        spans.append((fire.timestamp(), fire.timestamp() + window.duration))
        previous, at = fire, fire + timedelta(microseconds=1)
    return spans


def due(
    occurrence: Occurrence, leads: Sequence[float], now: float, told: set[str], *, quiet: bool
) -> Due | None:
    """What to send about ``occurrence`` at ``now``, given the stages ``told`` already."""
    if quiet:
        return None
    o = occurrence
    aheads = [ahead_stage(lead) for lead in leads]
    if now >= o.end:
        if "start" in told and "end" not in told and now - o.end <= END_GRACE:
            return Due(o, "end", ("end",))
        return None
    if now >= o.start:
        if "start" in told:
            return None
        return Due(o, "start", ("start", *(a for a in aheads if a not in told)))
    # One notice speaks for every lead whose moment has come (it says when it starts).
    owed = tuple(
        a for lead, a in zip(leads, aheads, strict=True) if now >= o.start - lead and a not in told
    )
    return Due(o, "ahead", owed) if owed else None
