"""Rules start runbooks: events in, runs queued (or armed, or waiting for approval) out.

``RunTriggers.handle`` is a ``DbSubscriber`` (``monitor.dispatcher``): it runs
inside the transaction that moves its cursor, so an event starts its runs
**exactly once**, even across a crash. For each event that can start
something (a transition, an incident opened, joined or declared) every
enabled rule with a ``run:`` action is weighed on the event's target
(``monitor.rules.evaluate``):

- it fires: a run is queued (``mode: auto``) or waits for an operator to
  approve its start (``mode: approve``); the engine is woken after commit;
- it has a ``for:`` not yet waited out: an ``armed`` run with ``check_at``;
  ``tick`` rechecks it then and queues it, or drops it when the hold broke;
- a run of that runbook for that target is active already: nothing (one
  at a time); the same hold never starts a second run;
- the last run for that target ended less than the runbook's ``cooldown``
  ago: a ``dropped`` run says so (visible in the console and on the
  timeline), so a flapping trunk cannot make a failover ping-pong.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, select, update

from core.config import format_duration
from monitor import audit
from monitor.components import members
from monitor.dispatcher import DbSubscriber
from monitor.events import Event, EventKind
from monitor.health import Health
from monitor.rules import Facts, evaluate, recheck
from monitor.store import queries
from monitor.store.models import (
    INCIDENT_OPEN,
    RUN_ARMED,
    RUN_DROPPED,
    RUN_PENDING_APPROVAL,
    RUN_QUEUED,
    RunbookRun,
)
from monitor.store.repository import StateRepository
from runbooks import runs
from runbooks.config import RunbookConfig
from runbooks.rule_action import RunActionConfig

log = logging.getLogger(__name__)

START_EVENTS = frozenset(
    {EventKind.TRANSITION, EventKind.OPENED, EventKind.JOINED, EventKind.DECLARED}
)
_RUN = RunbookRun.__table__


class RunTriggers:
    """Turns rule firings into runs (see the module docstring)."""

    def __init__(
        self, config: Callable[[], Any], *, wake: Callable[[], None] = lambda: None
    ) -> None:
        self.config = config
        self.wake = wake

    def subscriber(self, name: str = "runbooks.triggers") -> DbSubscriber:
        return DbSubscriber(name, self.handle, kinds=START_EVENTS, after_commit=self.wake)

    def _rules(self) -> list[tuple[Any, RunActionConfig]]:
        return [
            (rule, rule.run)
            for rule in getattr(self.config(), "rules", [])
            if rule.enabled and getattr(rule, "run", None) is not None
        ]

    def _runbooks(self) -> dict[str, RunbookConfig]:
        return {r.id: r for r in getattr(self.config(), "runbooks", [])}

    def _facts(self, conn: Connection, target_id: str, event: str, severity: Any) -> Facts | None:
        row = queries.target(conn, target_id)
        if row is None:
            return None
        config = self.config()
        targets = list(getattr(config, "targets", []))
        target = next((t for t in targets if t.id == target_id), None)
        components = frozenset(
            c.id for c in getattr(config, "components", []) if target_id in members(c, targets)
        )
        return Facts(
            event=event,
            target_id=target_id,
            health=row.health,
            since=row.since,
            tags=dict(target.tags) if target is not None else {},
            components=components,
            severity=severity,
        )

    # -- events ------------------------------------------------------------------------
    def handle(self, repo: StateRepository, event: Event) -> None:
        rules = self._rules()
        if not rules:
            return
        with repo.transaction() as conn:
            incident = queries.incident_of_event(conn, event.incident_id, event.target_id)
            target_id = event.target_id or (incident.root_target_id if incident else None)
            if target_id is None:
                return
            severity = (
                incident.severity
                if incident is not None and event.kind != EventKind.TRANSITION
                else None
            )
            facts = self._facts(conn, target_id, str(event.kind), severity)
            if facts is None:
                return
            for rule, action in rules:
                verdict = evaluate(rule, facts, event.at)
                if verdict.fires or verdict.recheck_at is not None:
                    self._start(repo, conn, rule, action, facts, incident, event.at,
                                verdict.recheck_at, verdict.reason)  # fmt: skip

    def _start(
        self, repo: StateRepository, conn: Connection, rule: Any, action: RunActionConfig,
        facts: Facts, incident: Any, at: float, check_at: float | None, reason: str,
    ) -> None:  # fmt: skip
        runbook = self._runbooks().get(action.runbook)
        if runbook is None:  # the config check refuses this; a reload race is possible
            log.warning(
                "rule %s names runbook %s, which is not in the config", rule.id, action.runbook
            )
            return
        target = facts.target_id
        same_hold = conn.execute(
            select(_RUN.c.id).where(
                _RUN.c.rule_id == rule.id, _RUN.c.runbook_id == runbook.id,
                _RUN.c.target_id == target, _RUN.c.hold_since == facts.since,
            )
        ).first()  # fmt: skip
        if same_hold is not None or runs.active_run(conn, runbook.id, target) is not None:
            return
        incident_id = (
            incident.id if incident is not None and incident.state == INCIDENT_OPEN else None
        )
        actor = f"rule:{rule.id}"
        last = runs.last_ended_at(conn, runbook.id, target)
        if check_at is None and last is not None and at - last < runbook.cooldown:
            run = runs.start_run(
                repo, actor, runbook, at=at, target_id=target, incident_id=incident_id,
                params=action.params, rule_id=rule.id, state=RUN_DROPPED, hold_since=facts.since,
            )  # fmt: skip
            why = (
                f"rule {rule.id} did not start {runbook.id} for {target}: the last run ended "
                f"{format_duration(round(at - last))} ago (cooldown {format_duration(runbook.cooldown)})"
            )
            conn.execute(update(_RUN).where(_RUN.c.id == run.id).values(ended_at=at, error=why))
            runs.note(repo, conn, run, RUN_DROPPED, why, at, actor=actor)
            return
        state = RUN_ARMED if check_at is not None else _state_of(action)
        try:
            run = runs.start_run(
                repo, actor, runbook, at=at, target_id=target, incident_id=incident_id,
                params=action.params, rule_id=rule.id, state=state, check_at=check_at,
                hold_since=facts.since, hold_health=facts.health.value,
            )  # fmt: skip
        except ValueError as exc:  # its params do not fit the runbook (a reload changed it)
            log.warning("rule %s could not start %s: %s", rule.id, runbook.id, exc)
            return
        audit.record(
            conn, at=at, actor=actor, action="runbook.start", object=f"run:{run.id}",
            detail=f"{runbook.id} for {target}: {reason}"[:2000],
        )  # fmt: skip

    # -- time --------------------------------------------------------------------------
    def tick(self, repo: StateRepository, now: float) -> int:
        """Armed runs whose ``for:`` is over: queued (or pending approval), or dropped."""
        rules = {rule.id: (rule, action) for rule, action in self._rules()}
        started = 0
        with repo.transaction() as conn:
            due = runs.runs(conn, states=(RUN_ARMED,), limit=500)
            for run in [r for r in due if r.check_at is not None and r.check_at <= now]:
                found = rules.get(run.rule_id or "")
                current = (
                    self._facts(conn, run.target_id, "opened", None) if run.target_id else None
                )
                if found is None or current is None or run.target_id is None:
                    self._drop(
                        repo, conn, run, "its rule or target is not in the config any more", now
                    )
                    continue
                rule, action = found
                # The hold was armed by an event the rule selects; which one does not
                # change the verdict, only that it is one of them.
                current = Facts(
                    event=rule.when.event[0], target_id=current.target_id, health=current.health,
                    since=current.since, tags=current.tags, components=current.components,
                )  # fmt: skip
                armed = Facts(
                    event=current.event, target_id=current.target_id,
                    health=Health(run.hold_health) if run.hold_health else current.health,
                    since=run.hold_since if run.hold_since is not None else current.since,
                    tags=current.tags, components=current.components,
                )  # fmt: skip
                verdict = recheck(rule, armed, current, now)
                if verdict.recheck_at is not None and not verdict.fires:
                    conn.execute(
                        update(_RUN).where(_RUN.c.id == run.id).values(check_at=verdict.recheck_at)
                    )
                    continue
                if not verdict.fires:
                    self._drop(repo, conn, run, verdict.reason, now)
                    continue
                runbook = self._runbooks().get(run.runbook_id)
                last = runs.last_ended_at(conn, run.runbook_id, run.target_id)
                if runbook is not None and last is not None and now - last < runbook.cooldown:
                    why = (
                        f"the last run ended {format_duration(round(now - last))} ago "
                        f"(cooldown {format_duration(runbook.cooldown)})"
                    )
                    self._drop(repo, conn, run, why, now)
                    runs.note(repo, conn, run, RUN_DROPPED,
                              f"rule {rule.id} did not start {run.runbook_id} for "
                              f"{run.target_id}: {why}", now, actor=f"rule:{rule.id}")  # fmt: skip
                    continue
                state = _state_of(action)
                conn.execute(
                    update(_RUN).where(_RUN.c.id == run.id).values(state=state, check_at=None)
                )
                fresh = runs.get_run(conn, run.id)
                waits = (
                    "; it waits for a person to approve the start"
                    if state == RUN_PENDING_APPROVAL
                    else ""
                )
                runs.note(repo, conn, fresh, state,
                          f"rule {rule.id} started {run.runbook_id} for {run.target_id} (run {run.id}): "
                          f"{verdict.reason}{waits}", now, actor=f"rule:{rule.id}")  # fmt: skip
                audit.record(
                    conn, at=now, actor=f"rule:{rule.id}", action="runbook.start",
                    object=f"run:{run.id}", detail=f"{run.runbook_id} for {run.target_id}: {verdict.reason}"[:2000],
                )  # fmt: skip
                started += 1
        if started:
            self.wake()
        return started

    def _drop(
        self, repo: StateRepository, conn: Connection, run: runs.RunRow, why: str, now: float
    ) -> None:
        conn.execute(
            update(_RUN).where(_RUN.c.id == run.id)
            .values(state=RUN_DROPPED, check_at=None, ended_at=now, error=f"not started: {why}"[:2000])
        )  # fmt: skip
        log.info("run %d of %s not started: %s", run.id, run.runbook_id, why)


def _state_of(action: RunActionConfig) -> str:
    return RUN_PENDING_APPROVAL if action.mode == "approve" else RUN_QUEUED
