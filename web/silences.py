"""The console's silences and maintenance page (``/silences``).

Lists the silences in force and the maintenance windows started by hand
that are open now (windows from the config are not listed: the config says
them); operators start a silence (notifications held back, health
unchanged) or a maintenance window (health ``maintenance``, shown on the
status page) for a target or a component, and lift or end one early. Each
form is one ``web.incident_ops`` change, the same the API makes; a refusal
is shown beside its form with its 4xx.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from monitor.store import queries
from web import guard, params
from web import incident_ops as ops
from web.actions import ActionRefused
from web.bodies import BodyError
from web.components import localized
from web.i18n import lang_tag
from web.incident_bodies import MaintenanceBody, SilenceBody, from_form
from web.incident_pages import FormError, can_act, refusal, target_choices
from web.views import current_services

bp = Blueprint("silences", __name__)
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

PER_PAGE = 100
MAX_FIELD = 5000


def _args() -> dict[str, list[str]]:
    args = {k: [v for v in vs if v.strip()] for k, vs in request.args.to_dict(flat=False).items()}
    return {k: vs for k, vs in args.items() if vs}


def _form(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD]


def _subject() -> dict[str, str]:
    """The form's subject as the body's field: its select (``target:ID`` or
    ``component:ID``), or the target id typed when the site has too many to list."""
    kind, _sep, value = _form("subject").partition(":")
    typed = _form("target").strip()
    if kind == "target" and not typed:
        return {"target_id": value}
    if kind == "component" and not typed:
        return {"component_id": value}
    if typed and not kind:
        return {"target_id": typed}
    raise BodyError(_("choose one target or one component"))


def _page(
    error: FormError | None = None, values: Mapping[str, str] | None = None
) -> tuple[str, int]:
    svc = current_services()
    cfg = svc.config()
    args = _args()
    try:
        params.reject_unknown(args, ("lang", "spage", "mpage"))
        silence_page = queries.Page(params.integer(args, "spage", 1, 1, 1_000_000), PER_PAGE)
        window_page = queries.Page(params.integer(args, "mpage", 1, 1, 1_000_000), PER_PAGE)
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    now = ops.now()
    silenced = queries.active_silences(svc.db, now, silence_page)
    windows = queries.active_maintenance(svc.db, now, window_page)
    components = [(c.id, localized(c.name, lang_tag(), c.id)) for c in cfg.components]
    return render_template(
        "silences.html",
        silences=silenced,
        windows=windows,
        targets=target_choices(cfg),
        components=components,
        component_names=dict(components),
        can_act=can_act(),
        person=lambda actor: ops.person(actor) or actor,
        values=values or {},
        error=error,
        now=now,
    ), (error.status if error is not None else 200)


def _done() -> Response:
    return redirect(url_for("silences.silences_page"), code=303)


def _act(form: str, change: Any) -> Response | tuple[str, int]:
    try:
        params.reject_unknown(_args(), ("lang",))
        change()
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    except (ActionRefused, BodyError) as exc:
        values = {k: _form(k) for k in request.form if k != "csrf_token"}
        return _page(refusal(form, exc), {**values, "form": form})
    return _done()


@bp.get("/silences")
def silences_page() -> tuple[str, int]:
    return _page()


@bp.post("/silences")
@guard.require("operator")
def add_silence() -> Response | tuple[str, int]:
    def silence() -> None:
        data: dict[str, Any] = {
            **_subject(),
            "duration": _form("duration").strip(),
            "reason": _form("reason").strip(),
        }
        ops.add_silence(from_form(SilenceBody, data))

    return _act("silence", silence)


@bp.post("/silences/<id:silence_id>/lift")
@guard.require("operator")
def lift_silence(silence_id: int) -> Response | tuple[str, int]:
    return _act("silences", lambda: ops.lift_silence(silence_id))


@bp.post("/silences/maintenance")
@guard.require("operator")
def start_maintenance() -> Response | tuple[str, int]:
    def start() -> None:
        data: dict[str, Any] = {**_subject(), "reason": _form("reason").strip()}
        if until := _form("until").strip():
            data["until"] = until
        ops.start_maintenance(from_form(MaintenanceBody, data))

    return _act("maintenance", start)


@bp.post("/silences/maintenance/<id:window_id>/end")
@guard.require("operator")
def end_maintenance(window_id: int) -> Response | tuple[str, int]:
    return _act("windows", lambda: ops.end_maintenance(window_id))
