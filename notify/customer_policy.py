"""What one customer hears about one component, and when: pure, table-tested.

A ``Thread`` is one subscriber's view of one component. Events move it
(``trouble``, ``ok``, a published customer ``update``, maintenance); ``due``
says what to send now. The rules, stated once:

- **Outage notice**: with ``notify: auto`` it goes out ``delay`` after the
  component's trouble began, if the trouble is still there then (a blip
  tells nobody); with ``notify: manual`` nothing is said until staff
  publish a customer update.
- **Updates**: every published customer update is sent (it also counts as
  the outage notice under ``manual``).
- **All clear, coalesced**: an all clear is held for ``settle``. If the
  component is in trouble again within that time, the all clear is
  dropped and no new outage notice is sent — the subscriber was never told
  it was over, so the outage simply goes on (a flapping component, or a
  child incident merged into its parent, never reads "all clear" followed
  by "new outage" minutes apart). An all clear is only sent to someone
  who was told of the outage.
- **Quiet hours** (the subscriber's, or the site's): nothing is sent
  inside them except, when ``outage_in_quiet_hours`` is set, the outage
  notice itself; what was held is sent when they end, as the state is
  then (an outage that began and ended inside them, never told, is not
  mentioned at all; only the newest held update is sent).
- **Maintenance**: ahead of time at each ``lead`` (e.g. 24 h and 1 h
  before), at its start and at its end; like updates, held in quiet hours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

NoticeKind = Literal["outage", "update", "resolved", "maintenance"]


@dataclass(frozen=True)
class QuietHours:
    """``start``–``end`` local time every day (may span midnight: 22:00–08:00)."""

    start: time
    end: time
    timezone: str = "Asia/Shanghai"

    def inside(self, at: float) -> bool:
        local = datetime.fromtimestamp(at, ZoneInfo(self.timezone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, at: float) -> float:
        """The first moment at or after ``at`` outside the quiet hours."""
        if not self.inside(at):
            return at
        tz = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(at, tz)
        end = local.replace(hour=self.end.hour, minute=self.end.minute, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.timestamp()


@dataclass(frozen=True)
class Rules:
    mode: Literal["auto", "manual"] = "auto"
    delay: float = 300.0
    """Auto: how long the trouble lasts before the outage notice goes out."""
    settle: float = 600.0
    """How long an all clear is held, in case the component fails again."""
    quiet: QuietHours | None = None
    outage_in_quiet_hours: bool = False


@dataclass(frozen=True)
class Notice:
    kind: NoticeKind
    at: float
    """When what it tells happened (the trouble's start, the update's publication...)."""
    ref: str = ""
    """What it is about: the update's id, the maintenance window and phase."""


@dataclass(frozen=True)
class Thread:
    """One subscriber's view of one component."""

    trouble_since: float | None = None
    """The component is in trouble since then; None: it is fine."""
    told: bool = False
    """The subscriber has been told of the current outage."""
    clear_at: float | None = None
    """An all clear waits to be sent at this time (``settle`` after the trouble ended)."""
    held: tuple[Notice, ...] = field(default_factory=tuple)
    """Updates and maintenance notices waiting for the quiet hours to end."""


def trouble(thread: Thread, at: float) -> Thread:
    """The component went into trouble at ``at``."""
    if thread.trouble_since is not None:
        return thread
    if thread.clear_at is not None:
        # In trouble again before the all clear went out: it was never over for them.
        return replace(thread, trouble_since=at, clear_at=None)
    return replace(thread, trouble_since=at, told=False)


def ok(thread: Thread, at: float, rules: Rules) -> Thread:
    """The component is fine again at ``at``."""
    if thread.trouble_since is None:
        return thread
    if not thread.told:
        return replace(thread, trouble_since=None, clear_at=None)
    return replace(thread, trouble_since=None, clear_at=at + rules.settle)


def update(thread: Thread, notice: Notice) -> Thread:
    """A published customer update, or a maintenance notice, to send."""
    return replace(thread, held=(*thread.held, notice))


def next_due(thread: Thread, rules: Rules) -> float | None:
    """When ``due`` has something to do next (None: nothing waits)."""
    times = [n.at for n in thread.held]
    if thread.trouble_since is not None and not thread.told and rules.mode == "auto":
        times.append(thread.trouble_since + rules.delay)
    if thread.clear_at is not None:
        times.append(thread.clear_at)
    if not times:
        return None
    soonest = min(times)
    if rules.quiet is not None and rules.quiet.inside(soonest):
        outage_now = (
            rules.outage_in_quiet_hours
            and thread.trouble_since is not None
            and not thread.told
            and rules.mode == "auto"
        )
        if not outage_now:
            return rules.quiet.ends_after(soonest)
    return soonest


def due(thread: Thread, now: float, rules: Rules) -> tuple[list[Notice], Thread]:
    """What to send at ``now``, and the thread after sending it."""
    quiet = rules.quiet is not None and rules.quiet.inside(now)
    out: list[Notice] = []
    told = thread.told
    outage_due = (
        rules.mode == "auto"
        and thread.trouble_since is not None
        and not told
        and now >= thread.trouble_since + rules.delay
    )
    if outage_due and (not quiet or rules.outage_in_quiet_hours):
        out.append(Notice("outage", thread.trouble_since))  # type: ignore[arg-type]
        told = True
    held = thread.held
    if not quiet:
        updates = [n for n in held if n.kind == "update" and n.at <= now]
        if updates:
            newest = max(updates, key=lambda n: n.at)
            out.append(newest)
            if thread.trouble_since is not None:
                told = True  # under manual, the first published update is the outage notice
        out.extend(n for n in held if n.kind == "maintenance" and n.at <= now)
        held = tuple(n for n in held if n.at > now)
    clear_at = thread.clear_at
    if clear_at is not None and now >= clear_at and not quiet:
        if told or thread.told:
            out.append(Notice("resolved", clear_at - rules.settle))
        clear_at = None
        told = False
    return out, replace(thread, told=told, clear_at=clear_at, held=held)


def replay(
    events: Sequence[tuple[str, float, str]], rules: Rules, until: float
) -> list[tuple[float, Notice]]:
    """Everything one subscriber hears about one component for ``events`` — (kind,
    at, ref) with kind ``trouble``, ``ok``, ``update`` or ``maintenance`` — as (when it
    is sent, the notice), with ``due`` asked whenever something is due, up to ``until``.
    For tests and the docs' examples."""
    thread = Thread()
    heard: list[tuple[float, Notice]] = []
    pending = sorted(events, key=lambda e: e[1])
    now = pending[0][1] if pending else until
    while now <= until:
        while pending and pending[0][1] <= now:
            kind, at, ref = pending.pop(0)
            if kind == "trouble":
                thread = trouble(thread, at)
            elif kind == "ok":
                thread = ok(thread, at, rules)
            else:
                thread = update(thread, Notice(kind, at, ref))  # type: ignore[arg-type]
        sent, thread = due(thread, now, rules)
        heard.extend((now, n) for n in sent)
        upcoming = [t for t in (next_due(thread, rules), pending[0][1] if pending else None) if t]
        later = [t for t in upcoming if t > now]
        if not later:
            break
        now = min(later)
    return heard
