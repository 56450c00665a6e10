"""The console's runbook pages: what can be done, the plan for people, runs live.

- ``/runbooks``: every runbook with its steps and its **emergency plan**
  (what staff do by hand, whom to call, the backup channels) side by side;
  operators start one for a target with its parameters, or ask for a
  dry-run first (the plan with every value resolved, nothing executed); the
  trunk failover groups with each member's wanted state and, for
  ``failback: approve``, the Approve button; the latest runs.
- ``/runs/<id>``: one run with every attempt of every step (output masked),
  refreshed every few seconds while it is active; the answer form when it
  waits for a person (approve / reject, or done with a note); abort,
  resume, roll back as its state allows.

Each form is one call of the same audited function the API uses
(``web.api_runbooks``, ``web.api_failover``); a refusal is shown beside its
form with its 4xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from monitor.store.models import RUN_ACTIVE_STATES, RUN_PENDING_APPROVAL, RUN_WAITING
from runbooks import runs
from web import api_failover, guard, params
from web import api_runbooks as api
from web.actions import ActionRefused
from web.bodies import BodyError
from web.i18n import lang_tag
from web.incident_bodies import from_form
from web.incident_pages import FormError, can_act, refusal, target_choices
from web.views import current_services

bp = Blueprint("runbook_pages", __name__)
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

MAX_FIELD = 2000
REFRESH_SECONDS = 5


def _form(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD]


def _lang() -> str:
    return "zh-CN" if lang_tag().startswith("zh") else "en"


def _bad_args() -> tuple[str, int] | None:
    try:
        params.reject_unknown(request.args.to_dict(flat=False), ("lang",))
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    return None


def _groups() -> list[dict[str, Any]]:
    with current_services().db.connect() as conn:
        return [api_failover.group_json(conn, g) for g in api_failover.groups()]


def _list_page(
    error: FormError | None = None,
    plan: Mapping[str, Any] | None = None,
    values: Mapping[str, str] | None = None,
) -> tuple[str, int]:
    bad = _bad_args()
    if bad is not None:
        return bad
    with current_services().db.connect() as conn:
        latest = runs.runs(conn, limit=30)
    return render_template(
        "runbooks.html",
        runbooks=list(api.runbooks().values()),
        lang=_lang(),
        targets=target_choices(current_services().config()),
        runs=latest,
        groups=_groups(),
        can_act=can_act(),
        error=error,
        plan=plan,
        values=values or {},
        now=current_services().clock(),
    ), (error.status if error is not None else 200)


@bp.get("/runbooks")
def runbooks_page() -> tuple[str, int]:
    return _list_page()


def _start_body(runbook_id: str, dry_run: bool) -> api.StartBody:
    runbook = api._runbook(runbook_id)
    data: dict[str, Any] = {"dry_run": dry_run, "params": {}}
    target = _form("target").strip()
    if target:
        data["target"] = target
    for name in runbook.parameters:
        value = _form(f"param-{name}").strip()
        if value:
            data["params"][name] = value
    return from_form(api.StartBody, data)


@bp.post("/runbooks/<runbook_id>/start")
@guard.require("operator")
def start(runbook_id: str) -> Response | tuple[str, int]:
    bad = _bad_args()
    if bad is not None:
        return bad
    values = {"runbook": runbook_id, "target": _form("target")}
    dry_run = request.form.get("action") == "dry-run"
    try:
        body = _start_body(runbook_id, dry_run)
        if dry_run:
            runbook = api._runbook(runbook_id)
            api._check_target(body)
            try:
                planned = api.plan_of(runbook, body)
            except ValueError as exc:
                raise ActionRefused(400, str(exc)) from exc
            return _list_page(plan={"runbook": runbook, "target": body.target,
                                    "steps": planned}, values=values)  # fmt: skip
        run = api.start_run(runbook_id, body)
    except (ActionRefused, BodyError) as exc:
        return _list_page(refusal(f"start-{runbook_id}", exc), values=values)
    return redirect(url_for("runbook_pages.run_page", run_id=run.id), code=303)


@bp.post("/failover/<group_id>/<target_id>/approve")
@guard.require("operator")
def approve_failback(group_id: str, target_id: str) -> Response | tuple[str, int]:
    bad = _bad_args()
    if bad is not None:
        return bad
    try:
        api_failover.approve(group_id, target_id)
    except ActionRefused as exc:
        return _list_page(refusal("failover", exc))
    return redirect(url_for("runbook_pages.runbooks_page"), code=303)


# -- one run ---------------------------------------------------------------------------------
def _run_page(run_id: int, error: FormError | None = None) -> tuple[str, int]:
    bad = _bad_args()
    if bad is not None:
        return bad
    try:
        run, steps = api.load_run(run_id)
    except ActionRefused:
        return render_template("error.html", code=404, message=_("No such run.")), 404
    runbook = api.runbooks().get(run.runbook_id)
    asking = next((s for s in reversed(steps) if s.state == "waiting"), None)
    return render_template(
        "run.html",
        run=run,
        steps=steps,
        runbook=runbook,
        lang=_lang(),
        asking=asking if run.state == RUN_WAITING else None,
        pending=run.state == RUN_PENDING_APPROVAL,
        active=run.state in RUN_ACTIVE_STATES,
        refresh=REFRESH_SECONDS if run.state in RUN_ACTIVE_STATES and error is None else None,
        can_act=can_act(),
        error=error,
        now=current_services().clock(),
    ), (error.status if error is not None else 200)


@bp.get("/runs/<id:run_id>")
def run_page(run_id: int) -> tuple[str, int]:
    return _run_page(run_id)


def _after(run_id: int, form: str, change: Any) -> Response | tuple[str, int]:
    bad = _bad_args()
    if bad is not None:
        return bad
    try:
        change()
    except (ActionRefused, BodyError) as exc:
        return _run_page(run_id, refusal(form, exc))
    return redirect(url_for("runbook_pages.run_page", run_id=run_id), code=303)


@bp.post("/runs/<id:run_id>/decide")
@guard.require("operator")
def decide(run_id: int) -> Response | tuple[str, int]:
    def answer() -> None:
        body = from_form(api.DecideBody, {"decision": _form("decision"), "note": _form("note")})
        api.decide_run(run_id, body)

    return _after(run_id, "decide", answer)


@bp.post("/runs/<id:run_id>/abort")
@guard.require("operator")
def abort(run_id: int) -> Response | tuple[str, int]:
    return _after(run_id, "act", lambda: api.act_on_run(run_id, "abort"))


@bp.post("/runs/<id:run_id>/resume")
@guard.require("operator")
def resume(run_id: int) -> Response | tuple[str, int]:
    return _after(run_id, "act", lambda: api.act_on_run(run_id, "resume"))


@bp.post("/runs/<id:run_id>/rollback")
@guard.require("operator")
def rollback(run_id: int) -> Response | tuple[str, int]:
    return _after(run_id, "act", lambda: api.act_on_run(run_id, "rollback"))
