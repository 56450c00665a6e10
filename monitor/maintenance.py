"""Maintenance windows: is a target in one right now, and is a window valid?

Pure code. The config loader calls ``validate_window`` for every window (it
raises ValueError with a sentence naming what is wrong); the engine calls
``in_maintenance`` before each ``health.step`` and passes the window's reason
on. Recurring windows are computed with APScheduler's ``CronTrigger`` (no cron
parser of our own), in the site timezone.

Times are compared as UTC instants: two aware datetimes with the same tzinfo
compare and add by wall clock in Python, which is wrong across a DST change.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger

from core.config import MaintenanceWindow

_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: 0 = Sunday
_DOW_ITEM = re.compile(r"^(\*|\d+)(?:-(\d+))?(?:/(\d+))?$")


def resolve_tz(tz: str | tzinfo) -> tzinfo:
    """A tzinfo from an IANA name (``Asia/Shanghai``) or a tzinfo; ValueError if unknown."""
    if isinstance(tz, tzinfo):
        return tz
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {tz!r}: use an IANA name like Asia/Shanghai") from None


def parse_datetime(value: str, tz: str | tzinfo, what: str = "datetime") -> datetime:
    """An ISO 8601 datetime; naive ones are in the site timezone. Returned in UTC."""
    try:
        parsed = datetime.fromisoformat(value.strip())
    except (ValueError, AttributeError):
        raise ValueError(
            f"{what}: {value!r} is not an ISO 8601 datetime like 2026-11-23T02:00"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=resolve_tz(tz))
    return parsed.astimezone(UTC)


def _crontab_weekdays(field: str) -> str:
    """Translate numeric weekdays from crontab's numbering to day names.

    APScheduler 3 numbers weekdays from Monday = 0, crontab from Sunday = 0
    (7 is Sunday too), so ``0 2 * * 0`` would silently mean Monday. Names
    mean the same in both, so numeric items are expanded to names; named
    items and ``*`` pass through unchanged.
    """
    out: list[str] = []
    for item in field.split(","):
        m = _DOW_ITEM.match(item)
        if m is None or (m.group(1) == "*" and m.group(2)):
            out.append(item)  # names, or something CronTrigger will reject with its own message
            continue
        first, last, stride = m.groups()
        if first == "*":
            if stride is None:
                out.append(item)
                continue
            lo, hi = 0, 6
        else:
            lo = int(first)
            hi = int(last) if last is not None else (7 if stride else lo)
        if not (0 <= lo <= 7 and 0 <= hi <= 7) or lo > hi:
            raise ValueError(f"weekday {item!r} is not a day 0-7 (0 and 7 are Sunday) or a range")
        step = int(stride) if stride else 1
        if step < 1:
            raise ValueError(f"weekday {item!r}: the step must be at least 1")
        out.extend(_DAY_NAMES[d % 7] for d in range(lo, hi + 1, step))
    return ",".join(dict.fromkeys(out))


def cron_trigger(expr: str, tz: str | tzinfo) -> CronTrigger:
    """A CronTrigger for a 5-field crontab expression in ``tz``; ValueError with the reason."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f"cron {expr!r} must have 5 fields (minute hour day month weekday), not {len(fields)}"
        )
    zone = resolve_tz(tz)
    try:
        fields[4] = _crontab_weekdays(fields[4])
        trigger = CronTrigger.from_crontab(" ".join(fields), timezone=zone)
    except ValueError as exc:
        raise ValueError(f"cron {expr!r}: {exc}") from None
    return trigger


@functools.lru_cache(maxsize=1024)
def _trigger(expr: str, tz: str | tzinfo) -> CronTrigger:
    # Building a trigger costs about as much as asking it for a fire time, and
    # the engine asks for every observation of a target with windows.
    return cron_trigger(expr, tz)


def validate_cron(expr: str, tz: str | tzinfo = "UTC") -> None:
    """Raise ValueError unless ``expr`` is a 5-field crontab that matches some time."""
    trigger = cron_trigger(expr, tz)
    # Fields can each be valid and still never match together (31 February).
    if trigger.get_next_fire_time(None, datetime(2000, 1, 1, tzinfo=UTC)) is None:
        raise ValueError(f"cron {expr!r} never matches any date")


def validate_window(window: MaintenanceWindow, tz: str | tzinfo) -> None:
    """Raise ValueError with a clear sentence if the window cannot be used."""
    resolve_tz(tz)
    if window.cron is not None:
        validate_cron(window.cron, tz)
        return
    assert window.start is not None and window.end is not None  # the model guarantees it
    start = parse_datetime(window.start, tz, "start")
    end = parse_datetime(window.end, tz, "end")
    if end <= start:
        raise ValueError(f"end ({window.end}) must be after start ({window.start})")


def _as_utc(now: datetime | float, tz: str | tzinfo) -> datetime:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=resolve_tz(tz))
        return now.astimezone(UTC)
    return datetime.fromtimestamp(now, UTC)


def occurrence(
    window: MaintenanceWindow, now: datetime | float, tz: str | tzinfo
) -> tuple[datetime, datetime] | None:
    """The (start, end) in UTC of the occurrence of ``window`` that covers ``now``, if any.

    Start is inclusive, end exclusive. A recurring window's ``duration`` is
    elapsed time: a 2h window starting 01:00 on a spring-forward night ends
    at 04:00 local time. On a fall-back night a start time inside the
    repeated hour happens on both passes, so that window covers an extra hour.
    """
    at = _as_utc(now, tz)
    if window.cron is None:
        assert window.start is not None and window.end is not None
        start = parse_datetime(window.start, tz, "start")
        end = parse_datetime(window.end, tz, "end")
        return (start, end) if start <= at < end else None
    assert window.duration is not None
    length = timedelta(seconds=window.duration)
    trigger = _trigger(window.cron, tz)
    # The window covers ``at`` iff some fire time f has at - length < f <= at;
    # ask for the first fire strictly after at - length.
    earliest = (at - length + timedelta(microseconds=1)).astimezone(trigger.timezone)
    fire = trigger.get_next_fire_time(None, earliest)
    if fire is None:
        return None
    start = fire.astimezone(UTC)
    return (start, start + length) if start <= at else None


def in_maintenance(
    windows: Sequence[MaintenanceWindow], now: datetime | float, tz: str | tzinfo
) -> MaintenanceWindow | None:
    """The first window in ``windows`` that covers ``now`` (epoch seconds or a
    datetime; a naive datetime is in ``tz``), or None."""
    for window in windows:
        if occurrence(window, now, tz) is not None:
            return window
    return None


@dataclass(frozen=True, slots=True)
class MaintenanceCheck:
    """``in_maintenance``'s answer and how long it holds.

    ``until`` is the epoch second at which some window starts or ends (or
    ``math.inf``); before it the answer cannot change, so the engine can skip
    the (cron) computation for a target's observations until then.
    """

    window: MaintenanceWindow | None
    until: float


def check_maintenance(
    windows: Sequence[MaintenanceWindow], now: datetime | float, tz: str | tzinfo
) -> MaintenanceCheck:
    """Like ``in_maintenance``, plus the time until which the answer holds."""
    at = _as_utc(now, tz)
    found: MaintenanceWindow | None = None
    until = math.inf
    for window in windows:
        covering = occurrence(window, at, tz)
        if covering is not None:
            found = found or window
            until = min(until, covering[1].timestamp())
        if window.cron is None:
            assert window.start is not None
            start = parse_datetime(window.start, tz, "start")
        else:
            trigger = _trigger(window.cron, tz)
            after = (at + timedelta(microseconds=1)).astimezone(trigger.timezone)
            fire = trigger.get_next_fire_time(None, after)
            start = fire.astimezone(UTC) if fire is not None else None
        if start is not None and start > at:
            until = min(until, start.timestamp())
    return MaintenanceCheck(found, until)
