"""The incident keeper: transitions → incident decisions → state DB writes → events.

The engine hands it every Transition. For each, ``incidents.decide`` (pure)
picks the action against the open incidents in memory (``IncidentBook``);
the keeper writes the action, its timeline line, the transition and their
events in one transaction on the engine's DB thread, then updates the book.
A dependant that went down just before its parent is merged into the
parent's new incident inside that same transaction (``merged``, never
``resolved``: customers get no all clear for it).

Transitions that touch no incident (every target's first "up" at start,
recoveries outside incidents) are queued and written many per transaction
within ``TRANSITION_BATCH`` seconds.

Changes made outside the engine (an incident declared or resolved by hand,
``monitor.incident_actions``) reach the book through the events: the keeper
is a ``LiveSubscriber`` of the dispatcher from the event id it read with the
open incidents at start. Until it has the event (milliseconds after the
commit), a transition is still decided against the book as it was: a target
of an incident just resolved by hand may join it rather than open a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from monitor import incidents
from monitor.dispatcher import LiveSubscriber
from monitor.events import ENGINE_ACTOR, Event, EventKind, NewEvent, record_many
from monitor.health import Health, Transition
from monitor.store.repository import IncidentRow, StateRepository

if TYPE_CHECKING:
    from monitor.store.writer import RowSnapshot
    from monitor.target_runtime import TargetRuntime

log = logging.getLogger(__name__)

TRANSITION_BATCH = 0.2
"""Seconds a transition that touches no incident may wait to share a transaction:
at start every target turns up at once, and 10,000 single-row commits starved
the event loop (bench/sip_probe_throughput)."""
REASON_IN_EVENT = 500
"""Characters of a transition's reason kept in its event (the transition row has it all)."""


HAND_CHANGES = frozenset({EventKind.DECLARED, EventKind.RESOLVED_BY_HAND, EventKind.UPDATED})
"""The events of changes made outside the engine that the book must follow."""


class IncidentBook:
    """Open incidents indexed by member target.

    ``incidents.decide`` only ever looks at the incident of the transitioning
    target and of its ``affected_by`` parent; handing it those (not all open
    incidents) keeps an outage storm of thousands of incidents O(1) per
    transition instead of O(open incidents).
    """

    def __init__(self, items: Iterable[incidents.OpenIncident] = ()) -> None:
        self._by_id: dict[int, incidents.OpenIncident] = {}
        self._of: dict[str, int] = {}
        for item in items:
            self.add(item)

    def add(self, item: incidents.OpenIncident) -> None:
        """Know of an open incident (one declared by hand, or restored)."""
        self._by_id[item.id] = item
        for target_id in item.target_ids:
            # lowest id wins, as in incidents._find, should duplicates ever exist
            if self._of.get(target_id, item.id) >= item.id:
                self._of[target_id] = item.id

    def remove(self, incident_id: int) -> None:
        """Forget an incident (resolved by hand); unknown ids are ignored."""
        item = self._by_id.pop(incident_id, None)
        if item is not None:
            for target_id in item.target_ids:
                if self._of.get(target_id) == incident_id:
                    del self._of[target_id]

    def concerning(self, *target_ids: str | None) -> tuple[incidents.OpenIncident, ...]:
        """The open incidents these targets are members of."""
        ids = {self._of[t] for t in target_ids if t is not None and t in self._of}
        return tuple(self._by_id[i] for i in sorted(ids))

    def own(self, target_id: str) -> incidents.OpenIncident | None:
        """The incident ``target_id`` opened and is still the only member of."""
        item = self._by_id.get(self._of.get(target_id, -1))
        if item is not None and item.root_target_id == target_id and item.target_ids == {target_id}:
            return item
        return None

    def apply(self, action: incidents.Action | None, new_id: int | None = None) -> None:
        if action is None:
            return
        touched = () if isinstance(action, incidents.Open) else (action.incident_id,)
        before = tuple(self._by_id[i] for i in touched if i in self._by_id)
        for item in before:
            self.remove(item.id)
        for item in incidents.apply(before, action, new_id):
            self.add(item)

    def get(self, incident_id: int) -> incidents.OpenIncident | None:
        return self._by_id.get(incident_id)

    def __contains__(self, incident_id: object) -> bool:
        return incident_id in self._by_id

    def __iter__(self) -> Iterator[incidents.OpenIncident]:
        return iter(sorted(self._by_id.values(), key=lambda i: i.id))

    def __len__(self) -> int:
        return len(self._by_id)


class _DisplayNames(Mapping[str, str]):
    """target id → display name, looked up on access (incident titles need one or two)."""

    def __init__(self, targets: Mapping[str, TargetRuntime]) -> None:
        self._targets = targets

    def __getitem__(self, target_id: str) -> str:
        return self._targets[target_id].target.display_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


@dataclass(frozen=True, slots=True)
class _Merge:
    """A dependant's own incident to fold into its parent's new one."""

    own_id: int
    child_id: str
    parent_id: str
    parent_name: str


def transition_event(tr: Transition, transition_id: int, incident_id: int | None) -> NewEvent:
    return NewEvent(
        EventKind.TRANSITION,
        tr.at,
        target_id=tr.target_id,
        incident_id=incident_id,
        payload={
            "from": tr.from_health.value,
            "to": tr.to_health.value,
            "reason": tr.reason[:REASON_IN_EVENT],
            "flapping": tr.flapping,
            "affected_by": tr.affected_by,
            "transition_id": transition_id,
        },
    )


def action_event(action: incidents.Action, incident_id: int) -> NewEvent | None:
    """The event of an incident change the engine decided (None: a timeline line only)."""
    at, target = action.at, getattr(action, "target", None)
    if isinstance(action, incidents.Open):
        payload: dict[str, Any] = {"title": action.title, "severity": action.severity}
        return NewEvent(
            EventKind.OPENED,
            at,
            target_id=action.root_target,
            incident_id=incident_id,
            payload=payload,
        )
    if isinstance(action, incidents.Join):
        return NewEvent(
            EventKind.JOINED,
            at,
            target_id=target,
            incident_id=incident_id,
            payload={"role": action.role},
        )
    if isinstance(action, incidents.Recover):
        return NewEvent(EventKind.RECOVERED, at, target_id=target, incident_id=incident_id)
    if isinstance(action, incidents.Resolve):
        return NewEvent(EventKind.RESOLVED, at, target_id=target, incident_id=incident_id)
    if isinstance(action, incidents.Note) and action.severity:
        payload = {"fields": {"severity": action.severity}}
        return NewEvent(
            EventKind.UPDATED, at, target_id=target, incident_id=incident_id, payload=payload
        )
    return None


class IncidentKeeper:
    """Keeps the incidents of the engine's targets; the engine calls ``on_transition``."""

    def __init__(
        self,
        repo: StateRepository,
        targets: Mapping[str, TargetRuntime],
        *,
        in_db: Callable[..., Awaitable[Any]],
        write_later: Callable[..., None],
        state_row: Callable[[RowSnapshot], dict[str, Any]],
    ) -> None:
        self.repo = repo
        self.targets = targets
        self.book = IncidentBook()
        self._in_db = in_db
        self._write_later = write_later
        self._state_row = state_row
        self._names = _DisplayNames(targets)
        self._children: dict[str, list[str]] = {}
        self._lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._pending: list[tuple[Transition, RowSnapshot]] = []
        self._flush_handle: asyncio.TimerHandle | None = None

    # -- lifecycle ---------------------------------------------------------
    def restore(self, rows: Iterable[IncidentRow]) -> None:
        """Start from the open incidents stored in the state DB."""
        self.book = IncidentBook(incidents.OpenIncident.from_row(row) for row in rows)

    def index_children(self) -> None:
        """parent id -> ids of the targets that depend on it (for merging incidents)."""
        children: dict[str, list[str]] = {}
        for rt in self.targets.values():
            for parent in rt.target.depends_on:
                children.setdefault(parent, []).append(rt.target.id)
        self._children = children

    def subscriber(self, after: int) -> LiveSubscriber:
        """The keeper as a subscriber: ``after`` is the last event id seen before ``restore``."""
        return LiveSubscriber("incident-keeper", self._on_event, after, HAND_CHANGES)

    @property
    def busy(self) -> set[asyncio.Task[Any]]:
        """The transitions being handled right now."""
        return set(self._tasks)

    async def drain(self) -> None:
        """Wait for the transitions being handled, then hand the queued ones to the DB thread."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self.flush()

    # -- transitions -------------------------------------------------------
    def on_transition(self, rt: TargetRuntime, tr: Transition) -> None:
        """Handle ``tr`` in its own task: the probe that caused it must not wait.

        In an outage storm thousands of incidents open at once, and a probe
        waiting on them would miss its next slot. The lock is FIFO, so one
        target's transitions are still handled in order.
        """
        task = asyncio.create_task(self._on_transition(rt, tr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_transition(self, rt: TargetRuntime, tr: Transition) -> None:
        trouble = tr.to_health in (Health.DOWN, Health.DEGRADED, Health.UNKNOWN)
        log.log(
            logging.WARNING if trouble else logging.INFO,
            "%s: %s -> %s%s: %s",
            tr.target_id,
            tr.from_health.value,
            tr.to_health.value,
            f" (affected by {tr.affected_by})" if tr.affected_by else "",
            tr.reason,
        )
        async with self._lock:
            concerned = self.book.concerning(tr.target_id, tr.affected_by)
            action = incidents.decide(tr, concerned, rt.policy.incident_on, self._names)
            snap = rt.snapshot()  # the row itself is built on the DB thread
            if action is None:
                # Most transitions change no incident: written within
                # TRANSITION_BATCH seconds, many per transaction, without
                # holding up this target's next probe.
                self._queue(tr, snap)
                return
            merges = (
                self._merges(rt, tr.at)
                if isinstance(action, incidents.Open) and tr.to_health is Health.DOWN
                else []
            )
            self.flush()  # keep DB order: queued ones go first
            try:
                incident_id = await self._in_db(self._write_transition, tr, action, snap, merges)
            except Exception:
                log.exception("could not write the transition of %s to the state DB", tr.target_id)
                return
            self.book.apply(action, incident_id)
            if isinstance(action, incidents.Open):
                log.warning("incident %d opened: %s", incident_id, action.title)
                self._merged(merges, incident_id, tr.at)
            elif isinstance(action, incidents.Resolve):
                log.warning("incident %d resolved", action.incident_id)

    def _merges(self, parent: TargetRuntime, at: float) -> list[_Merge]:
        """The dependants that went down just before ``parent`` and are alone in their own incident.

        When a router dies, the trunks behind it fail in the same round; with
        spread slots a child can reach ``fail_after`` before its parent and open
        its own incident. A child whose own incident opened within the parent's
        detection time (interval × (fail_after + 1) + timeout: the extra interval
        is the slot alignment of the first failing probe) was most likely taken
        down by the parent: its incident is resolved as merged and the child
        joins the parent's incident as affected.
        """
        p = parent.target
        horizon = at - (p.interval * (p.fail_after + 1) + p.timeout)
        found = []
        for child_id in self._children.get(p.id, ()):
            child = self.targets.get(child_id)
            if child is None or child.state.health is not Health.DOWN:
                continue
            own = self.book.own(child_id)
            if own is None or child.state.since is None or child.state.since < horizon:
                continue
            found.append(_Merge(own.id, child.target.id, p.id, p.display_name))
        return found

    def _merged(self, merges: Sequence[_Merge], incident_id: int | None, at: float) -> None:
        """After the commit: the book and the children's state follow the merges."""
        if incident_id is None:
            return
        for m in merges:
            self.book.apply(incidents.Resolve(m.own_id, m.child_id, "", at))
            self.book.apply(incidents.Join(incident_id, m.child_id, "affected", "", at))
            child = self.targets.get(m.child_id)
            if child is not None:
                child.state = replace(child.state, affected_by=m.parent_id)
                child.dirty = True
            log.warning(
                "incident %d merged into %d (%s depends on %s)",
                m.own_id,
                incident_id,
                m.child_id,
                m.parent_id,
            )

    # -- writes (DB thread) ------------------------------------------------
    def _write_transition(
        self,
        tr: Transition,
        action: incidents.Action | None,
        snap: RowSnapshot,
        merges: Sequence[_Merge] = (),
    ) -> int | None:
        """The incident change, its timeline line, the transition, the merges it
        causes and their events, in one transaction (a crash keeps all or none).

        Returns the incident the transition belongs to (the new one for Open).
        """
        with self.repo.transaction():
            incident_id, news = self._write_transition_in(tr, action, snap)
            for m in merges:
                assert incident_id is not None
                news.extend(self._write_merge(m, incident_id, tr.at))
            record_many(self.repo, news)
            return incident_id

    def _write_transition_in(
        self, tr: Transition, action: incidents.Action | None, snap: RowSnapshot
    ) -> tuple[int | None, list[NewEvent]]:
        repo = self.repo
        incident_id: int | None = None
        if isinstance(action, incidents.Open):
            incident_id = repo.open_incident(
                action.root_target, action.severity, action.title, tr.at
            )
        elif action is not None:
            incident_id = action.incident_id
            if isinstance(action, incidents.Join):
                repo.join_incident(action.incident_id, action.target, action.role, tr.at)
            elif isinstance(action, incidents.Recover):
                repo.recover_target(action.incident_id, action.target, tr.at)
            elif isinstance(action, incidents.Resolve):
                repo.recover_target(action.incident_id, action.target, tr.at)
                repo.resolve_incident(action.incident_id, tr.at)
            elif isinstance(action, incidents.Note) and action.severity:
                repo.set_incident_fields(action.incident_id, severity=action.severity)
            repo.add_incident_event(
                action.incident_id, "transition", tr.at, tr.target_id, action.text
            )
        transition_id = repo.record_transition(
            tr.target_id,
            tr.at,
            tr.from_health.value,
            tr.to_health.value,
            reason=tr.reason,
            flapping=tr.flapping,
            affected_by=tr.affected_by,
            incident_id=incident_id,
            state=self._state_row(snap),
        )
        news = [transition_event(tr, transition_id, incident_id)]
        if action is not None and incident_id is not None:
            change = action_event(action, incident_id)
            if change is not None:
                news.append(change)
        return incident_id, news

    def _write_merge(self, m: _Merge, incident_id: int, at: float) -> list[NewEvent]:
        repo = self.repo
        text = f"merged into incident {incident_id}: {m.parent_name} ({m.parent_id}) is down"
        repo.add_incident_event(m.own_id, "note", at, m.child_id, text)
        repo.resolve_incident(m.own_id, at)
        repo.join_incident(incident_id, m.child_id, "affected", at)
        return [
            NewEvent(
                EventKind.MERGED,
                at,
                target_id=m.child_id,
                incident_id=m.own_id,
                payload={"into": incident_id, "parent": m.parent_id},
            ),
            NewEvent(
                EventKind.JOINED,
                at,
                target_id=m.child_id,
                incident_id=incident_id,
                payload={"role": "affected", "merged_from": m.own_id},
            ),
        ]

    # -- the queue of transitions that touch no incident --------------------
    def _queue(self, tr: Transition, snap: RowSnapshot) -> None:
        self._pending.append((tr, snap))
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = loop.call_later(TRANSITION_BATCH, self.flush)

    def flush(self) -> None:
        """Hand the queued transitions to the DB thread as one transaction (FIFO with other writes)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, self._pending = self._pending, []
        if batch:
            self._write_later(self._write_transition_batch, batch)

    def _write_transition_batch(self, batch: list[tuple[Transition, RowSnapshot]]) -> None:
        with self.repo.transaction():
            news: list[NewEvent] = []
            for tr, snap in batch:
                news.extend(self._write_transition_in(tr, None, snap)[1])
            record_many(self.repo, news)

    # -- changes made outside the engine ------------------------------------
    async def _on_event(self, event: Event) -> None:
        """Incidents declared or resolved by hand join or leave the book; a severity
        set by hand replaces the book's."""
        if event.incident_id is None or event.actor == ENGINE_ACTOR:
            return  # the engine's own changes are in the book already
        if event.kind is EventKind.DECLARED:
            targets = frozenset(event.payload.get("targets") or (event.target_id,))
            item = incidents.OpenIncident(
                event.incident_id,
                str(event.target_id),
                targets,
                event.payload.get("severity", "down"),
            )
            async with self._lock:
                if item.id not in self.book:
                    self.book.add(item)
        elif event.kind is EventKind.RESOLVED_BY_HAND:
            async with self._lock:
                self.book.remove(event.incident_id)
        elif event.kind is EventKind.UPDATED and "severity" in event.payload.get("fields", {}):
            async with self._lock:
                item = self.book.get(event.incident_id)
                if item is not None:
                    self.book.remove(item.id)
                    self.book.add(replace(item, severity=event.payload["fields"]["severity"]))
