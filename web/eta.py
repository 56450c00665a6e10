"""When something is expected to end, as people write it: an ISO-8601 time or "in 30 min".

For an incident's ETA and the end of a maintenance window, in the API and on
the pages alike. Pure: the caller passes the time now and the site timezone.
Whether the time is in the future is the monitor's check (it words the
refusal), not this module's.
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from zoneinfo import ZoneInfo

from core.config import parse_duration

MAX_LEN = 64
MAX_AHEAD = 366 * 86400.0
"""The furthest ahead an ETA or an end may be: past a year it is a guess, not a time (and
the pages could not show a year 10000)."""
_UNITS = {
    "ms": "ms",
    "s": "s",
    "sec": "s",
    "secs": "s",
    "second": "s",
    "seconds": "s",
    "m": "m",
    "min": "m",
    "mins": "m",
    "minute": "m",
    "minutes": "m",
    "h": "h",
    "hr": "h",
    "hrs": "h",
    "hour": "h",
    "hours": "h",
    "d": "d",
    "day": "d",
    "days": "d",
}
_RELATIVE = re.compile(r"^(?:in\s+)?([0-9]+(?:\.[0-9]+)?)\s*([a-z]+)$", re.ASCII)
PATTERN = (
    r"^(in )?[0-9]{1,4} ?(min|minutes|m|h|hours|d|days)$"
    r"|^[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}(:[0-9]{2})?(Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)
"""Most of what ``parse_when`` takes, for a JSON schema (which cannot say "in the future")."""
HINT = 'an ISO-8601 time like 2026-12-01T15:30+08:00, or a time from now like "in 30 min" or "2h"'


def parse_when(text: str, now: float, timezone: str) -> float:
    """Epoch seconds for ``text``: ``in 30 min``, ``30m``, ``2 hours`` (from ``now``) or an
    ISO-8601 time (``timezone`` when it names none). ``ValueError`` with a hint otherwise."""
    raw = text.strip()
    if not raw or len(raw) > MAX_LEN:
        raise ValueError(f"must be {HINT}")
    relative = _RELATIVE.match(raw.lower())
    if relative is not None:
        number, unit = relative.groups()
        if unit not in _UNITS:
            raise ValueError(f"unknown unit {unit!r}; use min, h or d (or give {HINT})")
        return _ahead(now + parse_duration(f"{number}{_UNITS[unit]}"), now)
    if not raw.isascii():
        raise ValueError(f"must be {HINT}")
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"must be {HINT}, not {raw!r}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone))
    try:
        at = when.timestamp()
    except (OverflowError, OSError, ValueError):  # year 1 or 9999 at the edge of a timezone
        raise ValueError(f"must be {HINT}, not {raw!r}") from None
    return _ahead(at, now)


def _ahead(at: float, now: float) -> float:
    if not math.isfinite(at) or at > now + MAX_AHEAD:
        raise ValueError("must be at most a year from now")
    return at
