"""The runbooks API: what can be done, dry-runs, runs started by hand, and people's answers.

- ``GET /api/v1/runbooks``: every runbook with its names, parameters, steps,
  rollback steps and emergency plan.
- ``POST /api/v1/runbooks/<id>/runs`` (operators): ``{target?, incident?,
  params?, dry_run?}``. ``dry_run: true`` answers the plan — every step with
  its values resolved, nothing executed, nothing stored; otherwise the run is
  queued (201), audited as ``runbook.start``, one per (runbook, target) at a
  time (409 naming the run in the way).
- ``GET /api/v1/runs`` (``?state=&incident=&runbook=``) and
  ``GET /api/v1/runs/<id>``: runs, and one run with every attempt of every
  step (output with secrets masked).
- ``POST /api/v1/runs/<id>/decide`` (operators; ``{decision, note?}``):
  ``approved`` / ``rejected`` for a run waiting for approval to start or at
  an ``approve`` step (never by the person who started it), ``done`` for a
  ``manual`` step. A step that asks for the admin role needs an admin.
- ``POST /api/v1/runs/<id>/abort``, ``/resume``, ``/rollback`` (operators).

Every change goes through ``web.actions.perform`` (audited, refusals too) and
wakes the engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from flask import Blueprint, Response, jsonify, request
from pydantic import Field, StringConstraints

from core.clock import SYSTEM_CLOCK
from monitor.staff.roles import at_least
from monitor.store.models import RUN_PENDING_APPROVAL
from monitor.store.repository import NotFound
from runbooks import runs
from runbooks.config import RunbookConfig
from runbooks.engine import PlannedStep, RunbookEngine
from runbooks.runs import RunRow, StepRow
from web import guard, params
from web.actions import ActionRefused, perform
from web.bodies import PLAIN, Body, BodyError, parse_body
from web.i18n import iso
from web.views import current_services, json_error

bp = Blueprint("api_runbooks", __name__, url_prefix="/api/v1")
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

RUN_STATES = (
    "armed", "pending_approval", "queued", "running", "waiting", "interrupted",
    "succeeded", "failed", "aborted", "rejected", "rolled_back", "dropped",
)  # fmt: skip
Text = Annotated[str, StringConstraints(max_length=runs.MAX_NOTE), *PLAIN]


@bp.errorhandler(params.ParamError)
def _bad_param(exc: params.ParamError) -> tuple[Response, int]:
    return json_error(str(exc), 400)


@bp.errorhandler(BodyError)
def _bad_body(exc: BodyError) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


@bp.errorhandler(ActionRefused)
def _refused(exc: ActionRefused) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


class StartBody(Body):
    """Start a runbook by hand (or see what it would do)."""

    target: Annotated[str, StringConstraints(max_length=64)] | None = None
    incident: Annotated[int, Field(ge=1)] | None = None
    params: dict[Annotated[str, StringConstraints(max_length=64)], str | int | float | bool] = (
        Field(default_factory=dict, max_length=50)
    )
    dry_run: bool = False


class DecideBody(Body):
    """A person's answer to a run that waits for one."""

    decision: Literal["approved", "rejected", "done"]
    note: Text = ""


ROUTE_BODIES: Mapping[str, type[Body]] = {
    "api_runbooks.start": StartBody,
    "api_runbooks.decide": DecideBody,
}
"""The body each route takes, by endpoint (for the OpenAPI document)."""


# -- reading -----------------------------------------------------------------------------
def runbooks() -> dict[str, RunbookConfig]:
    return {r.id: r for r in getattr(current_services().config(), "runbooks", [])}


def _runbook(runbook_id: str) -> RunbookConfig:
    found = runbooks().get(runbook_id)
    if found is None:
        raise ActionRefused(404, f"no runbook {runbook_id!r} in the config")
    return found


def _steps_json(runbook: RunbookConfig, phase: str) -> list[dict[str, Any]]:
    steps = runbook.steps if phase == "main" else runbook.rollback
    ids = runbook.step_ids(phase)
    return [
        {"id": ids[i], "kind": s.kind, "title": s.name or ids[i],
         "timeout": s.timeout, "retries": s.retries, "on_failure": s.on_failure}
        for i, s in enumerate(steps)
    ]  # fmt: skip


def runbook_json(runbook: RunbookConfig) -> dict[str, Any]:
    return {
        "id": runbook.id,
        "name": {"en": runbook.display_name("en"), "zh-CN": runbook.display_name("zh-CN")},
        "description": runbook.description,
        "emergency_plan": {"en": runbook.plan_text("en"), "zh-CN": runbook.plan_text("zh-CN")},
        "parameters": {
            name: {
                "default": p.default,
                "required": p.required,
                "description": p.description,
                "choices": p.choices,
            }
            for name, p in runbook.parameters.items()
        },  # fmt: skip
        "steps": _steps_json(runbook, "main"),
        "rollback": _steps_json(runbook, "rollback"),
        "cooldown": runbook.cooldown,
    }


def run_json(run: RunRow) -> dict[str, Any]:
    return {
        "id": run.id,
        "runbook": run.runbook_id,
        "target": run.target_id,
        "incident": run.incident_id,
        "rule": run.rule_id,
        "started_by": run.started_by,
        "state": run.state,
        "params": dict(run.params),
        "phase": run.phase,
        "position": run.position,
        "created_at": iso(run.created_at),
        "started_at": iso(run.started_at) if run.started_at is not None else None,
        "ended_at": iso(run.ended_at) if run.ended_at is not None else None,
        "requested": run.requested,
        "error": run.error or None,
        "decided_by": run.decided_by,
    }


def step_json(step: StepRow) -> dict[str, Any]:
    return {
        "id": step.id,
        "phase": step.phase,
        "position": step.position,
        "step": step.step_id,
        "kind": step.kind,
        "attempt": step.attempt,
        "state": step.state,
        "started_at": iso(step.started_at),
        "ended_at": iso(step.ended_at) if step.ended_at is not None else None,
        "summary": step.summary,
        "output": step.output,
        "waiting_for": step.waiting_for,
        "role": step.role,
        "prompt": step.prompt or None,
        "decision": step.decision,
        "decided_by": step.decided_by,
        "decided_at": iso(step.decided_at) if step.decided_at is not None else None,
        "note": step.note or None,
    }


def plan_json(planned: PlannedStep) -> dict[str, Any]:
    return {
        "phase": planned.phase,
        "position": planned.position,
        "id": planned.id,
        "kind": planned.kind,
        "title": planned.title,
        "does": list(planned.lines),
        "error": planned.error,
        "timeout": planned.timeout,
        "retries": planned.retries,
        "on_failure": planned.on_failure,
    }


@bp.get("/runbooks")
def list_runbooks() -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    return jsonify(items=[runbook_json(r) for r in runbooks().values()])


@bp.get("/runs")
def list_runs() -> Response:
    args = request.args.to_dict(flat=False)
    params.reject_unknown(args, ("state", "incident", "runbook"))
    state = request.args.get("state")
    if state is not None and state not in RUN_STATES:
        raise params.ParamError(f"state must be one of {', '.join(RUN_STATES)}")
    incident = request.args.get("incident")
    if incident is not None and not (incident.isdigit() and 0 < int(incident) < 10**18):
        raise params.ParamError("incident must be an incident id (a positive integer)")
    with current_services().db.connect() as conn:
        found = runs.runs(
            conn,
            states=(state,) if state else None,
            incident_id=int(incident) if incident else None,
            runbook_id=request.args.get("runbook"),
        )
    return jsonify(items=[run_json(r) for r in found])


def load_run(run_id: int) -> tuple[RunRow, list[StepRow]]:
    with current_services().db.connect() as conn:
        try:
            run = runs.get_run(conn, run_id)
        except NotFound as exc:
            raise ActionRefused(404, str(exc)) from exc
        return run, runs.steps_of(conn, run_id)


@bp.get("/runs/<id:run_id>")
def get_run(run_id: int) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    run, steps = load_run(run_id)
    return jsonify({**run_json(run), "steps": [step_json(s) for s in steps]})


# -- changing ----------------------------------------------------------------------------
def _wake() -> None:
    found = current_services().runbooks
    if found is not None:
        found.wake()


def plan_of(runbook: RunbookConfig, body: StartBody) -> list[PlannedStep]:
    """A dry-run: the plan of a run that is never stored (its id is 0)."""
    svc = current_services()
    resolved = runs.resolve_params(runbook, body.params)
    draft = RunRow(
        0, runbook.id, body.target, body.incident, None, _actor(), "queued", resolved, "main", 0,
        svc.clock(), None, None, None, "", None, started_user=_user(),
    )  # fmt: skip
    found = svc.runbooks
    if found is not None:
        return found.plan(draft)
    engine = RunbookEngine(svc.repo or guard.repo(), svc.config, clock=SYSTEM_CLOCK)
    return engine.plan(draft, runbook)


def _user() -> str | None:
    current = guard.who()
    return current.user if current is not None else None


def _actor() -> str:
    current = guard.who()
    return current.actor if current is not None else "anonymous"


def _check_target(body: StartBody) -> None:
    if body.target is not None:
        known = {t.id for t in getattr(current_services().config(), "targets", [])}
        if body.target not in known:
            raise ActionRefused(400, f"no target {body.target!r} in the config")


def start_run(runbook_id: str, body: StartBody) -> RunRow:
    """The audited start (the API and the console page call this)."""
    runbook = _runbook(runbook_id)
    _check_target(body)

    def start(repo: Any, actor: str, *, at: float) -> RunRow:
        return runs.start_run(repo, actor, runbook, at=at, target_id=body.target,
                              incident_id=body.incident, params=body.params, user=_user())  # fmt: skip

    run = perform("runbook.start", f"runbook:{runbook_id}", start,
                  after={"target": body.target, "params": dict(body.params)})  # fmt: skip
    _wake()
    return run


@bp.post("/runbooks/<runbook_id>/runs")
@guard.require("operator")
def start(runbook_id: str) -> tuple[Response, int]:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    body = parse_body(StartBody)
    if body.dry_run:
        runbook = _runbook(runbook_id)
        _check_target(body)
        try:
            planned = plan_of(runbook, body)
        except ValueError as exc:
            raise ActionRefused(400, str(exc)) from exc
        return jsonify(runbook=runbook_id, dry_run=True, plan=[plan_json(p) for p in planned]), 200
    return jsonify(run_json(start_run(runbook_id, body))), 201


def decide_run(run_id: int, body: DecideBody) -> RunRow:
    """The audited answer (the API and the console page call this)."""
    current = guard.who()
    role = current.role if current is not None else "viewer"
    run, _ = load_run(run_id)

    def decide(repo: Any, actor: str, *, at: float) -> Any:
        if run.state == RUN_PENDING_APPROVAL:
            if body.decision == "done":
                raise ValueError(
                    "this run waits for approval to start: answer approved or rejected"
                )
            return runs.decide_start(repo, actor, run_id, body.decision == "approved", at=at,
                                     note_text=body.note, user=_user())  # fmt: skip
        return runs.decide_step(repo, actor, run_id, body.decision, at=at, note_text=body.note,
                                role_ok=lambda needed: at_least(role, needed), user=_user())  # fmt: skip

    perform("runbook.decide", f"run:{run_id}", decide, after={"decision": body.decision})
    _wake()
    return load_run(run_id)[0]


@bp.post("/runs/<id:run_id>/decide")
@guard.require("operator")
def decide(run_id: int) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    return jsonify(run_json(decide_run(run_id, parse_body(DecideBody))))


def act_on_run(run_id: int, what: str) -> RunRow:
    """Abort, resume or roll back a run, audited."""
    functions = {
        "abort": lambda repo, actor, *, at: runs.abort(repo, actor, run_id, at=at),
        "resume": lambda repo, actor, *, at: runs.resume(repo, actor, run_id, rollback=False, at=at),
        "rollback": lambda repo, actor, *, at: runs.resume(repo, actor, run_id, rollback=True, at=at),
    }  # fmt: skip
    run = perform(f"runbook.{what}", f"run:{run_id}", functions[what])
    _wake()
    return run


@bp.post("/runs/<id:run_id>/abort")
@guard.require("operator")
def abort(run_id: int) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    return jsonify(run_json(act_on_run(run_id, "abort")))


@bp.post("/runs/<id:run_id>/resume")
@guard.require("operator")
def resume(run_id: int) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    return jsonify(run_json(act_on_run(run_id, "resume")))


@bp.post("/runs/<id:run_id>/rollback")
@guard.require("operator")
def rollback(run_id: int) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    return jsonify(run_json(act_on_run(run_id, "rollback")))
