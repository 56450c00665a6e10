"""Runs in the state DB: starting one, what people decide, and what the engine records.

Every function here writes in one transaction: the run's row, its ``run``
event (``monitor.events``: the console's live view and any subscriber hear
of it) and, when the run is about an incident, a line on its timeline. The
web calls the person's functions through ``web.actions.perform`` (audited
as the person asking, refusals too); the engine's own records are audited
here as ``engine``.

Guarantees kept here, not by callers:

- one run per (runbook, target) at a time (``RUN_ACTIVE_STATES``): a second
  start is a ``Conflict`` naming the run in the way;
- the person who started a run cannot approve it (its start, or one of its
  ``approve`` steps);
- nothing is re-run by itself: an interrupted run waits for ``resume``,
  ``rollback`` or ``abort``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, insert, select, update

from monitor import audit
from monitor.events import EventKind, NewEvent, record
from monitor.incident_actions import Conflict
from monitor.store.models import (
    RUN_ABORTED,
    RUN_ACTIVE_STATES,
    RUN_FAILED,
    RUN_INTERRUPTED,
    RUN_PENDING_APPROVAL,
    RUN_QUEUED,
    RUN_REJECTED,
    RUN_RUNNING,
    RUN_WAITING,
    RunbookRun,
    RunbookStep,
)
from monitor.store.repository import NotFound, StateRepository
from runbooks.config import RunbookConfig

_RUN = RunbookRun.__table__
_STEP = RunbookStep.__table__
MAX_NOTE = 2000


def user_of(actor: str) -> str | None:
    """The person behind a session actor (``user:li`` → ``li``); None for tokens (whose
    owner the caller knows), rules and the engine."""
    kind, _, name = actor.partition(":")
    return name if kind == "user" and name else None


def resolve_params(runbook: RunbookConfig, given: Mapping[str, Any]) -> dict[str, Any]:
    """The run's parameters: ``given`` checked against the runbook's, defaults filled in.
    ValueError naming the parameter otherwise."""
    unknown = sorted(set(given) - set(runbook.parameters))
    if unknown:
        known = ", ".join(runbook.parameters) or "none"
        raise ValueError(
            f"runbook {runbook.id} has no parameter {', '.join(unknown)} (parameters: {known})"
        )
    out: dict[str, Any] = {}
    for name, spec in runbook.parameters.items():
        if name in given and given[name] is not None:
            value = given[name]
            if isinstance(value, dict | list):
                raise ValueError(f"parameter {name}: a string, number or true/false")
            if spec.choices is not None and str(value) not in spec.choices:
                raise ValueError(f"parameter {name}: one of {', '.join(spec.choices)}")
            out[name] = value
        elif spec.required:
            raise ValueError(f"parameter {name} is required")
        else:
            out[name] = spec.default
    return out


@dataclass(frozen=True)
class RunRow:
    id: int
    runbook_id: str
    target_id: str | None
    incident_id: int | None
    rule_id: str | None
    started_by: str
    state: str
    params: Mapping[str, Any]
    phase: str
    position: int
    created_at: float
    started_at: float | None
    ended_at: float | None
    requested: str | None
    error: str
    decided_by: str | None
    check_at: float | None = None
    hold_since: float | None = None
    hold_health: str | None = None
    started_user: str | None = None


@dataclass(frozen=True)
class StepRow:
    id: int
    run_id: int
    phase: str
    position: int
    step_id: str
    kind: str
    attempt: int
    state: str
    started_at: float
    ended_at: float | None
    summary: str
    output: str
    waiting_for: str | None
    role: str | None
    prompt: str
    decision: str | None
    decided_by: str | None
    decided_at: float | None
    note: str
    data: Mapping[str, Any] = field(default_factory=dict)


def _run_row(r: Any) -> RunRow:
    return RunRow(
        r.id, r.runbook_id, r.target_id, r.incident_id, r.rule_id, r.started_by, r.state,
        dict(r.params or {}), r.phase, r.position, r.created_at, r.started_at, r.ended_at,
        r.requested, r.error, r.decided_by, r.check_at, r.hold_since, r.hold_health,
        r.started_user,
    )  # fmt: skip


def _step_row(r: Any) -> StepRow:
    return StepRow(
        r.id, r.run_id, r.phase, r.position, r.step_id, r.kind, r.attempt, r.state,
        r.started_at, r.ended_at, r.summary, r.output, r.waiting_for, r.role, r.prompt,
        r.decision, r.decided_by, r.decided_at, r.note, dict(r.data or {}),
    )  # fmt: skip


# -- reading ---------------------------------------------------------------------------
def get_run(conn: Connection, run_id: int) -> RunRow:
    row = conn.execute(select(_RUN).where(_RUN.c.id == run_id)).first()
    if row is None:
        raise NotFound(f"no run {run_id}")
    return _run_row(row)


def runs(
    conn: Connection,
    *,
    states: tuple[str, ...] | None = None,
    incident_id: int | None = None,
    runbook_id: str | None = None,
    limit: int = 100,
) -> list[RunRow]:
    """Runs newest first, filtered."""
    stmt = select(_RUN).order_by(_RUN.c.id.desc()).limit(limit)
    if states is not None:
        stmt = stmt.where(_RUN.c.state.in_(states))
    if incident_id is not None:
        stmt = stmt.where(_RUN.c.incident_id == incident_id)
    if runbook_id is not None:
        stmt = stmt.where(_RUN.c.runbook_id == runbook_id)
    return [_run_row(r) for r in conn.execute(stmt)]


def steps_of(conn: Connection, run_id: int) -> list[StepRow]:
    """Every attempt of every step of a run, in the order they happened."""
    rows = conn.execute(select(_STEP).where(_STEP.c.run_id == run_id).order_by(_STEP.c.id))
    return [_step_row(r) for r in rows]


def active_run(conn: Connection, runbook_id: str, target_id: str | None) -> RunRow | None:
    row = conn.execute(
        select(_RUN)
        .where(
            _RUN.c.runbook_id == runbook_id,
            _RUN.c.target_id.is_(None) if target_id is None else _RUN.c.target_id == target_id,
            _RUN.c.state.in_(RUN_ACTIVE_STATES),
        )
        .limit(1)
    ).first()
    return _run_row(row) if row is not None else None


def last_ended_at(conn: Connection, runbook_id: str, target_id: str | None) -> float | None:
    row = conn.execute(
        select(_RUN.c.ended_at)
        .where(
            _RUN.c.runbook_id == runbook_id,
            _RUN.c.target_id.is_(None) if target_id is None else _RUN.c.target_id == target_id,
            _RUN.c.ended_at.is_not(None),
            _RUN.c.started_at.is_not(None),  # runs that did something; dropped ones did not
        )
        .order_by(_RUN.c.ended_at.desc())
        .limit(1)
    ).first()
    return row[0] if row is not None else None


# -- records (run event, timeline, audit) ------------------------------------------------
def note(
    repo: StateRepository,
    conn: Connection,
    run: RunRow,
    state: str,
    line: str,
    at: float,
    *,
    actor: str = "engine",
    step: Mapping[str, Any] | None = None,
) -> None:
    """The ``run`` event of a change and its timeline line (inside the caller's transaction)."""
    payload: dict[str, Any] = {"run": run.id, "runbook": run.runbook_id, "state": state}
    if step:
        payload.update(step)
    record(
        repo,
        NewEvent(
            EventKind.RUN, at, actor=actor, target_id=run.target_id,
            incident_id=run.incident_id, payload=payload,
        ),
    )  # fmt: skip
    if run.incident_id is not None:
        repo.add_incident_event(run.incident_id, "runbook", at, run.target_id, line[:2000])


def _set(conn: Connection, run_id: int, **values: Any) -> None:
    conn.execute(update(_RUN).where(_RUN.c.id == run_id).values(**values))


# -- starting --------------------------------------------------------------------------
def start_run(
    repo: StateRepository,
    actor: str,
    runbook: RunbookConfig,
    *,
    at: float,
    target_id: str | None = None,
    incident_id: int | None = None,
    params: Mapping[str, Any] | None = None,
    rule_id: str | None = None,
    state: str = RUN_QUEUED,
    check_at: float | None = None,
    hold_since: float | None = None,
    hold_health: str | None = None,
    user: str | None = None,
) -> RunRow:
    """A new run, queued for the engine (or armed / pending approval for a rule).
    ``user``: the console user starting it (default: the one a session actor names)."""
    resolved = resolve_params(runbook, params or {})
    with repo.transaction() as conn:
        busy = active_run(conn, runbook.id, target_id)
        if busy is not None:
            raise Conflict(
                f"run {busy.id} of {runbook.id} for {target_id or 'no target'} is {busy.state}: "
                "one run per runbook and target at a time"
            )
        run_id = conn.execute(
            insert(_RUN).values(
                runbook_id=runbook.id, target_id=target_id, incident_id=incident_id,
                rule_id=rule_id, started_by=actor, started_user=user or user_of(actor),
                state=state, params=resolved,
                phase="main", position=0, created_at=at, check_at=check_at,
                hold_since=hold_since, hold_health=hold_health, error="",
            )
        ).inserted_primary_key[0]  # fmt: skip
        run = get_run(conn, run_id)
        waits = {RUN_PENDING_APPROVAL: "; it waits for a person to approve the start"}
        if state in (RUN_QUEUED, RUN_PENDING_APPROVAL):
            note(
                repo, conn, run, state,
                f"runbook {runbook.display_name()} (run {run_id}) started by {actor}"
                f"{waits.get(state, '')}",
                at, actor=actor,
            )  # fmt: skip
        return run


def decide_start(
    repo: StateRepository,
    actor: str,
    run_id: int,
    approve: bool,
    *,
    at: float,
    note_text: str = "",
    user: str | None = None,
) -> RunRow:
    """Approve (queue) or reject a run a rule started in ``mode: approve``."""
    with repo.transaction() as conn:
        run = get_run(conn, run_id)
        if run.state != RUN_PENDING_APPROVAL:
            raise Conflict(f"run {run_id} is {run.state}: it does not wait for an approval")
        _not_self(user or user_of(actor), run)
        state = RUN_QUEUED if approve else RUN_REJECTED
        _set(conn, run_id, state=state, decided_by=actor,
             **({} if approve else {"ended_at": at, "error": f"rejected by {actor}"}))  # fmt: skip
        verb = "approved" if approve else "rejected"
        extra = f": {note_text[:MAX_NOTE]}" if note_text else ""
        note(repo, conn, run, state, f"run {run_id} ({run.runbook_id}) {verb} by {actor}{extra}",
             at, actor=actor)  # fmt: skip
        return get_run(conn, run_id)


def _not_self(person: str | None, run: RunRow) -> None:
    if person is not None and person == run.started_user:
        raise Conflict(f"{person} started run {run.id}: someone else must approve it (four eyes)")


def decide_step(
    repo: StateRepository,
    actor: str,
    run_id: int,
    decision: str,
    *,
    at: float,
    note_text: str = "",
    role_ok: Any = None,
    user: str | None = None,
) -> StepRow:
    """A person's answer to the step a run waits on: ``approved`` / ``rejected`` for an
    ``approve`` step, ``done`` for a ``manual`` one. ``role_ok(role)`` says whether the
    actor has the role the step asks for."""
    with repo.transaction() as conn:
        run = get_run(conn, run_id)
        row = conn.execute(
            select(_STEP)
            .where(_STEP.c.run_id == run_id, _STEP.c.state == "waiting")
            .order_by(_STEP.c.id.desc())
            .limit(1)
        ).first()
        if run.state != RUN_WAITING or row is None:
            raise Conflict(f"run {run_id} is {run.state}: no step waits for a person")
        step = _step_row(row)
        allowed = {"approve": ("approved", "rejected"), "manual": ("done",)}[
            step.waiting_for or "manual"
        ]
        if decision not in allowed:
            raise ValueError(
                f"step {step.step_id} is a{'n' if step.waiting_for == 'approve' else ''} "
                f"{step.waiting_for} step: answer {' or '.join(allowed)}"
            )
        if step.decision is not None:
            raise Conflict(f"step {step.step_id} was answered already by {step.decided_by}")
        if step.waiting_for == "approve":
            _not_self(user or user_of(actor), run)
        if role_ok is not None and step.role and not role_ok(step.role):
            raise Conflict(f"step {step.step_id} needs the {step.role} role")
        conn.execute(
            update(_STEP)
            .where(_STEP.c.id == step.id)
            .values(decision=decision, decided_by=actor, decided_at=at, note=note_text[:MAX_NOTE])
        )
        extra = f": {note_text[:MAX_NOTE]}" if note_text else ""
        note(
            repo, conn, run, run.state,
            f"run {run_id}: {actor} answered step {step.step_id}: {decision}{extra}",
            at, actor=actor, step={"step": step.step_id, "position": step.position,
                                   "phase": step.phase, "summary": decision},
        )  # fmt: skip
        return _step_row(conn.execute(select(_STEP).where(_STEP.c.id == step.id)).one())


def abort(repo: StateRepository, actor: str, run_id: int, *, at: float) -> RunRow:
    """Stop a run: at once when nothing executes, else asked of the engine (its step is
    cancelled and the run ends as aborted)."""
    with repo.transaction() as conn:
        run = get_run(conn, run_id)
        if run.state not in RUN_ACTIVE_STATES:
            raise Conflict(f"run {run_id} is {run.state} already")
        if run.state in (RUN_RUNNING, RUN_WAITING):
            _set(conn, run_id, requested="abort")
            line = f"run {run_id}: {actor} asked to abort it"
        else:
            _set(conn, run_id, state=RUN_ABORTED, ended_at=at, error=f"aborted by {actor}")
            line = f"run {run_id} ({run.runbook_id}) aborted by {actor}"
        note(repo, conn, run, RUN_ABORTED if run.state not in (RUN_RUNNING, RUN_WAITING)
             else run.state, line, at, actor=actor)  # fmt: skip
        return get_run(conn, run_id)


def resume(repo: StateRepository, actor: str, run_id: int, *, rollback: bool, at: float) -> RunRow:
    """An interrupted run (or a failed one, for ``rollback``) queued again: from the step
    it stopped at, or from the first rollback step."""
    with repo.transaction() as conn:
        run = get_run(conn, run_id)
        allowed = (RUN_INTERRUPTED, RUN_FAILED) if rollback else (RUN_INTERRUPTED,)
        if run.state not in allowed:
            raise Conflict(
                f"run {run_id} is {run.state}: only an interrupted run can be "
                f"{'rolled back (or a failed one)' if rollback else 'resumed'}"
            )
        if rollback:
            busy = active_run(conn, run.runbook_id, run.target_id)
            if busy is not None and busy.id != run_id:
                raise Conflict(
                    f"run {busy.id} of {run.runbook_id} for {run.target_id or 'no target'} is "
                    f"{busy.state}: one run per runbook and target at a time"
                )
            _set(conn, run_id, state=RUN_QUEUED, phase="rollback", position=0, ended_at=None,
                 requested=None)  # fmt: skip
            line = f"run {run_id}: {actor} asked to roll it back"
        else:
            _set(conn, run_id, state=RUN_QUEUED, requested=None)
            line = f"run {run_id}: {actor} resumed it at step {run.position + 1} ({run.phase})"
        note(repo, conn, run, RUN_QUEUED, line, at, actor=actor)
        return get_run(conn, run_id)


def audit_engine(
    conn: Connection, run: RunRow, action: str, result: str, detail: str, at: float
) -> None:
    audit.record(
        conn, at=at, actor="engine", action=action, result=result,  # type: ignore[arg-type]
        object=f"run:{run.id}", detail=detail[:2000],
    )  # fmt: skip
