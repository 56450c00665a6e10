"""Incident decisions: open, join, recover, resolve, note — and never a duplicate."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.health import Health, Transition
from monitor.incidents import (
    Action,
    Join,
    Note,
    Open,
    OpenIncident,
    Recover,
    Resolve,
    apply,
    decide,
    opens_incident,
)

U, G, D, Q, M = (
    Health.UP,
    Health.DEGRADED,
    Health.DOWN,
    Health.UNKNOWN,
    Health.MAINTENANCE,
)


def tr(
    target: str,
    frm: Health,
    to: Health,
    affected_by: str | None = None,
    at: float = 100.0,
    reason: str = "",
) -> Transition:
    return Transition(target, at, frm, to, reason, False, affected_by)


def inc(
    id: int,
    root: str,
    members: Sequence[str] = (),
    recovered: Sequence[str] = (),
    severity: str = "down",
) -> OpenIncident:
    return OpenIncident(
        id,
        root,
        frozenset({root, *members}),
        severity,  # type: ignore[arg-type]
        frozenset(recovered),
    )


TRUNK_DOWN = inc(7, "trunk-a")
ROUTER_DOWN = inc(3, "edge-router")
ROUTER_AND_TRUNK = inc(3, "edge-router", ["trunk-a"])

DECISION_CASES: list[tuple[str, Transition, list[OpenIncident], str, Action | None]] = [
    (
        "down-opens-an-incident",
        tr("trunk-a", U, D, reason="down after 2 consecutive failures: timed out"),
        [],
        "down",
        Open(
            "trunk-a",
            "down",
            "trunk-a is down",
            "trunk-a is down: down after 2 consecutive failures: timed out",
            100.0,
        ),
    ),
    ("degraded-opens-nothing-by-default", tr("trunk-a", U, G), [], "down", None),
    (
        "degraded-opens-one-with-incident-on-degraded",
        tr("trunk-a", U, G),
        [],
        "degraded",
        Open("trunk-a", "degraded", "trunk-a is degraded", "trunk-a is degraded", 100.0),
    ),
    ("unknown-opens-nothing", tr("trunk-a", U, Q), [], "down", None),
    ("maintenance-opens-nothing", tr("trunk-a", U, M), [], "down", None),
    ("up-without-an-incident-does-nothing", tr("trunk-a", D, U), [], "down", None),
    (
        "unrelated-open-incident-does-not-absorb-a-new-outage",
        tr("trunk-b", U, D),
        [TRUNK_DOWN],
        "down",
        Open("trunk-b", "down", "trunk-b is down", "trunk-b is down", 100.0),
    ),
    (
        "affected-child-joins-the-parents-incident",
        tr("trunk-a", U, D, affected_by="edge-router", reason="timed out"),
        [ROUTER_DOWN],
        "down",
        Join(
            3,
            "trunk-a",
            "affected",
            "trunk-a is down because edge-router is down: timed out",
            100.0,
        ),
    ),
    (
        "affected-child-opens-its-own-when-the-parent-has-none",
        tr("trunk-a", U, D, affected_by="edge-router"),
        [],
        "down",
        Open("trunk-a", "down", "trunk-a is down", "trunk-a is down", 100.0),
    ),
    (
        "affected-child-joins-the-incident-its-parent-is-a-member-of",
        tr("trunk-a", U, D, affected_by="edge-router"),
        [inc(9, "core-switch", ["edge-router"])],
        "down",
        Join(9, "trunk-a", "affected", "trunk-a is down because edge-router is down", 100.0),
    ),
    (
        "target-already-in-an-open-incident-never-opens-another",
        tr("trunk-a", Q, D, reason="after a restart"),
        [TRUNK_DOWN],
        "down",
        Note(7, "trunk-a", "trunk-a is now down: after a restart", 100.0),
    ),
    (
        "affected-target-already-in-its-own-incident-stays-there",
        tr("trunk-a", G, D, affected_by="edge-router"),
        [inc(3, "edge-router"), inc(7, "trunk-a", severity="degraded")],
        "degraded",
        Note(7, "trunk-a", "trunk-a is now down", 100.0, "down"),
    ),
    (
        "degraded-to-down-raises-the-severity",
        tr("trunk-a", G, D),
        [inc(7, "trunk-a", severity="degraded")],
        "degraded",
        Note(7, "trunk-a", "trunk-a is now down", 100.0, "down"),
    ),
    (
        "down-to-degraded-in-an-incident-is-a-note",
        tr("trunk-a", D, G),
        [TRUNK_DOWN],
        "down",
        Note(7, "trunk-a", "trunk-a is now degraded", 100.0),
    ),
    (
        "entering-maintenance-during-an-incident-is-a-note",
        tr("trunk-a", D, M, reason="carrier works"),
        [TRUNK_DOWN],
        "down",
        Note(7, "trunk-a", "trunk-a is now in maintenance: carrier works", 100.0),
    ),
    (
        "last-member-up-resolves",
        tr("trunk-a", D, U, reason="up after 2 successful checks"),
        [TRUNK_DOWN],
        "down",
        Resolve(
            7, "trunk-a", "trunk-a is up: up after 2 successful checks; incident resolved", 100.0
        ),
    ),
    (
        "maintenance-ending-up-resolves",
        tr("trunk-a", M, U),
        [TRUNK_DOWN],
        "down",
        Resolve(7, "trunk-a", "trunk-a is up; incident resolved", 100.0),
    ),
    (
        "parent-up-while-child-down-recovers-only-the-parent",
        tr("edge-router", D, U),
        [ROUTER_AND_TRUNK],
        "down",
        Recover(3, "edge-router", "edge-router is up; still waiting for trunk-a", 100.0),
    ),
    (
        "child-up-after-the-parent-resolves",
        tr("trunk-a", D, U),
        [inc(3, "edge-router", ["trunk-a"], recovered=["edge-router"])],
        "down",
        Resolve(3, "trunk-a", "trunk-a is up; incident resolved", 100.0),
    ),
    (
        "recovered-member-going-down-again-rejoins",
        tr("trunk-a", U, D),
        [inc(3, "edge-router", ["trunk-a"], recovered=["trunk-a"])],
        "down",
        Join(3, "trunk-a", "affected", "trunk-a is down again", 100.0),
    ),
    (
        "recovered-root-going-down-again-rejoins-as-root",
        tr("edge-router", U, D),
        [inc(3, "edge-router", ["trunk-a"], recovered=["edge-router"])],
        "down",
        Join(3, "edge-router", "root", "edge-router is down again", 100.0),
    ),
    (
        "recovered-member-changing-again-is-not-noted",
        tr("trunk-a", U, Q),
        [inc(3, "edge-router", ["trunk-a"], recovered=["trunk-a"])],
        "down",
        None,
    ),
    (
        "degraded-member-below-incident-on-going-up-recovers",
        tr("trunk-a", G, U),
        [inc(3, "edge-router", ["trunk-a"])],
        "down",
        Recover(3, "trunk-a", "trunk-a is up; still waiting for edge-router", 100.0),
    ),
]


@pytest.mark.parametrize(
    ("transition", "open_incidents", "incident_on", "expected"),
    [c[1:] for c in DECISION_CASES],
    ids=[c[0] for c in DECISION_CASES],
)
def test_decision_for_a_transition(
    transition: Transition,
    open_incidents: list[OpenIncident],
    incident_on: str,
    expected: Action | None,
) -> None:
    assert decide(transition, open_incidents, incident_on) == expected


def test_titles_and_timeline_use_display_names_when_given() -> None:
    names = {"trunk-a": "Carrier A trunk", "edge-router": "Edge router"}
    opened = decide(tr("trunk-a", U, D), [], names=names)
    assert isinstance(opened, Open)
    assert opened.title == "Carrier A trunk (trunk-a) is down"
    joined = decide(tr("trunk-a", U, D, affected_by="edge-router"), [ROUTER_DOWN], names=names)
    assert isinstance(joined, Join)
    assert (
        joined.text == "Carrier A trunk (trunk-a) is down because Edge router (edge-router) is down"
    )


@pytest.mark.parametrize(
    ("health", "incident_on", "opens"),
    [
        (D, "down", True),
        (G, "down", False),
        (D, "degraded", True),
        (G, "degraded", True),
        (U, "degraded", False),
        (Q, "degraded", False),
        (M, "down", False),
    ],
    ids=lambda v: str(v),
)
def test_which_health_opens_an_incident(health: Health, incident_on: str, opens: bool) -> None:
    assert opens_incident(health, incident_on) is opens


# -- whole scenarios: decide, then apply, as the engine does ---------------------


@dataclass
class Book:
    """Open incidents plus what happened to them, like the engine's memory."""

    open: tuple[OpenIncident, ...] = ()
    next_id: int = 1
    log: list[str] | None = None

    def feed(self, transition: Transition, incident_on: str = "down") -> Action | None:
        action = decide(transition, self.open, incident_on)
        new_id = None
        if isinstance(action, Open):
            new_id, self.next_id = self.next_id, self.next_id + 1
        self.open = apply(self.open, action, new_id)
        if self.log is None:
            self.log = []
        self.log.append(type(action).__name__ if action else "-")
        return action


def test_parent_down_first_then_child_joins_and_both_recover() -> None:
    book = Book()
    book.feed(tr("edge-router", U, D))
    book.feed(tr("trunk-a", U, D, affected_by="edge-router"))
    book.feed(tr("trunk-b", U, D, affected_by="edge-router"))
    assert len(book.open) == 1 and book.open[0].target_ids == {"edge-router", "trunk-a", "trunk-b"}
    book.feed(tr("edge-router", D, U))
    book.feed(tr("trunk-a", D, U))
    assert book.open[0].troubled_ids == {"trunk-b"}
    book.feed(tr("trunk-b", D, U))
    assert book.log == ["Open", "Join", "Join", "Recover", "Recover", "Resolve"]
    assert book.open == ()


def test_child_down_first_keeps_its_incident_and_the_parent_opens_its_own() -> None:
    book = Book()
    book.feed(tr("trunk-a", U, D))
    book.feed(tr("edge-router", U, D))
    assert [i.root_target_id for i in book.open] == ["trunk-a", "edge-router"]
    book.feed(tr("edge-router", D, U))
    book.feed(tr("trunk-a", D, U))
    assert book.log == ["Open", "Open", "Resolve", "Resolve"]
    assert book.open == ()


def test_parent_recovers_first_and_the_incident_lasts_until_the_child_is_up() -> None:
    book = Book()
    book.feed(tr("edge-router", U, D))
    book.feed(tr("trunk-a", U, D, affected_by="edge-router"))
    book.feed(tr("edge-router", D, U))
    assert len(book.open) == 1 and book.open[0].troubled_ids == {"trunk-a"}
    # The child flips while still in trouble: noted, not a new incident.
    book.feed(tr("trunk-a", D, G))
    book.feed(tr("trunk-a", G, D))
    book.feed(tr("trunk-a", D, U))
    assert book.log == ["Open", "Join", "Recover", "Note", "Note", "Resolve"]
    assert book.open == ()


def test_replaying_the_same_down_transition_never_duplicates_an_incident() -> None:
    book = Book()
    for _ in range(3):
        book.feed(tr("trunk-a", Q, D))
    assert book.log == ["Open", "Note", "Note"]
    assert len(book.open) == 1


def test_flapping_down_opens_one_incident_and_the_clear_resolves_it() -> None:
    book = Book()
    flap_down = Transition("trunk-a", 100.0, U, D, "flapping: ...", flapping=True)
    book.feed(flap_down)
    book.feed(Transition("trunk-a", 900.0, D, U, "stopped flapping ...", flapping=False))
    assert book.log == ["Open", "Resolve"]


def test_apply_needs_an_id_to_open() -> None:
    with pytest.raises(ValueError, match="needs the new incident's id"):
        apply((), Open("a", "down", "a is down", "a is down", 1.0))


def test_apply_raises_the_severity_on_a_note_that_says_so() -> None:
    after = apply([inc(7, "a", severity="degraded")], Note(7, "a", "a is now down", 1.0, "down"))
    assert after[0].severity == "down"


def test_open_incident_is_built_from_a_store_row() -> None:
    @dataclass
    class Member:
        target_id: str
        recovered_at: float | None

    @dataclass
    class Row:
        id: int
        root_target_id: str
        severity: str
        members: tuple[Member, ...]

    row = Row(4, "edge-router", "down", (Member("edge-router", 50.0), Member("trunk-a", None)))
    assert OpenIncident.from_row(row) == inc(
        4, "edge-router", ["trunk-a"], recovered=["edge-router"]
    )


# -- properties --------------------------------------------------------------------

TARGETS = ["edge-router", "trunk-a", "trunk-b"]


@settings(max_examples=300, deadline=None)
@given(
    moves=st.lists(
        st.tuples(st.sampled_from(TARGETS), st.sampled_from(list(Health)), st.booleans()),
        max_size=60,
    ),
    incident_on=st.sampled_from(["down", "degraded"]),
)
def test_any_sequence_keeps_one_incident_per_target_and_every_outage_in_one(
    moves: list[tuple[str, Health, bool]], incident_on: str
) -> None:
    health = dict.fromkeys(TARGETS, Health.UNKNOWN)
    book = Book()
    for target, to, attributed in moves:
        if to is health[target]:
            continue
        parent_down = health["edge-router"] is Health.DOWN and target != "edge-router"
        affected = "edge-router" if attributed and parent_down else None
        book.feed(tr(target, health[target], to, affected_by=affected), incident_on)
        health[target] = to
        for t in TARGETS:
            holding = [i for i in book.open if t in i.target_ids]
            assert len(holding) <= 1, f"{t} is in {len(holding)} open incidents"
            troubled = any(t in i.troubled_ids for i in holding)
            if opens_incident(health[t], incident_on):
                assert troubled, f"{t} is {health[t]} but in no open incident"
            if health[t] is Health.UP:
                assert not troubled, f"{t} is up but still counted in trouble"
        assert all(i.troubled_ids for i in book.open), "an open incident with nobody in trouble"
