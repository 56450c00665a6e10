"""Incident actions: what people, rules and runbooks do to incidents, one function each.

The web console, the CLI, rules and runbooks all call these (never the
repository's writes directly), so an action means the same wherever it comes
from. Each function takes the repository, an ``actor`` saying who acts
(``user:alice``, ``rule:trunk-failover``, ``runbook:failover-ct``, ``cli``)
and the values; it checks them (``ValueError`` or ``NotFound`` with the
reason) before writing anything, then writes the change, its timeline line
(``incident_event``) and its event (``monitor.events``) in one transaction,
and returns the event.

The engine's in-memory incidents learn of a declared or hand-resolved
incident from its event (the incident keeper subscribes), so these work the
same from the appliance's own threads or from another process.

``at`` (epoch seconds) defaults to now; callers with a clock pass it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import Connection, Table, select

from core.config import SiteConfig
from monitor.events import Event, EventKind, NewEvent, check_actor, record
from monitor.store.models import (
    INCIDENT_OPEN,
    Incident,
    IncidentTarget,
    ManualMaintenance,
    Silence,
    TargetState,
)
from monitor.store.repository import UNSET, NotFound, StateRepository

__all__ = [
    "LANGUAGES",
    "Conflict",
    "NotFound",
    "acknowledge",
    "add_note",
    "declare",
    "end_maintenance",
    "lift_silence",
    "publish_customer_update",
    "resolve",
    "silence",
    "start_maintenance",
    "update",
]

LANGUAGES: tuple[str, ...] = get_args(SiteConfig.model_fields["language"].annotation)
"""The languages of customer-facing text: those the web and status page speak."""
SEVERITIES = ("down", "degraded")
MAX_TITLE = 200
MAX_TEXT = 4000
"""Characters of a note, a cause or a reason."""
MAX_CUSTOMER_TEXT = 2000
"""Characters per language of a customer update or summary (a status page message)."""
MAX_SILENCE = 30 * 86400.0
"""The longest silence: beyond a month, change the config instead."""


class Conflict(ValueError):
    """The action does not fit the current state (resolved already, acknowledged already,
    over already): the input was fine, the moment was not (an HTTP 409)."""


_INCIDENT: Table = Incident.__table__  # type: ignore[assignment]
_MEMBER: Table = IncidentTarget.__table__  # type: ignore[assignment]
_TARGET: Table = TargetState.__table__  # type: ignore[assignment]
_SILENCE: Table = Silence.__table__  # type: ignore[assignment]
_WINDOW: Table = ManualMaintenance.__table__  # type: ignore[assignment]


# -- checks (pure) ----------------------------------------------------------------
def _now(at: float | None) -> float:
    if at is None:
        return time.time()
    if not isinstance(at, int | float) or not math.isfinite(at):
        raise ValueError(f"at must be epoch seconds, not {at!r}")
    return float(at)


def _text(value: Any, what: str, limit: int = MAX_TEXT, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be text, not {type(value).__name__}")
    value = value.strip()
    if not value and not empty:
        raise ValueError(f"{what} must not be empty")
    if len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters; at most {limit}")
    return value


def _per_language(value: Any, what: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        raise ValueError(
            f"{what} must map a language to its text, like {{'zh-CN': '...', 'en': '...'}}"
        )
    out: dict[str, str] = {}
    for lang, text in value.items():
        if lang not in LANGUAGES:
            raise ValueError(f"{what}: unknown language {lang!r}; use {', '.join(LANGUAGES)}")
        out[lang] = _text(text, f"{what}[{lang}]", MAX_CUSTOMER_TEXT)
    return out


def _severity(value: Any) -> str:
    if value not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {value!r}")
    return str(value)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- reads inside the action's transaction -----------------------------------------
def _incident(conn: Connection, incident_id: Any) -> Any:
    if not isinstance(incident_id, int) or isinstance(incident_id, bool):
        raise ValueError(f"incident id must be a whole number, not {incident_id!r}")
    row = conn.execute(select(_INCIDENT).where(_INCIDENT.c.id == incident_id)).first()
    if row is None:
        raise NotFound(f"no incident {incident_id}")
    return row


def _open_incident(conn: Connection, incident_id: Any, doing: str) -> Any:
    row = _incident(conn, incident_id)
    if row.state != INCIDENT_OPEN:
        raise Conflict(f"cannot {doing} incident {incident_id}: it is resolved")
    return row


def _require_targets(conn: Connection, target_ids: Sequence[str]) -> None:
    known = set(
        conn.execute(select(_TARGET.c.target_id).where(_TARGET.c.target_id.in_(target_ids)))
        .scalars()
        .all()
    )
    missing = [t for t in target_ids if t not in known]
    if missing:
        raise NotFound(f"no target {', '.join(repr(t) for t in missing)} in the state DB")


def _open_incident_of(conn: Connection, target_id: str) -> int | None:
    """The open incident ``target_id`` is a member of (lowest id), if any."""
    i, m = _INCIDENT, _MEMBER
    return conn.execute(
        select(i.c.id)
        .join(m, m.c.incident_id == i.c.id)
        .where(m.c.target_id == target_id, i.c.state == INCIDENT_OPEN)
        .order_by(i.c.id)
        .limit(1)
    ).scalar_one_or_none()


# -- the actions --------------------------------------------------------------------
def acknowledge(
    repo: StateRepository, actor: str, incident_id: int, *, at: float | None = None
) -> Event:
    """Take an open incident on (once: a second acknowledgement is refused, naming the first)."""
    check_actor(actor)
    at = _now(at)
    with repo.transaction() as conn:
        row = _open_incident(conn, incident_id, "acknowledge")
        if row.acknowledged_at is not None:
            raise Conflict(
                f"incident {incident_id} was acknowledged already by {row.acknowledged_by} "
                f"at {_iso(row.acknowledged_at)}"
            )
        repo.acknowledge_incident(incident_id, actor, at)
        return record(repo, NewEvent(EventKind.ACKNOWLEDGED, at, actor, incident_id=incident_id))


def add_note(
    repo: StateRepository, actor: str, incident_id: int, text: str, *, at: float | None = None
) -> Event:
    """An internal note on the timeline (never shown to customers)."""
    check_actor(actor)
    at = _now(at)
    text = _text(text, "note")
    with repo.transaction() as conn:
        _incident(conn, incident_id)
        repo.add_incident_event(incident_id, "note", at, None, f"{actor}: {text}")
        return record(
            repo,
            NewEvent(EventKind.NOTED, at, actor, incident_id=incident_id, payload={"text": text}),
        )


def update(
    repo: StateRepository,
    actor: str,
    incident_id: int,
    *,
    cause: str | None = UNSET,
    eta: float | None = UNSET,
    summary: Mapping[str, str] | None = UNSET,
    severity: str = UNSET,
    at: float | None = None,
) -> Event:
    """Set what is learnt during an incident: cause, ETA (epoch seconds, open incidents
    only), the customer-facing summary per language, severity. Only the arguments
    given change; None clears cause, ETA or summary."""
    check_actor(actor)
    at = _now(at)
    fields: dict[str, Any] = {}
    if cause is not UNSET:
        fields["cause"] = None if cause is None else _text(cause, "cause")
    if eta is not UNSET:
        if eta is not None:
            if not isinstance(eta, int | float) or isinstance(eta, bool) or not math.isfinite(eta):
                raise ValueError(f"eta must be epoch seconds, not {eta!r}")
            if eta <= at:
                raise ValueError(f"eta {_iso(eta)} is not in the future (now {_iso(at)})")
            eta = float(eta)
        fields["eta"] = eta
    if summary is not UNSET:
        fields["summary"] = None if summary is None else _per_language(summary, "summary")
    if severity is not UNSET:
        fields["severity"] = _severity(severity)
    if not fields:
        raise ValueError("nothing to update: give cause, eta, summary or severity")
    with repo.transaction() as conn:
        if "eta" in fields and fields["eta"] is not None:
            _open_incident(conn, incident_id, "set the ETA of")
        else:
            _incident(conn, incident_id)
        repo.set_incident_fields(incident_id, **fields)
        repo.add_incident_event(incident_id, "updated", at, None, f"{actor}: {_describe(fields)}")
        return record(
            repo,
            NewEvent(
                EventKind.UPDATED, at, actor, incident_id=incident_id, payload={"fields": fields}
            ),
        )


def _describe(fields: Mapping[str, Any]) -> str:
    parts = []
    for name, value in fields.items():
        if value is None:
            parts.append(f"{name} cleared")
        elif name == "eta":
            parts.append(f"ETA {_iso(value)}")
        elif name == "summary":
            parts.append(f"summary ({', '.join(value)})")
        else:
            parts.append(f"{name}: {value}")
    return "; ".join(parts)


def publish_customer_update(
    repo: StateRepository,
    actor: str,
    incident_id: int,
    text: Mapping[str, str],
    *,
    at: float | None = None,
) -> Event:
    """Publish a customer-visible message under an incident, per language
    (``{"zh-CN": "...", "en": "..."}``). Internal notes are ``add_note``."""
    check_actor(actor)
    at = _now(at)
    text = _per_language(text, "customer update")
    with repo.transaction() as conn:
        _incident(conn, incident_id)
        update_id = repo.add_customer_update(incident_id, text, actor, at)
        repo.add_incident_event(
            incident_id,
            "customer_update",
            at,
            None,
            f"{actor} published a customer update ({', '.join(text)})",
        )
        return record(
            repo,
            NewEvent(
                EventKind.CUSTOMER_UPDATE,
                at,
                actor,
                incident_id=incident_id,
                payload={"update_id": update_id, "text": text},
            ),
        )


def resolve(
    repo: StateRepository,
    actor: str,
    incident_id: int,
    *,
    reason: str = "",
    at: float | None = None,
) -> Event:
    """Resolve an open incident by hand (its members in trouble count as recovered)."""
    check_actor(actor)
    at = _now(at)
    reason = _text(reason, "reason", empty=True)
    with repo.transaction() as conn:
        _open_incident(conn, incident_id, "resolve")
        line = f"resolved by {actor}" + (f": {reason}" if reason else "")
        repo.resolve_incident(incident_id, at, text=line)
        return record(
            repo,
            NewEvent(
                EventKind.RESOLVED_BY_HAND,
                at,
                actor,
                incident_id=incident_id,
                payload={"reason": reason},
            ),
        )


def declare(
    repo: StateRepository,
    actor: str,
    targets: Sequence[str],
    title: str,
    *,
    severity: str = "down",
    at: float | None = None,
) -> Event:
    """Open an incident by hand for ``targets`` (the first is its root).

    Refused for a target already in an open incident (a target is in one
    incident at a time). Members count as in trouble until they recover
    after a failure, or the incident is resolved by hand.
    """
    check_actor(actor)
    at = _now(at)
    title = _text(title, "title", MAX_TITLE)
    severity = _severity(severity)
    if isinstance(targets, str) or not targets:
        raise ValueError("targets must be a list of one or more target ids")
    ids = list(dict.fromkeys(targets))
    if len(ids) != len(targets):
        raise ValueError(f"targets lists a target twice: {list(targets)!r}")
    with repo.transaction() as conn:
        _require_targets(conn, ids)
        for target_id in ids:
            busy = _open_incident_of(conn, target_id)
            if busy is not None:
                raise Conflict(
                    f"target {target_id!r} is in open incident {busy} already; "
                    "add a note or an update there instead"
                )
        root, *others = ids
        incident_id = repo.open_incident(
            root, severity, title, at, text=f"{actor} declared: {title}"
        )
        for target_id in others:
            repo.join_incident(incident_id, target_id, "affected", at)
        return record(
            repo,
            NewEvent(
                EventKind.DECLARED,
                at,
                actor,
                target_id=root,
                incident_id=incident_id,
                payload={"title": title, "severity": severity, "targets": ids},
            ),
        )


def silence(
    repo: StateRepository,
    actor: str,
    *,
    target_id: str | None = None,
    component_id: str | None = None,
    incident_id: int | None = None,
    duration: float,
    reason: str = "",
    at: float | None = None,
) -> Event:
    """Hold back notifications about one target, one component or one open incident for
    ``duration`` seconds.

    A component is named by its config id; the caller (which has the config)
    checks that it exists. Its silence is stored by id, so it covers whatever
    targets the component has when a notification is weighed.
    """
    check_actor(actor)
    at = _now(at)
    if sum(x is not None for x in (target_id, component_id, incident_id)) != 1:
        raise ValueError("silence exactly one of a target_id, a component_id or an incident_id")
    if component_id is not None:
        component_id = _text(component_id, "component_id", 64)
    if (
        not isinstance(duration, int | float)
        or isinstance(duration, bool)
        or not 0 < duration <= MAX_SILENCE
    ):
        raise ValueError(
            f"duration must be seconds above 0 and at most {MAX_SILENCE:.0f} (30 days), "
            f"not {duration!r}"
        )
    reason = _text(reason, "reason", empty=True)
    with repo.transaction() as conn:
        timeline: int | None = None
        if incident_id is not None:
            _open_incident(conn, incident_id, "silence")
            timeline = incident_id
        elif target_id is not None:
            _require_targets(conn, [target_id])
            timeline = _open_incident_of(conn, target_id)
        until = at + float(duration)
        silence_id = repo.add_silence(
            target_id=target_id,
            component_id=component_id,
            incident_id=incident_id,
            starts_at=at,
            ends_at=until,
            by=actor,
            reason=reason,
        )
        if timeline is not None:
            what = target_id if target_id is not None else "notifications"
            line = f"{actor} silenced {what} until {_iso(until)}" + (
                f": {reason}" if reason else ""
            )
            repo.add_incident_event(timeline, "silenced", at, target_id, line)
        payload: dict[str, Any] = {
            "state": "active",
            "silence_id": silence_id,
            "until": until,
            "reason": reason,
        }
        if component_id is not None:
            payload["component_id"] = component_id
        return record(
            repo,
            NewEvent(
                EventKind.SILENCED,
                at,
                actor,
                target_id=target_id,
                incident_id=incident_id,
                payload=payload,
            ),
        )


def lift_silence(
    repo: StateRepository, actor: str, silence_id: int, *, at: float | None = None
) -> Event:
    """End a silence before its time."""
    check_actor(actor)
    at = _now(at)
    with repo.transaction() as conn:
        row = conn.execute(select(_SILENCE).where(_SILENCE.c.id == silence_id)).first()
        if row is None:
            raise NotFound(f"no silence {silence_id}")
        if row.lifted_at is not None or row.ends_at <= at:
            raise Conflict(f"silence {silence_id} is over already")
        repo.lift_silence(silence_id, actor, at)
        timeline = row.incident_id
        if timeline is None and row.target_id is not None:
            timeline = _open_incident_of(conn, row.target_id)
        if timeline is not None:
            repo.add_incident_event(
                timeline, "silenced", at, row.target_id, f"{actor} lifted silence {silence_id}"
            )
        payload: dict[str, Any] = {"state": "lifted", "silence_id": silence_id}
        if row.component_id is not None:
            payload["component_id"] = row.component_id
        return record(
            repo,
            NewEvent(
                EventKind.SILENCED,
                at,
                actor,
                target_id=row.target_id,
                incident_id=row.incident_id,
                payload=payload,
            ),
        )


def start_maintenance(
    repo: StateRepository,
    actor: str,
    target_id: str,
    *,
    until: float | None = None,
    reason: str = "",
    at: float | None = None,
) -> Event:
    """Start a maintenance window for a target now, until ``until`` (None: until ended)."""
    check_actor(actor)
    at = _now(at)
    if until is not None and (
        not isinstance(until, int | float) or not math.isfinite(until) or until <= at
    ):
        raise ValueError(f"until must be epoch seconds after now ({_iso(at)}), not {until!r}")
    reason = _text(reason, "reason", empty=True)
    with repo.transaction() as conn:
        _require_targets(conn, [target_id])
        w = _WINDOW
        active = conn.execute(
            select(w.c.id, w.c.created_by).where(
                w.c.target_id == target_id,
                w.c.ended_at.is_(None),
                w.c.ends_at.is_(None) | (w.c.ends_at > at),
            )
        ).first()
        if active is not None:
            raise Conflict(
                f"target {target_id!r} is in maintenance window {active.id} already "
                f"(started by {active.created_by}); end it first"
            )
        window_id = repo.start_manual_maintenance(target_id, at, until, actor, reason)
        timeline = _open_incident_of(conn, target_id)
        if timeline is not None:
            end = f" until {_iso(until)}" if until is not None else ""
            line = f"{actor} started maintenance of {target_id}{end}" + (
                f": {reason}" if reason else ""
            )
            repo.add_incident_event(timeline, "maintenance", at, target_id, line)
        return record(
            repo,
            NewEvent(
                EventKind.MAINTENANCE,
                at,
                actor,
                target_id=target_id,
                payload={
                    "state": "started",
                    "window_id": window_id,
                    "until": until,
                    "reason": reason,
                },
            ),
        )


def end_maintenance(
    repo: StateRepository, actor: str, window_id: int, *, at: float | None = None
) -> Event:
    """End a maintenance window started by hand."""
    check_actor(actor)
    at = _now(at)
    with repo.transaction() as conn:
        row = conn.execute(select(_WINDOW).where(_WINDOW.c.id == window_id)).first()
        if row is None:
            raise NotFound(f"no maintenance window {window_id}")
        if row.ended_at is not None or (row.ends_at is not None and row.ends_at <= at):
            raise Conflict(f"maintenance window {window_id} is over already")
        repo.end_manual_maintenance(window_id, actor, at)
        timeline = _open_incident_of(conn, row.target_id)
        if timeline is not None:
            repo.add_incident_event(
                timeline,
                "maintenance",
                at,
                row.target_id,
                f"{actor} ended maintenance of {row.target_id}",
            )
        return record(
            repo,
            NewEvent(
                EventKind.MAINTENANCE,
                at,
                actor,
                target_id=row.target_id,
                payload={"state": "ended", "window_id": window_id},
            ),
        )
