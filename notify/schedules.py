"""Who is on call: pure functions over a schedule's layers and its overrides.

Times are epoch seconds; a handoff and a layer's hours are wall-clock times
in the schedule's timezone, turned into instants date by date, so a shift
that spans a change to or from summer time is 23 or 25 hours long and the
handoff stays at 09:00 on the clock. A wall time that does not exist that day
(02:30 when the clock jumps from 02:00 to 03:00) is taken with the offset
before the jump, 03:30 on the new clock; one that happens twice (the clock
falls back) means the first time. docs/oncall.md states the rules.

Nothing here reads the clock, the DB or the config files: the caller passes
the schedule (``notify.people.ScheduleConfig``), the overrides (kept in the
DB later) and the instant.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from notify.people import WEEKDAYS, LayerConfig, RotationConfig, ScheduleConfig

DAY = 86400.0
REFERENCE_START = dt.date(2000, 1, 3)
"""Where a rotation without ``start`` is counted from (a Monday): the turn order is
fixed by it, whatever day the config was loaded."""
MIN_HORIZON = 92 * DAY
"""How far ``on_call`` looks back for the start of the current shift and ahead for
the next one (at least twice the longest shift, if that is longer)."""


@dataclass(frozen=True, slots=True)
class Override:
    """``person`` is on call for ``schedule`` from ``start`` until ``end`` (epoch seconds),
    whoever the layers say: "Li covers Zhang on Friday"."""

    schedule: str
    person: str
    start: float
    end: float


@dataclass(frozen=True, slots=True)
class Shift:
    """A stretch of time one person is on call. ``start``/``end`` are None where the
    stretch goes on past the span that was looked at."""

    person: str
    start: float | None
    end: float | None


@dataclass(frozen=True, slots=True)
class OnCall:
    """Who is on call at an instant (None: a gap), and the next person to take over
    (None: no one within the horizon); ``next.start`` is the handoff."""

    now: Shift | None
    next: Shift | None


def _instant(day: dt.date, time: dt.time, tz: ZoneInfo) -> float:
    # fold=0: a wall time in a gap uses the offset before the jump (so it lands after
    # the gap), a repeated one means its first occurrence (PEP 495).
    return dt.datetime.combine(day, time, tzinfo=tz).timestamp()


def _local_date(at: float, tz: ZoneInfo) -> dt.date:
    return dt.datetime.fromtimestamp(at, tz).date()


class _Rotation:
    """One rotation's shifts: shift ``k`` starts at handoff ``k``; shift 0 is the first
    member's first (the one that starts on or after ``start``)."""

    def __init__(self, rotation: RotationConfig, tz: ZoneInfo) -> None:
        self.members = rotation.members
        self.period = rotation.period_days
        self.time = rotation.handoff_time
        self.tz = tz
        first = rotation.start or REFERENCE_START
        weekday = rotation.handoff_weekday
        if weekday is not None:
            first += dt.timedelta(days=(weekday - first.weekday()) % 7)
        self.first_day = first
        self.starts = rotation.start is not None

    def handoff(self, k: int) -> float:
        return _instant(self.first_day + dt.timedelta(days=k * self.period), self.time, self.tz)

    def shift_at(self, at: float) -> int:
        """The index of the shift ``at`` falls in (negative before the first)."""
        k = (_local_date(at, self.tz) - self.first_day).days // self.period
        # The date guess is off by one near the handoff time of a handoff day.
        while self.handoff(k) > at:
            k -= 1
        while self.handoff(k + 1) <= at:
            k += 1
        return k

    def person_at(self, at: float) -> str | None:
        k = self.shift_at(at)
        if self.starts and k < 0:
            return None
        return self.members[k % len(self.members)]

    def changes(self, since: float, until: float) -> Iterator[float]:
        """Handoffs in (since, until]."""
        for k in range(self.shift_at(since) + 1, self.shift_at(until) + 1):
            yield self.handoff(k)


class _Window:
    """When a layer is in force: on its ``days``, for its ``hours`` (or the whole day)."""

    def __init__(self, layer: LayerConfig, tz: ZoneInfo) -> None:
        self.days = frozenset(WEEKDAYS.index(d) for d in layer.days)
        self.hours = layer.window_times()
        self.tz = tz
        self.always = self.hours is None and len(self.days) == 7

    def span(self, day: dt.date) -> tuple[float, float] | None:
        """The window that starts on ``day``, or None if none does."""
        if day.weekday() not in self.days:
            return None
        if self.hours is None:
            start, end, end_day = dt.time(0), dt.time(0), day + dt.timedelta(days=1)
        else:
            start, end = self.hours
            end_day = day + dt.timedelta(days=1) if end <= start else day
        return _instant(day, start, self.tz), _instant(end_day, end, self.tz)

    def covers(self, at: float) -> bool:
        if self.always:
            return True
        today = _local_date(at, self.tz)
        # A window across midnight that started yesterday may still be open.
        for day in (today - dt.timedelta(days=1), today):
            span = self.span(day)
            if span is not None and span[0] <= at < span[1]:
                return True
        return False

    def changes(self, since: float, until: float) -> Iterator[float]:
        """Window edges in (since, until]."""
        if self.always:
            return
        day = _local_date(since, self.tz) - dt.timedelta(days=1)
        last = _local_date(until, self.tz) + dt.timedelta(days=1)
        while day <= last:
            span = self.span(day)
            if span is not None:
                yield from (edge for edge in span if since < edge <= until)
            day += dt.timedelta(days=1)


class _Schedule:
    """A schedule with its overrides, ready to answer "who, at this instant"."""

    def __init__(self, schedule: ScheduleConfig, overrides: Iterable[Override]) -> None:
        tz = ZoneInfo(schedule.timezone)
        # Bottom layer first; None: the base rotation, in force all the time.
        self.layers = [
            (_Rotation(rotation, tz), _Window(layer, tz) if layer is not None else None)
            for rotation, layer in schedule.rotations()
        ]
        self.overrides = [o for o in overrides if o.schedule == schedule.id and o.end > o.start]
        self.longest = max(rotation.period for rotation, _ in self.layers) * DAY

    def person_at(self, at: float) -> str | None:
        # The override made last wins where overrides overlap (the caller passes them
        # in the order they were made); then the highest layer that has someone.
        for override in reversed(self.overrides):
            if override.start <= at < override.end:
                return override.person
        for rotation, window in reversed(self.layers):
            if window is None or window.covers(at):
                person = rotation.person_at(at)
                if person is not None:
                    return person
        return None

    def segments(self, since: float, until: float) -> list[tuple[float, float, str | None]]:
        """[since, until) cut where the person on call changes: (start, end, person)."""
        points: set[float] = set()
        for rotation, window in self.layers:
            points.update(rotation.changes(since, until))
            if window is not None:
                points.update(window.changes(since, until))
        for override in self.overrides:
            points.update(t for t in (override.start, override.end) if since < t < until)
        cuts = [since, *sorted(t for t in points if since < t < until)]
        found: list[tuple[float, float, str | None]] = []
        for start, end in zip(cuts, [*cuts[1:], until], strict=True):
            person = self.person_at(start)
            if found and found[-1][2] == person:
                found[-1] = (found[-1][0], end, person)
            else:
                found.append((start, end, person))
        return found


def on_call_at(
    schedule: ScheduleConfig, at: float, overrides: Iterable[Override] = ()
) -> str | None:
    """The person on call for ``schedule`` at ``at``, or None where it has no one.

    Overrides for other schedules are ignored, so the caller may pass all of them.
    """
    return _Schedule(schedule, overrides).person_at(at)


def timeline(
    schedule: ScheduleConfig,
    since: float,
    until: float,
    overrides: Iterable[Override] = (),
) -> list[Shift]:
    """Who is on call from ``since`` until ``until``: consecutive shifts, cut at those
    two instants; a gap where no one is on call has no shift."""
    if until <= since:
        return []
    return [
        Shift(person, start, end)
        for start, end, person in _Schedule(schedule, overrides).segments(since, until)
        if person is not None
    ]


def on_call(
    schedule: ScheduleConfig,
    at: float,
    overrides: Sequence[Override] = (),
    horizon: float | None = None,
) -> OnCall:
    """Who is on call at ``at`` (since when, until when) and who takes over next.

    Looks ``horizon`` seconds back and ahead (default: ``MIN_HORIZON``, or twice
    the longest shift if that is longer); a shift reaching past it has
    ``start``/``end`` None, and no change within it means ``next`` is None.
    """
    if horizon is not None and horizon <= 0:
        raise ValueError(f"the horizon must be a positive number of seconds, not {horizon:g}")
    compiled = _Schedule(schedule, overrides)
    reach = horizon if horizon is not None else max(MIN_HORIZON, 2 * compiled.longest + DAY)
    since, until = at - reach, at + reach
    segments = compiled.segments(since, until)
    index = next(i for i, (start, end, _) in enumerate(segments) if start <= at < end)

    def shift(segment: tuple[float, float, str | None]) -> Shift | None:
        start, end, person = segment
        if person is None:
            return None
        return Shift(person, start if start > since else None, end if end < until else None)

    following = next((s for s in segments[index + 1 :] if s[2] is not None), None)
    return OnCall(
        now=shift(segments[index]),
        next=shift(following) if following is not None else None,
    )
