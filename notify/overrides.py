"""On-call overrides made by hand: add one, remove one, list the current and future ones.

An override ("Li covers Zhang on Friday") puts one person on call for one
schedule from ``starts_at`` until ``ends_at``, whoever the rotations say
(``notify.schedules``); paging reads them with ``notify.paging.overrides_at``.
The functions here have the shape of the incident actions
(``monitor.incident_actions``): ``(repo, actor, ..., at=now)``, a
``ValueError`` with a sentence for bad input, ``NotFound`` and ``Conflict``
for the state; the web runs them through ``web.actions.perform``, which
writes the audit entry. Which schedules and people exist is the config's:
the caller passes their ids.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import Connection, Table, insert, select, update

from monitor.events import check_actor
from monitor.incident_actions import Conflict
from monitor.store.models import OncallOverride
from monitor.store.repository import NotFound, StateRepository

_OVERRIDE: Table = OncallOverride.__table__  # type: ignore[assignment]

MAX_LENGTH = 90 * 86400.0
"""The longest override: longer cover is a change to the rotation, in the config."""
PAST_SLACK = 60.0
"""How far in the past an override may start (the form was filled in a minute ago)."""
MAX_REASON = 500


@dataclass(frozen=True, slots=True)
class OverrideRow:
    id: int
    schedule_id: str
    person_id: str
    starts_at: float
    ends_at: float
    created_by: str
    created_at: float
    reason: str

    def active(self, now: float) -> bool:
        return self.starts_at <= now < self.ends_at


def _known(value: object, what: str, known: Collection[str]) -> str:
    if not isinstance(value, str) or value not in known:
        names = ", ".join(sorted(known)) or "none configured"
        raise ValueError(f"no {what} {value!r} in the config ({what}s: {names})")
    return value


def _instant(value: object, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        raise ValueError(f"{what} must be epoch seconds, not {value!r}")
    return float(value)


def add_override(
    repo: StateRepository,
    actor: str,
    schedule_id: str,
    person_id: str,
    starts_at: float,
    ends_at: float,
    reason: str = "",
    *,
    schedules: Collection[str],
    people: Collection[str],
    at: float,
) -> OverrideRow:
    """Put ``person_id`` on call for ``schedule_id`` from ``starts_at`` until ``ends_at``.

    ``schedules`` and ``people``: the ids the config has. Refused (ValueError)
    when the end is not after the start, the start is more than a minute in
    the past, it lasts more than 90 days, or the schedule or person is unknown.
    """
    check_actor(actor)
    at = _instant(at, "at")
    schedule_id = _known(schedule_id, "schedule", schedules)
    person_id = _known(person_id, "person", people)
    starts_at = _instant(starts_at, "the start")
    ends_at = _instant(ends_at, "the end")
    if ends_at <= starts_at:
        raise ValueError("the end must be after the start")
    if starts_at < at - PAST_SLACK:
        raise ValueError("the start is in the past: an override starts now or later")
    if ends_at - starts_at > MAX_LENGTH:
        raise ValueError(
            "an override lasts at most 90 days: change the rotation in the config for longer"
        )
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ValueError(f"the reason must be text of at most {MAX_REASON} characters")
    row = {
        "schedule_id": schedule_id,
        "person_id": person_id,
        "starts_at": max(starts_at, at),  # a minute ago is now
        "ends_at": ends_at,
        "created_by": actor,
        "created_at": at,
        "reason": reason.strip(),
    }
    with repo.transaction() as conn:
        new_id = int(conn.execute(insert(_OVERRIDE).values(**row)).inserted_primary_key[0])
    return OverrideRow(id=new_id, **row)


def remove_override(
    repo: StateRepository, actor: str, override_id: int, *, at: float
) -> OverrideRow:
    """Remove an override (it stops at once); Conflict when removed or over already."""
    check_actor(actor)
    at = _instant(at, "at")
    with repo.transaction() as conn:
        found = conn.execute(select(_OVERRIDE).where(_OVERRIDE.c.id == override_id)).first()
        if found is None:
            raise NotFound(f"no override {override_id}")
        if found.removed_at is not None:
            raise Conflict(f"override {override_id} was removed already by {found.removed_by}")
        if found.ends_at <= at:
            raise Conflict(f"override {override_id} is over already")
        conn.execute(
            update(_OVERRIDE)
            .where(_OVERRIDE.c.id == override_id)
            .values(removed_at=at, removed_by=actor)
        )
        return _row(found)


def current_and_future(conn: Connection, now: float, limit: int = 500) -> list[OverrideRow]:
    """Overrides not removed that have not ended, soonest start first."""
    o = _OVERRIDE
    rows = conn.execute(
        select(o)
        .where(o.c.removed_at.is_(None), o.c.ends_at > now)
        .order_by(o.c.starts_at, o.c.id)
        .limit(limit)
    )
    return [_row(r) for r in rows]


def _row(r: object) -> OverrideRow:
    return OverrideRow(
        id=int(r.id),  # type: ignore[attr-defined]
        schedule_id=r.schedule_id,  # type: ignore[attr-defined]
        person_id=r.person_id,  # type: ignore[attr-defined]
        starts_at=float(r.starts_at),  # type: ignore[attr-defined]
        ends_at=float(r.ends_at),  # type: ignore[attr-defined]
        created_by=r.created_by,  # type: ignore[attr-defined]
        created_at=float(r.created_at),  # type: ignore[attr-defined]
        reason=r.reason or "",  # type: ignore[attr-defined]
    )
