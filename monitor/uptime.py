"""Daily uptime: how many seconds of one day a target or a component spent in each health.

Pure code. The health of a target over a day is a ``Timeline``: the health it
had when the day began (the last transition before it) and the transitions
during the day. ``seconds_in`` adds up the time in each health; a component's
time is added up from its members' timelines with ``component_seconds``
(``monitor.components.component_health`` at each moment). The
state DB adapter (``monitor.store.uptime``) reads the timelines and stores the
result as one row per day and subject, before the transitions are pruned.

Days are calendar days in the site's timezone, so a day is 23 or 25 hours
long when daylight saving time starts or ends. Time before a target was first
observed (no transition yet) is not counted: the day of a target added at noon
adds up to 12 hours, all of them observed.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from monitor.components import health_of_counts, members
from monitor.health import Health

if TYPE_CHECKING:
    from monitor.config.schema import Config


@dataclass(frozen=True, slots=True)
class HealthSeconds:
    """Seconds spent in each health (one day of one target or component)."""

    up: float = 0.0
    degraded: float = 0.0
    down: float = 0.0
    maintenance: float = 0.0
    unknown: float = 0.0

    @property
    def total(self) -> float:
        return self.up + self.degraded + self.down + self.maintenance + self.unknown

    @classmethod
    def of(cls, spans: Iterable[tuple[Health, float]]) -> HealthSeconds:
        sums = dict.fromkeys(Health, 0.0)
        for health, seconds in spans:
            sums[health] += seconds
        return cls(**{h.value: s for h, s in sums.items()})


@dataclass(frozen=True, slots=True)
class Timeline:
    """A target's health from some start on.

    ``start``: its health at the start (None: not observed yet, so the time
    until its first change is not counted). ``changes``: ``(at, health)`` in
    time order; the health holds until the next change.
    """

    start: Health | None
    changes: tuple[tuple[float, Health], ...] = field(default=())

    def spans(self, begin: float, end: float) -> list[tuple[float, float, Health]]:
        """``(from, to, health)`` pieces covering the observed part of ``[begin, end)``."""
        out: list[tuple[float, float, Health]] = []
        current, since = self.start, begin
        for at, health in self.changes:
            if at >= end:
                break
            if at > since:
                if current is not None:
                    out.append((since, at, current))
                since = at
            current = health
        if current is not None and end > since:
            out.append((since, end, current))
        return out


def seconds_in(timeline: Timeline, begin: float, end: float) -> HealthSeconds:
    """Seconds of ``[begin, end)`` the target spent in each health."""
    return HealthSeconds.of((h, b - a) for a, b, h in timeline.spans(begin, end))


def component_seconds(members: Sequence[Timeline], begin: float, end: float) -> HealthSeconds:
    """Seconds of ``[begin, end)`` a component spent in each health: at each moment,
    ``health_of_counts`` of its members observed then.

    One sweep over every member's changes, keeping how many members are in
    each health: a component of 1,000 flapping trunks costs its number of
    changes, not changes × members.
    """
    counts: Counter[Health] = Counter()
    current: list[Health | None] = []
    changes: list[tuple[float, int, Health]] = []
    for i, member in enumerate(members):
        health = member.start
        for at, changed in member.changes:
            if at <= begin:
                health = changed
            elif at < end:
                changes.append((at, i, changed))
        current.append(health)
        if health is not None:
            counts[health] += 1
    changes.sort(key=itemgetter(0))  # stable: one member's changes keep their order
    spans: list[tuple[Health, float]] = []
    since = begin
    for at, i, changed in changes:
        if at > since:
            health = health_of_counts(counts)
            if health is not None:
                spans.append((health, at - since))
            since = at
        before = current[i]
        if before is not None:
            counts[before] -= 1
        current[i] = changed
        counts[changed] += 1
    health = health_of_counts(counts)
    if health is not None and end > since:
        spans.append((health, end - since))
    return HealthSeconds.of(spans)


def uptime_ratio(days: Iterable[HealthSeconds]) -> float | None:
    """The share of the counted time that was available, over one day or many (None:
    nothing counted): ``(up + degraded) / (up + degraded + down)``.

    ``down`` counts against it; ``degraded`` (slow, or a component's partial outage)
    still served calls, so it does not. Maintenance is planned and unknown time is not
    observed: neither is counted, either way.
    """
    available = counted = 0.0
    for d in days:
        available += d.up + d.degraded
        counted += d.up + d.degraded + d.down
    return available / counted if counted > 0 else None


def day_bounds(day: date, tz: ZoneInfo) -> tuple[float, float]:
    """Epoch seconds of the start of ``day`` and of the next day, in ``tz`` (23–25 h apart)."""
    # A midnight that does not exist (a DST jump at 00:00) resolves, with fold=0,
    # to the instant the day actually begins.
    start = datetime.combine(day, time(0), tzinfo=tz).timestamp()
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz).timestamp()
    return start, end


def day_of(at: float, tz: ZoneInfo) -> date:
    """The calendar day, in ``tz``, that the instant ``at`` falls on."""
    return datetime.fromtimestamp(at, tz).date()


def days_to_roll(
    newest_rolled: date | None,
    oldest_change: float | None,
    now: float,
    tz: ZoneInfo,
    keep_days: int | None,
) -> list[date]:
    """The days a rollup at ``now`` (re)computes, oldest first.

    From the newest day already rolled up (it may have been rolled while it
    was still running) through today, which is rolled up to ``now``. With
    nothing rolled up yet, from the day of the oldest stored transition, but
    no further back than ``keep_days`` (the uptime kept anyway).
    """
    today = day_of(now, tz)
    if newest_rolled is not None:
        first = newest_rolled
    elif oldest_change is not None:
        first = day_of(oldest_change, tz)
        if keep_days is not None:
            first = max(first, today - timedelta(days=keep_days))
    else:
        return []
    return [first + timedelta(days=n) for n in range((today - first).days + 1)]


@dataclass(frozen=True, slots=True)
class UptimeScope:
    """What the rollup takes from the config."""

    tz: ZoneInfo
    """The site timezone: days are its calendar days."""
    components: Mapping[str, tuple[str, ...]]
    """Component id → the ids of its member targets."""
    keep_days: int | None
    """How many days of uptime are kept (``storage.retention.uptime.max_age``)."""


def scope_of(config: Config) -> UptimeScope:
    """The rollup's scope from a whole configuration."""
    keep = config.storage.retention.uptime.max_age
    return UptimeScope(
        tz=ZoneInfo(config.site.timezone),
        components={c.id: tuple(members(c, config.targets)) for c in config.components},
        keep_days=None if keep is None else math.ceil(keep / 86400),
    )


def scope_following(config: Callable[[], Config]) -> Callable[[], UptimeScope]:
    """The scope of the config ``config()`` returns, computed again only when that
    config is another one (a reload): resolving selectors over 10,000 targets is
    not free, and the rollup asks for its scope several times a run."""
    last: list[tuple[Config, UptimeScope]] = []

    def scope() -> UptimeScope:
        current = config()
        if not last or last[0][0] is not current:
            last[:] = [(current, scope_of(current))]
        return last[0][1]

    return scope
