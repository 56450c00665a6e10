"""The engine's index of open incidents agrees with the pure incidents.apply over all of them."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor import incidents
from monitor.health import Health, Transition
from monitor.incident_keeper import IncidentBook

TARGETS = ["a", "b", "c", "d"]


@st.composite
def transitions(draw: st.DrawFn) -> list[Transition]:
    out = []
    for i in range(draw(st.integers(1, 30))):
        target = draw(st.sampled_from(TARGETS))
        to = draw(st.sampled_from([Health.DOWN, Health.UP, Health.DEGRADED]))
        parent = draw(st.sampled_from([None, *TARGETS]))
        out.append(
            Transition(
                target,
                float(i),
                Health.UNKNOWN,
                to,
                "",
                False,
                parent if parent != target else None,
            )
        )
    return out


@settings(max_examples=200, deadline=None)
@given(transitions())
def test_deciding_on_the_concerned_incidents_equals_deciding_on_all(seq: list[Transition]) -> None:
    everything: tuple[incidents.OpenIncident, ...] = ()
    book = IncidentBook()
    next_id = 1
    for tr in seq:
        full = incidents.decide(tr, everything)
        indexed = incidents.decide(tr, book.concerning(tr.target_id, tr.affected_by))
        assert indexed == full
        new_id = None
        if isinstance(full, incidents.Open):
            new_id, next_id = next_id, next_id + 1
        everything = incidents.apply(everything, full, new_id)
        book.apply(indexed, new_id)
        assert sorted(everything, key=lambda i: i.id) == list(book)


def test_own_is_the_incident_a_target_opened_alone() -> None:
    book = IncidentBook([incidents.OpenIncident(1, "a", frozenset({"a"}))])
    assert book.own("a") is not None
    book.apply(incidents.Join(1, "b", "affected", "", 1.0))
    assert book.own("a") is None  # no longer alone
    assert book.own("b") is None  # not its root
