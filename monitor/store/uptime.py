"""The daily uptime rollup against the state DB: a day of transitions in, ``uptime_day`` rows out.

``UptimeRollup`` is the retention job's rollup (``monitor.retention.Rollup``).
Each run it recomputes, from the transitions, every day from the newest one
already stored (it may have been stored while it was still running) through
today (up to now), and upserts one row per day and subject: each target the
engine watches (``target_state``) and each configured component. Computing a
day again gives the same rows, so a run interrupted half way, or run twice, is
harmless. The arithmetic is ``monitor.uptime``'s; this module only reads and
writes.

Known limit: while the appliance itself is stopped nothing is observed, yet a
target's last health runs on through that time (no transition marks the gap).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.dialects import postgresql, sqlite

from monitor.health import Health
from monitor.store.models import TargetState, Transition, UptimeDay
from monitor.store.repository import StateRepository
from monitor.uptime import (
    HealthSeconds,
    Timeline,
    UptimeScope,
    component_seconds,
    day_bounds,
    days_to_roll,
    seconds_in,
)

_TRANSITION: Table = Transition.__table__  # type: ignore[assignment]
_TARGET_STATE: Table = TargetState.__table__  # type: ignore[assignment]
_UPTIME: Table = UptimeDay.__table__  # type: ignore[assignment]

TARGET = "target"
COMPONENT = "component"
_SECONDS = ("up", "degraded", "down", "maintenance", "unknown")


def uptime_row(kind: str, subject_id: str, day: date, seconds: HealthSeconds) -> dict[str, Any]:
    """An ``uptime_day`` row, in whole seconds.

    Whole: SQLite stores a REAL without a fraction as a small integer, which
    halves the row (4 million target-days at 10,000 targets); a second is far
    below what an uptime percentage shows.
    """
    row: dict[str, Any] = {"subject_kind": kind, "subject_id": subject_id, "day": day}
    for name in _SECONDS:
        row[f"{name}_seconds"] = float(round(getattr(seconds, name)))
    return row


class UptimeRollup:
    """Rolls transitions up into ``uptime_day``; reads on any thread, ``write`` on the writer."""

    def __init__(self, repo: StateRepository, scope: Callable[[], UptimeScope]) -> None:
        """``scope``: the timezone and components of the running config (read at every call)."""
        self._repo = repo
        self._scope = scope

    def pending(self, now: float) -> list[date]:
        scope = self._scope()
        with self._repo.reading() as conn:
            newest = conn.execute(select(func.max(_UPTIME.c.day))).scalar()
            oldest = conn.execute(select(func.min(_TRANSITION.c.at))).scalar()
        return days_to_roll(newest, oldest, now, scope.tz, scope.keep_days)

    def counted_until(self) -> float | None:
        """Everything before this instant is counted (the start of the newest day stored)."""
        with self._repo.reading() as conn:
            newest = conn.execute(select(func.max(_UPTIME.c.day))).scalar()
        return None if newest is None else day_bounds(newest, self._scope().tz)[0]

    def timelines(self, begin: float, end: float) -> dict[str, Timeline]:
        """Every watched target's health over ``[begin, end)``: from the last transition
        before ``begin``, then the transitions in it."""
        t, s = _TRANSITION, _TARGET_STATE
        last_before = (
            select(t.c.to_health)
            .where(t.c.target_id == s.c.target_id, t.c.at < begin)
            .order_by(t.c.at.desc(), t.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        changes: dict[str, list[tuple[float, Health]]] = {}
        with self._repo.reading() as conn:
            starts = {
                row.target_id: None if row.health is None else Health(row.health)
                for row in conn.execute(select(s.c.target_id, last_before.label("health")))
            }
            for row in conn.execute(
                select(t.c.target_id, t.c.at, t.c.to_health)
                .where(t.c.at >= begin, t.c.at < end)
                .order_by(t.c.target_id, t.c.at, t.c.id)
            ):
                if row.target_id in starts:
                    changes.setdefault(row.target_id, []).append((row.at, Health(row.to_health)))
        return {tid: Timeline(start, tuple(changes.get(tid, ()))) for tid, start in starts.items()}

    def compute(self, day: date, now: float) -> list[dict[str, Any]]:
        scope = self._scope()
        begin, end = day_bounds(day, scope.tz)
        end = min(end, now)
        if end <= begin:
            return []
        timelines = self.timelines(begin, end)
        rows = []
        for target_id, timeline in sorted(timelines.items()):
            seconds = seconds_in(timeline, begin, end)
            if seconds.total > 0:
                rows.append(uptime_row(TARGET, target_id, day, seconds))
        for component_id, member_ids in sorted(scope.components.items()):
            observed = [timelines[m] for m in member_ids if m in timelines]
            seconds = component_seconds(observed, begin, end)
            if seconds.total > 0:
                rows.append(uptime_row(COMPONENT, component_id, day, seconds))
        return rows

    def write(self, rows: Sequence[dict[str, Any]]) -> None:
        if not rows:
            return
        with self._repo.writing() as conn:
            insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            stmt = insert(_UPTIME)
            conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=["subject_kind", "subject_id", "day"],
                    set_={f"{n}_seconds": stmt.excluded[f"{n}_seconds"] for n in _SECONDS},
                ),
                list(rows),
            )
