"""The console's on-call page (``/oncall``): who is on call now and next, the week ahead,
and the overrides.

Per schedule: who is on call now and who takes over next (with the handoff
in the site timezone), and the shifts of the next 7 days
(``notify.schedules.timeline``), overrides included. Operators add an
override (a schedule, a person, from, to, a reason) and remove one; each
form is one ``web.oncall_ops`` change, the same the API makes, and a
refusal is shown beside its form with its 4xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from notify.paging import overrides_at
from notify.roster import roster_of
from notify.schedules import on_call, timeline
from web import guard, params
from web import oncall_ops as ops
from web.actions import ActionRefused
from web.api_paging import ONCALL_HORIZON, TestRefused, channel_rows, send_test
from web.bodies import BodyError
from web.incident_bodies import from_form
from web.incident_ops import person as user_of
from web.incident_pages import FormError, can_act, refusal
from web.views import current_services

bp = Blueprint("oncall", __name__)
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

WEEK = 7 * 86400.0
HEALTH_LABELS: Mapping[str, Any] = {
    "ok": _l("Working"),
    "degraded": _l("Degraded: its last attempts failed"),
    "disabled": _l("Disabled"),
    "unknown": _l("Not used yet"),
}
MAX_FIELD = 5000
FIELDS = ("schedule", "person", "from", "to", "reason")


def _form(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD]


def _page(
    error: FormError | None = None,
    values: Mapping[str, str] | None = None,
    tested: Mapping[str, Any] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    svc = current_services()
    roster = roster_of(svc.config())
    try:
        params.reject_unknown(request.args.to_dict(flat=False), ("lang",))
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    now = svc.clock()
    with svc.db.connect() as conn:
        active = overrides_at(conn, now)
    names = {p.id: p.name for p in roster.people.values()}
    schedules = []
    for schedule in roster.schedules.values():
        found = on_call(schedule, now, active, horizon=ONCALL_HORIZON)
        schedules.append(
            {
                "id": schedule.id,
                "name": schedule.display_name,
                "timezone": schedule.timezone,
                "now": found.now,
                "next": found.next,
                "week": timeline(schedule, now, now + WEEK, active),
            }
        )
    return render_template(
        "oncall.html",
        schedules=schedules,
        overrides=ops.listed(now),
        schedule_names={s.id: s.display_name for s in roster.schedules.values()},
        people=sorted(names.items(), key=lambda p: p[1]),
        person_name=lambda pid: names.get(pid, pid),
        actor_name=lambda actor: user_of(actor) or actor,
        can_act=can_act(),
        values=values or {},
        error=error,
        now=now,
        channels=channel_rows(),
        health_labels=HEALTH_LABELS,
        tested=tested,
    ), (error.status if error is not None else status)


def _act(form: str, change: Any) -> Response | tuple[str, int]:
    try:
        params.reject_unknown(request.args.to_dict(flat=False), ("lang",))
        change()
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    except (ActionRefused, BodyError) as exc:
        values = {k: _form(k) for k in FIELDS}
        return _page(refusal(form, exc), values)
    return redirect(url_for("oncall.oncall_page"), code=303)


@bp.get("/oncall")
def oncall_page() -> tuple[str, int]:
    return _page()


@bp.post("/oncall/overrides")
@guard.require("operator")
def add_override() -> Response | tuple[str, int]:
    def add() -> None:
        data = {k: _form(k).strip() for k in FIELDS}
        ops.add_override(from_form(ops.OverrideBody, data))

    return _act("override", add)


@bp.post("/oncall/channels/<channel_id>/test")
@guard.require("operator")
def test_channel(channel_id: str) -> tuple[str, int]:
    """Send a test message from the page: the result is shown at the channel's row."""
    try:
        params.reject_unknown(request.args.to_dict(flat=False), ("lang",))
        person = _form("person").strip() or None
        result = send_test(channel_id, person)
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    except TestRefused as exc:
        return _page(FormError("channels", exc.reason, exc.status))
    return _page(tested=result)


@bp.post("/oncall/overrides/<id:override_id>/remove")
@guard.require("operator")
def remove_override(override_id: int) -> Response | tuple[str, int]:
    return _act("overrides", lambda: ops.remove_override(override_id))
