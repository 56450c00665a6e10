"""The runbook engine with real local commands (``shell`` steps), a real SQLite state DB
and an injected clock: steps in order, values between them, retries with back-off,
on_failure, timeouts that kill, people's answers, restarts, aborts, dry-runs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import ManualClock
from dialwatch.schema import Config
from monitor.events import events_after
from monitor.incident_actions import Conflict
from monitor.store import queries
from monitor.store.db import open_database
from monitor.store.models import AuditEntry
from monitor.store.repository import StateRepository
from runbooks import runs
from runbooks.engine import RunbookEngine
from runbooks.runs import RunRow, StepRow

T0 = 1_800_000_000.0
ECHO, SLEEP, FALSE, TOUCH, SH = "/bin/echo", "/bin/sleep", "/bin/false", "/usr/bin/touch", "/bin/sh"


def config(*runbooks: dict[str, Any], **extra: Any) -> Any:
    return Config.model_validate(
        {
            "targets": [{"id": "trunk-a", "kind": "tcp", "address": "192.0.2.1:5060",
                         "name": "Carrier A"}],
            "runbooks": list(runbooks),
            "runbook_settings": {"shell_allow": [ECHO, SLEEP, FALSE, TOUCH, SH]},
            **extra,
        }
    )  # fmt: skip


class World:
    def __init__(self, tmp_path: Path, *runbooks: dict[str, Any], mask: Any = None) -> None:
        self.tmp = tmp_path
        self.repo = StateRepository(open_database(None, tmp_path))
        self.clock = ManualClock(T0)
        self.config = config(*runbooks)
        self.engine = self.make_engine(mask)

    def make_engine(self, mask: Any = None) -> RunbookEngine:
        return RunbookEngine(
            self.repo, lambda: self.config, clock=self.clock,
            **({"mask": mask} if mask else {}),
        )  # fmt: skip

    def runbook(self, runbook_id: str) -> Any:
        return next(r for r in self.config.runbooks if r.id == runbook_id)

    def start(self, runbook_id: str, actor: str = "user:zhang", **kw: Any) -> RunRow:
        return runs.start_run(
            self.repo, actor, self.runbook(runbook_id), at=self.clock.time(),
            target_id=kw.pop("target_id", "trunk-a"), **kw,
        )  # fmt: skip

    def run(self, run_id: int) -> RunRow:
        with self.repo.reading() as conn:
            return runs.get_run(conn, run_id)

    def steps(self, run_id: int) -> list[StepRow]:
        with self.repo.reading() as conn:
            return runs.steps_of(conn, run_id)


async def until(check: Callable[[], bool], seconds: float = 15.0) -> None:
    """Wait for real work (a subprocess, a thread) to reach a state; never a timing assert."""
    for _ in range(int(seconds / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the state was not reached")


def ended(w: World, run_id: int) -> Callable[[], bool]:
    return lambda: w.run(run_id).ended_at is not None


async def execute(w: World, run_id: int) -> RunRow:
    await w.engine.start()
    try:
        await until(ended(w, run_id))
    finally:
        await w.engine.stop()
    return w.run(run_id)


def test_steps_run_in_order_and_later_ones_read_earlier_output(tmp_path: Path) -> None:
    w = World(tmp_path, {
        "id": "rb", "parameters": {"carrier": {"default": "ct"}},
        "steps": [
            {"id": "first", "kind": "shell", "command": ECHO + " carrier {{ params.carrier }}"},
            {"id": "second", "kind": "shell",
             "command": ECHO + " got {{ steps.first.output | trim }} for {{ target.name }}"},
        ],
    })  # fmt: skip
    incident = w.repo.open_incident("trunk-a", "down", "trunk-a down", T0)
    run = w.start("rb", incident_id=incident)
    done = asyncio.run(execute(w, run.id))
    assert done.state == "succeeded" and done.error == "all 2 steps succeeded"
    first, second = w.steps(run.id)
    assert (first.state, first.output.strip()) == ("succeeded", "carrier ct")
    assert second.output.strip() == "got carrier ct for Carrier A"
    with w.repo.reading() as conn:
        timeline = [e.text for e in queries.incident_events(conn, incident) if e.kind == "runbook"]
        kinds = [e.payload["state"] for e in events_after(conn, 0) if e.kind == "run"]
        audited = conn.execute(select(AuditEntry.action, AuditEntry.result)).all()
    assert timeline[0].startswith("runbook rb (run 1) started by user:zhang")
    assert any("step second succeeded" in line for line in timeline)
    assert timeline[-1].startswith("run 1 (rb) succeeded")
    assert kinds[0] == "queued" and kinds[-1] == "succeeded"
    assert ("runbook.step", "ok") in audited and ("runbook.run", "ok") in audited


def test_a_failing_step_is_retried_with_doubling_backoff_then_aborts(tmp_path: Path) -> None:
    w = World(tmp_path, {"id": "rb", "steps": [
        {"kind": "shell", "command": FALSE, "retries": 2, "backoff": "10s"},
        {"kind": "shell", "command": ECHO + " never"},
    ]})  # fmt: skip
    run = w.start("rb")

    async def scenario() -> RunRow:
        await w.engine.start()
        await until(lambda: len(w.steps(run.id)) == 1 and w.steps(run.id)[0].ended_at is not None)
        await w.clock.advance(9.9)
        assert len(w.steps(run.id)) == 1  # the first back-off is 10 s
        await w.clock.advance(0.1)
        await until(lambda: len(w.steps(run.id)) == 2 and w.steps(run.id)[1].ended_at is not None)
        await w.clock.advance(19.9)
        assert len(w.steps(run.id)) == 2  # doubled: 20 s
        await w.clock.advance(0.1)
        await until(ended(w, run.id))
        await w.engine.stop()
        return w.run(run.id)

    done = asyncio.run(scenario())
    attempts = w.steps(run.id)
    assert [(s.attempt, s.state) for s in attempts] == [(1, "failed"), (2, "failed"), (3, "failed")]
    assert attempts[0].summary == "/bin/false exited 1 (expected [0])"
    assert done.state == "failed"
    assert done.error == "step step-1 failed: /bin/false exited 1 (expected [0])"


def test_on_failure_continue_and_rollback(tmp_path: Path) -> None:
    w = World(
        tmp_path,
        {"id": "goes-on", "steps": [
            {"kind": "shell", "command": FALSE, "on_failure": "continue"},
            {"id": "after", "kind": "shell", "command": ECHO + " after"},
        ]},
        {"id": "rolls", "steps": [
            {"kind": "shell", "command": ECHO + " one"},
            {"kind": "shell", "command": FALSE, "on_failure": "rollback"},
            {"kind": "shell", "command": ECHO + " never"},
        ], "rollback": [{"id": "undo", "kind": "shell", "command": ECHO + " undone"}]},
        {"id": "rollback-fails", "steps": [
            {"kind": "shell", "command": FALSE, "on_failure": "rollback"},
        ], "rollback": [{"id": "undo", "kind": "shell", "command": FALSE}]},
    )  # fmt: skip
    a = w.start("goes-on")
    b = w.start("rolls")
    c = w.start("rollback-fails")

    async def scenario() -> None:
        await w.engine.start()
        await until(lambda: all(w.run(r.id).ended_at for r in (a, b, c)))
        await w.engine.stop()

    asyncio.run(scenario())
    assert w.run(a.id).state == "succeeded"
    assert [s.state for s in w.steps(a.id)] == ["failed", "succeeded"]
    assert w.run(b.id).state == "rolled_back"
    assert [(s.phase, s.step_id, s.state) for s in w.steps(b.id)] == [
        ("main", "step-1", "succeeded"), ("main", "step-2", "failed"),
        ("rollback", "undo", "succeeded"),
    ]  # fmt: skip
    assert w.run(c.id).state == "failed"
    assert w.run(c.id).error.startswith("rollback step undo failed: /bin/false exited 1")


def test_a_step_is_stopped_at_its_timeout_and_its_process_is_killed(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    w = World(tmp_path, {"id": "rb", "steps": [
        {"kind": "shell", "timeout": "5s",
         "command": SH + " -c 'echo $$ > " + str(pidfile) + "; exec /bin/sleep 300'"},
    ]})  # fmt: skip
    run = w.start("rb")

    async def scenario() -> None:
        await w.engine.start()
        await until(lambda: pidfile.exists() and pidfile.read_text().strip() != "")
        await w.clock.advance(5)
        await until(ended(w, run.id))
        await w.engine.stop()

    asyncio.run(scenario())
    [step] = w.steps(run.id)
    assert step.state == "timed_out" and step.summary == "no result in 5s: stopped"
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        for _ in range(100):  # reaped by the step: gone, not a zombie of ours
            os.kill(pid, 0)
            asyncio.run(asyncio.sleep(0.02))


def test_values_reach_a_command_as_one_word_and_templates_cannot_reach_code(tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    w = World(tmp_path, {"id": "rb", "steps": [
        {"id": "say", "kind": "shell", "command": ECHO + " cause: {{ incident.cause }}"},
        {"id": "code", "kind": "shell", "command": ECHO + " {{ ''.__class__.__mro__ }}"},
    ]})  # fmt: skip
    incident = w.repo.open_incident("trunk-a", "down", "trunk-a down", T0)
    # The cause as a carrier's 503 reason phrase would put it there.
    w.repo.set_incident_fields(incident, cause=f"503 ; touch {pwned}")
    run = w.start("rb", incident_id=incident)
    done = asyncio.run(execute(w, run.id))
    say, code = w.steps(run.id)
    assert say.output.strip() == f"cause: 503 ; touch {pwned}"
    assert not pwned.exists()
    assert code.state == "failed" and code.summary.startswith(
        "template refused: access to attribute"
    )
    assert done.state == "failed"


def test_an_approval_waits_and_the_starter_cannot_give_it(tmp_path: Path) -> None:
    w = World(tmp_path, {"id": "rb", "steps": [
        {"kind": "approve", "prompt": "Pause the campaigns of {{ target.id }}?", "timeout": "10m"},
        {"kind": "shell", "command": ECHO + " paused"},
    ]})  # fmt: skip
    run = w.start("rb", actor="user:zhang")

    async def scenario() -> None:
        await w.engine.start()
        await until(lambda: w.run(run.id).state == "waiting")
        [step] = w.steps(run.id)
        assert (step.state, step.waiting_for, step.role) == ("waiting", "approve", "operator")
        assert step.prompt == "Pause the campaigns of trunk-a?"
        with pytest.raises(Conflict, match="someone else must approve"):
            runs.decide_step(w.repo, "user:zhang", run.id, "approved", at=w.clock.time())
        with pytest.raises(ValueError, match="answer approved or rejected"):
            runs.decide_step(w.repo, "user:li", run.id, "done", at=w.clock.time())
        runs.decide_step(w.repo, "user:li", run.id, "approved", at=w.clock.time(), note_text="go")
        await w.clock.advance(1)
        await until(ended(w, run.id))
        await w.engine.stop()

    asyncio.run(scenario())
    assert w.run(run.id).state == "succeeded"
    approve, _ = w.steps(run.id)
    assert approve.summary == "approved by user:li: go" and approve.decided_by == "user:li"


@pytest.mark.parametrize(("on_timeout", "state"), [("abort", "failed"), ("continue", "succeeded")])
def test_no_answer_in_time_aborts_or_continues(tmp_path: Path, on_timeout: str, state: str) -> None:
    w = World(tmp_path, {"id": "rb", "steps": [
        {"kind": "approve", "timeout": "2m", "on_timeout": on_timeout},
    ]})  # fmt: skip
    run = w.start("rb")

    async def scenario() -> None:
        await w.engine.start()
        await until(lambda: w.run(run.id).state == "waiting")
        await w.clock.advance(119)
        assert w.run(run.id).state == "waiting"
        await w.clock.advance(1)
        await until(ended(w, run.id))
        await w.engine.stop()

    asyncio.run(scenario())
    assert w.run(run.id).state == state


def test_a_rejection_fails_the_step_and_a_manual_step_records_who_and_how_long(
    tmp_path: Path,
) -> None:
    w = World(
        tmp_path,
        {"id": "rb", "steps": [{"kind": "approve"}]},
        {"id": "hand", "steps": [{"kind": "manual", "prompt": "Call the carrier NOC"}]},
    )
    rejected = w.start("rb", actor="rule:trunk-down")
    manual = w.start("hand", actor="rule:trunk-down")

    async def scenario() -> None:
        await w.engine.start()
        await until(lambda: w.run(rejected.id).state == w.run(manual.id).state == "waiting")
        runs.decide_step(w.repo, "user:zhang", rejected.id, "rejected", at=w.clock.time(),
                         note_text="not now")  # fmt: skip
        await w.clock.advance(90)
        runs.decide_step(w.repo, "user:li", manual.id, "done", at=w.clock.time(), note_text="ok")
        await w.clock.advance(1)
        await until(lambda: all(w.run(r.id).ended_at for r in (rejected, manual)))
        await w.engine.stop()

    asyncio.run(scenario())
    assert w.run(rejected.id).error == "step step-1 failed: rejected by user:zhang: not now"
    [tick] = w.steps(manual.id)
    assert tick.summary == "done by user:li after 90 s: ok"


def test_a_restart_mid_step_interrupts_the_run_and_it_is_resumed_only_by_a_person(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "count"
    w = World(tmp_path, {"id": "rb", "steps": [
        {"kind": "shell", "command": ECHO + " one"},
        {"kind": "shell", "timeout": "1h",
         "command": SH + " -c 'echo x >> " + str(marker) + "; exec /bin/sleep 300'"},
    ]})  # fmt: skip
    run = w.start("rb")

    async def first_life() -> None:
        await w.engine.start()
        await until(lambda: marker.exists())
        await w.engine.stop()  # the appliance stops while step 2 runs

    asyncio.run(first_life())
    assert w.run(run.id).state == "interrupted" and w.run(run.id).position == 1
    assert [s.state for s in w.steps(run.id)] == ["succeeded", "interrupted"]

    async def second_life() -> None:
        w.engine = w.make_engine()
        await w.engine.start()
        await w.clock.advance(60)
        await asyncio.sleep(0.2)
        assert w.run(run.id).state == "interrupted"  # never re-run by itself
        assert marker.read_text() == "x\n"
        runs.resume(w.repo, "user:li", run.id, rollback=False, at=w.clock.time())
        w.engine.wake()
        await until(lambda: marker.read_text() == "x\nx\n")
        runs.abort(w.repo, "user:li", run.id, at=w.clock.time())
        w.engine.wake()
        await until(ended(w, run.id))
        await w.engine.stop()

    asyncio.run(second_life())
    done = w.run(run.id)
    assert done.state == "aborted"
    assert [s.state for s in w.steps(run.id)] == ["succeeded", "interrupted", "aborted"]


def test_one_run_per_runbook_and_target(tmp_path: Path) -> None:
    w = World(tmp_path, {"id": "rb", "steps": [{"kind": "shell", "command": ECHO}]})
    first = w.start("rb")
    with pytest.raises(Conflict, match=f"run {first.id} of rb for trunk-a is queued"):
        w.start("rb")
    w.start("rb", target_id=None)  # another target (none) is another slot


def test_parameters_are_checked_before_a_run_exists(tmp_path: Path) -> None:
    w = World(tmp_path, {"id": "rb", "parameters": {
        "campaign": {"required": True}, "speed": {"choices": ["slow", "fast"], "default": "slow"},
    }, "steps": [{"kind": "shell", "command": ECHO}]})  # fmt: skip
    with pytest.raises(ValueError, match="parameter campaign is required"):
        w.start("rb")
    with pytest.raises(ValueError, match="parameter speed: one of slow, fast"):
        w.start("rb", params={"campaign": "c1", "speed": "warp"})
    with pytest.raises(ValueError, match="has no parameter colour"):
        w.start("rb", params={"campaign": "c1", "colour": "red"})
    assert w.start("rb", params={"campaign": "c1"}).params == {"campaign": "c1", "speed": "slow"}


def test_a_dry_run_resolves_every_value_masks_secrets_and_runs_nothing(tmp_path: Path) -> None:
    touched = tmp_path / "touched"
    w = World(
        tmp_path,
        {"id": "rb", "parameters": {"who": {"default": "noc"}}, "steps": [
            {"id": "t", "kind": "shell", "command": TOUCH + " " + str(touched)},
            {"kind": "shell", "command": ECHO + " {{ params.who }} {{ steps.t.output }} hunter2"},
            {"kind": "shell", "command": ECHO + " {{ nope }}"},
        ], "rollback": [{"kind": "shell", "command": ECHO + " undo"}]},
        mask=lambda text: text.replace("hunter2", "***"),
    )  # fmt: skip
    run = w.start("rb")
    plan = w.engine.plan(run, w.runbook("rb"))
    assert [(p.phase, p.id) for p in plan] == [
        ("main", "t"),
        ("main", "step-2"),
        ("main", "step-3"),
        ("rollback", "rollback-1"),
    ]
    assert plan[1].lines == (f"run on this appliance: {ECHO} noc '<output of t>' ***",)
    assert plan[2].error == "template: 'nope' is undefined"
    assert not touched.exists()
    assert w.steps(run.id) == []


def test_a_command_that_writes_much_is_read_to_its_end_and_never_blocks(tmp_path: Path) -> None:
    w = World(tmp_path, {"id": "rb", "steps": [
        {"id": "much", "kind": "shell",
         "command": SH + " -c 'echo first; head -c 400000 /dev/zero | tr \"\\\\0\" x; echo; echo last'"},
    ]})  # fmt: skip
    run = w.start("rb")
    done = asyncio.run(execute(w, run.id))
    [step] = w.steps(run.id)
    assert done.state == "succeeded"
    assert step.output.rstrip().endswith("last")  # the end is kept (64 KiB of it)
    assert step.output.startswith("…") and len(step.output) == 64 * 1024


def test_failures_passed_over_are_named_at_the_end(tmp_path: Path) -> None:
    w = World(tmp_path, {"id": "rb", "steps": [
        {"id": "flaky", "kind": "shell", "command": FALSE, "on_failure": "continue"},
        {"kind": "shell", "command": ECHO},
    ]})  # fmt: skip
    run = w.start("rb")
    done = asyncio.run(execute(w, run.id))
    assert done.state == "succeeded"
    assert done.error == (
        "done; 1 of 2 steps failed and were passed over (on_failure: continue): flaky"
    )


def test_runs_waiting_for_people_hold_no_slot(tmp_path: Path) -> None:
    w = World(
        tmp_path,
        {"id": "ask", "steps": [{"kind": "approve"}]},
        {"id": "work", "steps": [{"kind": "shell", "command": ECHO + " done"}]},
    )
    w.config = config(*w.config.model_dump(mode="json")["runbooks"])
    w.config = w.config.model_copy(
        update={
            "runbook_settings": w.config.runbook_settings.model_copy(update={"max_parallel": 1})
        }
    )
    asking = w.start("ask")
    work = w.start("work")

    async def scenario() -> None:
        await w.engine.start()
        await until(lambda: w.run(asking.id).state == "waiting")
        w.engine.wake()
        await until(ended(w, work.id))
        await w.engine.stop()

    asyncio.run(scenario())
    assert w.run(work.id).state == "succeeded"


def test_a_clean_stop_leaves_a_question_open_and_the_restart_asks_it_again(tmp_path: Path) -> None:
    w = World(tmp_path, {"id": "rb", "steps": [{"kind": "approve", "timeout": "10m"}]})
    run = w.start("rb", actor="rule:r")

    async def first_life() -> None:
        await w.engine.start()
        await until(lambda: w.run(run.id).state == "waiting")
        await w.clock.advance(120)
        await w.engine.stop()

    asyncio.run(first_life())
    [row] = w.steps(run.id)
    assert (w.run(run.id).state, row.state) == ("waiting", "waiting")

    async def second_life() -> None:
        w.engine = w.make_engine()
        await w.engine.start()
        await asyncio.sleep(0.1)
        await w.clock.advance(479)
        assert w.run(run.id).state == "waiting"  # 2 + 8 minutes of its 10 so far
        await w.clock.advance(1)
        await until(ended(w, run.id))
        await w.engine.stop()

    asyncio.run(second_life())
    [row] = w.steps(run.id)  # the same row, asked once
    assert row.state == "failed" and row.summary == "no answer in time (on_timeout: abort)"


def test_what_a_step_gave_later_steps_is_kept_for_a_resume(tmp_path: Path) -> None:
    w = World(tmp_path, {"id": "rb", "steps": [
        {"id": "first", "kind": "shell", "command": ECHO + " hi"},
        {"kind": "shell", "command": ECHO + " exit was {{ steps.first.data.exit }}"},
    ]})  # fmt: skip
    run = w.start("rb")
    done = asyncio.run(execute(w, run.id))
    assert done.state == "succeeded"
    assert w.steps(run.id)[1].output.strip() == "exit was 0"
    # A new engine (after a restart) sees the same values for a resumed run.
    again = w.make_engine()
    values = again.values(w.run(run.id), w.runbook("rb"), w.steps(run.id))
    assert values["steps"]["first"]["data"] == {"exit": 0}


def test_a_step_passed_over_before_a_restart_is_still_named(tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    w = World(tmp_path, {"id": "rb", "steps": [
        {"kind": "shell", "command": FALSE, "on_failure": "continue"},
        {"kind": "shell", "timeout": "1h",
         "command": SH + f" -c 'if [ -f {seen} ]; then exit 0; fi; touch {seen}; exec /bin/sleep 300'"},
        {"kind": "shell", "command": ECHO + " last"},
    ]})  # fmt: skip
    run = w.start("rb")

    async def first_life() -> None:
        await w.engine.start()
        await until(lambda: seen.exists())
        await w.engine.stop()

    asyncio.run(first_life())
    runs.resume(w.repo, "user:li", run.id, rollback=False, at=w.clock.time())
    done = asyncio.run(execute(w, run.id))
    assert done.state == "succeeded"
    assert (
        done.error
        == "done; 1 of 3 steps failed and were passed over (on_failure: continue): step-1"
    )
