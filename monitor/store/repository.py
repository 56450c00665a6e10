"""StateRepository: every write of the state DB, and the reads the engine restores on start.

The engine calls it from its one writer thread. Each call takes its own
connection from the engine's pool and returns frozen dataclasses, never ORM
objects bound to a session, so the repository is safe to share between
threads. What people read (the web, the tests) goes through the read model,
``monitor.store.queries``; ``open_incidents`` here is that module's, run on
the repository's connection so it sees a pending ``transaction()``.

Writes that must survive a crash (transitions, incidents) are committed before
the call returns. The hot path, ``checkpoint``, upserts thousands of
``target_state`` rows with one ``INSERT ... ON CONFLICT DO UPDATE`` executed
for all rows in one transaction (see bench/state_checkpoint.py for why not ORM
objects). Times are epoch seconds (float, UTC).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Engine,
    Table,
    bindparam,
    delete,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from monitor.store import queries
from monitor.store.db import WRITE, dumps_json
from monitor.store.models import (
    INCIDENT_OPEN,
    INCIDENT_RESOLVED,
    Counter,
    CustomerUpdate,
    EventCursor,
    EventRecord,
    Incident,
    IncidentEvent,
    IncidentTarget,
    ManualMaintenance,
    ProbeState,
    Silence,
    TargetState,
    Transition,
)
from monitor.store.queries import IncidentRow  # what open_incidents returns

log = logging.getLogger(__name__)

EVENT_KINDS = (
    "opened",
    "joined",
    "transition",
    "recovered",
    "resolved",
    "acknowledged",
    "note",
    "updated",
    "customer_update",
    "silenced",
    "maintenance",
    "delivery",
    "failover",
    "runbook",
)
"""Kinds of incident timeline lines (``incident_event``); the outbox's are ``monitor.events``."""

_TARGET_STATE: Table = TargetState.__table__  # type: ignore[assignment]
_TRANSITION: Table = Transition.__table__  # type: ignore[assignment]
_INCIDENT: Table = Incident.__table__  # type: ignore[assignment]
_MEMBER: Table = IncidentTarget.__table__  # type: ignore[assignment]
_EVENT: Table = IncidentEvent.__table__  # type: ignore[assignment]
_PROBE_STATE: Table = ProbeState.__table__  # type: ignore[assignment]
_COUNTER: Table = Counter.__table__  # type: ignore[assignment]
_OUTBOX: Table = EventRecord.__table__  # type: ignore[assignment]
_CURSOR: Table = EventCursor.__table__  # type: ignore[assignment]
_CUSTOMER_UPDATE: Table = CustomerUpdate.__table__  # type: ignore[assignment]
_SILENCE: Table = Silence.__table__  # type: ignore[assignment]
_MANUAL_MAINTENANCE: Table = ManualMaintenance.__table__  # type: ignore[assignment]

TARGET_STATE_COLUMNS = frozenset(c.name for c in _TARGET_STATE.columns)
_JSON_COLUMNS = frozenset(c.name for c in _TARGET_STATE.columns if isinstance(c.type, JSON))
_INSERT_NEEDS = frozenset({"target_id", "kind", "health", "since"})  # NOT NULL, no default
_DELETE_CHUNK = 500  # ids per DELETE ... IN (...): well under every driver's parameter limit
_EVENT_COLUMNS = ("kind", "at", "actor", "target_id", "incident_id", "payload")
_EVENT_LOCK_KEY = 0x4469_616D  # PostgreSQL advisory lock of event-writing transactions


class NotFound(LookupError):
    """The incident (or incident member) a write refers to does not exist."""


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""Default of ``set_incident_fields`` arguments: leave that field as it is (None clears it)."""


# -- values returned ---------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TargetStateRow:
    """One ``target_state`` row: a target's health and last observation."""

    target_id: str
    kind: str
    health: str
    since: float
    flapping: bool
    affected_by: str | None
    machine: dict[str, Any]
    last_status: str | None
    last_detail: str | None
    last_latency: float | None
    last_observed_at: float | None
    last_metrics: dict[str, Any]
    probes_run: int
    probes_failed: int
    probes_errored: int
    config_hash: str | None

    def as_dict(self) -> dict[str, Any]:
        """The row as ``checkpoint`` takes it."""
        return {name: getattr(self, name) for name in self.__dataclass_fields__}


# -- pure helpers ------------------------------------------------------------
def latest_per_target(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Keep the last row per ``target_id`` (one statement may not update a row twice)."""
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if "target_id" not in row:
            raise ValueError(f"checkpoint row without target_id: {dict(row)!r}")
        unknown = set(row) - TARGET_STATE_COLUMNS
        if unknown:
            raise ValueError(
                f"checkpoint row for {row['target_id']!r} has unknown column(s) "
                f"{', '.join(sorted(unknown))}; target_state has {', '.join(sorted(TARGET_STATE_COLUMNS))}"
            )
        latest[row["target_id"]] = dict(row)
    return list(latest.values())


def group_by_columns(rows: Iterable[dict[str, Any]]) -> list[tuple[tuple[str, ...], list[dict]]]:
    """Rows grouped by the set of columns they carry: one executemany per group.

    A row updates only the columns it has, so a caller that sends just
    ``health`` and ``since`` does not reset the probe counters.
    """
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.items())


def _executemany_raw(
    conn: Connection,
    stmt: Any,
    columns: Sequence[str],
    rows: list[dict[str, Any]],
    cache: dict[Any, Any] | None = None,
) -> None:
    """Run the statement ``stmt()`` builds for ``rows`` straight through the driver's ``executemany``.

    For the engine's full-row checkpoints: skipping SQLAlchemy's per-row
    parameter processing saves ~10 % (SQLite) to ~20 % (PostgreSQL) of the
    client CPU of a 10,000-row checkpoint (bench/RESULTS.md). Every row
    carries every column, so no column default is needed; ``target_state``'s
    JSON columns are encoded here with the engine's serializer (``add_events``
    passes its payloads encoded).
    """
    # Building and compiling the upsert was most of the DB thread's CPU when
    # every transition wrote its target's row (bench/sip_probe_throughput under
    # py-spy): the compiled form is cached per dialect and column set.
    key = (conn.dialect.name, tuple(columns))
    compiled = cache.get(key) if cache is not None else None
    if compiled is None:
        compiled = stmt().values({c: bindparam(c) for c in columns}).compile(dialect=conn.dialect)
        if cache is not None:
            cache[key] = compiled

    def value(row: dict[str, Any], column: str) -> Any:
        return dumps_json(row[column]) if column in _JSON_COLUMNS else row[column]

    params: list[Any]
    if compiled.positional:
        names = compiled.positiontup or ()
        params = [tuple(value(row, n) for n in names) for row in rows]
    else:
        params = [{c: value(row, c) for c in columns} for row in rows]
    conn.exec_driver_sql(compiled.string, params)


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the repository ----------------------------------------------------------
class StateRepository:
    """Writes of the state DB and the engine's restore reads. Thread-safe; one per engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported state DB dialect {self._dialect!r}")
        # SQLite has one writer at a time anyway; queueing our own threads here is
        # cheaper than having them spin on the busy timeout.
        self._write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self._dialect == "sqlite" else contextlib.nullcontext()
        )
        self._local = threading.local()  # the connection of this thread's transaction()
        self._compiled: dict[Any, Any] = {}  # compiled upserts by (dialect, columns)
        self._event_listeners: list[Callable[[], None]] = []
        self._compiled_events: dict[Any, Any] = {}

    def close(self) -> None:
        """Close pooled connections (the engine can still be used afterwards)."""
        self.engine.dispose()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Make the writes of this thread inside the block one transaction: all or nothing.

        For writes that belong together, e.g. opening an incident and recording
        the transition that opened it, so a crash cannot keep one without the
        other. Reads inside the block see its writes: it yields the transaction's
        connection for the read functions (``monitor.events``...). Nesting joins
        the outer transaction. Other threads are unaffected (on SQLite their
        writes wait).
        """
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self._writing() as conn:
            self._local.conn = conn
            try:
                yield conn
            finally:
                self._local.conn = None

    def on_events_committed(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call ``callback()`` after each commit that wrote events (on the writing
        thread: it must be quick and thread-safe). Returns the function that
        stops the calls."""
        self._event_listeners.append(callback)

        def stop() -> None:
            with contextlib.suppress(ValueError):
                self._event_listeners.remove(callback)

        return stop

    def _events_committed(self) -> None:
        for callback in list(self._event_listeners):
            try:
                callback()
            except Exception:  # a listener's bug must not turn a commit into an error
                log.exception("event commit listener %r failed", callback)

    # -- plumbing -------------------------------------------------------
    @contextlib.contextmanager
    def _writing(self) -> Iterator[Connection]:
        """One committed transaction (rolled back if the block raises)."""
        current = getattr(self._local, "conn", None)
        if current is not None:  # inside transaction(): its commit is the one that counts
            yield current
            return
        self._local.wrote_events = False
        with (
            self._write_lock,
            self.engine.connect().execution_options(**WRITE) as conn,
            conn.begin(),
        ):
            yield conn
        if self._local.wrote_events:  # committed
            self._local.wrote_events = False
            self._events_committed()

    def writing(self) -> contextlib.AbstractContextManager[Connection]:
        """A committed write transaction, for the store modules beside this one that own
        tables of their own (``monitor.store.retention``, ``monitor.store.uptime``): the
        same lock, ``BEGIN IMMEDIATE`` and ``transaction()`` nesting as every write here."""
        return self._writing()

    def reading(self) -> contextlib.AbstractContextManager[Connection]:
        """A connection for reads (the thread's ``transaction()`` when inside one)."""
        return self._reading()

    @contextlib.contextmanager
    def _reading(self) -> Iterator[Connection]:
        current = getattr(self._local, "conn", None)
        if current is not None:
            yield current
            return
        with self.engine.connect() as conn:
            yield conn

    def _insert(self, table: Table) -> Any:
        """The dialect's INSERT, which has ``on_conflict_do_update`` and ``excluded``."""
        return postgresql.insert(table) if self._dialect == "postgresql" else sqlite.insert(table)

    # -- target state ---------------------------------------------------
    def checkpoint(self, rows: Sequence[Mapping[str, Any]]) -> int:
        """Upsert many ``target_state`` rows in one transaction; returns how many.

        Each row is a dict of target_state columns with at least ``target_id``.
        A row updates only the columns it carries; a row without ``kind``,
        ``health`` and ``since`` only updates a target already stored (it is
        ignored for an unknown target). When one target appears twice, the last
        row wins.
        """
        latest = latest_per_target(rows)
        if latest:
            with self._writing() as conn:
                self._upsert_target_states(conn, latest)
        return len(latest)

    def _upsert_target_states(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        t = _TARGET_STATE
        for columns, group in group_by_columns(rows):
            changed = [c for c in columns if c != "target_id"]
            if not changed:
                continue
            if set(columns) >= _INSERT_NEEDS:

                def upsert(changed: list[str] = changed) -> Any:
                    stmt = self._insert(t)
                    return stmt.on_conflict_do_update(
                        index_elements=["target_id"], set_={c: stmt.excluded[c] for c in changed}
                    )

                if len(columns) == len(TARGET_STATE_COLUMNS):
                    _executemany_raw(conn, upsert, columns, group, self._compiled)
                else:
                    conn.execute(upsert(), group)
            else:
                # Without kind/health/since the row cannot be inserted (NOT NULL is
                # checked before ON CONFLICT), so it may only update a stored target.
                stmt = (
                    update(t)
                    .where(t.c.target_id == bindparam("_target_id"))
                    .values({c: bindparam(c) for c in changed})
                )
                conn.execute(stmt, [{**r, "_target_id": r["target_id"]} for r in group])

    def load_target_states(self) -> dict[str, TargetStateRow]:
        """Every stored target state by target id (the engine restores them on start)."""
        with self._reading() as conn:
            result = conn.execute(select(_TARGET_STATE))
            return {row.target_id: TargetStateRow(**row._mapping) for row in result}

    def delete_target_states(self, target_ids: Collection[str]) -> int:
        """Forget targets removed from the config: their state and probe state.

        Transitions and incident history are kept. Returns how many target
        states were deleted.
        """
        ids = sorted(set(target_ids))
        deleted = 0
        with self._writing() as conn:
            for chunk in _chunks(ids, _DELETE_CHUNK):
                result = conn.execute(
                    delete(_TARGET_STATE).where(_TARGET_STATE.c.target_id.in_(chunk))
                )
                deleted += result.rowcount
                conn.execute(delete(_PROBE_STATE).where(_PROBE_STATE.c.target_id.in_(chunk)))
        return deleted

    # -- transitions ----------------------------------------------------
    def record_transition(
        self,
        target_id: str,
        at: float,
        from_health: str,
        to_health: str,
        *,
        reason: str = "",
        flapping: bool = False,
        affected_by: str | None = None,
        incident_id: int | None = None,
        state: Mapping[str, Any] | None = None,
    ) -> int:
        """Write one change of health, committed before returning; returns its id.

        ``state``: the target's ``target_state`` row (as for ``checkpoint``),
        upserted in the same transaction, so a crash right after a transition
        does not restore the health from before it.
        """
        with self._writing() as conn:
            result = conn.execute(
                _TRANSITION.insert().values(
                    target_id=target_id,
                    at=at,
                    from_health=from_health,
                    to_health=to_health,
                    reason=reason,
                    flapping=flapping,
                    affected_by=affected_by,
                    incident_id=incident_id,
                )
            )
            if state is not None:
                self._upsert_target_states(
                    conn, latest_per_target([{**state, "target_id": target_id}])
                )
            return int(result.inserted_primary_key[0])

    # -- incidents: writes ------------------------------------------------
    def open_incident(
        self, root_target_id: str, severity: str, title: str, at: float, text: str | None = None
    ) -> int:
        """Open an incident with its root target as first member; returns its id.

        ``text``: the timeline's first line (the title unless given)."""
        with self._writing() as conn:
            result = conn.execute(
                _INCIDENT.insert().values(
                    state=INCIDENT_OPEN,
                    opened_at=at,
                    root_target_id=root_target_id,
                    title=title,
                    severity=severity,
                    summary={},
                )
            )
            incident_id = int(result.inserted_primary_key[0])
            conn.execute(
                _MEMBER.insert().values(
                    incident_id=incident_id, target_id=root_target_id, role="root", joined_at=at
                )
            )
            self._event(
                conn, incident_id, "opened", at, root_target_id, title if text is None else text
            )
        return incident_id

    def join_incident(
        self, incident_id: int, target_id: str, role: str = "affected", at: float | None = None
    ) -> None:
        """Add a target to an incident (or bring a recovered member back into it)."""
        at = time.time() if at is None else at
        with self._writing() as conn:
            self._require_incident(conn, incident_id)
            stmt = self._insert(_MEMBER).values(
                incident_id=incident_id, target_id=target_id, role=role, joined_at=at
            )
            # A member that recovered and failed again keeps its role and first join time.
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["incident_id", "target_id"], set_={"recovered_at": None}
                )
            )
            self._event(conn, incident_id, "joined", at, target_id, role)

    def recover_target(self, incident_id: int, target_id: str, at: float) -> None:
        """Mark a member as recovered (the incident stays open until resolved)."""
        m = _MEMBER
        with self._writing() as conn:
            found = conn.execute(
                select(m.c.recovered_at).where(
                    m.c.incident_id == incident_id, m.c.target_id == target_id
                )
            ).first()
            if found is None:
                raise NotFound(f"target {target_id!r} is not a member of incident {incident_id}")
            if found.recovered_at is None:
                conn.execute(
                    update(m)
                    .where(m.c.incident_id == incident_id, m.c.target_id == target_id)
                    .values(recovered_at=at)
                )
                self._event(conn, incident_id, "recovered", at, target_id, "")

    def resolve_incident(self, incident_id: int, at: float, text: str = "") -> bool:
        """Resolve an open incident; members still in trouble are marked recovered at ``at``.

        Returns False (and changes nothing) when it was resolved already, so a
        replay after a crash is harmless. ``text``: the timeline line's text.
        """
        with self._writing() as conn:
            state = self._require_incident(conn, incident_id)
            if state != INCIDENT_OPEN:
                return False
            conn.execute(
                update(_INCIDENT)
                .where(_INCIDENT.c.id == incident_id)
                .values(state=INCIDENT_RESOLVED, resolved_at=at)
            )
            conn.execute(
                update(_MEMBER)
                .where(_MEMBER.c.incident_id == incident_id, _MEMBER.c.recovered_at.is_(None))
                .values(recovered_at=at)
            )
            self._event(conn, incident_id, "resolved", at, None, text)
        return True

    def add_incident_event(
        self,
        incident_id: int,
        kind: str,
        at: float,
        target_id: str | None = None,
        text: str = "",
    ) -> int:
        """Append a line to an incident's timeline; returns its id."""
        with self._writing() as conn:
            self._require_incident(conn, incident_id)
            return self._event(conn, incident_id, kind, at, target_id, text)

    def set_incident_fields(
        self,
        incident_id: int,
        *,
        cause: str | None = UNSET,
        eta: float | None = UNSET,
        summary: Mapping[str, str] | None = UNSET,
        severity: str = UNSET,
        title: str = UNSET,
    ) -> None:
        """Set what staff, runbooks or the engine learn during an incident.

        ``cause``, ``eta`` (epoch seconds) and the per-language customer
        ``summary`` come from staff or runbooks; ``severity`` (down | degraded)
        and ``title`` from the engine when an incident escalates. Only the
        arguments given change; ``None`` clears cause or ETA (and empties the
        summary).
        """
        values: dict[str, Any] = {}
        if cause is not UNSET:
            values["cause"] = cause
        if eta is not UNSET:
            values["eta"] = eta
        if summary is not UNSET:
            values["summary"] = dict(summary or {})
        for name, value in (("severity", severity), ("title", title)):
            if value is not UNSET:
                if value is None:
                    raise ValueError(f"an incident's {name} cannot be cleared")
                values[name] = value
        with self._writing() as conn:
            self._require_incident(conn, incident_id)
            if values:
                conn.execute(
                    update(_INCIDENT).where(_INCIDENT.c.id == incident_id).values(**values)
                )

    def acknowledge_incident(self, incident_id: int, by: str, at: float) -> bool:
        """Record who acknowledged an incident; False if it was acknowledged already."""
        with self._writing() as conn:
            self._require_incident(conn, incident_id)
            result = conn.execute(
                update(_INCIDENT)
                .where(_INCIDENT.c.id == incident_id, _INCIDENT.c.acknowledged_at.is_(None))
                .values(acknowledged_at=at, acknowledged_by=by)
            )
            if result.rowcount == 0:
                return False
            self._event(conn, incident_id, "acknowledged", at, None, by)
        return True

    def _require_incident(self, conn: Connection, incident_id: int) -> str:
        state = conn.execute(
            select(_INCIDENT.c.state).where(_INCIDENT.c.id == incident_id)
        ).scalar_one_or_none()
        if state is None:
            raise NotFound(f"no incident {incident_id}")
        return state

    def _event(
        self,
        conn: Connection,
        incident_id: int,
        kind: str,
        at: float,
        target_id: str | None,
        text: str,
    ) -> int:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown incident event kind {kind!r}; use one of {EVENT_KINDS}")
        result = conn.execute(
            _EVENT.insert().values(
                incident_id=incident_id, at=at, kind=kind, target_id=target_id, text=text
            )
        )
        return int(result.inserted_primary_key[0])

    # -- events (the outbox) and subscriber cursors: writes ------------------
    def add_event(
        self,
        kind: str,
        at: float,
        actor: str,
        target_id: str | None = None,
        incident_id: int | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> int:
        """Append one event (``monitor.events.record`` checks it first); returns its id."""
        with self._writing() as conn:
            self._events_begin(conn)
            result = conn.execute(
                _OUTBOX.insert().values(
                    kind=kind,
                    at=at,
                    actor=actor,
                    target_id=target_id,
                    incident_id=incident_id,
                    payload=dict(payload or {}),
                )
            )
            return int(result.inserted_primary_key[0])

    def add_events(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Append many events (rows of ``event`` columns but ``id``) in one statement.

        Straight through the driver's executemany, payloads encoded here: at
        start 10,000 targets turn up at once, and SQLAlchemy's per-row
        processing tripled the cost of their events.
        """
        if not rows:
            return
        encoded = [{**r, "payload": dumps_json(dict(r["payload"] or {}))} for r in rows]
        with self._writing() as conn:
            self._events_begin(conn)
            _executemany_raw(conn, _OUTBOX.insert, _EVENT_COLUMNS, encoded, self._compiled_events)

    def _events_begin(self, conn: Connection) -> None:
        """Before a transaction's first event: keep ids in commit order, note the commit."""
        if getattr(self._local, "wrote_events", False):
            return
        if self._dialect == "postgresql":
            # A sequence hands out ids at insert, not at commit: without this two
            # writers could commit ids 8 then 7, and a subscriber that has read 8
            # would never see 7. Held until commit; event writes are rare.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_EVENT_LOCK_KEY})")
        self._local.wrote_events = True

    def start_cursor(self, subscriber: str, event_id: int, at: float) -> int:
        """Create ``subscriber``'s cursor at ``event_id`` unless it has one; returns the stored one."""
        c = _CURSOR
        with self._writing() as conn:
            stmt = self._insert(c).values(subscriber=subscriber, event_id=event_id, updated_at=at)
            conn.execute(stmt.on_conflict_do_nothing(index_elements=["subscriber"]))
            return int(
                conn.execute(select(c.c.event_id).where(c.c.subscriber == subscriber)).scalar_one()
            )

    def set_cursor(self, subscriber: str, event_id: int, at: float) -> None:
        """Move ``subscriber``'s cursor to ``event_id`` (inside its handler's transaction,
        for exactly-once handling)."""
        c = _CURSOR
        with self._writing() as conn:
            stmt = self._insert(c).values(subscriber=subscriber, event_id=event_id, updated_at=at)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["subscriber"],
                    set_={"event_id": stmt.excluded.event_id, "updated_at": at},
                )
            )

    # -- what incident actions record: writes ---------------------------------
    def add_customer_update(
        self, incident_id: int, text: Mapping[str, str], by: str, at: float
    ) -> int:
        """Publish a customer-visible message (per language) under an incident; returns its id."""
        with self._writing() as conn:
            self._require_incident(conn, incident_id)
            result = conn.execute(
                _CUSTOMER_UPDATE.insert().values(
                    incident_id=incident_id, published_at=at, published_by=by, text=dict(text)
                )
            )
            return int(result.inserted_primary_key[0])

    def add_silence(
        self,
        *,
        target_id: str | None,
        incident_id: int | None,
        starts_at: float,
        ends_at: float,
        by: str,
        reason: str = "",
        component_id: str | None = None,
    ) -> int:
        """Hold back notifications about a target, a component or an incident until
        ``ends_at``; returns its id."""
        if sum(x is not None for x in (target_id, component_id, incident_id)) != 1:
            raise ValueError("a silence is of one target, one component or one incident")
        with self._writing() as conn:
            result = conn.execute(
                _SILENCE.insert().values(
                    target_id=target_id,
                    component_id=component_id,
                    incident_id=incident_id,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    created_by=by,
                    reason=reason,
                )
            )
            return int(result.inserted_primary_key[0])

    def lift_silence(self, silence_id: int, by: str, at: float) -> bool:
        """End a silence early; False when it was lifted already. NotFound if there is none."""
        s = _SILENCE
        with self._writing() as conn:
            if conn.execute(select(s.c.id).where(s.c.id == silence_id)).first() is None:
                raise NotFound(f"no silence {silence_id}")
            result = conn.execute(
                update(s)
                .where(s.c.id == silence_id, s.c.lifted_at.is_(None))
                .values(lifted_at=at, lifted_by=by)
            )
            return result.rowcount > 0

    def start_manual_maintenance(
        self, target_id: str, starts_at: float, ends_at: float | None, by: str, reason: str = ""
    ) -> int:
        """A maintenance window started by hand (``ends_at`` None: until ended); returns its id."""
        with self._writing() as conn:
            result = conn.execute(
                _MANUAL_MAINTENANCE.insert().values(
                    target_id=target_id,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    created_by=by,
                    reason=reason,
                )
            )
            return int(result.inserted_primary_key[0])

    def end_manual_maintenance(self, window_id: int, by: str, at: float) -> bool:
        """End a window started by hand; False when it was ended already. NotFound if none."""
        w = _MANUAL_MAINTENANCE
        with self._writing() as conn:
            if conn.execute(select(w.c.id).where(w.c.id == window_id)).first() is None:
                raise NotFound(f"no maintenance window {window_id}")
            result = conn.execute(
                update(w)
                .where(w.c.id == window_id, w.c.ended_at.is_(None))
                .values(ended_at=at, ended_by=by)
            )
            return result.rowcount > 0

    # -- incidents: the engine's restore read -----------------------------
    def open_incidents(self) -> list[IncidentRow]:
        """Every open incident with its members, oldest first (restored on start)."""
        with self._reading() as conn:
            return list(queries.open_incidents(conn))

    # -- probe state ------------------------------------------------------
    def save_probe_states(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Upsert per-target probe memory (JSON-serialisable dicts) in one transaction."""
        if not states:
            return
        now = time.time()
        rows = [{"target_id": t, "data": dict(d), "updated_at": now} for t, d in states.items()]
        with self._writing() as conn:
            stmt = self._insert(_PROBE_STATE)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["target_id"],
                    set_={"data": stmt.excluded.data, "updated_at": stmt.excluded.updated_at},
                ),
                rows,
            )

    def load_probe_states(self) -> dict[str, dict[str, Any]]:
        with self._reading() as conn:
            rows = conn.execute(select(_PROBE_STATE.c.target_id, _PROBE_STATE.c.data))
            return {row.target_id: row.data for row in rows}

    # -- counters ---------------------------------------------------------
    def add_counters(self, deltas: Mapping[str, int]) -> None:
        """Add to appliance-wide counters (created at 0), atomically in one transaction."""
        if not deltas:
            return
        rows = [{"name": name, "value": int(n)} for name, n in deltas.items()]
        with self._writing() as conn:
            stmt = self._insert(_COUNTER)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["name"],
                    set_={"value": _COUNTER.c.value + stmt.excluded.value},
                ),
                rows,
            )

    def counters(self) -> dict[str, int]:
        with self._reading() as conn:
            return {row.name: row.value for row in conn.execute(select(_COUNTER))}
