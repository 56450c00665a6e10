"""Paging: incident events and the clock in, pages and deliveries in the outbox out.

``Paging.handle`` is a ``DbSubscriber`` (``monitor.dispatcher``): it runs
inside the transaction that moves its cursor, so each event is turned into
its pages and deliveries **exactly once**, before anything is sent.
``Paging.tick`` runs every second or so from the sender's side and does
what time decides: a rule's ``for:`` that has been waited out (``recheck``),
the next escalation level, the end of a silence.

- An incident event (``opened``, ``joined``, ``declared``; ``transition``
  of a member) is weighed against every rule with ``escalate:``
  (``monitor.rules.evaluate``): one that fires starts a page (one per
  incident and policy); one with a ``for:`` arms it until then.
- A page that pages asks ``notify.escalation.plan`` what is due; each
  person due gets a notice in the outbox (one message per incident event
  per person; grouped in the outbox).
- ``acknowledged`` stops every page of the incident and tells everyone paged
  but the one who acknowledged; ``resolved`` ends them and tells everyone
  paged; ``merged`` ends the child's pages silently (the parent's go on);
  ``updated`` and ``customer_update`` tell everyone paged.
- A silence of the incident, its root or a component of it holds paging
  back until it ends (the page looks again then); acknowledgement and
  resolution notices still go to those already paged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import Connection, Table, insert, select, update

from core.config import TargetBase
from monitor.components import members
from monitor.config.models import ComponentConfig
from monitor.config.rules import RuleConfig
from monitor.dispatcher import DbSubscriber
from monitor.events import Event, EventKind
from monitor.rules import Facts, evaluate, recheck
from monitor.store import queries
from monitor.store.models import (
    INCIDENT_OPEN,
    PAGE_ACKNOWLEDGED,
    PAGE_ARMED,
    PAGE_ENDED,
    PAGE_PAGING,
    OncallOverride,
    Page,
    Silence,
)
from monitor.store.repository import StateRepository
from notify import outbox
from notify.escalation import IncidentFacts, plan
from notify.escalation import Page as Due
from notify.outbox import Notice
from notify.people import EscalationConfig, PersonConfig, ScheduleConfig
from notify.schedules import Override

log = logging.getLogger(__name__)

_PAGE: Table = Page.__table__  # type: ignore[assignment]
_SILENCE: Table = Silence.__table__  # type: ignore[assignment]
_OVERRIDE: Table = OncallOverride.__table__  # type: ignore[assignment]

PAGING_EVENTS = frozenset(
    {
        EventKind.TRANSITION,
        EventKind.OPENED,
        EventKind.JOINED,
        EventKind.DECLARED,
        EventKind.ACKNOWLEDGED,
        EventKind.RESOLVED,
        EventKind.RESOLVED_BY_HAND,
        EventKind.MERGED,
        EventKind.UPDATED,
        EventKind.CUSTOMER_UPDATE,
    }
)
START_EVENTS = frozenset(
    {EventKind.TRANSITION, EventKind.OPENED, EventKind.JOINED, EventKind.DECLARED}
)


@dataclass(frozen=True)
class Roster:
    """What paging needs from the config: rules that escalate, policies, schedules, people."""

    rules: tuple[tuple[RuleConfig, str], ...] = ()
    """Each rule with ``escalate:`` and the policy id it names."""
    policies: Mapping[str, EscalationConfig] = field(default_factory=dict)
    schedules: Mapping[str, ScheduleConfig] = field(default_factory=dict)
    people: Mapping[str, PersonConfig] = field(default_factory=dict)
    targets: Mapping[str, TargetBase] = field(default_factory=dict)
    components: Sequence[ComponentConfig] = ()

    def person_of_user(self, user: str) -> PersonConfig | None:
        for person in self.people.values():
            if person.user == user:
                return person
        return None

    def components_of(self, target_id: str) -> frozenset[str]:
        targets = list(self.targets.values())
        return frozenset(c.id for c in self.components if target_id in members(c, targets))


@dataclass(frozen=True, slots=True)
class PageRow:
    id: int
    incident_id: int
    rule_id: str
    policy_id: str
    target_id: str
    state: str
    hold_since: float
    check_at: float | None
    started_at: float | None
    made: tuple[Due, ...]
    paged: tuple[str, ...]


def _page(r: Any) -> PageRow:
    made = tuple(Due(p, reason, level, rep, at) for p, reason, level, rep, at in r.made or ())
    return PageRow(
        r.id,
        r.incident_id,
        r.rule_id,
        r.policy_id,
        r.target_id,
        r.state,
        r.hold_since,
        r.check_at,
        r.started_at,
        made,
        tuple(r.paged or ()),
    )


class Paging:
    """Turns events and time into pages and deliveries; ``roster`` is swapped on reload."""

    def __init__(self, roster: Callable[[], Roster], *, on_delivery: Callable[[], None]) -> None:
        self.roster = roster
        self.on_delivery = on_delivery
        """Called after a commit that added deliveries (wakes the sender)."""

    # -- events (a DbSubscriber: inside the cursor's transaction) ------------------------
    def handle(self, repo: StateRepository, event: Event) -> None:
        """Inside the dispatcher's transaction: the subscriber's ``after_commit`` wakes the
        sender once the deliveries are committed (``subscriber``)."""
        with repo.transaction() as conn:
            self._handle(conn, event)

    def subscriber(self, name: str = "notify.paging") -> DbSubscriber:
        return DbSubscriber(
            name, self.handle, kinds=frozenset(PAGING_EVENTS), after_commit=self.on_delivery
        )

    def _handle(self, conn: Connection, event: Event) -> int:
        roster = self.roster()
        incident_id = event.incident_id
        if event.kind in START_EVENTS:
            return self._weigh(conn, roster, event)
        if incident_id is None:
            return 0
        pages = self._pages(conn, incident_id)
        if event.kind == EventKind.ACKNOWLEDGED:
            by = _user_of(event.actor)
            acker = roster.person_of_user(by) if by else None
            told = 0
            for page in pages:
                if page.state in (PAGE_PAGING, PAGE_ARMED):
                    self._set(conn, page.id, state=PAGE_ACKNOWLEDGED, check_at=None,
                              acknowledged_by=event.actor)  # fmt: skip
                others = [p for p in page.paged if acker is None or p != acker.id]
                told += self._tell(conn, roster, others, Notice("acknowledged", incident_id,
                                   event.id, by=event.actor), event.at)  # fmt: skip
            return told
        if event.kind in (EventKind.RESOLVED, EventKind.RESOLVED_BY_HAND):
            told = 0
            for page in pages:
                if page.state != PAGE_ENDED:
                    self._set(conn, page.id, state=PAGE_ENDED, check_at=None, ended_at=event.at)
                told += self._tell(conn, roster, list(page.paged),
                                   Notice("resolved", incident_id, event.id, by=event.actor), event.at)  # fmt: skip
            return told
        if event.kind == EventKind.MERGED:
            for page in pages:
                if page.state != PAGE_ENDED:
                    self._set(conn, page.id, state=PAGE_ENDED, check_at=None, ended_at=event.at)
            return 0
        if event.kind in (EventKind.UPDATED, EventKind.CUSTOMER_UPDATE):
            told = 0
            for page in pages:
                if page.state in (PAGE_PAGING, PAGE_ACKNOWLEDGED):
                    told += self._tell(conn, roster, list(page.paged),
                                       Notice("updated", incident_id, event.id), event.at)  # fmt: skip
            return told
        return 0

    def _weigh(self, conn: Connection, roster: Roster, event: Event) -> int:
        """An event that can start paging: every escalating rule weighed on its target."""
        if not roster.rules or event.target_id is None and event.incident_id is None:
            return 0
        incident = queries.incident_of_event(conn, event.incident_id, event.target_id)
        if incident is None or incident.state != INCIDENT_OPEN:
            return 0
        target_id = event.target_id or incident.root_target_id
        facts = self._facts(conn, roster, target_id, str(event.kind), incident.severity)
        if facts is None:
            return 0
        existing = {p.policy_id for p in self._pages(conn, incident.id)}
        added = 0
        for rule, policy_id in roster.rules:
            if policy_id in existing or policy_id not in roster.policies:
                continue
            verdict = evaluate(rule, facts, event.at)
            if verdict.fires:
                page_id = self._insert(conn, incident.id, rule, policy_id, facts, event.at, None)
                added += self._advance(conn, roster, self._get(conn, page_id), event.at)
                existing.add(policy_id)
            elif verdict.recheck_at is not None:
                self._insert(
                    conn, incident.id, rule, policy_id, facts, event.at, verdict.recheck_at
                )
                existing.add(policy_id)
        return added

    def _facts(
        self, conn: Connection, roster: Roster, target_id: str, event: str, severity: str | None
    ) -> Facts | None:
        row = queries.target(conn, target_id)
        target = roster.targets.get(target_id)
        if row is None:
            return None
        return Facts(
            event=event,
            target_id=target_id,
            health=row.health,
            since=row.since,
            tags=dict(target.tags) if target is not None else {},
            components=roster.components_of(target_id),
            severity=severity,  # type: ignore[arg-type]
        )

    # -- time (the sender's tick) ----------------------------------------------------
    def tick(self, repo: StateRepository, now: float) -> int:
        """Recheck armed pages and advance paging ones whose time has come."""
        with repo.transaction() as conn:
            added = 0
            roster = self.roster()
            due = conn.execute(
                select(_PAGE)
                .where(_PAGE.c.state.in_([PAGE_ARMED, PAGE_PAGING]), _PAGE.c.check_at <= now)
                .order_by(_PAGE.c.check_at)
                .limit(500)
            )
            for page in [_page(r) for r in due]:
                try:
                    added += self._due(conn, roster, page, now)
                except Exception:  # one page's trouble must not hold the others
                    log.exception("page %d could not be advanced", page.id)
                    self._set(conn, page.id, check_at=now + 60)
        if added:
            self.on_delivery()
        return added

    def _due(self, conn: Connection, roster: Roster, page: PageRow, now: float) -> int:
        incident = queries.incident(conn, page.incident_id)
        if incident is None or incident.state != INCIDENT_OPEN:
            self._set(conn, page.id, state=PAGE_ENDED, check_at=None, ended_at=now)
            return 0
        if page.state == PAGE_ARMED:
            rule = next((r for r, _ in roster.rules if r.id == page.rule_id), None)
            current = self._facts(conn, roster, page.target_id, "opened", incident.severity)
            if rule is None or current is None:
                self._set(conn, page.id, state=PAGE_ENDED, check_at=None, ended_at=now)
                return 0
            # The hold is one stay in one health: the same ``since`` means the same stay.
            armed = replace(current, since=page.hold_since)
            verdict = recheck(rule, armed, current, now)
            if not verdict.fires:
                if verdict.recheck_at is not None:
                    self._set(conn, page.id, check_at=verdict.recheck_at)
                else:
                    log.info("page %d not started: %s", page.id, verdict.reason)
                    self._set(conn, page.id, state=PAGE_ENDED, check_at=None, ended_at=now)
                return 0
            self._set(conn, page.id, state=PAGE_PAGING, started_at=now)
            page = self._get(conn, page.id)
        return self._advance(conn, roster, page, now)

    def _advance(self, conn: Connection, roster: Roster, page: PageRow, now: float) -> int:
        """Make the notices escalation says are due; set when to look again."""
        policy = roster.policies.get(page.policy_id)
        if policy is None:
            self._set(conn, page.id, state=PAGE_ENDED, check_at=None, ended_at=now)
            return 0
        held = _silenced_until(conn, roster, page, now)
        if held is not None:
            self._set(conn, page.id, check_at=held)
            return 0
        incident = queries.incident(conn, page.incident_id)
        started = page.started_at if page.started_at is not None else now
        facts = IncidentFacts(
            opened_at=started,
            acknowledged_at=incident.acknowledged_at if incident else None,
            acknowledged_by=incident.acknowledged_by if incident else None,
        )
        result = plan(
            policy,
            facts,
            now,
            page.made,
            schedules=roster.schedules,
            people=list(roster.people.values()),
            overrides=overrides_at(conn, now),
        )
        added = 0
        made = list(page.made)
        paged = list(page.paged)
        for due in result.due:
            made.append(due)
            person = roster.people.get(due.person)
            if person is None:
                continue
            kind = "opened" if due.reason == "opened" else "escalated"
            outbox.add(
                conn,
                person.id,
                [Notice(kind, page.incident_id, None, level=due.level)],
                person.contact,
                now,
            )
            added += 1
            if person.id not in paged:
                paged.append(person.id)
        for gap in result.unstaffed:
            log.warning(
                "incident %d: level %d of %s names schedule %s, which has no one on call",
                page.incident_id, gap.level, page.policy_id, gap.schedule,
            )  # fmt: skip
        self._set(
            conn,
            page.id,
            made=[[d.person, d.reason, d.level, d.repeat, d.at] for d in made],
            paged=paged,
            check_at=result.next.at if result.next is not None else None,
        )
        return added

    # -- notices to those already paged ------------------------------------------------
    def _tell(
        self,
        conn: Connection,
        roster: Roster,
        person_ids: Sequence[str],
        notice: Notice,
        now: float,
    ) -> int:
        told = 0
        for person_id in dict.fromkeys(person_ids):
            person = roster.people.get(person_id)
            if person is not None:
                outbox.add(conn, person.id, [notice], person.contact, now)
                told += 1
        return told

    # -- rows ------------------------------------------------------------------------
    def _pages(self, conn: Connection, incident_id: int) -> list[PageRow]:
        rows = conn.execute(
            select(_PAGE).where(_PAGE.c.incident_id == incident_id).order_by(_PAGE.c.id)
        )
        return [_page(r) for r in rows]

    def _get(self, conn: Connection, page_id: int) -> PageRow:
        return _page(conn.execute(select(_PAGE).where(_PAGE.c.id == page_id)).one())

    def _insert(
        self,
        conn: Connection,
        incident_id: int,
        rule: RuleConfig,
        policy_id: str,
        facts: Facts,
        now: float,
        armed_until: float | None,
    ) -> int:
        return int(
            conn.execute(
                insert(_PAGE).values(
                    incident_id=incident_id,
                    rule_id=rule.id,
                    policy_id=policy_id,
                    target_id=facts.target_id,
                    state=PAGE_ARMED if armed_until is not None else PAGE_PAGING,
                    hold_since=facts.since,
                    check_at=armed_until,
                    created_at=now,
                    started_at=None if armed_until is not None else now,
                    made=[],
                    paged=[],
                )
            ).inserted_primary_key[0]
        )

    def _set(self, conn: Connection, page_id: int, **values: Any) -> None:
        conn.execute(update(_PAGE).where(_PAGE.c.id == page_id).values(**values))


def _user_of(actor: str) -> str | None:
    kind, _, name = actor.partition(":")
    return name if kind == "user" and name else None


def _silenced_until(conn: Connection, roster: Roster, page: PageRow, now: float) -> float | None:
    """When the silence covering this page's incident ends (None: not silenced)."""
    s = _SILENCE
    incident = queries.incident(conn, page.incident_id)
    targets = {page.target_id, *(incident.member_ids if incident else ())}
    components = set().union(*(roster.components_of(t) for t in targets)) if targets else set()
    rows = conn.execute(
        select(s.c.ends_at).where(
            s.c.lifted_at.is_(None),
            s.c.starts_at <= now,
            s.c.ends_at > now,
            (s.c.incident_id == page.incident_id)
            | s.c.target_id.in_(sorted(targets))
            | s.c.component_id.in_(sorted(components)),
        )
    ).scalars()
    ends = [float(e) for e in rows]
    return max(ends) if ends else None


def overrides_at(conn: Connection, now: float) -> list[Override]:
    o = _OVERRIDE
    rows = conn.execute(
        select(o).where(o.c.removed_at.is_(None), o.c.ends_at > now - 86400).order_by(o.c.id)
    )
    return [Override(r.schedule_id, r.person_id, r.starts_at, r.ends_at) for r in rows]
