"""The state DB's pruners: what the retention job deletes of each history table, a batch at a time.

One class per kind in ``storage.retention``; each turns its policy into a
plan with a read (``plan``) and deletes it in batches (``delete_batch``), each
batch one write transaction of at most ``limit`` rows through
``StateRepository.writing`` (its lock, ``BEGIN IMMEDIATE`` on SQLite). A
plan carries a cursor, so a batch never looks again at rows an earlier batch
of the same run decided to keep.

- ``transitions``: by ``at``. A target's newest transition before the
  cutoff is kept while the target is configured (it is the health the target
  had at the cutoff, which the uptime rollup starts each day from). The age
  cutoff never passes the start of the newest day the uptime rollup has
  counted; the count limit (the disk guard) does not wait for it.
- ``events``: the outbox, by ``at`` and, beyond ``max_rows``, oldest first;
  never an event above the lowest subscriber cursor (a subscriber that is
  behind keeps them, and a warning names it).
- ``incident_timelines``: ``incident_event`` lines of resolved incidents,
  by the incident's ``resolved_at`` (a timeline goes whole) and, beyond
  ``max_rows``, the oldest lines first.
- ``incidents``: resolved incidents by ``resolved_at``, with their members
  and what is left of their timeline (their customer updates go by the
  foreign key's ON DELETE CASCADE); transitions pointing at one are
  unlinked. Open incidents are never deleted.
- ``uptime``: days older than the cutoff (site timezone).
- ``silences`` and ``manual_maintenance``: periods people started by hand, by
  when they ended (run out, lifted or ended early) and, beyond ``max_rows``,
  the earliest ended first. One that has not ended is never deleted.
- ``audit``: the oldest audit entries, as a run from the start of the chain,
  with its anchor moved past them in the same batch (``AuditPruner``).
- ``staff_sessions``: login sessions by when they ended (logout, ended by an
  admin, or their absolute expiry); a live one is never deleted.

On PostgreSQL a batch first takes a transaction-level advisory lock for its
kind without waiting: when two appliances share the database, one prunes a
kind to the end and the other's batch finds the lock taken and leaves that
kind for this run.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    case,
    delete,
    exists,
    func,
    or_,
    select,
    true,
    tuple_,
    update,
)

from monitor import audit, events
from monitor.config.models import RetentionPolicy
from monitor.retention import Batch, RetentionJob, age_cutoff, later, not_after
from monitor.store.models import (
    INCIDENT_RESOLVED,
    EventRecord,
    Incident,
    IncidentEvent,
    IncidentTarget,
    ManualMaintenance,
    RunbookRun,
    RunbookStep,
    Silence,
    StaffSession,
    TargetState,
    Transition,
    UptimeDay,
)
from monitor.store.repository import StateRepository
from monitor.store.uptime import UptimeRollup
from monitor.uptime import UptimeScope, day_of

_TRANSITION: Table = Transition.__table__  # type: ignore[assignment]
_TARGET_STATE: Table = TargetState.__table__  # type: ignore[assignment]
_INCIDENT: Table = Incident.__table__  # type: ignore[assignment]
_MEMBER: Table = IncidentTarget.__table__  # type: ignore[assignment]
_EVENT: Table = IncidentEvent.__table__  # type: ignore[assignment]
_UPTIME: Table = UptimeDay.__table__  # type: ignore[assignment]
_OUTBOX: Table = EventRecord.__table__  # type: ignore[assignment]
_SILENCE: Table = Silence.__table__  # type: ignore[assignment]
_WINDOW: Table = ManualMaintenance.__table__  # type: ignore[assignment]
_STAFF_SESSION: Table = StaffSession.__table__  # type: ignore[assignment]
_RUN: Table = RunbookRun.__table__  # type: ignore[assignment]
_RUN_STEP: Table = RunbookStep.__table__  # type: ignore[assignment]

RETENTION_LOCK_KEY = 0x4469_616D
"""First key of the PostgreSQL advisory locks the retention batches take (the second is the kind's)."""
INCIDENTS_PER_BATCH = 100
"""Incidents looked at per batch; their members and timeline lines count toward the batch."""

_DONE = Batch(0, False)

log = logging.getLogger(__name__)


@contextlib.contextmanager
def batch_transaction(repo: StateRepository, kind: str) -> Iterator[Connection | None]:
    """One batch's write transaction; None on PostgreSQL when another appliance is
    pruning the same kind (one lock per kind: whoever holds it finishes the kind).

    For every pruner of the state DB, these and those of stores to come.
    """
    with repo.writing() as conn:
        if conn.dialect.name == "postgresql":
            key = zlib.crc32(kind.encode()) & 0x7FFF_FFFF  # the lock's second key is an int4
            taken = conn.exec_driver_sql(
                f"SELECT pg_try_advisory_xact_lock({RETENTION_LOCK_KEY}, {key})"
            ).scalar_one()
            if not taken:
                yield None
                return
        yield conn


def _nth_newest(conn: Connection, column: Any, n: int, *where: ColumnElement[bool]) -> Any:
    """The value of ``column`` in the ``n``-th newest row (None when there are fewer rows)."""
    return conn.execute(
        select(column).where(*where).order_by(column.desc()).limit(1).offset(n - 1)
    ).scalar()


def _after(at: Any, id_: Any, cursor: tuple[Any, int] | None) -> ColumnElement[bool]:
    """Rows past ``cursor`` in (at, id) order."""
    if cursor is None:
        return true()
    a, i = cursor
    return or_(at > a, and_(at == a, id_ > i))


def _through(at: Any, id_: Any, last: tuple[Any, int]) -> ColumnElement[bool]:
    a, i = last
    return or_(at < a, and_(at == a, id_ <= i))


# -- transitions ---------------------------------------------------------------------
@dataclass
class TransitionsPlan:
    """Transitions before ``cutoff`` go; ``cursor`` is how far this run has looked."""

    cutoff: float
    cursor: tuple[float, int] | None = None


class TransitionsPruner:
    """``storage.retention.transitions``."""

    def __init__(self, repo: StateRepository, counted_until: Callable[[], float | None]) -> None:
        """``counted_until``: where the uptime rollup has counted up to (None: nowhere yet)."""
        self._repo = repo
        self._counted_until = counted_until

    def plan(self, policy: RetentionPolicy, now: float) -> TransitionsPlan | None:
        t = _TRANSITION
        by_age = not_after(age_cutoff(policy, now), self._counted_until())
        by_count = None
        if policy.max_rows is not None:
            with self._repo.reading() as conn:
                by_count = _nth_newest(conn, t.c.at, policy.max_rows)
        cutoff = later(by_age, by_count)
        return None if cutoff is None else TransitionsPlan(cutoff)

    def delete_batch(self, plan: TransitionsPlan, limit: int) -> Batch:
        t, s = _TRANSITION, _TARGET_STATE
        n = _TRANSITION.alias("newer")
        with batch_transaction(self._repo, "transitions") as conn:
            if conn is None:
                return _DONE
            window = and_(t.c.at < plan.cutoff, _after(t.c.at, t.c.id, plan.cursor))
            last = conn.execute(
                select(t.c.at, t.c.id)
                .where(window)
                .order_by(t.c.at, t.c.id)
                .limit(1)
                .offset(limit - 1)
            ).first()
            if last is not None:
                window = and_(window, _through(t.c.at, t.c.id, tuple(last)))
            # Kept: the last transition before the cutoff of a target still configured.
            superseded = exists().where(
                n.c.target_id == t.c.target_id,
                n.c.at < plan.cutoff,
                or_(n.c.at > t.c.at, and_(n.c.at == t.c.at, n.c.id > t.c.id)),
            )
            removed = ~exists().where(s.c.target_id == t.c.target_id)
            deleted = conn.execute(delete(t).where(window, or_(superseded, removed))).rowcount
        if last is None:
            return Batch(deleted, False)
        plan.cursor = (last.at, last.id)
        return Batch(deleted, True)


# -- events (the outbox) ---------------------------------------------------------------
@dataclass(frozen=True)
class EventsPlan:
    """Events older than ``before`` or below ``below_id`` go, none above ``handled``
    (the lowest subscriber cursor; None: no subscriber keeps a cursor)."""

    before: float | None
    below_id: int | None
    handled: int | None


class EventsPruner:
    """``storage.retention.events``: never an event a subscriber has not had yet."""

    def __init__(self, repo: StateRepository) -> None:
        self._repo = repo

    def plan(self, policy: RetentionPolicy, now: float) -> EventsPlan | None:
        o = _OUTBOX
        before = age_cutoff(policy, now)
        with self._repo.reading() as conn:
            below_id = None
            if policy.max_rows is not None:
                below_id = _nth_newest(conn, o.c.id, policy.max_rows)
            if before is None and below_id is None:
                return None
            cursors = events.cursors(conn)
            handled = min(cursors.values()) if cursors else None
            if handled is not None:
                behind = [name for name, at in cursors.items() if at == handled]
                held = conn.execute(
                    select(o.c.id).where(o.c.id > handled, _due(before, below_id)).limit(1)
                ).first()
                if held is not None:
                    log.warning(
                        "retention: events after %d are kept past storage.retention.events: "
                        "subscriber %s has not had them yet",
                        handled,
                        ", ".join(sorted(behind)),
                    )
        return EventsPlan(before, below_id, handled)

    def delete_batch(self, plan: EventsPlan, limit: int) -> Batch:
        o = _OUTBOX
        where = _due(plan.before, plan.below_id)
        if plan.handled is not None:
            where = and_(where, o.c.id <= plan.handled)
        with batch_transaction(self._repo, "events") as conn:
            if conn is None:
                return _DONE
            deleted = _delete_some(conn, o, [o.c.id], where, limit)
        return Batch(deleted, deleted > 0)


def _due(before: float | None, below_id: int | None) -> ColumnElement[bool]:
    """Events old enough or beyond the count (at least one of the two is given)."""
    o = _OUTBOX
    limits = []
    if before is not None:
        limits.append(o.c.at < before)
    if below_id is not None:
        limits.append(o.c.id < below_id)
    return or_(*limits)


# -- incident timelines ------------------------------------------------------------------
@dataclass
class TimelinesPlan:
    """Timelines of incidents resolved before ``resolved_before`` go whole; lines with an id
    below ``below_id`` (the oldest beyond max_rows) go if their incident is resolved."""

    resolved_before: float | None
    below_id: int | None
    incident_cursor: tuple[float, int] | None = None
    id_cursor: int = 0


class TimelinesPruner:
    """``storage.retention.incident_timelines``."""

    def __init__(self, repo: StateRepository) -> None:
        self._repo = repo
        # Incidents resolved before this have no timeline left (an earlier run
        # finished them): a run starts after it instead of walking them all again.
        # (A note added later to such an old incident waits for max_rows or a restart.)
        self._swept: tuple[float, int] | None = None

    def plan(self, policy: RetentionPolicy, now: float) -> TimelinesPlan | None:
        below_id = None
        if policy.max_rows is not None:
            with self._repo.reading() as conn:
                below_id = _nth_newest(conn, _EVENT.c.id, policy.max_rows)
        resolved_before = age_cutoff(policy, now)
        if resolved_before is None and below_id is None:
            return None
        return TimelinesPlan(resolved_before, below_id, incident_cursor=self._swept)

    def delete_batch(self, plan: TimelinesPlan, limit: int) -> Batch:
        with batch_transaction(self._repo, "incident_timelines") as conn:
            if conn is None:
                return _DONE
            if plan.resolved_before is not None:
                done = self._by_age(conn, plan, limit)
                if done.more:
                    return done
                plan.resolved_before = None  # the age part is done; now the count part
            if plan.below_id is None:
                return _DONE
            return self._by_count(conn, plan, limit)

    def _by_age(self, conn: Connection, plan: TimelinesPlan, limit: int) -> Batch:
        i, e = _INCIDENT, _EVENT
        assert plan.resolved_before is not None
        incidents = conn.execute(
            select(i.c.resolved_at, i.c.id)
            .where(
                i.c.state == INCIDENT_RESOLVED,
                i.c.resolved_at < plan.resolved_before,
                _after(i.c.resolved_at, i.c.id, plan.incident_cursor),
            )
            .order_by(i.c.resolved_at, i.c.id)
            .limit(INCIDENTS_PER_BATCH)
        ).all()
        if not incidents:
            self._swept = plan.incident_cursor
            return _DONE
        ids = [row.id for row in incidents]
        deleted = _delete_some(conn, e, [e.c.id], e.c.incident_id.in_(ids), limit)
        if deleted < limit:  # these incidents' timelines are gone: move on
            plan.incident_cursor = (incidents[-1].resolved_at, incidents[-1].id)
        return Batch(deleted, True)

    def _by_count(self, conn: Connection, plan: TimelinesPlan, limit: int) -> Batch:
        i, e = _INCIDENT, _EVENT
        assert plan.below_id is not None
        last = conn.execute(
            select(e.c.id)
            .where(e.c.id > plan.id_cursor, e.c.id < plan.below_id)
            .order_by(e.c.id)
            .limit(1)
            .offset(limit - 1)
        ).scalar()
        upper = plan.below_id if last is None else last + 1
        resolved = exists().where(i.c.id == e.c.incident_id, i.c.state == INCIDENT_RESOLVED)
        deleted = conn.execute(
            delete(e).where(e.c.id > plan.id_cursor, e.c.id < upper, resolved)
        ).rowcount
        if last is None:
            return Batch(deleted, False)
        plan.id_cursor = last
        return Batch(deleted, True)


# -- incidents ---------------------------------------------------------------------------
@dataclass
class IncidentsPlan:
    """Resolved incidents with ``resolved_at`` before ``cutoff`` go."""

    cutoff: float
    cursor: tuple[float, int] | None = None


class IncidentsPruner:
    """``storage.retention.incidents``."""

    def __init__(self, repo: StateRepository) -> None:
        self._repo = repo

    def plan(self, policy: RetentionPolicy, now: float) -> IncidentsPlan | None:
        i = _INCIDENT
        by_count = None
        if policy.max_rows is not None:
            with self._repo.reading() as conn:
                by_count = _nth_newest(
                    conn, i.c.resolved_at, policy.max_rows, i.c.state == INCIDENT_RESOLVED
                )
        cutoff = later(age_cutoff(policy, now), by_count)
        return None if cutoff is None else IncidentsPlan(cutoff)

    def delete_batch(self, plan: IncidentsPlan, limit: int) -> Batch:
        i, m, e, t = _INCIDENT, _MEMBER, _EVENT, _TRANSITION
        with batch_transaction(self._repo, "incidents") as conn:
            if conn is None:
                return _DONE
            incidents = conn.execute(
                select(i.c.resolved_at, i.c.id)
                .where(
                    i.c.state == INCIDENT_RESOLVED,
                    i.c.resolved_at < plan.cutoff,
                    _after(i.c.resolved_at, i.c.id, plan.cursor),
                )
                .order_by(i.c.resolved_at, i.c.id)
                .limit(min(limit, INCIDENTS_PER_BATCH))
            ).all()
            if not incidents:
                return _DONE
            ids = [row.id for row in incidents]
            # Children first (foreign keys), each bounded by the batch size: an
            # incident of a carrier outage can have thousands of members and lines.
            for table, key, where in (
                (e, [e.c.id], e.c.incident_id.in_(ids)),
                (m, [m.c.incident_id, m.c.target_id], m.c.incident_id.in_(ids)),
            ):
                deleted = _delete_some(conn, table, key, where, limit)
                if deleted:
                    return Batch(deleted, True)
            # The newest transition of a target may still point at an old incident.
            conn.execute(update(t).where(t.c.incident_id.in_(ids)).values(incident_id=None))
            deleted = conn.execute(delete(i).where(i.c.id.in_(ids))).rowcount
        plan.cursor = (incidents[-1].resolved_at, incidents[-1].id)
        return Batch(deleted, True)


# -- uptime days -------------------------------------------------------------------------
class UptimePruner:
    """``storage.retention.uptime``: whole days, older than the cutoff in the site timezone."""

    def __init__(self, repo: StateRepository, tz: Callable[[], ZoneInfo]) -> None:
        self._repo = repo
        self._tz = tz

    def plan(self, policy: RetentionPolicy, now: float) -> date | None:
        by_count = None
        if policy.max_rows is not None:
            with self._repo.reading() as conn:
                by_count = _nth_newest(conn, _UPTIME.c.day, policy.max_rows)
        by_age = age_cutoff(policy, now)
        cutoffs = [by_count, None if by_age is None else day_of(by_age, self._tz())]
        given = [d for d in cutoffs if d is not None]
        return max(given) if given else None

    def delete_batch(self, before: date, limit: int) -> Batch:
        u = _UPTIME
        key = [u.c.subject_kind, u.c.subject_id, u.c.day]
        with batch_transaction(self._repo, "uptime") as conn:
            if conn is None:
                return _DONE
            deleted = _delete_some(conn, u, key, u.c.day < before, limit)
        return Batch(deleted, deleted > 0)


# -- silences and manual maintenance windows -------------------------------------------------
class EndedPruner:
    """Periods started by hand (``storage.retention.silences``, ``.manual_maintenance``):
    those that ended before the cutoff go; one that has not ended never does.

    ``ended`` is when a row's period ended, NULL while it has no end yet (a
    window open until someone ends it). No index serves it: these tables grow
    only as fast as people act (thousands of rows a year), so a scan costs less
    than an index on every insert would.
    """

    def __init__(
        self, repo: StateRepository, kind: str, table: Table, ended: ColumnElement[Any]
    ) -> None:
        self._repo = repo
        self._kind = kind
        self._table = table
        self._ended = ended

    def plan(self, policy: RetentionPolicy, now: float) -> float | None:
        by_count = None
        if policy.max_rows is not None:
            with self._repo.reading() as conn:
                by_count = _nth_newest(conn, self._ended, policy.max_rows, self._ended <= now)
        cutoff = later(age_cutoff(policy, now), by_count)
        # Never past now, whatever the policy says: what has not ended yet stays.
        return None if cutoff is None else min(cutoff, now)

    def delete_batch(self, cutoff: float, limit: int) -> Batch:
        table = self._table
        with batch_transaction(self._repo, self._kind) as conn:
            if conn is None:
                return _DONE
            deleted = _delete_some(conn, table, [table.c.id], self._ended < cutoff, limit)
        return Batch(deleted, deleted > 0)


def silences_pruner(repo: StateRepository) -> EndedPruner:
    """A silence ends when it runs out, or earlier when it is lifted."""
    s = _SILENCE
    return EndedPruner(repo, "silences", s, func.coalesce(s.c.lifted_at, s.c.ends_at))


def manual_maintenance_pruner(repo: StateRepository) -> EndedPruner:
    """A window ends when it runs out, or earlier when someone ends it; one started
    without an end (``ends_at`` NULL) lasts until then."""
    w = _WINDOW
    return EndedPruner(repo, "manual_maintenance", w, func.coalesce(w.c.ended_at, w.c.ends_at))


def staff_sessions_pruner(repo: StateRepository) -> EndedPruner:
    """A login session ends at logout (or when an admin ends it), or at its absolute
    expiry, whichever comes first; one that has neither is live and stays. (An idle one
    counts from its absolute expiry: it is at most a day, a wall screen's a month.)"""
    s = _STAFF_SESSION
    ended = case((s.c.ended_at < s.c.expires_at, s.c.ended_at), else_=s.c.expires_at)
    return EndedPruner(repo, "staff_sessions", s, ended)


class RunsPruner(EndedPruner):
    """``storage.retention.runbook_runs``: runs that ended before the cutoff go, each with
    the rows of its steps in the same transaction; one still active (``ended_at`` NULL,
    interrupted ones too) never does."""

    def __init__(self, repo: StateRepository) -> None:
        super().__init__(repo, "runbook_runs", _RUN, _RUN.c.ended_at)

    def delete_batch(self, cutoff: float, limit: int) -> Batch:
        with batch_transaction(self._repo, self._kind) as conn:
            if conn is None:
                return _DONE
            ids = list(
                conn.execute(
                    select(_RUN.c.id)
                    .where(_RUN.c.ended_at < cutoff)
                    .order_by(_RUN.c.id)
                    .limit(limit)
                ).scalars()
            )
            if not ids:
                return Batch(0, False)
            conn.execute(delete(_RUN_STEP).where(_RUN_STEP.c.run_id.in_(ids)))
            conn.execute(delete(_RUN).where(_RUN.c.id.in_(ids)))
        return Batch(len(ids), True)


def _delete_some(
    conn: Connection, table: Table, key: list[Any], where: ColumnElement[bool], limit: int
) -> int:
    """Delete at most ``limit`` rows of ``table`` matching ``where``; returns how many."""
    chosen = select(*key).where(where).limit(limit)
    match = key[0].in_(chosen) if len(key) == 1 else tuple_(*key).in_(chosen)
    return conn.execute(delete(table).where(match)).rowcount


# -- registration --------------------------------------------------------------------------
def register_state_history(
    job: RetentionJob, repo: StateRepository, scope: Callable[[], UptimeScope]
) -> UptimeRollup:
    """Register the state DB's history with the retention job; returns the uptime rollup.

    The rollup runs before any pruner; timelines are pruned before incidents,
    so deleting an incident rarely has lines of its own left to delete.
    """
    uptime = UptimeRollup(repo, scope)
    job.register_rollup("uptime", uptime)
    job.register("transitions", TransitionsPruner(repo, uptime.counted_until))
    job.register("events", EventsPruner(repo))
    job.register("incident_timelines", TimelinesPruner(repo))
    job.register("incidents", IncidentsPruner(repo))
    job.register("uptime", UptimePruner(repo, lambda: scope().tz))
    job.register("silences", silences_pruner(repo))
    job.register("manual_maintenance", manual_maintenance_pruner(repo))
    job.register("audit", AuditPruner(repo))
    job.register("staff_sessions", staff_sessions_pruner(repo))
    job.register("runbook_runs", RunsPruner(repo))
    return uptime


# -- the audit log ---------------------------------------------------------------------------
@dataclass
class AuditPlan:
    """Entries older than ``before`` or with an id below ``below_id`` go, from the chain's start."""

    before: float | None
    below_id: int | None
    now: float
    deleted: int = 0
    through_id: int | None = None


class AuditPruner:
    """``storage.retention.audit``: ``monitor.audit.prune_prefix`` a batch at a time.

    The anchor moves in the transaction that deletes, so ``verify`` holds
    between any two batches. A run that deleted something ends with one
    ``audit.prune`` entry saying how far; a run that met an entry whose hash
    does not hold stops there and writes a ``failed`` one naming it.
    """

    def __init__(self, repo: StateRepository) -> None:
        self._repo = repo

    def plan(self, policy: RetentionPolicy, now: float) -> AuditPlan | None:
        below_id = None
        if policy.max_rows is not None:
            with self._repo.reading() as conn:
                below_id = _nth_newest(conn, audit.ENTRY.c.id, policy.max_rows)
        before = age_cutoff(policy, now)
        if before is None and below_id is None:
            return None
        return AuditPlan(before, below_id, now)

    def delete_batch(self, plan: AuditPlan, limit: int) -> Batch:
        with batch_transaction(self._repo, "audit") as conn:
            if conn is None:
                return _DONE
            done = audit.prune_prefix(
                conn, before=plan.before, below_id=plan.below_id, limit=limit, at=plan.now
            )
            plan.deleted += done.deleted
            plan.through_id = done.through_id or plan.through_id
            if done.more:
                return Batch(done.deleted, True)
            if done.broken_at is not None:
                log.error(
                    "retention: audit entry %d does not hold its hash; the audit log is "
                    "not pruned from there on (run `dialwatch audit verify`)",
                    done.broken_at,
                )
                audit.record(
                    conn,
                    at=plan.now,
                    actor="system",
                    action="audit.prune",
                    result="failed",
                    object=f"audit:{done.broken_at}",
                    detail=f"entry {done.broken_at} does not hold its hash: not pruned from there on",
                )
            if plan.deleted:
                audit.record(
                    conn,
                    at=plan.now,
                    actor="system",
                    action="audit.prune",
                    object=f"audit:{plan.through_id}",
                    detail=f"{plan.deleted} entries deleted through entry {plan.through_id}",
                )
        return Batch(done.deleted, False)
