"""The incident workflow's changes as the web makes them: shared by the API and the pages.

Each function here is one change — acknowledge, note, customer update,
resolve, edit, declare, silence, maintenance — taking the already checked
body (``web.incident_bodies``) and running the monitor's own function
(``monitor.incident_actions``) through ``web.actions.perform``: as the person
asking, on the appliance's clock, audited when done and when refused. The
API (``web.api_incidents``) turns the outcome into JSON, the console
(``web.incident_pages``, ``web.silences``) into a page; neither repeats the
other's work.

Refusals are ``ActionRefused`` (the monitor refused: audited) or
``BodyError`` (the input could not be read: an ETA that is no time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import g

from monitor import components, incident_actions
from monitor.config.schema import Config
from monitor.events import Event
from monitor.staff import tokens
from monitor.store import queries
from monitor.store.repository import NotFound, StateRepository
from web.actions import ActionRefused, perform
from web.bodies import BodyError
from web.eta import parse_when
from web.i18n import iso, valid_timezone
from web.incident_bodies import (
    CustomerUpdateBody,
    DeclareBody,
    IncidentPatch,
    MaintenanceBody,
    NoteBody,
    ResolveBody,
    SilenceBody,
)
from web.views import current_services


class AlreadyAcknowledged(ActionRefused):
    """A second acknowledgement (409), naming who acknowledged first and when."""

    def __init__(self, reason: str, by: str, person: str | None, at: float | None) -> None:
        super().__init__(409, reason)
        self.by = by
        self.person = person
        self.at = at


# -- plumbing ----------------------------------------------------------------------------
def now() -> float:
    return current_services().clock()


def config() -> Config:
    return current_services().config()


def when(value: str, field: str) -> float:
    """``value`` ("in 30 min", an ISO time in the site timezone) as epoch seconds."""
    try:
        return parse_when(value, now(), valid_timezone(config().site.timezone))
    except ValueError as exc:
        raise BodyError(f"{field}: {exc}") from None


def members(cfg: Config, component_id: str) -> list[str]:
    """The target ids of a configured component; NotFound (so audited as a 404) if none."""
    for c in cfg.components:
        if c.id == component_id:
            ids = components.members(c, cfg.targets)
            if not ids:
                raise ValueError(f"component {component_id!r} has no targets")
            return ids
    known = ", ".join(c.id for c in cfg.components) or "none configured"
    raise NotFound(f"no component {component_id!r} in the config (components: {known})")


def person(actor: str) -> str | None:
    """The user behind ``user:NAME`` or ``token:ID``; None for rules, runbooks, the CLI."""
    kind, _sep, name = actor.partition(":")
    if kind == "user":
        return name
    if kind == "token" and name.isascii() and name.isdigit():
        # Read once per request: a page of incidents asks for each row's acknowledger.
        users: dict[int, str] | None = g.get("dialwatch_token_users")
        if users is None:
            with current_services().db.connect() as conn:
                users = {t.id: t.user for t in tokens.list_tokens(conn)}
            g.dialwatch_token_users = users
        return users.get(int(name))
    return None


def incident_state(row: queries.IncidentRow, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The audit's view of the fields of ``row`` named in ``fields`` (before a change)."""
    current = {
        "cause": row.cause,
        "eta": iso(row.eta),
        "summary": dict(row.summary) or None,
        "severity": row.severity.value,
    }
    return {name: current[name] for name in fields}


# -- incidents ---------------------------------------------------------------------------
def acknowledge(incident_id: int) -> Event:
    try:
        return perform(
            "incident.ack", f"incident:{incident_id}", incident_actions.acknowledge, incident_id
        )
    except ActionRefused as exc:
        row = queries.incident(current_services().db, incident_id)
        if exc.status != 409 or row is None or row.acknowledged_by is None:
            raise
        # Name the person too: an API token acts as ``token:7``, which says little to a NOC.
        who = person(row.acknowledged_by)
        reason = exc.reason
        if who is not None and who not in row.acknowledged_by:
            reason = reason.replace(row.acknowledged_by, f"{row.acknowledged_by} ({who})", 1)
        raise AlreadyAcknowledged(reason, row.acknowledged_by, who, row.acknowledged_at) from exc


def add_note(incident_id: int, body: NoteBody) -> Event:
    return perform(
        "incident.note",
        f"incident:{incident_id}",
        incident_actions.add_note,
        incident_id,
        body.text,
        after={"text": body.text},
    )


def publish_update(incident_id: int, body: CustomerUpdateBody) -> Event:
    return perform(
        "incident.customer_update",
        f"incident:{incident_id}",
        incident_actions.publish_customer_update,
        incident_id,
        dict(body.text),
        after={"text": dict(body.text)},
    )


def resolve(incident_id: int, body: ResolveBody) -> Event:
    return perform(
        "incident.resolve",
        f"incident:{incident_id}",
        incident_actions.resolve,
        incident_id,
        reason=body.note,
        after={"note": body.note},
    )


def edit(incident_id: int, body: IncidentPatch) -> Event:
    """Change the fields ``body`` gives (``model_fields_set``); None clears one."""
    given = body.model_fields_set
    if not given:
        raise BodyError("nothing to change: give cause, eta, summary or severity")
    changes: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name in ("cause", "eta", "summary", "severity"):
        if name not in given:
            continue
        value = getattr(body, name)
        if name == "eta" and value is not None:
            changes[name] = when(value, "eta")
            after[name] = iso(changes[name])
        elif name == "summary" and value is not None:
            changes[name] = after[name] = dict(value)
        else:
            changes[name] = after[name] = value
    row = queries.incident(current_services().db, incident_id)
    return perform(
        "incident.update",
        f"incident:{incident_id}",
        incident_actions.update,
        incident_id,
        before=incident_state(row, after) if row is not None else None,
        after=after,
        **changes,
    )


def declare(body: DeclareBody) -> int:
    """Open an incident by hand; its id. Components expand to their members now."""
    cfg = config()

    def declare_them(repo: StateRepository, actor: str, *, at: float) -> Event:
        ids = list(body.targets)
        for component_id in body.components:
            ids.extend(members(cfg, component_id))
        return incident_actions.declare(
            repo, actor, list(dict.fromkeys(ids)), body.title, severity=body.severity, at=at
        )

    subject = ",".join(
        [*(f"target:{t}" for t in body.targets), *(f"component:{c}" for c in body.components)]
    )
    event = perform("incident.declare", subject, declare_them, after=body.model_dump(mode="json"))
    assert event.incident_id is not None
    return event.incident_id


# -- silences and maintenance ------------------------------------------------------------
def subject(body: SilenceBody | MaintenanceBody) -> str:
    if body.target_id is not None:
        return f"target:{body.target_id}"
    if body.component_id is not None:
        return f"component:{body.component_id}"
    return f"incident:{getattr(body, 'incident_id', '')}"


def add_silence(body: SilenceBody) -> int:
    """Start a silence; its id."""
    cfg = config()

    def silence(repo: StateRepository, actor: str, *, at: float) -> Event:
        if body.component_id is not None:
            members(cfg, body.component_id)  # it must exist now; members may change later
        return incident_actions.silence(
            repo,
            actor,
            target_id=body.target_id,
            component_id=body.component_id,
            incident_id=body.incident_id,
            duration=body.duration,
            reason=body.reason,
            at=at,
        )

    event = perform("silence.start", subject(body), silence, after=body.model_dump(mode="json"))
    return int(event.payload["silence_id"])


def lift_silence(silence_id: int) -> Event:
    return perform(
        "silence.lift", f"silence:{silence_id}", incident_actions.lift_silence, silence_id
    )


def start_maintenance(body: MaintenanceBody) -> list[int]:
    """Start maintenance for a target, or one window per member of a component (all or
    none, in one transaction); the window ids."""
    until = when(body.until, "until") if body.until is not None else None
    cfg = config()

    def start(repo: StateRepository, actor: str, *, at: float) -> list[int]:
        if body.component_id is not None:
            ids = members(cfg, body.component_id)
        else:
            assert body.target_id is not None
            ids = [body.target_id]
        started = [
            incident_actions.start_maintenance(
                repo, actor, target_id, until=until, reason=body.reason, at=at
            )
            for target_id in ids
        ]
        return [int(e.payload["window_id"]) for e in started]

    after = {**body.model_dump(mode="json"), "until": iso(until)}
    return perform("maintenance.start", subject(body), start, after=after)


def end_maintenance(window_id: int) -> Event:
    return perform(
        "maintenance.end",
        f"maintenance:{window_id}",
        incident_actions.end_maintenance,
        window_id,
    )
