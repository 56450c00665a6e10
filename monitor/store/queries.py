"""The read model of the state DB: every query the web (and the tests) make, as frozen values.

What the engine wrote — targets' health and last observation, transitions,
incidents with their members and timelines — read back for people. Writes
live in ``monitor.store.repository``; nothing here writes.

Cost is part of the contract, because the dashboard polls every few seconds
at 10,000 targets: lists are filtered and paged in SQL, the per-health totals
come from one GROUP BY, and a page of incidents loads the members of the
whole page in one statement. A request therefore costs a fixed handful of
statements however many rows it shows; nothing reads "all targets with all
history".

Every function takes the state DB as an ``Engine`` (one pooled connection per
call, so any thread may call it) or as an open ``Connection`` (the repository
passes its own, so a read inside ``StateRepository.transaction()`` sees the
pending writes). Health comes back as ``Health``, never as a bare string;
mappings inside the values are read-only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from types import MappingProxyType
from typing import Any, Literal

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    case,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    union_all,
)

from core.observation import Status
from monitor.health import HEALTH_ORDER, Health
from monitor.store.models import (
    INCIDENT_OPEN,
    INCIDENT_RESOLVED,
    AuditEntry,
    CustomerUpdate,
    EventRecord,
    FailoverMember,
    Incident,
    IncidentEvent,
    IncidentTarget,
    ManualMaintenance,
    Silence,
    TargetState,
    Transition,
    UptimeDay,
)
from monitor.uptime import HealthSeconds

StateDB = Engine | Connection
"""The state DB as the functions here take it (see the module docstring)."""

MAX_PER_PAGE = 1000
"""The most rows one page may hold (the API's and dashboard's ``per_page`` limit)."""

# Ids per IN (...) list: a whole page of incidents fits one list (so its members
# are one statement), and it stays far below SQLite's and PostgreSQL's limits.
_IN_CHUNK = MAX_PER_PAGE

_TARGET: Table = TargetState.__table__  # type: ignore[assignment]
_TRANSITION: Table = Transition.__table__  # type: ignore[assignment]
_INCIDENT: Table = Incident.__table__  # type: ignore[assignment]
_MEMBER: Table = IncidentTarget.__table__  # type: ignore[assignment]
_EVENT: Table = IncidentEvent.__table__  # type: ignore[assignment]
_AUDIT: Table = AuditEntry.__table__  # type: ignore[assignment]
_UPDATE: Table = CustomerUpdate.__table__  # type: ignore[assignment]
_OUTBOX: Table = EventRecord.__table__  # type: ignore[assignment]
_SILENCE: Table = Silence.__table__  # type: ignore[assignment]
_WINDOW: Table = ManualMaintenance.__table__  # type: ignore[assignment]
_FAILOVER: Table = FailoverMember.__table__  # type: ignore[assignment]
_UPTIME: Table = UptimeDay.__table__  # type: ignore[assignment]

Role = Literal["root", "affected"]


# -- what a caller asks for ------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Page:
    """Which page of a list: ``page`` counts from 1; at most ``MAX_PER_PAGE`` rows."""

    page: int = 1
    per_page: int = 100

    def __post_init__(self) -> None:
        if self.page < 1:
            raise ValueError(f"page must be 1 or more, not {self.page}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise ValueError(f"per_page must be between 1 and {MAX_PER_PAGE}, not {self.per_page}")

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page


FIRST_PAGE = Page()


@dataclass(frozen=True, slots=True)
class TargetFilter:
    """Which targets a list shows; an empty field does not filter."""

    health: tuple[Health, ...] = ()
    kind: tuple[str, ...] = ()
    q: str = ""
    """Matches anywhere in the id, ignoring case; ``%`` and ``_`` are literal."""

    def is_empty(self) -> bool:
        return not (self.health or self.kind or self.q)


NO_FILTER = TargetFilter()


@dataclass(frozen=True, slots=True)
class IncidentFilter:
    """Which incidents a list shows; an empty field does not filter."""

    severity: tuple[str, ...] = ()
    """``down`` and/or ``degraded``."""
    member_of: tuple[tuple[str, ...], ...] = ()
    """Groups of target ids: the incident has a member (root or affected) in each group
    (one group per target filter, one per component filter). An empty group matches nothing."""
    since: float | None = None
    until: float | None = None
    """The incident overlaps ``[since, until)``: opened before ``until``, and still open or
    resolved at or after ``since``."""


# -- what comes back ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TargetRow:
    """A target's current health and its last observation: one row of the target list."""

    id: str
    kind: str
    health: Health
    since: float
    flapping: bool
    affected_by: str | None
    last_status: Status | None
    last_detail: str | None
    last_latency: float | None
    last_observed_at: float | None
    last_metrics: Mapping[str, Any]
    """Flat ``{"measurement.field[tag=v]": value}`` of the last observation."""


@dataclass(frozen=True, slots=True)
class TargetPage:
    items: tuple[TargetRow, ...]
    total: int
    """How many targets match the whole filter (all pages)."""
    totals: Mapping[Health, int]
    """Targets per health for the kind and text filter only, ignoring the health filter
    (the dashboard's health tabs show what a click would give); every health, worst first."""
    page: Page


@dataclass(frozen=True, slots=True)
class TransitionRow:
    """One change of a target's health."""

    id: int
    target_id: str
    at: float
    from_health: Health
    to_health: Health
    reason: str
    flapping: bool
    affected_by: str | None
    incident_id: int | None


@dataclass(frozen=True, slots=True)
class HealthSpan:
    """A stretch of time ``[start, end)`` a target spent in one health."""

    start: float
    end: float
    health: Health

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class IncidentMember:
    """A target's membership in an incident; ``recovered_at`` is None while it is in trouble."""

    target_id: str
    role: Role
    joined_at: float
    recovered_at: float | None


@dataclass(frozen=True, slots=True)
class IncidentRow:
    """An incident with its members, the root first, then the others as they joined."""

    id: int
    state: str  # INCIDENT_OPEN | INCIDENT_RESOLVED
    opened_at: float
    resolved_at: float | None
    root_target_id: str
    title: str
    severity: Health  # down | degraded
    cause: str | None
    eta: float | None
    """Expected recovery (epoch seconds), set by staff or runbooks."""
    summary: Mapping[str, str]
    """Customer-facing text per language: ``{"zh-CN": "...", "en": "..."}``."""
    acknowledged_at: float | None
    acknowledged_by: str | None
    members: tuple[IncidentMember, ...] = field(default=())

    @property
    def member_ids(self) -> tuple[str, ...]:
        """Member target ids, root first."""
        return tuple(m.target_id for m in self.members)


@dataclass(frozen=True, slots=True)
class IncidentPage:
    items: tuple[IncidentRow, ...]
    total: int
    """How many incidents match (all pages)."""
    page: Page


@dataclass(frozen=True, slots=True)
class IncidentEventRow:
    """One line of an incident's timeline."""

    id: int
    incident_id: int
    at: float
    kind: str
    target_id: str | None
    text: str


@dataclass(frozen=True, slots=True)
class CustomerUpdateRow:
    """A published customer update (never an internal note)."""

    id: int
    incident_id: int
    published_at: float
    text: Mapping[str, str]
    """Per language: ``{"zh-CN": "...", "en": "..."}``; a language may be missing."""


# -- the orders --------------------------------------------------------------------
_WORST_FIRST = case(
    {h.value: rank for rank, h in enumerate(HEALTH_ORDER)},
    value=_TARGET.c.health,
    else_=len(HEALTH_ORDER),
)
"""``HEALTH_ORDER`` as an ORDER BY key."""

_ROOT_FIRST = (
    case((_MEMBER.c.role == "root", 0), else_=1),
    _MEMBER.c.joined_at,
    _MEMBER.c.target_id,
)
"""The order of an incident's members: the root, then the others as they joined."""


# -- plumbing ----------------------------------------------------------------------
@contextlib.contextmanager
def _connected(db: StateDB) -> Iterator[Connection]:
    if isinstance(db, Connection):
        yield db
        return
    with db.connect() as conn:
        yield conn


def _chunks(items: Sequence[Any], size: int = _IN_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def like_pattern(text: str) -> str:
    """A LIKE pattern (escape ``\\``) matching ``text`` anywhere, its wildcards taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


# -- targets -----------------------------------------------------------------------
_TARGET_COLUMNS = (
    _TARGET.c.target_id,
    _TARGET.c.kind,
    _TARGET.c.health,
    _TARGET.c.since,
    _TARGET.c.flapping,
    _TARGET.c.affected_by,
    _TARGET.c.last_status,
    _TARGET.c.last_detail,
    _TARGET.c.last_latency,
    _TARGET.c.last_observed_at,
    _TARGET.c.last_metrics,
)
"""What a target row shows: not the state machine's memory or the probe counters."""


def _target_row(row: Any) -> TargetRow:
    return TargetRow(
        id=row.target_id,
        kind=row.kind,
        health=Health(row.health),
        since=row.since,
        flapping=bool(row.flapping),
        affected_by=row.affected_by,
        last_status=Status(row.last_status) if row.last_status is not None else None,
        last_detail=row.last_detail,
        last_latency=row.last_latency,
        last_observed_at=row.last_observed_at,
        last_metrics=MappingProxyType(dict(row.last_metrics or {})),
    )


def targets_page(
    db: StateDB,
    flt: TargetFilter = NO_FILTER,
    page: Page = FIRST_PAGE,
    name_matches: Collection[str] = (),
) -> TargetPage:
    """One page of targets, worst health first, then by id; with per-health totals.

    ``name_matches``: ids whose configured name matches ``flt.q`` (names live in
    the config, not here); they match as well as ids containing ``q``.
    Two statements: the totals, then the page.
    """
    t = _TARGET
    common = []
    if flt.kind:
        common.append(t.c.kind.in_(flt.kind))
    if flt.q:
        text_match = t.c.target_id.ilike(like_pattern(flt.q), escape="\\")
        if name_matches:
            text_match = text_match | t.c.target_id.in_(list(name_matches))
        common.append(text_match)
    filters = [*common, t.c.health.in_([h.value for h in flt.health])] if flt.health else common
    with _connected(db) as conn:
        counts = dict(
            conn.execute(select(t.c.health, func.count()).where(*common).group_by(t.c.health)).all()
        )
        rows = conn.execute(
            select(*_TARGET_COLUMNS)
            .where(*filters)
            .order_by(_WORST_FIRST, t.c.target_id)
            .offset(page.offset)
            .limit(page.per_page)
        ).all()
    totals = {h: int(counts.get(h.value, 0)) for h in HEALTH_ORDER}
    if flt.health:
        total = sum(totals[h] for h in set(flt.health))
    else:
        total = sum(int(n) for n in counts.values())
    return TargetPage(tuple(map(_target_row, rows)), total, MappingProxyType(totals), page)


def target(db: StateDB, target_id: str) -> TargetRow | None:
    with _connected(db) as conn:
        row = conn.execute(select(*_TARGET_COLUMNS).where(_TARGET.c.target_id == target_id)).first()
    return _target_row(row) if row is not None else None


def kinds_present(db: StateDB) -> tuple[str, ...]:
    """Every probe kind some stored target has, sorted."""
    with _connected(db) as conn:
        return tuple(sorted(conn.execute(select(_TARGET.c.kind).distinct()).scalars()))


def health_of(db: StateDB, target_ids: Iterable[str]) -> dict[str, Health]:
    """Current health of the given targets; ids without a row are absent (the caller says unknown).

    One statement per ``_IN_CHUNK`` ids, so a caller asks once for all the ids it needs.
    """
    ids = list(dict.fromkeys(target_ids))
    out: dict[str, Health] = {}
    with _connected(db) as conn:
        for chunk in _chunks(ids):
            rows = conn.execute(
                select(_TARGET.c.target_id, _TARGET.c.health).where(_TARGET.c.target_id.in_(chunk))
            )
            out.update((target_id, Health(health)) for target_id, health in rows)
    return out


def health_by_kind(db: StateDB) -> dict[str, dict[Health, int]]:
    """How many targets of each kind are in each health: ``{kind: {health: n}}``, kinds
    sorted, every health present (worst first). One GROUP BY, whatever the number of targets."""
    t = _TARGET
    with _connected(db) as conn:
        rows = conn.execute(
            select(t.c.kind, t.c.health, func.count()).group_by(t.c.kind, t.c.health)
        ).all()
    out: dict[str, dict[Health, int]] = {}
    for kind, health, n in sorted(rows):
        counts = out.setdefault(kind, dict.fromkeys(HEALTH_ORDER, 0))
        counts[Health(health)] += int(n)
    return out


# -- transitions ---------------------------------------------------------------------
def transitions(
    db: StateDB, target_id: str | None = None, limit: int = 50
) -> tuple[TransitionRow, ...]:
    """The latest transitions, newest first: of one target, or of all when ``target_id`` is None."""
    t = _TRANSITION
    stmt = select(t).order_by(t.c.at.desc(), t.c.id.desc()).limit(limit)
    if target_id is not None:
        stmt = stmt.where(t.c.target_id == target_id)
    with _connected(db) as conn:
        rows = conn.execute(stmt).all()
    return tuple(
        TransitionRow(
            id=r.id,
            target_id=r.target_id,
            at=r.at,
            from_health=Health(r.from_health),
            to_health=Health(r.to_health),
            reason=r.reason or "",
            flapping=bool(r.flapping),
            affected_by=r.affected_by,
            incident_id=r.incident_id,
        )
        for r in rows
    )


MAX_SPAN_TRANSITIONS = 1000
"""The most transitions ``health_spans`` reads inside its window (the newest): more than
a timeline a few hundred pixels wide can show."""


def health_spans(
    db: StateDB, target_id: str, start: float, end: float, limit: int = MAX_SPAN_TRANSITIONS
) -> tuple[HealthSpan, ...]:
    """A target's health over ``[start, end]`` as consecutive spans, oldest first (its
    up/down timeline), from its transitions; neighbours of the same health are merged.

    The health at ``start`` is that of the last transition at or before it;
    without one (none yet, or pruned), the ``from`` health of the first
    transition inside the window. A target with no transitions at all is in its
    current health since ``since`` (unknown before). Empty when the state DB
    knows nothing of the target. At most ``limit`` transitions inside the window
    are read, the newest; before the oldest of those the timeline shows its
    ``from`` health. Two or three statements.
    """
    t = _TRANSITION
    mine = t.c.target_id == target_id
    with _connected(db) as conn:
        before = conn.execute(
            select(t.c.to_health)
            .where(mine, t.c.at <= start)
            .order_by(t.c.at.desc(), t.c.id.desc())
            .limit(1)
        ).scalar()
        inside = conn.execute(
            select(t.c.at, t.c.from_health, t.c.to_health)
            .where(mine, t.c.at > start, t.c.at <= end)
            .order_by(t.c.at.desc(), t.c.id.desc())
            .limit(limit)
        ).all()[::-1]
        current = None
        if before is None and not inside:
            current = conn.execute(
                select(_TARGET.c.health, _TARGET.c.since).where(_TARGET.c.target_id == target_id)
            ).first()
    if inside:
        first = before if before is not None and len(inside) < limit else inside[0].from_health
        changes = [(start, Health(first))] + [(r.at, Health(r.to_health)) for r in inside]
    elif before is not None:
        changes = [(start, Health(before))]
    elif current is not None:
        changes = [(start, Health.UNKNOWN), (max(start, current.since), Health(current.health))]
    else:
        return ()
    spans: list[HealthSpan] = []
    for (at, health), (following, _h) in zip(changes, [*changes[1:], (end, None)], strict=True):
        stop = min(following, end)
        if stop <= at:
            continue
        if spans and spans[-1].health is health:
            spans[-1] = HealthSpan(spans[-1].start, stop, health)
        else:
            spans.append(HealthSpan(at, stop, health))
    return tuple(spans)


# -- incidents -----------------------------------------------------------------------
def _members_of(conn: Connection, incident_ids: Sequence[int]) -> dict[int, list[IncidentMember]]:
    """The members of these incidents, root first: one statement per ``_IN_CHUNK`` incidents."""
    m = _MEMBER
    members: dict[int, list[IncidentMember]] = {i: [] for i in incident_ids}
    for chunk in _chunks(incident_ids):
        for row in conn.execute(
            select(m.c.incident_id, m.c.target_id, m.c.role, m.c.joined_at, m.c.recovered_at)
            .where(m.c.incident_id.in_(chunk))
            .order_by(m.c.incident_id, *_ROOT_FIRST)
        ):
            members[row.incident_id].append(
                IncidentMember(row.target_id, row.role, row.joined_at, row.recovered_at)
            )
    return members


def _incidents(conn: Connection, stmt: Select[Any]) -> tuple[IncidentRow, ...]:
    """The incidents ``stmt`` selects, in its order, each with its members (two statements)."""
    return _with_members(conn, conn.execute(stmt).all())


def _with_members(conn: Connection, rows: Sequence[Any]) -> tuple[IncidentRow, ...]:
    """Incident rows as ``IncidentRow`` values, in their order, with their members."""
    if not rows:
        return ()
    members = _members_of(conn, [r.id for r in rows])
    return tuple(
        IncidentRow(
            id=r.id,
            state=r.state,
            opened_at=r.opened_at,
            resolved_at=r.resolved_at,
            root_target_id=r.root_target_id,
            title=r.title or "",
            severity=Health(r.severity),
            cause=r.cause,
            eta=r.eta,
            summary=MappingProxyType({str(k): str(v) for k, v in (r.summary or {}).items()}),
            acknowledged_at=r.acknowledged_at,
            acknowledged_by=r.acknowledged_by,
            members=tuple(members[r.id]),
        )
        for r in rows
    )


def _incident_filters(flt: IncidentFilter) -> list[ColumnElement[bool]]:
    i, m = _INCIDENT, _MEMBER
    where: list[ColumnElement[bool]] = []
    if flt.severity:
        where.append(i.c.severity.in_(list(flt.severity)))
    for group in flt.member_of:
        ids = list(dict.fromkeys(group))
        # Not a correlated EXISTS: with a component's 1,000 ids SQLite ran it once per
        # incident (1.6 s at 5,000 incidents, bench/incidents_page.py); the membership
        # subquery is computed once, from the target_id index.
        where.append(
            i.c.id.in_(select(m.c.incident_id).where(m.c.target_id.in_(ids)))
            if ids
            else false()  # nothing can match an empty group
        )
    if flt.until is not None:
        where.append(i.c.opened_at < flt.until)
    if flt.since is not None:
        where.append(i.c.resolved_at.is_(None) | (i.c.resolved_at >= flt.since))
    return where


def incidents_page(
    db: StateDB,
    states: Collection[str] = (),
    page: Page = FIRST_PAGE,
    flt: IncidentFilter | None = None,
) -> IncidentPage:
    """Incidents in the given states (none: all) that match ``flt``, open ones first, then
    newest first; with the total.

    The open ones and the others are each taken newest first and the page cut across
    the two: one ``ORDER BY CASE state …, opened_at`` sorted every matching incident
    (76 ms at 100,000, bench/incidents_page.py), each part alone walks the
    ``opened_at`` index. Three statements at most: the totals (all, open), the page (the
    parts it takes rows from, in one ``UNION ALL``), and the page's members.
    """
    i = _INCIDENT
    filters = [i.c.state.in_(list(states))] if states else []
    if flt is not None:
        filters.extend(_incident_filters(flt))
    newest = (i.c.opened_at.desc(), i.c.id.desc())
    is_open = i.c.state == INCIDENT_OPEN
    with _connected(db) as conn:
        total, opened = conn.execute(
            select(func.count(), func.coalesce(func.sum(case((is_open, 1), else_=0)), 0))
            .select_from(i)
            .where(*filters)
        ).one()
        total, opened = int(total), int(opened)
        open_rows = max(0, min(page.per_page, opened - page.offset))
        parts = [
            select(i, literal(part).label("part"))
            .where(*filters, is_open if part == 0 else ~is_open)
            .order_by(*newest)
            .offset(offset)
            .limit(limit)
            .subquery()
            for part, offset, limit in (
                (0, min(page.offset, opened), open_rows),
                (1, max(0, page.offset - opened), page.per_page - open_rows),
            )
            if limit > 0  # a part the page takes nothing from is not read at all
        ]
        rows: Sequence[Any] = ()
        if parts:
            both = union_all(*(select(p) for p in parts)).subquery()
            rows = conn.execute(
                select(both).order_by(both.c.part, both.c.opened_at.desc(), both.c.id.desc())
            ).all()
        items = _with_members(conn, rows)
    return IncidentPage(items, int(total), page)


def open_incidents(db: StateDB) -> tuple[IncidentRow, ...]:
    """Every open incident with its members, oldest first (the engine restores them on start)."""
    i = _INCIDENT
    with _connected(db) as conn:
        return _incidents(
            conn,
            select(i).where(i.c.state == INCIDENT_OPEN).order_by(i.c.opened_at, i.c.id),
        )


def incident_of_event(
    db: StateDB, incident_id: int | None, target_id: str | None
) -> IncidentRow | None:
    """The incident an event names, or else the open incident its target is in (a
    transition names no incident): what a rule's action acts on."""
    if incident_id is not None:
        return incident(db, incident_id)
    if target_id is None:
        return None
    for found in incidents_for_target(db, target_id, limit=1):
        if found.state == INCIDENT_OPEN:
            return found
    return None


def incident(db: StateDB, incident_id: int) -> IncidentRow | None:
    with _connected(db) as conn:
        found = _incidents(conn, select(_INCIDENT).where(_INCIDENT.c.id == incident_id))
    return found[0] if found else None


def incidents_for_target(db: StateDB, target_id: str, limit: int = 20) -> tuple[IncidentRow, ...]:
    """The latest incidents a target was a member of, newest first."""
    i, m = _INCIDENT, _MEMBER
    with _connected(db) as conn:
        return _incidents(
            conn,
            select(i)
            .join(m, m.c.incident_id == i.c.id)
            .where(m.c.target_id == target_id)
            .order_by(i.c.opened_at.desc(), i.c.id.desc())
            .limit(limit),
        )


def resolved_since(db: StateDB, since: float, limit: int = 20) -> tuple[IncidentRow, ...]:
    """Incidents resolved at or after ``since``, newest first (the status page's recent history)."""
    i = _INCIDENT
    with _connected(db) as conn:
        return _incidents(
            conn,
            select(i)
            .where(i.c.state == INCIDENT_RESOLVED, i.c.resolved_at >= since)
            .order_by(i.c.resolved_at.desc(), i.c.id.desc())
            .limit(limit),
        )


def incident_events(db: StateDB, incident_id: int) -> tuple[IncidentEventRow, ...]:
    """An incident's timeline, oldest first."""
    e = _EVENT
    with _connected(db) as conn:
        rows = conn.execute(
            select(e.c.id, e.c.incident_id, e.c.at, e.c.kind, e.c.target_id, e.c.text)
            .where(e.c.incident_id == incident_id)
            .order_by(e.c.at, e.c.id)
        ).all()
    return tuple(IncidentEventRow(**row._mapping) for row in rows)


# -- the audit log ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class AuditRow:
    """One audit entry as the audit page, its API and its CSV show it (not its hashes)."""

    id: int
    at: float
    actor: str
    address: str
    action: str
    object: str
    result: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    detail: str
    count: int


_AUDIT_COLUMNS = tuple(_AUDIT.c[name] for name in AuditRow.__dataclass_fields__)


def _audit_row(row: Any) -> AuditRow:
    values = dict(row._mapping)
    for key in ("before", "after"):
        if values[key] is not None:
            values[key] = MappingProxyType(dict(values[key]))
    return AuditRow(**values)


def _audit_filters(
    dialect: str,
    actor: str | None,
    action: str | None,
    object_like: str | None,
    since: float | None,
    until: float | None,
) -> list[ColumnElement[bool]]:
    a = _AUDIT
    where: list[ColumnElement[bool]] = []
    if actor:
        where.append(a.c.actor == actor)
    if action:
        # ``user.`` means every user.* action; anything else is one action.
        if action.endswith("."):
            where.append(a.c.action.like(like_pattern(action)[1:], escape="\\"))
        else:
            where.append(a.c.action == action)
    if object_like:
        pattern = like_pattern(object_like)
        # SQLite's LIKE ignores ASCII case already (as its lower() does): ilike's
        # lower(object) on every row doubled the cost of this scan (bench/audit_page.py).
        matches = (
            a.c.object.like(pattern, escape="\\")
            if dialect == "sqlite"
            else a.c.object.ilike(pattern, escape="\\")
        )
        where.append(matches)
    if since is not None:
        where.append(a.c.at >= since)
    if until is not None:
        where.append(a.c.at < until)
    return where


_AUDIT_NEWEST_FIRST = (_AUDIT.c.at.desc(), _AUDIT.c.id.desc())


def audit_page(
    db: StateDB,
    *,
    actor: str | None = None,
    action: str | None = None,
    object_like: str | None = None,
    since: float | None = None,
    until: float | None = None,
    page: int = 1,
    per_page: int = 50,
) -> tuple[tuple[AuditRow, ...], int]:
    """One page of audit entries, newest first (by ``at``, then id), and how many match.

    ``actor``: exactly this actor (``user:alice``); ``action``: this action, or
    every action under a prefix ending in ``.`` (``user.``); ``object_like``:
    anywhere in the object, ignoring case (``%`` and ``_`` literal);
    ``since``/``until``: ``since <= at < until``. Two statements, each served by
    an index (``ix_audit_entry_at``, ``..._actor_at``, ``..._action_at``).
    """
    paging = Page(page, per_page)
    with _connected(db) as conn:
        where = _audit_filters(conn.dialect.name, actor, action, object_like, since, until)
        total = conn.execute(select(func.count()).select_from(_AUDIT).where(*where)).scalar_one()
        rows = conn.execute(
            select(*_AUDIT_COLUMNS)
            .where(*where)
            .order_by(*_AUDIT_NEWEST_FIRST)
            .offset(paging.offset)
            .limit(paging.per_page)
        ).all()
    return tuple(map(_audit_row, rows)), int(total)


def audit_entries(
    db: Engine,
    *,
    actor: str | None = None,
    action: str | None = None,
    object_like: str | None = None,
    since: float | None = None,
    until: float | None = None,
    batch: int = 500,
) -> Iterator[AuditRow]:
    """Every matching entry, newest first, read ``batch`` at a time (for the CSV export).

    Each batch is its own short read that continues after the last row of the
    one before (by ``(at, id)``, not an offset), so a long export holds no
    connection between batches and costs the same for its last rows as for its first.
    """
    a = _AUDIT
    where = _audit_filters(db.dialect.name, actor, action, object_like, since, until)
    last: tuple[float, int] | None = None
    while True:
        page_where = list(where)
        if last is not None:
            page_where.append(or_(a.c.at < last[0], and_(a.c.at == last[0], a.c.id < last[1])))
        with db.connect() as conn:
            rows = conn.execute(
                select(*_AUDIT_COLUMNS)
                .where(*page_where)
                .order_by(*_AUDIT_NEWEST_FIRST)
                .limit(batch)
            ).all()
        for row in rows:
            yield _audit_row(row)
        if len(rows) < batch:
            return
        last = (rows[-1].at, rows[-1].id)


def last_logins(db: StateDB) -> dict[str, float]:
    """When each user last logged in (``user:alice`` → epoch seconds), from the audit log.

    The audit log, not the session rows: sessions are pruned weeks after they
    end, the audit log keeps a year. One GROUP BY over the ``login`` entries
    (``ix_audit_entry_action_at``), for the users page.
    """
    a = _AUDIT
    with _connected(db) as conn:
        rows = conn.execute(
            select(a.c.object, func.max(a.c.at))
            .where(a.c.action == "login", a.c.result == "ok")
            .group_by(a.c.object)
        ).all()
    return {str(obj): float(at) for obj, at in rows if obj}


# -- the public status page ------------------------------------------------------------
def last_change(db: StateDB) -> int:
    """A mark that moves whenever anything the status page shows changes: the newest event id.

    Every change of health (transitions, maintenance included) and every
    incident change (opened, joined, resolved, merged, cause, ETA, summary,
    customer updates) is written with its event in one transaction, by any
    process; event ids only grow (never reused after pruning). One indexed
    ``max``, so a snapshot can ask often what would cost much to rebuild.
    Not covered: retention pruning old rows (no event), so a snapshot also ages out.
    """
    with _connected(db) as conn:
        return int(conn.execute(select(func.max(_OUTBOX.c.id))).scalar_one() or 0)


def _merged_away() -> Any:
    """True for an incident folded into its parent's: its root joined another incident,
    as affected, at the moment this one was resolved (the incident keeper writes both in
    one transaction with the same time). Customers get no "resolved" for it: it never
    ended, it became part of the parent's incident."""
    i, other = _INCIDENT, _MEMBER.alias("merged_into")
    return exists().where(
        and_(
            other.c.target_id == i.c.root_target_id,
            other.c.incident_id != i.c.id,
            other.c.role == "affected",
            other.c.joined_at == i.c.resolved_at,
        )
    )


def _resolved_for_customers() -> list[ColumnElement[bool]]:
    """Resolved incidents that were an incident to a customer: not merged into their
    parent's (see ``_merged_away``), and lasting some time."""
    i = _INCIDENT
    return [i.c.state == INCIDENT_RESOLVED, i.c.resolved_at > i.c.opened_at, ~_merged_away()]


def resolved_for_status(db: StateDB, since: float, limit: int = 20) -> tuple[IncidentRow, ...]:
    """Like ``resolved_since``, without what is no incident to a customer: incidents merged
    into their parent's (see ``_merged_away``) and any that lasted no time at all."""
    i = _INCIDENT
    with _connected(db) as conn:
        return _incidents(
            conn,
            select(i)
            .where(*_resolved_for_customers(), i.c.resolved_at >= since)
            .order_by(i.c.resolved_at.desc(), i.c.id.desc())
            .limit(limit),
        )


def customer_incident(db: StateDB, incident_id: int) -> IncidentRow | None:
    """The incident if it is one to customers: open, or resolved as ``resolved_for_status``
    takes them (a merged or zero-length one is None, as an unknown id is)."""
    i = _INCIDENT
    shown = or_(i.c.state == INCIDENT_OPEN, and_(*_resolved_for_customers()))
    with _connected(db) as conn:
        found = _incidents(conn, select(i).where(i.c.id == incident_id, shown))
    return found[0] if found else None


def status_history(
    db: StateDB, target_ids: Sequence[str], page: Page = FIRST_PAGE, since: float | None = None
) -> IncidentPage:
    """The status page's history: resolved incidents as ``resolved_for_status`` takes them,
    with a member among ``target_ids`` (the shown components' members), resolved at or
    after ``since`` (None: any time), newest resolved first; with the total.

    Three statements: the total, the page, its members.
    """
    i = _INCIDENT
    where = [
        *_resolved_for_customers(),
        *_incident_filters(IncidentFilter(member_of=(tuple(target_ids),))),
    ]
    if since is not None:
        where.append(i.c.resolved_at >= since)
    with _connected(db) as conn:
        total = int(conn.execute(select(func.count()).select_from(i).where(*where)).scalar_one())
        items = _incidents(
            conn,
            select(i)
            .where(*where)
            .order_by(i.c.resolved_at.desc(), i.c.id.desc())
            .offset(page.offset)
            .limit(page.per_page),
        )
    return IncidentPage(items, total, page)


def uptime_days(
    db: StateDB, kind: str, subject_ids: Sequence[str], first: date, last: date
) -> dict[str, dict[date, HealthSeconds]]:
    """The rolled-up days ``first`` … ``last`` (inclusive) of these subjects (``kind``:
    ``target`` or ``component``, as ``monitor.store.uptime`` writes them): subject id →
    day → seconds per health. A day without a row is missing (nothing was counted).

    One statement per ``_IN_CHUNK`` subjects, from the table's primary key.
    """
    u = _UPTIME
    found: dict[str, dict[date, HealthSeconds]] = {s: {} for s in subject_ids}
    with _connected(db) as conn:
        for chunk in _chunks(list(dict.fromkeys(subject_ids))):
            for r in conn.execute(
                select(u)
                .where(
                    u.c.subject_kind == kind,
                    u.c.subject_id.in_(chunk),
                    u.c.day >= first,
                    u.c.day <= last,
                )
                .order_by(u.c.subject_id, u.c.day)
            ):
                found[r.subject_id][r.day] = HealthSeconds(
                    up=r.up_seconds,
                    degraded=r.degraded_seconds,
                    down=r.down_seconds,
                    maintenance=r.maintenance_seconds,
                    unknown=r.unknown_seconds,
                )
    return found


def customer_updates(
    db: StateDB, incident_ids: Sequence[int], per_incident: int = 20
) -> dict[int, tuple[CustomerUpdateRow, ...]]:
    """The published updates of these incidents, newest first, at most ``per_incident`` each.

    One statement per ``_IN_CHUNK`` incidents. Internal notes live in the
    timeline (``incident_events``) and are never read here.
    """
    u = _UPDATE
    found: dict[int, list[CustomerUpdateRow]] = {i: [] for i in incident_ids}
    with _connected(db) as conn:
        for chunk in _chunks(list(dict.fromkeys(incident_ids))):
            rows = conn.execute(
                select(u.c.id, u.c.incident_id, u.c.published_at, u.c.text)
                .where(u.c.incident_id.in_(chunk))
                .order_by(u.c.incident_id, u.c.published_at.desc(), u.c.id.desc())
            )
            for r in rows:
                kept = found[r.incident_id]
                if len(kept) < per_incident:
                    text = {str(k): str(v) for k, v in (r.text or {}).items()}
                    kept.append(
                        CustomerUpdateRow(
                            r.id, r.incident_id, r.published_at, MappingProxyType(text)
                        )
                    )
    return {i: tuple(rows) for i, rows in found.items()}


# -- silences and maintenance windows started by hand --------------------------------
@dataclass(frozen=True, slots=True)
class SilenceRow:
    """Notifications held back for one target, component or incident until ``ends_at``."""

    id: int
    target_id: str | None
    component_id: str | None
    incident_id: int | None
    starts_at: float
    ends_at: float
    created_by: str
    reason: str
    lifted_at: float | None
    lifted_by: str | None

    def active(self, now: float) -> bool:
        return self.lifted_at is None and self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class SilencePage:
    items: tuple[SilenceRow, ...]
    total: int
    page: Page


@dataclass(frozen=True, slots=True)
class MaintenanceRow:
    """A maintenance window started by hand; ``ends_at`` None: until someone ends it."""

    id: int
    target_id: str
    starts_at: float
    ends_at: float | None
    created_by: str
    reason: str
    ended_at: float | None
    ended_by: str | None

    def active(self, now: float) -> bool:
        return (
            self.ended_at is None
            and self.starts_at <= now
            and (self.ends_at is None or now < self.ends_at)
        )


@dataclass(frozen=True, slots=True)
class MaintenancePage:
    items: tuple[MaintenanceRow, ...]
    total: int
    page: Page


def active_silences(db: StateDB, now: float, page: Page = FIRST_PAGE) -> SilencePage:
    """Silences in force at ``now`` (begun, not run out, not lifted), soonest end first."""
    s = _SILENCE
    where = (s.c.lifted_at.is_(None), s.c.starts_at <= now, s.c.ends_at > now)
    with _connected(db) as conn:
        total = conn.execute(select(func.count()).select_from(s).where(*where)).scalar_one()
        rows = conn.execute(
            select(s)
            .where(*where)
            .order_by(s.c.ends_at, s.c.id)
            .offset(page.offset)
            .limit(page.per_page)
        ).all()
    return SilencePage(tuple(_silence_row(r) for r in rows), int(total), page)


def silence(db: StateDB, silence_id: int) -> SilenceRow | None:
    with _connected(db) as conn:
        row = conn.execute(select(_SILENCE).where(_SILENCE.c.id == silence_id)).first()
    return _silence_row(row) if row is not None else None


def _silence_row(r: Any) -> SilenceRow:
    return SilenceRow(
        id=r.id,
        target_id=r.target_id,
        component_id=r.component_id,
        incident_id=r.incident_id,
        starts_at=r.starts_at,
        ends_at=r.ends_at,
        created_by=r.created_by,
        reason=r.reason or "",
        lifted_at=r.lifted_at,
        lifted_by=r.lifted_by,
    )


def active_maintenance(db: StateDB, now: float, page: Page = FIRST_PAGE) -> MaintenancePage:
    """Windows started by hand that are open at ``now``, oldest first."""
    w = _WINDOW
    where = (
        w.c.ended_at.is_(None),
        w.c.starts_at <= now,
        w.c.ends_at.is_(None) | (w.c.ends_at > now),
    )
    with _connected(db) as conn:
        total = conn.execute(select(func.count()).select_from(w).where(*where)).scalar_one()
        rows = conn.execute(
            select(w)
            .where(*where)
            .order_by(w.c.starts_at, w.c.id)
            .offset(page.offset)
            .limit(page.per_page)
        ).all()
    return MaintenancePage(tuple(_window_row(r) for r in rows), int(total), page)


def maintenance_window(db: StateDB, window_id: int) -> MaintenanceRow | None:
    with _connected(db) as conn:
        row = conn.execute(select(_WINDOW).where(_WINDOW.c.id == window_id)).first()
    return _window_row(row) if row is not None else None


def _window_row(r: Any) -> MaintenanceRow:
    return MaintenanceRow(
        id=r.id,
        target_id=r.target_id,
        starts_at=r.starts_at,
        ends_at=r.ends_at,
        created_by=r.created_by,
        reason=r.reason or "",
        ended_at=r.ended_at,
        ended_by=r.ended_by,
    )


# -- trunk failover ------------------------------------------------------------------
@dataclass(frozen=True)
class FailoverMemberRow:
    """What Dialwatch wants for one member of a failover group (a row exists once it
    took the member out or put it back; none means active, as configured)."""

    group_id: str
    target_id: str
    wanted: str
    changed_at: float
    reason: str
    approved_by: str | None
    approved_at: float | None


def failover_members(
    db: StateDB, group_id: str | None = None
) -> dict[tuple[str, str], FailoverMemberRow]:
    """The stored member rows by (group, target); of one group when ``group_id`` is given."""
    f = _FAILOVER
    stmt = select(
        f.c.group_id, f.c.target_id, f.c.wanted, f.c.changed_at, f.c.reason,
        f.c.approved_by, f.c.approved_at,
    )  # fmt: skip
    if group_id is not None:
        stmt = stmt.where(f.c.group_id == group_id)
    with _connected(db) as conn:
        return {(r.group_id, r.target_id): FailoverMemberRow(*r) for r in conn.execute(stmt)}
