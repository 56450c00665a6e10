"""Maintenance windows started by hand, as the engine's health keeping sees them.

``incident_actions.start_maintenance`` / ``end_maintenance`` store a window
and emit a ``maintenance`` event; this book holds the open windows in memory
(restored from the state DB at start, then kept up by the events as a
``LiveSubscriber``), so the hot path asks a dict, not the DB, whether a
target is in maintenance. Config windows are ``monitor.maintenance``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, Table, select

from monitor.dispatcher import LiveSubscriber
from monitor.events import Event, EventKind
from monitor.store.models import ManualMaintenance

_WINDOW: Table = ManualMaintenance.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class ManualWindow:
    id: int
    target_id: str
    until: float | None
    """When it ends by itself (None: when someone ends it)."""
    reason: str
    by: str

    def text(self) -> str:
        """The maintenance reason the health state machine records."""
        why = f": {self.reason}" if self.reason else ""
        return f"maintenance started by {self.by}{why}"


def open_windows(db: Engine | Connection, now: float) -> list[ManualWindow]:
    """The windows started by hand that are open at ``now``."""
    w = _WINDOW
    stmt = select(w).where(w.c.ended_at.is_(None), w.c.ends_at.is_(None) | (w.c.ends_at > now))
    if isinstance(db, Connection):
        rows = db.execute(stmt).all()
    else:
        with db.connect() as conn:
            rows = conn.execute(stmt).all()
    return [ManualWindow(r.id, r.target_id, r.ends_at, r.reason, r.created_by) for r in rows]


class ManualMaintenanceBook:
    """Open hand-started windows by target."""

    def __init__(self) -> None:
        self._of: dict[str, ManualWindow] = {}

    def restore(self, windows: list[ManualWindow]) -> None:
        self._of = {w.target_id: w for w in windows}

    def reason(self, target_id: str, now: float) -> str | None:
        """Why ``target_id`` is in maintenance at ``now`` by hand, or None."""
        window = self._of.get(target_id)
        if window is None:
            return None
        if window.until is not None and now >= window.until:
            del self._of[target_id]
            return None
        return window.text()

    def subscriber(self, after: int) -> LiveSubscriber:
        return LiveSubscriber(
            "manual-maintenance", self._on_event, after, frozenset({EventKind.MAINTENANCE})
        )

    async def _on_event(self, event: Event) -> None:
        if event.kind is not EventKind.MAINTENANCE or event.target_id is None:
            return
        p = event.payload
        if p.get("state") == "started":
            self._of[event.target_id] = ManualWindow(
                int(p["window_id"]),
                event.target_id,
                p.get("until"),
                p.get("reason", ""),
                event.actor,
            )
        elif p.get("state") == "ended":
            current = self._of.get(event.target_id)
            if current is not None and current.id == p.get("window_id"):
                del self._of[event.target_id]
