"""One incident's paging as a pure function: what is due now, and when to look again.

``plan`` takes the escalation policy, the schedules and overrides, the facts
of the incident (``IncidentFacts``: when paging began, acknowledged, resolved),
``now``, and the pages already made for this incident — and returns the
pages due that are not among them, plus when the next level fires. It keeps
no state: the caller (the notification subscriber, later the outbox) stores
the pages it makes and passes them back, so calling again with the same
inputs returns nothing new, and a restart picks up where the stored pages
end. docs/oncall.md states the rules; in short:

- Level 1 fires ``levels[0].after`` after paging began (at once without it);
  each later level fires its own ``after`` after the level before it fired.
  A repeat starts again at level 1, ``repeat_after`` after the last level
  fired (default: the last level's ``after``), ``repeat`` times.
- ``schedule:ID`` means whoever is on call when that level fires.
- A person gets one page per level firing, however many of its targets name
  them; when several firings are due at once (the appliance was down), a
  person gets one page, for the latest of them.
- Once acknowledged, nothing more is paged; everyone paged but the person
  who acknowledged gets one ``acknowledged`` notice. Once resolved, nothing
  more is paged and everyone paged gets one ``resolved`` notice (an
  ``acknowledged`` notice not yet made by then is not made).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from notify.people import EscalationConfig, PersonConfig, ScheduleConfig
from notify.schedules import Override, on_call_at

Reason = Literal["opened", "escalated", "repeat", "acknowledged", "resolved"]
"""Why a person is told: level 1 (``opened``), a later level (``escalated``), any level of a
repeat (``repeat``), someone else took the incident (``acknowledged``), it is over (``resolved``)."""

PAGE_REASONS: frozenset[str] = frozenset({"opened", "escalated", "repeat"})
"""Reasons that page someone to act (the others are notices to those already paged)."""


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What paging needs to know of one incident; a fact later than ``now`` has not happened yet."""

    opened_at: float
    """When paging began: the incident opened, or the rule's ``for:`` was met."""
    acknowledged_at: float | None = None
    acknowledged_by: str | None = None
    """The console user who acknowledged (matched to ``PersonConfig.user``)."""
    resolved_at: float | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One firing of a level: ``level`` counts from 1, ``repeat`` from 0 (0: the first time
    through the levels), ``at`` is when it fires."""

    level: int
    repeat: int
    at: float


@dataclass(frozen=True, slots=True)
class Page:
    """One message to one person about one incident (the outbox makes its deliveries).

    ``level``/``repeat`` are those of the step for a page, None for an
    ``acknowledged`` or ``resolved`` notice; ``at`` is when it became due.
    Two pages are the same page when their ``key`` is.
    """

    person: str
    reason: Reason
    level: int | None
    repeat: int | None
    at: float

    @property
    def key(self) -> tuple[str, str, int | None, int | None]:
        return (self.person, self.reason, self.level, self.repeat)


@dataclass(frozen=True, slots=True)
class Unstaffed:
    """A schedule a fired level names had no one on call then: that target paged no one."""

    level: int
    repeat: int
    schedule: str
    at: float


@dataclass(frozen=True, slots=True)
class Plan:
    """What ``plan`` found: ``due`` to make now, in order; ``next`` is the next level to fire
    (None: nothing more will fire unless the facts change); ``unstaffed`` lists every fired
    level's schedule that had no one."""

    due: tuple[Page, ...]
    next: Step | None
    unstaffed: tuple[Unstaffed, ...] = ()


def steps(policy: EscalationConfig, opened_at: float) -> list[Step]:
    """Every firing of every level, in order, for paging that began at ``opened_at``."""
    found: list[Step] = []
    at = opened_at + (policy.levels[0].after or 0.0)
    for repeat in range(policy.repeat + 1):
        for index, level in enumerate(policy.levels):
            if index > 0:
                at += level.after or 0.0
            elif repeat > 0:
                at += policy.cycle_gap
            found.append(Step(index + 1, repeat, at))
    return found


def _reason(step: Step) -> Reason:
    if step.repeat > 0:
        return "repeat"
    return "opened" if step.level == 1 else "escalated"


def recipients(
    policy: EscalationConfig,
    step: Step,
    schedules: Mapping[str, ScheduleConfig],
    overrides: Sequence[Override] = (),
) -> tuple[list[str], list[Unstaffed]]:
    """The people a step pages (each once, in the order its targets name them), and the
    schedules among its targets that had no one on call at ``step.at``."""
    people: list[str] = []
    empty: list[Unstaffed] = []
    for kind, ident in policy.levels[step.level - 1].targets():
        if kind == "person":
            person: str | None = ident
        else:
            schedule = schedules.get(ident)
            person = on_call_at(schedule, step.at, overrides) if schedule is not None else None
            if person is None:
                empty.append(Unstaffed(step.level, step.repeat, ident, step.at))
        if person is not None and person not in people:
            people.append(person)
    return people, empty


def plan(
    policy: EscalationConfig,
    incident: IncidentFacts,
    now: float,
    made: Iterable[Page],
    *,
    schedules: Mapping[str, ScheduleConfig],
    people: Iterable[PersonConfig] = (),
    overrides: Sequence[Override] = (),
) -> Plan:
    """The pages due at ``now`` that are not in ``made``, and the next step to fire.

    ``made``: every page already made for this incident (from any earlier
    call); ``people``: to find who acknowledged (``acknowledged_by`` is a user).
    """
    made = list(made)
    made_keys = {page.key for page in made}
    # Who has been paged, in the order they first were.
    paged: list[str] = []
    for page in made:
        if page.reason in PAGE_REASONS and page.person not in paged:
            paged.append(page.person)

    if incident.resolved_at is not None and incident.resolved_at <= now:
        due = [Page(p, "resolved", None, None, incident.resolved_at) for p in paged]
        return Plan(tuple(p for p in due if p.key not in made_keys), None)

    if incident.acknowledged_at is not None and incident.acknowledged_at <= now:
        taker = next((p.id for p in people if p.user == incident.acknowledged_by), None)
        due = [
            Page(p, "acknowledged", None, None, incident.acknowledged_at)
            for p in paged
            if p != taker
        ]
        return Plan(tuple(p for p in due if p.key not in made_keys), None)

    order = steps(policy, incident.opened_at)
    position = {(s.level, s.repeat): i for i, s in enumerate(order)}
    reached: dict[str, int] = {}
    for page in made:
        if page.reason in PAGE_REASONS and page.level is not None and page.repeat is not None:
            index = position.get((page.level, page.repeat), -1)
            reached[page.person] = max(reached.get(page.person, -1), index)

    # The latest fired step for each person: a page for it covers the earlier ones.
    latest: dict[str, int] = {}
    unstaffed: list[Unstaffed] = []
    fired = [s for s in order if s.at <= now]
    for index, step in enumerate(fired):
        people_paged, empty = recipients(policy, step, schedules, overrides)
        unstaffed += empty
        for person in people_paged:
            latest.pop(person, None)  # re-insert: the order of due pages follows the steps
            latest[person] = index
    due = [
        Page(
            person, _reason(fired[index]), fired[index].level, fired[index].repeat, fired[index].at
        )
        for person, index in latest.items()
        if reached.get(person, -1) < index
    ]
    upcoming = order[len(fired)] if len(fired) < len(order) else None
    return Plan(tuple(due), upcoming, tuple(unstaffed))
