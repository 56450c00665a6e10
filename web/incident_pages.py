"""The console's incident pages: the list (``/incidents``), one incident (``/incidents/<id>``)
and declaring one by hand (``/incidents/new``).

Any staff member reads them; the forms (acknowledge, note, cause / ETA /
summary, customer update, resolve, declare) are for operators, and the guard
refuses a viewer's POST with a 403 before any of this runs. Each form is one
``web.incident_ops`` change, the same function the API calls, from a body
checked by the same model (``web.incident_bodies``); a refusal is shown on
the page beside its form, with the refusal's 4xx, and what was typed kept.
A change that worked redirects (303) back to the incident, so a reload does
not send it twice.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for
from flask_babel import format_timedelta
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from monitor import components
from monitor.config.schema import Config
from monitor.incident_actions import LANGUAGES, SEVERITIES
from monitor.staff.roles import at_least
from monitor.store import queries
from monitor.store.models import INCIDENT_OPEN, INCIDENT_STATES
from notify import outbox
from web import guard, params
from web import incident_ops as ops
from web.actions import ActionRefused
from web.bodies import BodyError
from web.components import localized
from web.i18n import absolute_time, lang_tag, valid_timezone
from web.incident_bodies import (
    CustomerUpdateBody,
    DeclareBody,
    IncidentPatch,
    NoteBody,
    ResolveBody,
    from_form,
)
from web.incident_filters import incident_query
from web.views import current_services, target_names
from web.vocabulary import say

bp = Blueprint("incident_pages", __name__)
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

MAX_FIELD = 5000
"""Characters read from one form field (the bodies' own limits are lower and say so)."""
MAX_CHOICES = 300
"""Targets a form offers as a list to pick from; with more (a site of 10,000 targets) it
asks for ids instead, so every page does not carry thousands of options."""

EVENT_LABELS: Mapping[str, Any] = {
    "opened": _l("Opened"),
    "joined": _l("Joined"),
    "recovered": _l("Recovered"),
    "resolved": _l("Resolved"),
    "acknowledged": _l("Acknowledged"),
    "note": _l("Internal note"),
    "updated": _l("Updated"),
    "customer_update": _l("Customer update"),
    "silenced": _l("Silence"),
    "maintenance": _l("Maintenance"),
    "delivery": _l("Notification"),
}
"""The timeline's kinds of line (``incident_event.kind``); another kind shows as stored."""
STATE_LABELS: Mapping[str, Any] = {"open": _l("Open"), "resolved": _l("Resolved")}
DELIVERY_LABELS: Mapping[str, Any] = {
    "pending": _l("Waiting"),
    "sending": _l("Sending"),
    "sent": _l("Sent"),
    "failed": _l("Failed"),
    "cancelled": _l("Cancelled"),
    "in_flight": _l("In flight"),
    "interrupted": _l("Interrupted by a restart"),
}
"""A delivery's state and an attempt's outcome (``notify.outbox``) as the page says them."""
LANGUAGE_LABELS: Mapping[str, Any] = {"zh-CN": _l("Chinese (zh-CN)"), "en": _l("English (en)")}


@dataclass(frozen=True, slots=True)
class FormError:
    """A refusal shown beside the form that caused it."""

    form: str
    message: str
    status: int


# -- helpers ---------------------------------------------------------------------------
def _args() -> dict[str, list[str]]:
    # A filter form submits "any" as an empty value: here that means "no filter".
    args = {k: [v for v in vs if v.strip()] for k, vs in request.args.to_dict(flat=False).items()}
    return {k: vs for k, vs in args.items() if vs}


def _form(name: str) -> str:
    return request.form.get(name, "")[:MAX_FIELD]


def _bad_request(exc: Exception) -> tuple[str, int]:
    return render_template("error.html", code=400, message=str(exc)), 400


def _timezone() -> str:
    return valid_timezone(ops.config().site.timezone)


def local_input(ts: float | None) -> str:
    """Epoch seconds as ``2026-12-01T14:30`` in the site timezone (a form's value)."""
    if ts is None:
        return ""
    moment = datetime.fromtimestamp(ts, UTC).astimezone(ZoneInfo(_timezone()))
    return moment.strftime("%Y-%m-%dT%H:%M")


def lasted(row: queries.IncidentRow, now: float) -> str:
    """How long the incident lasted (or has lasted so far), in words."""
    end = row.resolved_at if row.resolved_at is not None else now
    return format_timedelta(max(0.0, end - row.opened_at), threshold=1.5)


def who_acked(row: queries.IncidentRow) -> str | None:
    """The person behind the acknowledgement (a token's user), else the actor as stored."""
    if row.acknowledged_by is None:
        return None
    return ops.person(row.acknowledged_by) or row.acknowledged_by


def affected_components(cfg: Config, row: queries.IncidentRow, lang: str) -> list[tuple[str, str]]:
    """(id, name in ``lang``) of each configured component with a member in the incident."""
    members = set(row.member_ids)
    return [
        (c.id, localized(c.name, lang, c.id))
        for c in cfg.components
        if members.intersection(components.members(c, cfg.targets))
    ]


def target_choices(cfg: Config) -> list[tuple[str, str]] | None:
    """(id, name) of every configured target for a form's list; None when too many."""
    names = target_names(cfg)
    return sorted(names.items()) if len(names) <= MAX_CHOICES else None


def ids_of(text: str) -> list[str]:
    """Target ids typed into a field, separated by commas or white space."""
    return [t for t in re.split(r"[\s,]+", text) if t][:1000]


def can_act() -> bool:
    current = guard.who()
    return current is not None and at_least(current.role, "operator")


def refusal(form: str, exc: ActionRefused | BodyError) -> FormError:
    if isinstance(exc, ops.AlreadyAcknowledged):
        message = _(
            "Already acknowledged by %(who)s at %(time)s.",
            who=exc.person or exc.by,
            time=absolute_time(exc.at),
        )
        return FormError(form, message, 409)
    return FormError(form, _("Not done: %(reason)s", reason=say(exc.reason)), exc.status)


# -- the list ----------------------------------------------------------------------------
@bp.get("/incidents")
def incident_list() -> str | tuple[str, int]:
    svc = current_services()
    cfg = svc.config()
    args = _args()
    try:
        query = incident_query(args, cfg, _timezone(), extra_allowed=("lang",))
    except params.ParamError as exc:
        return _bad_request(exc)
    result = queries.incidents_page(svc.db, query.states, query.page, query.flt)
    last_page = max(1, -(-result.total // query.page.per_page))
    now = ops.now()

    def url_with(**changes: object) -> str:
        kept = {k: v for k, v in args.items() if k != "lang"}
        for key, value in changes.items():
            if value is None:
                kept.pop(key, None)
            else:
                kept[key] = [str(value)]
        return url_for("incident_pages.incident_list") + (
            "?" + urlencode(kept, doseq=True) if kept else ""
        )

    return render_template(
        "incidents.html",
        result=result,
        query=query,
        page=query.page,
        last_page=last_page,
        states=INCIDENT_STATES,
        severities=SEVERITIES,
        state_labels=STATE_LABELS,
        targets=target_choices(cfg),
        components=[(c.id, localized(c.name, lang_tag(), c.id)) for c in cfg.components],
        url_with=url_with,
        lasted=lambda row: lasted(row, now),
        who_acked=who_acked,
        can_act=can_act(),
        now=now,
    )


# -- one incident ------------------------------------------------------------------------
def _incident_page(
    incident_id: int, error: FormError | None = None, values: Mapping[str, str] | None = None
) -> tuple[str, int]:
    svc = current_services()
    cfg = svc.config()
    row = queries.incident(svc.db, incident_id)
    if row is None:
        abort(404)
    now = ops.now()
    lang = lang_tag()
    updates = queries.customer_updates(svc.db, [incident_id])[incident_id]
    current = {
        "cause": row.cause or "",
        "eta": local_input(row.eta),
        **{f"summary_{lang_}": row.summary.get(lang_, "") for lang_ in LANGUAGES},
    }
    return render_template(
        "incident.html",
        row=row,
        names=target_names(cfg),
        events=queries.incident_events(svc.db, incident_id),
        deliveries=_deliveries(incident_id),
        delivery_labels=DELIVERY_LABELS,
        updates=updates,
        affected=affected_components(cfg, row, lang),
        lasted=lasted(row, now),
        acked_by=who_acked(row),
        is_open=row.state == INCIDENT_OPEN,
        can_act=can_act(),
        event_labels=EVENT_LABELS,
        state_labels=STATE_LABELS,
        languages=LANGUAGES,
        language_labels=LANGUAGE_LABELS,
        localized=localized,
        lang=lang,
        current=current,
        values={**current, **(values or {})},
        error=error,
        now=now,
    ), (error.status if error is not None else 200)


def _deliveries(incident_id: int) -> list[outbox.DeliveryView]:
    with current_services().db.connect() as conn:
        return outbox.of_incident(conn, incident_id, limit=200)


def _done(incident_id: int) -> Response:
    return redirect(url_for("incident_pages.incident_page", incident_id=incident_id), code=303)


def _only_lang() -> None:
    params.reject_unknown(_args(), ("lang",))


@bp.get("/incidents/<id:incident_id>")
def incident_page(incident_id: int) -> tuple[str, int]:
    try:
        _only_lang()
    except params.ParamError as exc:
        return _bad_request(exc)
    return _incident_page(incident_id)


def _act(incident_id: int, form: str, change: Any) -> Response | tuple[str, int]:
    """Run ``change()`` (one ``incident_ops`` call); the page with the refusal if refused."""
    try:
        _only_lang()
        change()
    except params.ParamError as exc:
        return _bad_request(exc)
    except (ActionRefused, BodyError) as exc:
        values = {k: _form(k) for k in request.form if k != "csrf_token"}
        return _incident_page(incident_id, refusal(form, exc), values)
    return _done(incident_id)


@bp.post("/incidents/<id:incident_id>/ack")
@guard.require("operator")
def acknowledge(incident_id: int) -> Response | tuple[str, int]:
    return _act(incident_id, "ack", lambda: ops.acknowledge(incident_id))


@bp.post("/incidents/<id:incident_id>/notes")
@guard.require("operator")
def add_note(incident_id: int) -> Response | tuple[str, int]:
    def note() -> None:
        ops.add_note(incident_id, from_form(NoteBody, {"text": _form("text")}))

    return _act(incident_id, "note", note)


def _per_language(prefix: str) -> dict[str, str]:
    """The non-empty texts of ``<prefix>_zh-CN``, ``<prefix>_en``."""
    return {lang: text for lang in LANGUAGES if (text := _form(f"{prefix}_{lang}")).strip()}


@bp.post("/incidents/<id:incident_id>/updates")
@guard.require("operator")
def publish_update(incident_id: int) -> Response | tuple[str, int]:
    def publish() -> None:
        texts = _per_language("text")
        if not texts:
            raise BodyError(_("write the update in at least one language"))
        ops.publish_update(incident_id, from_form(CustomerUpdateBody, {"text": texts}))

    return _act(incident_id, "update", publish)


@bp.post("/incidents/<id:incident_id>/edit")
@guard.require("operator")
def edit(incident_id: int) -> Response | tuple[str, int]:
    """Cause, ETA and summary as the form shows them: what differs from the incident now
    changes (an emptied field clears it); an unchanged ETA is not read again."""

    def change() -> None:
        row = queries.incident(current_services().db, incident_id)
        if row is None:
            abort(404)
        data: dict[str, Any] = {}
        cause = _form("cause").strip()
        if cause != (row.cause or ""):
            data["cause"] = cause or None
        # A resolved incident's form has no ETA field (it cannot be set): not sent, not changed.
        eta = _form("eta").strip()
        if "eta" in request.form and eta != local_input(row.eta):
            data["eta"] = eta or None
        summary = {lang: text.strip() for lang, text in _per_language("summary").items()}
        if summary != dict(row.summary):
            data["summary"] = summary or None
        if not data:
            raise BodyError(_("nothing changed"))
        ops.edit(incident_id, from_form(IncidentPatch, data))

    return _act(incident_id, "edit", change)


@bp.post("/incidents/<id:incident_id>/resolve")
@guard.require("operator")
def resolve(incident_id: int) -> Response | tuple[str, int]:
    def resolve_it() -> None:
        ops.resolve(incident_id, from_form(ResolveBody, {"note": _form("note")}))

    return _act(incident_id, "resolve", resolve_it)


# -- declaring ---------------------------------------------------------------------------
def _declare_page(
    error: FormError | None = None, values: Mapping[str, Any] | None = None
) -> tuple[str, int]:
    cfg = ops.config()
    return render_template(
        "incident_new.html",
        targets=target_choices(cfg),
        components=[(c.id, localized(c.name, lang_tag(), c.id)) for c in cfg.components],
        severities=SEVERITIES,
        languages=LANGUAGES,
        language_labels=LANGUAGE_LABELS,
        values=values or {"severity": "down", "targets": [], "components": []},
        error=error,
    ), (error.status if error is not None else 200)


@bp.get("/incidents/new")
@guard.require("operator")
def declare_page() -> tuple[str, int]:
    try:
        _only_lang()
    except params.ParamError as exc:
        return _bad_request(exc)
    return _declare_page()


@bp.post("/incidents/new")
@guard.require("operator")
def declare() -> Response | tuple[str, int]:
    """Declare, then set what else the form gives (cause, summary) on the new incident:
    two audited changes, as the API makes them."""
    values: dict[str, Any] = {
        "title": _form("title"),
        "severity": _form("severity"),
        "targets": [
            *(t[:64] for t in request.form.getlist("targets")),
            *ids_of(_form("target_ids")),
        ][:1000],
        "target_ids": _form("target_ids"),
        "components": [c[:64] for c in request.form.getlist("components")][:1000],
        "cause": _form("cause"),
        **{f"summary_{lang}": _form(f"summary_{lang}") for lang in LANGUAGES},
    }
    try:
        _only_lang()
        body = from_form(
            DeclareBody,
            {k: values[k] for k in ("title", "severity", "targets", "components") if values[k]},
        )
        summary = {lang: t.strip() for lang, t in _per_language("summary").items()}
        cause = values["cause"].strip()
        patch = {"cause": cause} if cause else {}
        if summary:
            patch["summary"] = summary
        extra = from_form(IncidentPatch, patch) if patch else None  # checked before declaring
        incident_id = ops.declare(body)
    except params.ParamError as exc:
        return _bad_request(exc)
    except (ActionRefused, BodyError) as exc:
        return _declare_page(refusal("declare", exc), values)
    if extra is not None:
        try:
            ops.edit(incident_id, extra)
        except (ActionRefused, BodyError) as exc:
            return _incident_page(incident_id, refusal("edit", exc), values)
    return _done(incident_id)
