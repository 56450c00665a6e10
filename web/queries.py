"""Small read queries over the state DB for the web app.

Every list is paginated and filtered in SQL; totals come from one GROUP BY.
Nothing here loads "all targets with all history". Writes belong to the engine.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor.store.models import Incident, IncidentTarget, TargetState, Transition
from web.i18n import HEALTHS
from web.params import Page, TargetFilter

# SQLite's bound-parameter limit is large nowadays, but chunking keeps IN lists polite everywhere.
_IN_CHUNK = 500


@dataclass(frozen=True)
class TargetRow:
    id: str
    kind: str
    health: str
    since: float
    flapping: bool
    affected_by: str | None
    last_status: str | None
    last_detail: str | None
    last_latency: float | None
    last_observed_at: float | None
    last_metrics: dict[str, Any]


@dataclass(frozen=True)
class TargetPage:
    items: list[TargetRow]
    total: int
    """How many targets match the whole filter."""
    totals: dict[str, int]
    """Per health, for the kind/text filter only (so health chips show what a click would give)."""
    page: Page


@dataclass(frozen=True)
class TransitionRow:
    at: float
    from_health: str
    to_health: str
    reason: str
    flapping: bool
    affected_by: str | None
    incident_id: int | None


@dataclass(frozen=True)
class IncidentRow:
    id: int
    state: str
    opened_at: float
    resolved_at: float | None
    root_target_id: str
    title: str
    severity: str
    cause: str | None
    eta: float | None
    summary: dict[str, str]
    acknowledged_at: float | None
    acknowledged_by: str | None
    targets: list[str] = field(default_factory=list)


def _row(ts: TargetState) -> TargetRow:
    return TargetRow(
        id=ts.target_id,
        kind=ts.kind,
        health=ts.health,
        since=ts.since,
        flapping=bool(ts.flapping),
        affected_by=ts.affected_by,
        last_status=ts.last_status,
        last_detail=ts.last_detail,
        last_latency=ts.last_latency,
        last_observed_at=ts.last_observed_at,
        last_metrics=dict(ts.last_metrics or {}),
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _base_conditions(
    flt: TargetFilter, name_matches: Collection[str]
) -> list[sa.ColumnElement[bool]]:
    conds: list[sa.ColumnElement[bool]] = []
    if flt.kind:
        conds.append(TargetState.kind.in_(flt.kind))
    if flt.q:
        # Names live in the config, not the DB: the caller passes the ids whose name matches.
        text_match: sa.ColumnElement[bool] = TargetState.target_id.ilike(
            f"%{_like_escape(flt.q)}%", escape="\\"
        )
        if name_matches:
            text_match = sa.or_(text_match, TargetState.target_id.in_(list(name_matches)))
        conds.append(text_match)
    return conds


_HEALTH_ORDER = sa.case(
    {h: i for i, h in enumerate(HEALTHS)}, value=TargetState.health, else_=len(HEALTHS)
)


def targets_page(
    db: sa.Engine, flt: TargetFilter, page: Page, name_matches: Collection[str] = ()
) -> TargetPage:
    """One page of targets, worst health first, then by id; with per-health totals."""
    base = _base_conditions(flt, name_matches)
    conds = [*base, TargetState.health.in_(flt.health)] if flt.health else base
    with Session(db) as s:
        counts = dict(
            s.execute(
                sa.select(TargetState.health, sa.func.count())
                .where(*base)
                .group_by(TargetState.health)
            ).all()
        )
        totals = {h: int(counts.get(h, 0)) for h in HEALTHS}
        if flt.health:
            total = sum(totals.get(h, 0) for h in flt.health)
        else:
            total = sum(int(n) for n in counts.values())
        rows = s.scalars(
            sa.select(TargetState)
            .where(*conds)
            .order_by(_HEALTH_ORDER, TargetState.target_id)
            .offset(page.offset)
            .limit(page.per_page)
        ).all()
        return TargetPage([_row(r) for r in rows], total, totals, page)


def target(db: sa.Engine, target_id: str) -> TargetRow | None:
    with Session(db) as s:
        row = s.get(TargetState, target_id)
        return _row(row) if row is not None else None


def kinds_present(db: sa.Engine) -> list[str]:
    with Session(db) as s:
        return sorted(s.scalars(sa.select(TargetState.kind).distinct()).all())


def transitions(db: sa.Engine, target_id: str, limit: int = 50) -> list[TransitionRow]:
    """The most recent transitions of one target, newest first."""
    with Session(db) as s:
        rows = s.scalars(
            sa.select(Transition)
            .where(Transition.target_id == target_id)
            .order_by(Transition.at.desc(), Transition.id.desc())
            .limit(limit)
        ).all()
        return [
            TransitionRow(
                r.at,
                r.from_health,
                r.to_health,
                r.reason or "",
                bool(r.flapping),
                r.affected_by,
                r.incident_id,
            )
            for r in rows
        ]


def health_of(db: sa.Engine, target_ids: Iterable[str]) -> dict[str, str]:
    """Current health of the given targets; ids without a row are absent (the caller says unknown)."""
    ids = list(dict.fromkeys(target_ids))
    out: dict[str, str] = {}
    with Session(db) as s:
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            out.update(
                s.execute(
                    sa.select(TargetState.target_id, TargetState.health).where(
                        TargetState.target_id.in_(chunk)
                    )
                ).all()
            )
    return out


def _incident_row(i: Incident, targets: list[str]) -> IncidentRow:
    summary = {str(k): str(v) for k, v in (i.summary or {}).items()}
    return IncidentRow(
        id=i.id,
        state=i.state,
        opened_at=i.opened_at,
        resolved_at=i.resolved_at,
        root_target_id=i.root_target_id,
        title=i.title or "",
        severity=i.severity,
        cause=i.cause,
        eta=i.eta,
        summary=summary,
        acknowledged_at=i.acknowledged_at,
        acknowledged_by=i.acknowledged_by,
        targets=targets,
    )


def _with_targets(s: Session, incidents: Sequence[Incident]) -> list[IncidentRow]:
    ids = [i.id for i in incidents]
    members: dict[int, list[str]] = {i: [] for i in ids}
    if ids:
        rows = s.execute(
            sa.select(IncidentTarget.incident_id, IncidentTarget.target_id, IncidentTarget.role)
            .where(IncidentTarget.incident_id.in_(ids))
            # the root first, then the others by when they joined
            .order_by(
                IncidentTarget.incident_id, IncidentTarget.role.desc(), IncidentTarget.joined_at
            )
        ).all()
        for incident_id, target_id, _role in rows:
            members[incident_id].append(target_id)
    return [_incident_row(i, members[i.id]) for i in incidents]


def incidents_page(
    db: sa.Engine, states: Sequence[str], page: Page
) -> tuple[list[IncidentRow], int]:
    """Incidents newest first (open ones first when both states are asked), with the total."""
    conds = [Incident.state.in_(states)] if states else []
    with Session(db) as s:
        total = s.scalar(sa.select(sa.func.count()).select_from(Incident).where(*conds)) or 0
        rows = s.scalars(
            sa.select(Incident)
            .where(*conds)
            .order_by(
                (Incident.state == "open").desc(), Incident.opened_at.desc(), Incident.id.desc()
            )
            .offset(page.offset)
            .limit(page.per_page)
        ).all()
        return _with_targets(s, rows), int(total)


def incidents_for_target(db: sa.Engine, target_id: str, limit: int = 20) -> list[IncidentRow]:
    with Session(db) as s:
        rows = s.scalars(
            sa.select(Incident)
            .join(IncidentTarget, IncidentTarget.incident_id == Incident.id)
            .where(IncidentTarget.target_id == target_id)
            .order_by(Incident.opened_at.desc())
            .limit(limit)
        ).all()
        return _with_targets(s, rows)


def resolved_since(db: sa.Engine, since: float, limit: int = 20) -> list[IncidentRow]:
    """Incidents resolved after ``since``, newest first (the status page's recent history)."""
    with Session(db) as s:
        rows = s.scalars(
            sa.select(Incident)
            .where(Incident.state == "resolved", Incident.resolved_at >= since)
            .order_by(Incident.resolved_at.desc())
            .limit(limit)
        ).all()
        return _with_targets(s, rows)
