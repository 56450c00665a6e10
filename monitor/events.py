"""Events: frozen records of what happened, kept in the state DB's ``event`` table (the outbox).

A transition and every incident action becomes one ``Event`` with a monotonic
id, written **in the same transaction** as the change it records (a crash
keeps both or neither). Nothing is written per observation: a probe result
that changes no health costs no row. Subscribers read events in id order
(``monitor.dispatcher``); docs/events.md lists the kinds and their payloads.

``NewEvent`` is an event not stored yet; ``record`` / ``record_many`` store
them through the repository (which joins the caller's transaction). The read
functions take the state DB as an ``Engine`` or as the open ``Connection`` of
a transaction.

Ids are handed out in commit order, so "every event after my cursor" never
skips one committed late: SQLite has one writer at a time, and on PostgreSQL
the repository serialises event-writing transactions with an advisory lock.
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, Table, func, select

from monitor.store.db import dumps_json
from monitor.store.models import EventCursor, EventRecord

if TYPE_CHECKING:
    from monitor.store.repository import StateRepository

ENGINE_ACTOR = "engine"
"""The actor of everything the engine decides by itself (transitions, opened, merged...)."""
MAX_PAYLOAD_BYTES = 32_768
"""An event is a notice, not a document: anything bigger belongs in its own table."""
MAX_ACTOR = 128
_ACTOR = re.compile(r"[a-z][a-z0-9_-]*(:[^\x00-\x1f\x7f]+)?")

_EVENT: Table = EventRecord.__table__  # type: ignore[assignment]
_CURSOR: Table = EventCursor.__table__  # type: ignore[assignment]

StateDB = Engine | Connection


class EventKind(enum.StrEnum):
    """What an event records. The value is what the ``event.kind`` column holds."""

    TRANSITION = "transition"
    """A target's health changed (payload: from, to, reason, flapping, affected_by, transition_id)."""
    OPENED = "opened"
    """The engine opened an incident for a target that went down (payload: title, severity)."""
    JOINED = "joined"
    """A target joined an open incident, or came back into it (payload: role)."""
    RECOVERED = "recovered"
    """A member is back up; others are still in trouble, so the incident stays open."""
    RESOLVED = "resolved"
    """The last member in trouble recovered: the incident is over (the customers' all clear)."""
    MERGED = "merged"
    """A dependant's own incident was folded into its parent's (payload: into). Not an all clear."""
    ACKNOWLEDGED = "acknowledged"
    """Someone took the incident on."""
    NOTED = "noted"
    """An internal note was added to the timeline (payload: text)."""
    UPDATED = "updated"
    """Cause, ETA, summary or severity changed (payload: fields, the new values)."""
    CUSTOMER_UPDATE = "customer_update"
    """A customer-visible message was published (payload: update_id, text per language)."""
    DECLARED = "declared"
    """Someone opened an incident by hand (payload: title, severity, targets)."""
    RESOLVED_BY_HAND = "resolved_by_hand"
    """Someone resolved an incident by hand (payload: reason)."""
    SILENCED = "silenced"
    """Notifications about a target or incident held back, or no longer (payload: state...)."""
    MAINTENANCE = "maintenance"
    """A maintenance window was started or ended by hand (payload: state, window_id...)."""
    RUN = "run"
    """A runbook run changed: started, a step began or ended, waits for a person, ended
    (payload: run, runbook, state; step, position, summary for a step)."""


def parse_kind(value: str) -> EventKind:
    """The kind named ``value``; ValueError listing the known kinds otherwise."""
    try:
        return EventKind(value)
    except ValueError:
        known = ", ".join(k.value for k in EventKind)
        raise ValueError(f"unknown event kind {value!r}; use one of {known}") from None


def check_actor(actor: str) -> str:
    """``actor`` if it names who acted (``user:alice``, ``rule:trunk-failover``, ``cli``)."""
    if not isinstance(actor, str) or not _ACTOR.fullmatch(actor) or len(actor) > MAX_ACTOR:
        raise ValueError(
            f"actor {actor!r} must say who acted, like 'user:alice', 'rule:trunk-failover' "
            f"or 'cli' (lowercase kind, optional ':name', at most {MAX_ACTOR} characters)"
        )
    return actor


def _frozen(payload: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(payload or {}))


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to store: checked here, so a bad one fails before anything is written."""

    kind: EventKind
    at: float
    actor: str = ENGINE_ACTOR
    target_id: str | None = None
    incident_id: int | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", parse_kind(self.kind))
        check_actor(self.actor)
        payload = _frozen(self.payload)
        size = len(dumps_json(dict(payload)).encode())
        if size > MAX_PAYLOAD_BYTES:
            raise ValueError(
                f"{self.kind} event payload is {size} bytes; at most {MAX_PAYLOAD_BYTES}"
            )
        object.__setattr__(self, "payload", payload)

    def row(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "at": self.at,
            "actor": self.actor,
            "target_id": self.target_id,
            "incident_id": self.incident_id,
            "payload": dict(self.payload),
        }


@dataclass(frozen=True, slots=True)
class Event:
    """A stored event. ``id`` grows with every event and is never reused: subscribers
    with outside effects dedupe by it."""

    id: int
    kind: EventKind
    at: float
    actor: str
    target_id: str | None
    incident_id: int | None
    payload: Mapping[str, Any]

    def __post_init__(self) -> None:
        object.__setattr__(self, "payload", _frozen(self.payload))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind.value,
            "at": self.at,
            "actor": self.actor,
            "target_id": self.target_id,
            "incident_id": self.incident_id,
            "payload": dict(self.payload),
        }


# -- writes (through the repository, inside the caller's transaction) -----------
def record(repo: StateRepository, new: NewEvent) -> Event:
    """Store one event; returns it with its id. Call inside ``repo.transaction()``
    together with the change it records."""
    event_id = repo.add_event(**new.row())
    return Event(event_id, new.kind, new.at, new.actor, new.target_id, new.incident_id, new.payload)


def record_many(repo: StateRepository, news: Sequence[NewEvent]) -> None:
    """Store many events in one statement (the engine's batches of transitions)."""
    if news:
        repo.add_events([n.row() for n in news])


# -- reads ------------------------------------------------------------------------
@contextlib.contextmanager
def _connected(db: StateDB) -> Iterator[Connection]:
    if isinstance(db, Connection):
        yield db
    else:
        with db.connect() as conn:
            yield conn


def _event(row: Any) -> Event:
    return Event(
        row.id,
        EventKind(row.kind),
        row.at,
        row.actor,
        row.target_id,
        row.incident_id,
        row.payload or {},
    )


def events_after(
    db: StateDB,
    after: int,
    limit: int = 500,
    kinds: Collection[EventKind] | None = None,
    up_to: int | None = None,
) -> tuple[Event, ...]:
    """Up to ``limit`` events with an id above ``after`` (and at most ``up_to``),
    of ``kinds`` (None: all), oldest first."""
    e = _EVENT
    stmt = select(e).where(e.c.id > after)
    if up_to is not None:
        stmt = stmt.where(e.c.id <= up_to)
    if kinds is not None:
        stmt = stmt.where(e.c.kind.in_(sorted(str(k) for k in kinds)))
    with _connected(db) as conn:
        rows = conn.execute(stmt.order_by(e.c.id).limit(limit))
        return tuple(_event(row) for row in rows)


def last_event_id(db: StateDB) -> int:
    """The id of the newest event (0 when there is none)."""
    with _connected(db) as conn:
        return int(conn.execute(select(func.max(_EVENT.c.id))).scalar_one() or 0)


def cursor_of(db: StateDB, subscriber: str) -> int | None:
    """The id of the last event ``subscriber`` handled (None: it never ran)."""
    c = _CURSOR
    with _connected(db) as conn:
        value = conn.execute(
            select(c.c.event_id).where(c.c.subscriber == subscriber)
        ).scalar_one_or_none()
    return None if value is None else int(value)


def cursors(db: StateDB) -> dict[str, int]:
    """Every subscriber's cursor (retention must not prune events above the lowest)."""
    c = _CURSOR
    with _connected(db) as conn:
        return {row.subscriber: int(row.event_id) for row in conn.execute(select(c))}
