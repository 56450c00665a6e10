"""The step kinds that act through the monitor's own functions and the engine's health:
``wait_for``, ``set_maintenance``, ``incident_update``, ``notify`` — against a real SQLite
state DB, time from an injected clock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert

from core.clock import ManualClock
from monitor.health import Health, HealthState
from monitor.manual_maintenance import open_windows
from monitor.store import queries
from monitor.store.db import open_database
from monitor.store.models import TargetState
from monitor.store.repository import StateRepository
from runbooks.engine import render_step
from runbooks.steps import STEPS
from runbooks.steps.base import StepContext, StepFailed, StepResult, StepServices

T0 = 1_800_000_000.0


class World:
    def __init__(self, tmp_path: Path) -> None:
        self.repo = StateRepository(open_database(None, tmp_path))
        self.clock = ManualClock(T0)
        self.health: dict[str, HealthState] = {}
        self.told: list[tuple[list[str], str, str]] = []
        with self.repo.transaction() as conn:
            conn.execute(insert(TargetState).values(target_id="pbx", kind="tcp", health="down",
                                                    since=T0))  # fmt: skip
        self.incident = self.repo.open_incident("pbx", "down", "pbx down", T0)

    def notify(self, to: list[str], subject: str, text: str) -> list[str]:
        self.told.append((list(to), subject, text))
        return [r.split(":", 1)[1] for r in to]

    def run(self, fields: dict[str, Any], *, paging: bool = True, target: str | None = "pbx",
            values: dict[str, Any] | None = None,
            each_second: Any = None) -> StepResult:  # fmt: skip
        kind = STEPS[fields["kind"]]
        config = render_step(kind.model.model_validate(fields), values or {})
        services = StepServices(
            health_of=self.health.get, repo=self.repo, notify=self.notify if paging else None
        )
        ctx = StepContext(
            run_id=7, runbook_id="rb", position=0, target_id=target, incident_id=self.incident,
            started_by="rule:r", deadline=self.clock.monotonic() + config.timeout,
            clock=self.clock, services=services, log=lambda _line: None,
        )  # fmt: skip

        async def go() -> StepResult:
            task = asyncio.ensure_future(kind.implementation(config).run(ctx))
            if each_second is None:  # a step that does its work in a thread: no time passes
                return await task
            second = 0
            while not task.done():
                second += 1
                each_second(second)
                await self.clock.advance(1)
            return task.result()

        return asyncio.run(go())

    def set(self, target: str, health: Health) -> None:
        self.health[target] = HealthState(target, health, self.clock.time())


def test_wait_for_succeeds_once_the_target_is_up(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.set("pbx", Health.DOWN)

    def later(second: int) -> None:
        if second == 5:
            w.set("pbx", Health.UP)

    done = w.run({"kind": "wait_for", "health": ["up"], "timeout": "1m"}, each_second=later)
    assert done.summary == "pbx is up" and done.data == {"health": "up"}
    assert w.clock.time() - T0 < 10  # it looked every second, not at the end


def test_wait_for_fails_at_its_timeout_saying_where_the_target_is(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.set("pbx", Health.DOWN)
    with pytest.raises(StepFailed, match="pbx is still down, not up"):
        w.run({"kind": "wait_for", "health": ["up"], "timeout": "10s"}, each_second=lambda _s: None)
    with pytest.raises(StepFailed, match="no target 'nope' in the engine"):
        w.run({"kind": "wait_for", "health": ["up"], "target": "nope"}, each_second=lambda _s: None)
    done = w.run({"kind": "wait_for", "health": ["up"], "not": True}, each_second=lambda _s: None)
    assert done.summary == "pbx is down"


def test_set_maintenance_starts_and_ends_a_window_as_the_runbook(tmp_path: Path) -> None:
    w = World(tmp_path)
    started = w.run({"kind": "set_maintenance", "for": "30m", "reason": "run {{ run.id }}"},
                    values={"run": {"id": 7}})  # fmt: skip
    assert started.summary == "pbx is in maintenance for 1800 s"
    [window] = open_windows(w.repo.engine, w.clock.time())
    assert (window.target_id, window.by, window.reason) == ("pbx", "runbook:rb", "run 7")
    assert window.until == T0 + 1800
    with pytest.raises(StepFailed, match="maintenance window .* already"):
        w.run({"kind": "set_maintenance"})
    ended = w.run({"kind": "set_maintenance", "action": "end"})
    assert ended.summary == "maintenance of pbx ended"
    assert open_windows(w.repo.engine, w.clock.time()) == []
    assert w.run({"kind": "set_maintenance", "action": "end"}).summary == (
        "pbx had no maintenance window open"
    )


def test_incident_update_sets_cause_eta_note_and_a_customer_update(tmp_path: Path) -> None:
    w = World(tmp_path)
    done = w.run(
        {"kind": "incident_update", "cause": "carrier {{ target.id }} failed", "eta": "30m",
         "note": "failover by run 7",
         "customer_update": {"zh-CN": "已切换备用线路", "en": "Calls go over a backup carrier"}},
        values={"target": {"id": "pbx"}},
    )  # fmt: skip
    assert done.summary == f"incident {w.incident}: cause and eta, note, customer update set"
    with w.repo.reading() as conn:
        row = queries.incident(conn, w.incident)
        updates = queries.customer_updates(conn, [w.incident])[w.incident]
        lines = [e.text for e in queries.incident_events(conn, w.incident)]
    assert row is not None and row.cause == "carrier pbx failed"
    assert row.eta == T0 + 1800
    assert updates[0].text["en"] == "Calls go over a backup carrier"
    assert any("failover by run 7" in line for line in lines)


def test_incident_update_without_an_incident_fails_for_good(tmp_path: Path) -> None:
    w = World(tmp_path)
    w.incident = None  # type: ignore[assignment]
    with pytest.raises(StepFailed, match="this run has no incident") as raised:
        w.run({"kind": "incident_update", "note": "x"})
    assert raised.value.retry is False


def test_notify_goes_through_paging_or_records_its_intent(tmp_path: Path) -> None:
    w = World(tmp_path)
    fields = {"kind": "notify", "to": ["person:chen", "schedule:noc"],
              "subject": "{{ target.id }} is out", "text": "run {{ run.id }}"}  # fmt: skip
    values = {"target": {"id": "trunk-ct"}, "run": {"id": 7}}
    sent = w.run(fields, values=values)
    assert sent.summary == "queued for chen, noc"
    assert w.told == [(["person:chen", "schedule:noc"], "trunk-ct is out", "run 7")]
    recorded = w.run(fields, values=values, paging=False)
    assert recorded.summary.startswith("paging is not running here: recorded, not sent")
