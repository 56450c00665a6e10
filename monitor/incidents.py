"""Incident decisions: what a health Transition does to the open incidents.

Pure code. ``decide`` looks at one ``Transition`` and the currently open
incidents (light ``OpenIncident`` values) and returns one action — ``Open``,
``Join``, ``Recover``, ``Resolve``, ``Note`` — or None. Persisting the action
(``StateRepository.open_incident``, ``join_incident``...) is the engine's job;
``apply`` updates the light values the same way, so the engine can keep them
in memory and tests can play whole scenarios.

Each action carries ``text``, an English timeline line; the web layer may
render its own translation from the action's fields instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from monitor.health import Health, Transition

Severity = Literal["down", "degraded"]


@dataclass(frozen=True, slots=True)
class OpenIncident:
    """What decisions need to know about one open incident.

    ``target_ids``: every member, root included; ``recovered_ids``: members
    that are back up (the incident stays open while any other is not).
    """

    id: int
    root_target_id: str
    target_ids: frozenset[str]
    severity: Severity = "down"
    recovered_ids: frozenset[str] = frozenset()

    @property
    def troubled_ids(self) -> frozenset[str]:
        return self.target_ids - self.recovered_ids

    @classmethod
    def from_row(cls, row: Any) -> OpenIncident:
        """From a store ``IncidentRow`` (anything with id, root_target_id, severity
        and members having target_id and recovered_at)."""
        members = tuple(row.members)
        return cls(
            id=row.id,
            root_target_id=row.root_target_id,
            target_ids=frozenset(m.target_id for m in members) | {row.root_target_id},
            severity=row.severity,
            recovered_ids=frozenset(m.target_id for m in members if m.recovered_at is not None),
        )


@dataclass(frozen=True, slots=True)
class Open:
    """Open a new incident with ``root_target`` as its root member."""

    root_target: str
    severity: Severity
    title: str
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Join:
    """Add ``target`` to an open incident (or bring a recovered member back into it)."""

    incident_id: int
    target: str
    role: Literal["root", "affected"]
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Recover:
    """``target`` is back up; other members are still in trouble, so the incident stays open."""

    incident_id: int
    target: str
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Resolve:
    """``target`` was the last member in trouble: the incident is resolved."""

    incident_id: int
    target: str
    text: str
    at: float


@dataclass(frozen=True, slots=True)
class Note:
    """A member's health changed without changing membership: a timeline line.

    ``severity`` is set when the incident's severity must rise (degraded → down).
    """

    incident_id: int
    target: str
    text: str
    at: float
    severity: Severity | None = None


Action = Open | Join | Recover | Resolve | Note


def opens_incident(health: Health, incident_on: str = "down") -> bool:
    """Whether a target newly in ``health`` needs an incident, given its ``incident_on``."""
    return health is Health.DOWN or (incident_on == "degraded" and health is Health.DEGRADED)


def _phrase(health: Health) -> str:
    return "in maintenance" if health is Health.MAINTENANCE else str(health)


def _label(target_id: str, names: Mapping[str, str] | None) -> str:
    name = (names or {}).get(target_id)
    return f"{name} ({target_id})" if name and name != target_id else target_id


def _find(incidents: Sequence[OpenIncident], target_id: str) -> OpenIncident | None:
    # Lowest id first: if duplicates ever existed, always act on the same one.
    found = [i for i in incidents if target_id in i.target_ids]
    return min(found, key=lambda i: i.id) if found else None


def decide(
    transition: Transition,
    open_incidents: Iterable[OpenIncident],
    incident_on: str = "down",
    names: Mapping[str, str] | None = None,
) -> Action | None:
    """The one action ``transition`` calls for, or None.

    ``incident_on`` is the transitioning target's setting; ``names`` maps
    target ids to display names for titles and timeline text.
    """
    incidents = tuple(open_incidents)
    t = transition
    who = _label(t.target_id, names)
    why = f": {t.reason}" if t.reason else ""
    mine = _find(incidents, t.target_id)

    if opens_incident(t.to_health, incident_on):
        severity: Severity = "down" if t.to_health is Health.DOWN else "degraded"
        if mine is not None:
            # Never a second incident for a target already in one (e.g. after a restart).
            if t.target_id in mine.recovered_ids:
                role: Literal["root", "affected"] = (
                    "root" if t.target_id == mine.root_target_id else "affected"
                )
                return Join(mine.id, t.target_id, role, f"{who} is {t.to_health} again{why}", t.at)
            raise_to = severity if severity == "down" and mine.severity != "down" else None
            return Note(mine.id, t.target_id, f"{who} is now {t.to_health}{why}", t.at, raise_to)
        if t.affected_by is not None:
            parent = _find(incidents, t.affected_by)
            if parent is not None:
                text = f"{who} is {t.to_health} because {_label(t.affected_by, names)} is down{why}"
                return Join(parent.id, t.target_id, "affected", text, t.at)
        title = f"{who} is {t.to_health}"
        return Open(t.target_id, severity, title, f"{title}{why}", t.at)

    if mine is None or t.target_id in mine.recovered_ids:
        return None

    if t.to_health is Health.UP:
        still = sorted(mine.troubled_ids - {t.target_id})
        if not still:
            return Resolve(mine.id, t.target_id, f"{who} is up{why}; incident resolved", t.at)
        waiting = ", ".join(_label(s, names) for s in still)
        return Recover(mine.id, t.target_id, f"{who} is up{why}; still waiting for {waiting}", t.at)

    # Degraded below incident_on, unknown, maintenance: still not back, worth a line.
    return Note(mine.id, t.target_id, f"{who} is now {_phrase(t.to_health)}{why}", t.at)


def apply(
    incidents: Sequence[OpenIncident], action: Action | None, new_id: int | None = None
) -> tuple[OpenIncident, ...]:
    """The open incidents after ``action`` (``new_id`` names an incident ``Open`` creates)."""
    if action is None:
        return tuple(incidents)
    if isinstance(action, Open):
        if new_id is None:
            raise ValueError("opening an incident needs the new incident's id")
        opened = OpenIncident(
            new_id, action.root_target, frozenset({action.root_target}), action.severity
        )
        return (*incidents, opened)
    out: list[OpenIncident] = []
    for inc in incidents:
        if inc.id != action.incident_id:
            out.append(inc)
        elif isinstance(action, Join):
            out.append(
                replace(
                    inc,
                    target_ids=inc.target_ids | {action.target},
                    recovered_ids=inc.recovered_ids - {action.target},
                )
            )
        elif isinstance(action, Recover):
            out.append(replace(inc, recovered_ids=inc.recovered_ids | {action.target}))
        elif isinstance(action, Note):
            out.append(replace(inc, severity=action.severity) if action.severity else inc)
        # Resolve: the incident is no longer open.
    return tuple(out)
