"""The runbook engine: queued runs in, steps executed one after another, everything recorded.

A loop on the appliance's event loop claims queued runs (``runbooks.runs``)
up to ``runbook_settings.max_parallel`` and executes each in its own task:

- each step's fields are rendered with the run's values (``params``,
  ``incident``, ``target``, ``run``, ``steps.<id>``) by the sandboxed
  renderer, shell-quoted where they go into a command; a template that
  does not render fails the step (it is never run half-rendered);
- each attempt is a ``runbook_step`` row: start, end, result, output with
  the config's secrets masked; it is stopped at its ``timeout``; a failure
  is retried ``retries`` times with ``backoff`` doubling, unless the step
  said trying again cannot help; then ``on_failure`` decides: ``abort``,
  ``continue`` or ``rollback`` (the runbook's rollback steps, then the run
  ends ``rolled_back``);
- a step that waits for a person (``approve``, ``manual``) puts the run in
  ``waiting`` until the answer is in the DB (the console and API write it)
  or its timeout; a restart keeps waiting on the same row;
- an abort asked by a person cancels the running step; the run ends
  ``aborted``;
- at start (and at a clean stop) a run caught executing a step is marked
  ``interrupted`` at that step and waits for an operator to resume, roll
  back or abort: it is never re-run by itself, never dropped.

A failing step, a template error, a peer that hangs: the run says so and
ends as its ``on_failure`` says; the engine goes on with the other runs and
never stops the probing around it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy import insert, select, update

from core.clock import Clock
from core.config import format_duration
from monitor.faults import NO_FAULTS, Faults
from monitor.store import queries
from monitor.store.models import (
    RUN_ABORTED,
    RUN_FAILED,
    RUN_INTERRUPTED,
    RUN_QUEUED,
    RUN_ROLLED_BACK,
    RUN_RUNNING,
    RUN_SUCCEEDED,
    RUN_WAITING,
    RunbookRun,
    RunbookStep,
)
from monitor.store.repository import StateRepository
from runbooks import runs, template
from runbooks.config import RunbookConfig, RunbookSettings
from runbooks.runs import RunRow, StepRow
from runbooks.steps import STEPS
from runbooks.steps.base import (
    PersonDecision,
    StepConfig,
    StepContext,
    StepFailed,
    StepServices,
    short,
    tail,
)

log = logging.getLogger(__name__)

POLL = 1.0
"""Seconds between looks at the queue and at a waiting step's answer."""
_RUN = RunbookRun.__table__
_STEP = RunbookStep.__table__


def render_step(step: StepConfig, values: Mapping[str, Any]) -> StepConfig:
    """``step`` with its template fields rendered (``TemplateRefused`` when one cannot be)."""
    update_: dict[str, Any] = {}
    for name in step.TEMPLATED:
        update_[name] = template.render_value(getattr(step, name), values)
    for name in step.SHELL:
        update_[name] = template.render_value(getattr(step, name), values, shell=True)
    return step.model_copy(update=update_) if update_ else step


def step_key(step: StepConfig, position: int, phase: str = "main") -> str:
    """How a step is named in the run and to templates: its id, else ``step-<n>``
    (``rollback-<n>`` for a rollback step, so the two lists never share a name)."""
    return step.id or (f"step-{position + 1}" if phase == "main" else f"rollback-{position + 1}")


def _iso(at: float | None) -> str | None:
    return datetime.fromtimestamp(at, UTC).isoformat() if at is not None else None


@dataclass(frozen=True)
class PlannedStep:
    """One step of a dry-run: what it would do with every value resolved, or why it cannot."""

    phase: str
    position: int
    id: str
    kind: str
    title: str
    lines: tuple[str, ...] = ()
    error: str | None = None
    on_failure: str = "abort"
    timeout: float = 0.0
    retries: int = 0


@dataclass
class _Outcome:
    ok: bool
    reason: str = ""


class RunbookEngine:
    """Executes queued runs (see the module docstring)."""

    def __init__(
        self,
        repo: StateRepository,
        config: Callable[[], Any],
        *,
        clock: Clock,
        services: StepServices | None = None,
        faults: Faults = NO_FAULTS,
        mask: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.repo = repo
        self.config = config
        self.clock = clock
        self.services = services or StepServices(repo=repo)
        self.faults = faults
        self.mask = mask
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._asking: set[int] = set()  # runs whose task waits for a person
        self._loop_task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False
        self.on_tick: list[Callable[[float], object]] = []
        """Called with the time at each tick, before the queue is read (the rule
        triggers' armed runs whose ``for:`` is over become queued there)."""

    # -- config ------------------------------------------------------------------------
    def runbooks(self) -> dict[str, RunbookConfig]:
        return {r.id: r for r in getattr(self.config(), "runbooks", [])}

    def settings(self) -> RunbookSettings:
        return getattr(self.config(), "runbook_settings", None) or RunbookSettings()

    # -- life --------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stopping = False
        self.recover()
        self._loop_task = asyncio.create_task(self._forever(), name="runbooks")

    async def stop(self) -> None:
        self._stopping = True
        tasks = [t for t in (self._loop_task, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._loop_task = None
        self.recover("the appliance stopped")

    def wake(self) -> None:
        """Look at the queue now (thread-safe: the web and rule subscribers call it)."""
        if self._loop is not None and self._wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._wake.set)

    def task_of(self, run_id: int) -> asyncio.Task[None] | None:
        return self._tasks.get(run_id)

    async def _forever(self) -> None:
        assert self._wake is not None
        while True:
            try:
                await self.tick()
            except Exception as exc:  # the queue's trouble never stops the appliance
                log.exception("runbook engine tick")
                self.faults.report("runbooks", f"{type(exc).__name__}: {exc}")
            self._wake.clear()
            waker = asyncio.ensure_future(self._wake.wait())
            sleeper = asyncio.ensure_future(self.clock.sleep(POLL))
            await asyncio.wait({waker, sleeper}, return_when=asyncio.FIRST_COMPLETED)
            for pending in (waker, sleeper):
                pending.cancel()

    def recover(self, why: str = "the appliance restarted") -> list[int]:
        """Runs caught executing a step: ``interrupted`` at it, never re-run by themselves."""
        now = self.clock.time()
        found = []
        with self.repo.transaction() as conn:
            for run in runs.runs(conn, states=(RUN_RUNNING,), limit=10_000):
                if run.id in self._tasks and not self._tasks[run.id].done():
                    continue
                conn.execute(
                    update(_STEP)
                    .where(_STEP.c.run_id == run.id, _STEP.c.state == "running")
                    .values(state="interrupted", ended_at=now, summary=f"interrupted: {why}")
                )
                conn.execute(update(_RUN).where(_RUN.c.id == run.id).values(state=RUN_INTERRUPTED))
                line = (
                    f"run {run.id} ({run.runbook_id}) interrupted at step {run.position + 1} "
                    f"({run.phase}) because {why}: it waits for an operator to resume, roll "
                    "back or abort it"
                )
                runs.note(self.repo, conn, run, RUN_INTERRUPTED, line, now)
                runs.audit_engine(conn, run, "runbook.interrupted", "failed", line, now)
                log.warning("%s", line)
                found.append(run.id)
        return found

    # -- the queue ---------------------------------------------------------------------
    async def tick(self) -> list[int]:
        """Act on abort requests and start queued runs (and waiting ones after a restart);
        returns the runs started."""
        for hook in self.on_tick:
            hook(self.clock.time())
        # From the current config: a reload may have changed what shell steps may run.
        self.services.shell_allow = tuple(self.settings().shell_allow)
        with self.repo.reading() as conn:
            live = runs.runs(conn, states=(RUN_RUNNING, RUN_WAITING), limit=10_000)
            queued = runs.runs(conn, states=(RUN_QUEUED,), limit=1000)
        started = []
        for run in live:
            task = self._tasks.get(run.id)
            if run.requested == "abort":
                if task is not None:
                    task.cancel()
                else:
                    self._end(run, RUN_ABORTED, "aborted by request", step_state="aborted")
            elif task is None and run.state == RUN_WAITING:
                started.append(self._spawn(run.id))
        limit = self.settings().max_parallel
        for run in sorted(queued, key=lambda r: r.id):
            # Runs waiting for a person hold no slot: eight pending approvals must not
            # stall every other run.
            if len(self._tasks) - len(self._asking & set(self._tasks)) >= limit:
                break
            if run.id not in self._tasks:
                started.append(self._spawn(run.id))
        return started

    def _spawn(self, run_id: int) -> int:
        self._tasks[run_id] = asyncio.create_task(self._execute(run_id), name=f"run-{run_id}")
        return run_id

    async def _execute(self, run_id: int) -> None:
        try:
            await self._run(run_id)
        except asyncio.CancelledError:
            if not self._stopping:
                with self.repo.reading() as conn:
                    run = runs.get_run(conn, run_id)
                self._end(run, RUN_ABORTED, f"aborted at step {run.position + 1} by request",
                          step_state="aborted")  # fmt: skip
            raise
        except Exception as exc:  # one run's bug never stops the others
            log.exception("run %d", run_id)
            self.faults.report(f"runbooks:run-{run_id}", f"{type(exc).__name__}: {exc}")
            with self.repo.reading() as conn:
                run = runs.get_run(conn, run_id)
            self._end(run, RUN_FAILED, f"the engine failed: {type(exc).__name__}: {exc}",
                      step_state="failed")  # fmt: skip
        finally:
            self._tasks.pop(run_id, None)

    # -- one run -----------------------------------------------------------------------
    async def _run(self, run_id: int) -> None:
        with self.repo.reading() as conn:
            run = runs.get_run(conn, run_id)
            done = runs.steps_of(conn, run_id)
        runbook = self.runbooks().get(run.runbook_id)
        if runbook is None:
            self._end(run, RUN_FAILED, f"runbook {run.runbook_id} is not in the config any more")
            return
        values = self.values(run, runbook, done)
        now = self.clock.time()
        if run.state == RUN_QUEUED:
            with self.repo.transaction() as conn:
                conn.execute(
                    update(_RUN)
                    .where(_RUN.c.id == run_id)
                    .values(state=RUN_RUNNING, started_at=run.started_at or now)
                )
                run = runs.get_run(conn, run_id)
                runs.note(self.repo, conn, run, RUN_RUNNING,
                          f"run {run_id} ({runbook.display_name()}) executing", now)  # fmt: skip
        phase, position = run.phase, run.position
        # Failures passed over before a restart or resume count too: the last attempt of
        # each main step already behind the run that did not succeed.
        last: dict[int, StepRow] = {}
        for row in done:
            if row.phase == "main" and row.position < run.position:
                last[row.position] = row
        passed_over = [
            r.step_id for _, r in sorted(last.items()) if r.state in ("failed", "timed_out")
        ]
        while True:
            steps = runbook.steps if phase == "main" else runbook.rollback
            if position >= len(steps):
                if phase == "main" and passed_over:
                    self._end(run, RUN_SUCCEEDED,
                              f"done; {len(passed_over)} of {len(steps)} steps failed and were "
                              f"passed over (on_failure: continue): {', '.join(passed_over)}")  # fmt: skip
                elif phase == "main":
                    self._end(run, RUN_SUCCEEDED, f"all {len(steps)} steps succeeded")
                else:
                    self._end(run, RUN_ROLLED_BACK, "rolled back: every rollback step succeeded")
                return
            step = steps[position]
            outcome = await self._step(run, runbook, phase, position, step, values)
            if outcome.ok:
                position += 1
                self._move(run, phase, position)
                continue
            name = step.name or step_key(step, position, phase)
            if phase == "rollback":
                self._end(run, RUN_FAILED, f"rollback step {name} failed: {outcome.reason}")
                return
            if step.on_failure == "continue":
                passed_over.append(name)
                position += 1
                self._move(run, phase, position)
                continue
            if step.on_failure == "rollback":
                if not runbook.rollback:
                    self._end(run, RUN_FAILED,
                              f"step {name} failed: {outcome.reason}; no rollback steps to run")  # fmt: skip
                    return
                phase, position = "rollback", 0
                self._move(run, phase, position,
                           f"run {run.id}: step {name} failed ({outcome.reason}); rolling back")  # fmt: skip
                continue
            self._end(run, RUN_FAILED, f"step {name} failed: {outcome.reason}")
            return

    def _move(self, run: RunRow, phase: str, position: int, line: str = "") -> None:
        with self.repo.transaction() as conn:
            conn.execute(
                update(_RUN).where(_RUN.c.id == run.id).values(phase=phase, position=position)
            )
            if line:
                runs.note(self.repo, conn, run, RUN_RUNNING, line, self.clock.time())

    def _end(self, run: RunRow, state: str, reason: str, *, step_state: str | None = None) -> None:
        now = self.clock.time()
        with self.repo.transaction() as conn:
            if step_state is not None:
                conn.execute(
                    update(_STEP)
                    .where(_STEP.c.run_id == run.id, _STEP.c.state.in_(("running", "waiting")))
                    .values(state=step_state, ended_at=now, summary=short(reason))
                )
            conn.execute(
                update(_RUN)
                .where(_RUN.c.id == run.id)
                .values(state=state, ended_at=now, error=reason[:2000], requested=None)
            )
            line = f"run {run.id} ({run.runbook_id}) {state.replace('_', ' ')}: {reason}"
            runs.note(self.repo, conn, run, state, line, now)
            result = "ok" if state in (RUN_SUCCEEDED, RUN_ROLLED_BACK) else "failed"
            runs.audit_engine(conn, run, "runbook.run", result, line, now)
        (log.info if state == RUN_SUCCEEDED else log.warning)("%s", line)

    # -- values ------------------------------------------------------------------------
    def values(self, run: RunRow, runbook: RunbookConfig, done: list[StepRow]) -> dict[str, Any]:
        """What templates see: params, run, target, incident, steps (those done so far)."""
        target: dict[str, Any] = {}
        if run.target_id is not None:
            configured = {t.id: t for t in getattr(self.config(), "targets", [])}
            found = configured.get(run.target_id)
            state = self.services.health_of(run.target_id)
            with self.repo.reading() as conn:
                stored = queries.target(conn, run.target_id)
            target = {
                "id": run.target_id,
                "name": getattr(found, "name", None) or run.target_id,
                "kind": getattr(found, "kind", None),
                "tags": dict(getattr(found, "tags", {}) or {}),
                "address": _address_of(found),
                "health": getattr(getattr(state, "health", None), "value", None),
                # What the last check said, in the peer's words (a carrier's reason
                # phrase): data, shell-quoted where it reaches a command.
                "detail": stored.last_detail if stored is not None else None,
            }
        incident: dict[str, Any] = {}
        if run.incident_id is not None:
            with self.repo.reading() as conn:
                row = queries.incident(conn, run.incident_id)
            if row is not None:
                incident = {
                    "id": row.id,
                    "title": row.title,
                    "cause": row.cause or "",
                    "eta": _iso(row.eta),
                    "severity": row.severity.value,
                    "root": row.root_target_id,
                    "targets": list(row.member_ids),
                    "state": row.state,
                }
        steps: dict[str, Any] = {}
        for row in done:
            if row.state == "succeeded":
                steps[row.step_id] = {"state": row.state, "summary": row.summary,
                                      "output": row.output, "data": dict(row.data)}  # fmt: skip
        return {
            "params": dict(run.params),
            "run": {"id": run.id, "runbook": runbook.id, "started_by": run.started_by},
            "target": target,
            "incident": incident,
            "steps": steps,
        }

    # -- one step ----------------------------------------------------------------------
    async def _step(
        self,
        run: RunRow,
        runbook: RunbookConfig,
        phase: str,
        position: int,
        step: StepConfig,
        values: dict[str, Any],
    ) -> _Outcome:
        key = step_key(step, position, phase)
        attempts = 1 if step.WAITS_FOR_PERSON else step.retries + 1
        waiting = self._waiting_row(run.id, phase, position)
        for attempt in range(1, attempts + 1):
            started = self.clock.time()
            remaining = step.timeout
            if waiting is not None:  # a restart while a person was asked: keep asking
                row_id, attempt = waiting.id, waiting.attempt
                remaining = max(0.0, waiting.started_at + step.timeout - started)
                waiting = None
            else:
                row_id = self._open_step(run, phase, position, key, step, attempt, started)
            lines: list[str] = []
            deadline = self.clock.monotonic() + remaining
            retry = True
            try:
                rendered = render_step(step, values)
                impl = STEPS[step.kind].implementation(rendered)
                ctx = StepContext(
                    run_id=run.id, runbook_id=runbook.id, position=position,
                    target_id=run.target_id, incident_id=run.incident_id,
                    started_by=run.started_by, deadline=deadline, clock=self.clock,
                    services=self.services, log=lines.append,
                    wait_for_person=partial(self._wait_for_person, run, row_id, deadline),
                    values=values,
                )  # fmt: skip
                if step.WAITS_FOR_PERSON:
                    result = await impl.run(ctx)
                else:
                    async with self.clock.timeout(remaining):
                        result = await impl.run(ctx)
                state, summary, output = "succeeded", result.summary, result.output
            except template.TemplateRefused as exc:
                state, summary, output, retry = "failed", str(exc), "", False
            except TimeoutError:
                state, output = "timed_out", ""
                summary = f"no result in {format_duration(step.timeout)}: stopped"
            except StepFailed as exc:
                state, summary, output, retry = "failed", exc.reason, exc.output, exc.retry
            except asyncio.CancelledError:
                if not (self._stopping and self._is_waiting(row_id)):
                    # A clean stop leaves a question to a person open: after the restart
                    # the same row is asked again, with the time it had left.
                    self._close_step(row_id, "aborted" if not self._stopping else "interrupted",
                                     "stopped", "\n".join(lines))  # fmt: skip
                raise
            except Exception as exc:  # a step's bug is that step's failure
                log.exception("run %d step %s", run.id, key)
                state, summary, output, retry = "failed", f"{type(exc).__name__}: {exc}", "", False
            text = "\n".join([*lines, output] if output else lines)
            self._close_step(row_id, state, summary, text, run=run, key=key, phase=phase,
                             position=position,
                             data=result.data if state == "succeeded" else None)  # fmt: skip
            if state == "succeeded":
                values["steps"][key] = {
                    "state": state,
                    "summary": self.mask(summary),
                    "output": self.mask(result.output),
                    "data": dict(result.data),
                }
                return _Outcome(True)
            if not retry or attempt == attempts:
                return _Outcome(False, self.mask(summary))
            pause = step.backoff * 2 ** (attempt - 1)
            await self.clock.sleep(pause)
        return _Outcome(False, "no attempt left")  # pragma: no cover - the loop returns

    def _is_waiting(self, row_id: int) -> bool:
        with self.repo.reading() as conn:
            state = conn.execute(select(_STEP.c.state).where(_STEP.c.id == row_id)).scalar()
        return state == "waiting"

    def _waiting_row(self, run_id: int, phase: str, position: int) -> StepRow | None:
        with self.repo.reading() as conn:
            for row in reversed(runs.steps_of(conn, run_id)):
                if row.phase == phase and row.position == position:
                    return row if row.state == "waiting" else None
        return None

    def _open_step(
        self, run: RunRow, phase: str, position: int, key: str, step: StepConfig,
        attempt: int, at: float,
    ) -> int:  # fmt: skip
        with self.repo.transaction() as conn:
            row_id = conn.execute(
                insert(_STEP).values(
                    run_id=run.id, phase=phase, position=position, step_id=key,
                    kind=step.kind, attempt=attempt, state="running", started_at=at,
                    summary="", output="", prompt="", note="",
                )
            ).inserted_primary_key[0]  # fmt: skip
            again = f" (attempt {attempt})" if attempt > 1 else ""
            runs.note(
                self.repo, conn, run, RUN_RUNNING,
                f"run {run.id}: step {step.title(position, phase)} ({step.kind}) started{again}", at,
                step={"step": key, "position": position, "phase": phase, "summary": "started"},
            )  # fmt: skip
        return int(row_id)

    def _close_step(
        self, row_id: int, state: str, summary: str, output: str, *,
        run: RunRow | None = None, key: str = "", phase: str = "", position: int = 0,
        data: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        now = self.clock.time()
        summary, output = short(self.mask(summary), 1000), tail(self.mask(output))
        kept = _json_safe(data or {})
        with self.repo.transaction() as conn:
            conn.execute(
                update(_STEP)
                .where(_STEP.c.id == row_id)
                .values(state=state, ended_at=now, summary=summary, output=output, data=kept)
            )
            if run is not None:
                line = f"run {run.id}: step {key} {state.replace('_', ' ')}: {summary}"
                runs.note(self.repo, conn, run, RUN_RUNNING, line, now,
                          step={"step": key, "position": position, "phase": phase,
                                "summary": summary, "step_state": state})  # fmt: skip
                runs.audit_engine(conn, run, "runbook.step",
                                  "ok" if state == "succeeded" else "failed", line, now)  # fmt: skip

    async def _wait_for_person(
        self, run: RunRow, row_id: int, deadline: float, what: str, role: str, prompt: str
    ) -> PersonDecision:
        now = self.clock.time()
        with self.repo.transaction() as conn:
            row = conn.execute(select(_STEP).where(_STEP.c.id == row_id)).one()
            conn.execute(
                update(_STEP)
                .where(_STEP.c.id == row_id)
                .values(state="waiting", waiting_for=what, role=role, prompt=prompt[:2000])
            )
            conn.execute(update(_RUN).where(_RUN.c.id == run.id).values(state=RUN_WAITING))
            if row.state != "waiting":  # said once, not again after a restart
                runs.note(
                    self.repo, conn, run, RUN_WAITING,
                    f"run {run.id}: step {row.step_id} waits for a person with the {role} role"
                    f"{': ' + prompt if prompt else ''}", now,
                    step={"step": row.step_id, "position": row.position, "phase": row.phase,
                          "summary": f"waiting ({what})"},
                )  # fmt: skip
        self._asking.add(run.id)
        try:
            return await self._answer(run, row_id, deadline)
        finally:
            self._asking.discard(run.id)

    async def _answer(self, run: RunRow, row_id: int, deadline: float) -> PersonDecision:
        while True:
            with self.repo.reading() as conn:
                row = conn.execute(select(_STEP).where(_STEP.c.id == row_id)).one()
            if row.decision is not None or self.clock.monotonic() >= deadline:
                with self.repo.transaction() as conn:
                    conn.execute(update(_STEP).where(_STEP.c.id == row_id).values(state="running"))
                    conn.execute(update(_RUN).where(_RUN.c.id == run.id).values(state=RUN_RUNNING))
                if row.decision is None:
                    return PersonDecision("timed_out")
                return PersonDecision(row.decision, row.decided_by, row.note or "", row.decided_at)
            await self.clock.sleep(min(POLL, max(0.01, deadline - self.clock.monotonic())))

    # -- dry-run -----------------------------------------------------------------------
    def plan(self, run: RunRow, runbook: RunbookConfig) -> list[PlannedStep]:
        """Every step (and rollback step) with its values resolved; nothing is executed.
        A later step that reads ``steps.<id>`` sees a placeholder for that step's result."""
        values = self.values(run, runbook, [])
        planned = []
        for phase, steps in (("main", runbook.steps), ("rollback", runbook.rollback)):
            for position, step in enumerate(steps):
                key = step_key(step, position, phase)
                common = dict(
                    phase=phase, position=position, id=key, kind=step.kind,
                    title=step.title(position, phase), on_failure=step.on_failure,
                    timeout=step.timeout, retries=step.retries,
                )  # fmt: skip
                try:
                    rendered = render_step(step, values)
                    lines = tuple(self.mask(line) for line in
                                  STEPS[step.kind].implementation(rendered).plan())  # fmt: skip
                    planned.append(PlannedStep(**common, lines=lines))  # type: ignore[arg-type]
                except Exception as exc:  # shown as that step's problem, the plan goes on
                    reason = str(exc) if isinstance(exc, template.TemplateRefused) else (
                        f"{type(exc).__name__}: {exc}")  # fmt: skip
                    planned.append(PlannedStep(**common, error=self.mask(reason)))  # type: ignore[arg-type]
                placeholder = f"<output of {key}>"
                values["steps"][key] = {"state": "succeeded", "summary": placeholder,
                                        "output": placeholder, "data": {}}  # fmt: skip
        return planned


def _address_of(target: Any) -> str | None:
    for name in ("address", "uri", "url", "host"):
        value = getattr(target, name, None)
        if isinstance(value, str):
            return value
    return None


def _json_safe(data: Mapping[str, Any]) -> dict[str, Any]:
    """``data`` as the DB's JSON column takes it (anything else as its text), at most
    64 KiB of it: a step's values for later steps, not its whole output."""
    text = json.dumps(dict(data), default=str, ensure_ascii=False)
    if len(text) > 64 * 1024:
        return {"truncated": True}
    return json.loads(text)
