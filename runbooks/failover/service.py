"""Trunk failover groups, live: the engine's health in, the proxy's dispatcher changed.

``FailoverService`` hears every transition (an outside subscriber: its
effect is an RPC to the proxy) and re-decides the groups of that target at
once; a loop re-decides every few seconds too (failback waits for time, not
for an event) and reads each proxy's view back every ``verify_every``.

What Dialwatch wants for each member is kept in ``failover_member``, so a
restart remembers which trunks it took out and since when. After every
change and at each verify the proxy's own list is read back: a member whose
state there is not what Dialwatch wants (a proxy restarted or reloaded and
forgot) is set again, audited as ``failover.restore``.

Every change is audited (``failover.disable``/``failover.enable``) and put
on the timeline of each open incident the member is in; a note that stops
a change (every member down, a parent's failure, ``min_active``) goes on
the timeline once, when it first applies. A proxy that refuses or cannot
be reached is a failed audit entry, an appliance fault and a timeline line
with its own words; the engine keeps probing and the next round tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import delete, select

from core.clock import Clock
from monitor import audit
from monitor.dispatcher import OutsideSubscriber
from monitor.events import Event, EventKind
from monitor.faults import NO_FAULTS, Faults
from monitor.health import Health, HealthState
from monitor.store.models import FailoverMember
from monitor.store.repository import StateRepository
from runbooks.failover.config import FailoverGroupConfig, KamailioProxyConfig
from runbooks.failover.decide import Change, GroupRules, MemberView, Wanted, decide
from runbooks.kamailio import Dispatcher, KamailioError, dispatcher_of
from runbooks.runs import start_run

log = logging.getLogger(__name__)

TICK = 5.0
"""Seconds between rounds that need no event (failback after stable time, verify)."""
_MEMBER = FailoverMember.__table__


class FailoverService:
    """Keeps each group's proxy in line with the decision (see the module docstring)."""

    def __init__(
        self,
        repo: StateRepository,
        config: Callable[[], Any],
        health_of: Callable[[str], HealthState | None],
        *,
        clock: Clock,
        faults: Faults = NO_FAULTS,
        dispatcher_for: Callable[[KamailioProxyConfig], Dispatcher] = dispatcher_of,
        wake_runbooks: Callable[[], None] = lambda: None,
    ) -> None:
        self.repo = repo
        self.config = config
        self.health_of = health_of
        self.clock = clock
        self.faults = faults
        self.dispatcher_for = dispatcher_for
        self._locks: dict[str, asyncio.Lock] = {}
        self._notes: dict[str, frozenset[str]] = {}
        self._verified_at: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self.wake_runbooks = wake_runbooks
        self._all_down: dict[str, bool] = {}

    # -- wiring ----------------------------------------------------------------------------
    def groups(self) -> list[FailoverGroupConfig]:
        return list(getattr(self.config(), "failover", []))

    def subscriber(self) -> OutsideSubscriber:
        return OutsideSubscriber(
            "failover", self._on_event, kinds=frozenset({EventKind.TRANSITION})
        )

    async def _on_event(self, event: Event) -> None:
        for group in self.groups():
            if any(m.target == event.target_id for m in group.members):
                await self.evaluate(group)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="failover")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            await self.round()
            await self.clock.sleep(TICK)

    async def round(self) -> None:
        """Every group once: decide, and verify those whose ``verify_every`` is due."""
        for group in self.groups():
            try:
                await self.evaluate(group)
                now = self.clock.time()
                if now - self._verified_at.get(group.id, float("-inf")) >= group.verify_every:
                    await self.verify(group)
            except Exception as exc:  # one group's trouble never stops the others
                log.exception("failover group %s", group.id)
                self.faults.report(f"failover:{group.id}", f"{type(exc).__name__}: {exc}")

    # -- deciding --------------------------------------------------------------------------
    def wanted(self, group_id: str) -> dict[str, FailoverMember]:
        with self.repo.reading() as conn:
            rows = conn.execute(select(_MEMBER).where(_MEMBER.c.group_id == group_id)).all()
        return {row.target_id: row for row in rows}  # type: ignore[misc]

    def views(self, group: FailoverGroupConfig) -> list[MemberView]:
        rows = self.wanted(group.id)
        views = []
        for member in group.members:
            state = self.health_of(member.target)
            row = rows.get(member.target)
            views.append(
                MemberView(
                    member.target,
                    state.health if state is not None else Health.UNKNOWN,
                    state.since if state is not None else None,
                    state.affected_by if state is not None else None,
                    Wanted(row.wanted) if row is not None else Wanted.ACTIVE,
                    approved=row is not None and row.approved_at is not None,
                )
            )
        return views

    async def evaluate(self, group: FailoverGroupConfig) -> list[Change]:
        """Decide for ``group`` and make the changes; returns the changes made."""
        lock = self._locks.setdefault(group.id, asyncio.Lock())
        async with lock:
            now = self.clock.time()
            rules = GroupRules(group.failback_after, group.failback, group.min_active)
            decision = decide(self.views(group), rules, now)
            waiting = tuple(
                f"{target} is up and stable: it waits for a person to approve putting it back "
                "(failback: approve)"
                for target in decision.waiting
            )
            self._new_notes(group, decision.notes + waiting, now)
            self._group_runs(group, now)
            made: list[Change] = []
            for change in decision.changes:
                if await self._apply(group, change):
                    made.append(change)
            if made:
                await self._verify(group)
            return made

    async def _apply(self, group: FailoverGroupConfig, change: Change) -> bool:
        member = next(m for m in group.members if m.target == change.target)
        state = "a" if change.to is Wanted.ACTIVE else "i"  # never "p": our state sticks
        proxy = self.dispatcher_for(group.proxy)
        action = "failover.enable" if change.to is Wanted.ACTIVE else "failover.disable"
        try:
            said = await asyncio.to_thread(
                proxy.set_state, state, group.proxy.set, member.destination
            )
        except KamailioError as exc:
            line = (
                f"failover {group.id}: could not {_verb(change.to)} {change.target} "
                f"({member.destination}): {exc.reason}"
            )
            self._record(group, change.target, action, "failed", line, self.clock.time())
            self.faults.report(f"failover:{group.id}", line)
            return False
        now = self.clock.time()
        with self.repo.transaction() as conn:
            conn.execute(
                delete(_MEMBER).where(
                    (_MEMBER.c.group_id == group.id) & (_MEMBER.c.target_id == change.target)
                )
            )
            if change.to is Wanted.INACTIVE:
                conn.execute(
                    _MEMBER.insert().values(
                        group_id=group.id,
                        target_id=change.target,
                        wanted=change.to.value,
                        changed_at=now,
                        reason=change.reason[:500],
                    )
                )
        where = (
            "calls move to the others" if change.to is Wanted.INACTIVE else "it takes calls again"
        )
        line = (
            f"failover {group.id}: {change.target} {_done(change.to)} the proxy "
            f"({member.destination}): {change.reason}; {where} (proxy: {said})"
        )
        log.warning("%s", line)
        self._record(group, change.target, action, "ok", line, now)
        return True

    def _new_notes(self, group: FailoverGroupConfig, notes: Iterable[str], now: float) -> None:
        current = frozenset(notes)
        for note in sorted(current - self._notes.get(group.id, frozenset())):
            line = f"failover {group.id}: {note}"
            log.warning("%s", line)
            for target in {m.target for m in group.members if note.startswith(m.target)} or {
                m.target for m in group.members
            }:
                self._timeline(target, line, now)
        self._notes[group.id] = current

    def _group_runs(self, group: FailoverGroupConfig, now: float) -> None:
        """``when_all_down`` as every member goes down, ``when_back`` as one is up again."""
        states = [self.health_of(m.target) for m in group.members]
        all_down = all(s is not None and s.health is Health.DOWN for s in states)
        any_up = any(s is not None and s.health is Health.UP for s in states)
        was = self._all_down.get(group.id, False)
        if not was and all_down:
            self._all_down[group.id] = True
            wanted, why = group.when_all_down, "every member is down"
        elif was and any_up:
            self._all_down[group.id] = False
            wanted, why = group.when_back, "a member is up again"
        else:
            return
        if wanted is None:
            return
        runbook = next((r for r in getattr(self.config(), "runbooks", [])
                        if r.id == wanted.runbook), None)  # fmt: skip
        if runbook is None:
            return
        incident = next((i.id for i in self.repo.open_incidents()
                         if set(i.member_ids) & {m.target for m in group.members}), None)  # fmt: skip
        try:
            run = start_run(
                self.repo, f"failover:{group.id}", runbook, at=now, target_id=None,
                incident_id=incident, params=wanted.params,
            )  # fmt: skip
        except ValueError as exc:  # one already active, or its params no longer fit
            self.faults.report(f"failover:{group.id}", f"{wanted.runbook} not started: {exc}")
            return
        line = f"failover {group.id}: {why}: started {runbook.id} (run {run.id})"
        log.warning("%s", line)
        for member in group.members:
            self._timeline(member.target, line, now)
        self.wake_runbooks()

    # -- verifying -------------------------------------------------------------------------
    async def verify(self, group: FailoverGroupConfig) -> list[str]:
        lock = self._locks.setdefault(group.id, asyncio.Lock())
        async with lock:
            return await self._verify(group)

    async def _verify(self, group: FailoverGroupConfig) -> list[str]:
        """Read the proxy's view back; set again what it forgot. Returns the targets set."""
        proxy = self.dispatcher_for(group.proxy)
        now = self.clock.time()
        self._verified_at[group.id] = now
        try:
            listed = await asyncio.to_thread(proxy.list)
        except KamailioError as exc:
            self.faults.report(f"failover:{group.id}", f"reading the proxy back: {exc.reason}")
            return []
        active = {d.uri: d.active for d in listed if d.set_id == group.proxy.set}
        rows = self.wanted(group.id)
        restored = []
        for member in group.members:
            wanted = Wanted(rows[member.target].wanted) if member.target in rows else Wanted.ACTIVE
            if member.destination not in active:
                line = (
                    f"failover {group.id}: {member.destination} ({member.target}) is not in the "
                    f"proxy's dispatcher set {group.proxy.set}"
                )
                self.faults.report(f"failover:{group.id}", line)
                continue
            if active[member.destination] == (wanted is Wanted.ACTIVE):
                continue
            state = "a" if wanted is Wanted.ACTIVE else "i"
            try:
                await asyncio.to_thread(proxy.set_state, state, group.proxy.set, member.destination)
            except KamailioError as exc:
                self.faults.report(
                    f"failover:{group.id}", f"restoring {member.target}: {exc.reason}"
                )
                continue
            line = (
                f"failover {group.id}: the proxy had {member.target} "
                f"{'inactive' if wanted is Wanted.ACTIVE else 'active'} ({member.destination}); "
                f"set {wanted.value} again (a proxy restart or reload forgets the state)"
            )
            log.warning("%s", line)
            self._record(group, member.target, "failover.restore", "ok", line, now)
            restored.append(member.target)
        return restored

    # -- records ---------------------------------------------------------------------------
    def _record(
        self, group: FailoverGroupConfig, target: str, action: str, result: str, line: str,
        at: float,
    ) -> None:  # fmt: skip
        with self.repo.transaction() as conn:
            audit.record(
                conn,
                at=at,
                actor="engine",
                action=action,
                result=result,  # type: ignore[arg-type]
                object=f"failover:{group.id}/{target}",
                detail=line,
            )
        self._timeline(target, line, at)

    def _timeline(self, target: str, line: str, at: float) -> None:
        for incident in self.repo.open_incidents():
            if target in incident.member_ids:
                self.repo.add_incident_event(incident.id, "failover", at, target, line)


def _verb(to: Wanted) -> str:
    return "put back" if to is Wanted.ACTIVE else "take out"


def _done(to: Wanted) -> str:
    return "put back into" if to is Wanted.ACTIVE else "taken out of"
