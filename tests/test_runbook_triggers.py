"""Rules start runbooks: the ``run:`` action's triggers against a real SQLite state DB, events
made the way the engine makes them, time given by the test."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update

from dialwatch.schema import Config
from monitor.events import Event, EventKind, NewEvent, record
from monitor.store import queries
from monitor.store.db import open_database
from monitor.store.models import AuditEntry, TargetState
from monitor.store.repository import StateRepository
from runbooks import runs
from runbooks.triggers import RunTriggers

T0 = 1_800_000_000.0


def config(**rule: Any) -> Any:
    return Config.model_validate(
        {
            "targets": [
                {"id": "trunk-a", "kind": "tcp", "address": "192.0.2.1:5060",
                 "tags": {"role": "trunk"}},
                {"id": "crm", "kind": "tcp", "address": "192.0.2.9:5432"},
            ],
            "runbooks": [{"id": "pause", "cooldown": "10m",
                          "parameters": {"campaign": {"default": "all"}},
                          "steps": [{"kind": "wait_for", "health": ["up"]}]}],
            "rules": [{"id": "trunk-down",
                       "when": {"event": ["opened", "transition"], "tags": {"role": "trunk"},
                                "health": ["down"]},
                       "run": {"runbook": "pause", "params": {"campaign": "c7"}}, **rule}],
        }
    )  # fmt: skip


class World:
    def __init__(self, tmp_path: Path, **rule: Any) -> None:
        self.repo = StateRepository(open_database(None, tmp_path))
        self.config = config(**rule)
        self.woken = 0
        self.triggers = RunTriggers(lambda: self.config, wake=self.wake)

    def wake(self) -> None:
        self.woken += 1

    def health(self, target: str, health: str, since: float) -> None:
        with self.repo.transaction() as conn:
            found = conn.execute(select(TargetState).where(TargetState.target_id == target)).first()
            if found is None:
                conn.execute(insert(TargetState).values(
                    target_id=target, kind="tcp", health=health, since=since))  # fmt: skip
            else:
                conn.execute(update(TargetState).where(TargetState.target_id == target)
                             .values(health=health, since=since))  # fmt: skip

    def opened(self, target: str, at: float) -> tuple[int, Event]:
        self.health(target, "down", at)
        with self.repo.transaction():
            incident = self.repo.open_incident(target, "down", f"{target} down", at)
            event = record(
                self.repo, NewEvent(EventKind.OPENED, at, target_id=target, incident_id=incident)
            )
        return incident, event

    def transition(self, target: str, health: str, at: float) -> Event:
        self.health(target, health, at)
        with self.repo.transaction():
            return record(self.repo, NewEvent(EventKind.TRANSITION, at, target_id=target,
                                              payload={"to": health}))  # fmt: skip

    def handle(self, event: Event) -> None:
        with self.repo.transaction():
            self.triggers.handle(self.repo, event)

    def runs(self) -> list[runs.RunRow]:
        with self.repo.reading() as conn:
            return sorted(runs.runs(conn, limit=100), key=lambda r: r.id)

    def end(self, run_id: int, at: float) -> None:
        with self.repo.transaction() as conn:
            conn.execute(
                update(runs._RUN)
                .where(runs._RUN.c.id == run_id)
                .values(state="succeeded", started_at=at - 5, ended_at=at)
            )


def test_a_rule_queues_one_run_with_its_params_and_incident(tmp_path: Path) -> None:
    w = World(tmp_path)
    transition = w.transition("trunk-a", "down", T0)
    w.handle(transition)
    incident, opened = w.opened("trunk-a", T0)
    w.handle(opened)  # the same hold: no second run
    [run] = w.runs()
    assert (run.runbook_id, run.target_id, run.state) == ("pause", "trunk-a", "queued")
    assert run.started_by == "rule:trunk-down" and run.rule_id == "trunk-down"
    assert run.params == {"campaign": "c7"}
    assert run.incident_id is None  # the transition came before the incident opened
    with w.repo.reading() as conn:
        audited = conn.execute(select(AuditEntry.actor, AuditEntry.action)).all()
    assert ("rule:trunk-down", "runbook.start") in audited
    assert w.triggers.subscriber().after_commit is not None


def test_an_opened_incident_links_the_run_to_it(tmp_path: Path) -> None:
    w = World(tmp_path, when={"event": "opened", "tags": {"role": "trunk"}})
    w.handle(w.transition("crm", "down", T0))  # not a trunk
    incident, opened = w.opened("trunk-a", T0)
    w.handle(opened)
    [run] = w.runs()
    assert run.incident_id == incident
    with w.repo.reading() as conn:
        lines = [e.text for e in queries.incident_events(conn, incident) if e.kind == "runbook"]
    assert lines == ["runbook pause (run 1) started by rule:trunk-down"]


def test_a_hold_arms_a_run_that_starts_when_it_held_or_is_dropped(tmp_path: Path) -> None:
    when = {"event": "transition", "tags": {"role": "trunk"}, "health": ["down"], "for": "30s"}
    w = World(tmp_path, when=when)
    w.handle(w.transition("trunk-a", "down", T0))
    [armed] = w.runs()
    assert armed.state == "armed"
    assert w.triggers.tick(w.repo, T0 + 29) == 0
    assert w.triggers.tick(w.repo, T0 + 30) == 1
    assert w.runs()[0].state == "queued" and w.woken >= 1

    w.end(armed.id, T0 + 40)
    w.handle(w.transition("trunk-a", "up", T0 + 41))
    # Down again after the cooldown, but back up before for: → dropped, never started.
    w.handle(w.transition("trunk-a", "down", T0 + 1000))
    w.health("trunk-a", "up", T0 + 1010)
    w.triggers.tick(w.repo, T0 + 1030)
    second = w.runs()[1]
    assert second.state == "dropped" and second.started_at is None
    assert "not started: target 'trunk-a' left down" in second.error


def test_mode_approve_waits_for_a_person(tmp_path: Path) -> None:
    w = World(tmp_path, run={"runbook": "pause", "mode": "approve"})
    w.handle(w.transition("trunk-a", "down", T0))
    [run] = w.runs()
    assert run.state == "pending_approval"
    done = runs.decide_start(w.repo, "user:li", run.id, True, at=T0 + 5)
    assert done.state == "queued" and done.decided_by == "user:li"


def test_a_flapping_trunk_cannot_start_a_run_inside_the_cooldown(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.handle(w.transition("trunk-a", "down", T0))
    [first] = w.runs()
    w.end(first.id, T0 + 60)
    w.handle(w.transition("trunk-a", "up", T0 + 61))
    w.handle(w.transition("trunk-a", "down", T0 + 120))  # 60 s after the end: inside 10m
    second = w.runs()[1]
    assert second.state == "dropped"
    assert second.error == (
        "rule trunk-down did not start pause for trunk-a: the last run ended 1m ago (cooldown 10m)"
    )
    w.handle(w.transition("trunk-a", "up", T0 + 130))
    w.handle(w.transition("trunk-a", "down", T0 + 60 + 600))  # the cooldown is over
    assert w.runs()[-1].state == "queued"


def test_a_disabled_rule_or_a_running_run_starts_nothing(tmp_path: Path) -> None:
    w = World(tmp_path, enabled=False)
    w.handle(w.transition("trunk-a", "down", T0))
    assert w.runs() == []
    w.config = config()
    w.handle(w.transition("trunk-a", "down", T0 + 1))
    w.handle(w.transition("trunk-a", "up", T0 + 2))
    w.handle(w.transition("trunk-a", "down", T0 + 3))  # a new hold, the first run still queued
    assert [r.state for r in w.runs()] == ["queued"]


@pytest.mark.parametrize(
    ("runbook", "message"),
    [
        ({"id": "x", "steps": []}, "runbooks[0].steps: List should have at least 1 item"),
    ],
)
def test_a_runbook_needs_steps(runbook: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception, match="at least 1 item"):
        Config.model_validate({"runbooks": [runbook]})


def test_a_hold_that_ends_inside_the_cooldown_is_dropped(tmp_path: Path) -> None:
    when = {"event": "transition", "tags": {"role": "trunk"}, "health": ["down"], "for": "30s"}
    w = World(tmp_path, when=when)
    w.handle(w.transition("trunk-a", "down", T0))
    w.triggers.tick(w.repo, T0 + 30)
    [first] = w.runs()
    w.end(first.id, T0 + 60)
    w.handle(w.transition("trunk-a", "up", T0 + 61))
    w.handle(w.transition("trunk-a", "down", T0 + 100))
    w.triggers.tick(w.repo, T0 + 130)  # held for 30 s, but 70 s after the last run ended
    second = w.runs()[1]
    assert second.state == "dropped"
    assert second.error == "not started: the last run ended 70s ago (cooldown 10m)"
