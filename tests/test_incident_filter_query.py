"""``queries.incidents_page`` with an ``IncidentFilter``: severity, members, time overlap —
on SQLite and on a real PostgreSQL (marked ``peer``), with the repository's own writes."""

from __future__ import annotations

import pytest

from monitor.store import queries
from monitor.store.queries import IncidentFilter, Page
from monitor.store.repository import StateRepository
from tests.peers.postgres import postgres_server  # noqa: F401 - a fixture test_state_db needs
from tests.test_state_db import backend, engine, repo, shared_postgres_url  # noqa: F401


@pytest.fixture
def incidents(repo: StateRepository) -> dict[str, int]:  # noqa: F811 - the fixture imported
    """Four incidents over the hours 1-10 (epoch seconds 3600-36000)."""
    h = 3600.0
    made = {
        "a-down-open": repo.open_incident("trunk-a", "down", "a", 1 * h),
        "b-degraded-open": repo.open_incident("trunk-b", "degraded", "b", 2 * h),
        "c-down-early": repo.open_incident("crm-db", "down", "c", 3 * h),
        "d-degraded-late": repo.open_incident("router", "degraded", "d", 8 * h),
    }
    repo.join_incident(made["a-down-open"], "router-2", "affected", 1 * h + 5)
    repo.resolve_incident(made["c-down-early"], 4 * h)
    repo.resolve_incident(made["d-degraded-late"], 9 * h)
    return made


def found(repo: StateRepository, flt: IncidentFilter, states: tuple[str, ...] = ()) -> set[int]:  # noqa: F811
    page = queries.incidents_page(repo.engine, states, Page(1, 100), flt)
    assert page.total == len(page.items)
    return {r.id for r in page.items}


@pytest.mark.parametrize(
    ("flt", "states", "expected"),
    [
        pytest.param(
            IncidentFilter(),
            (),
            {"a-down-open", "b-degraded-open", "c-down-early", "d-degraded-late"},
            id="none",
        ),
        pytest.param(
            IncidentFilter(severity=("degraded",)),
            (),
            {"b-degraded-open", "d-degraded-late"},
            id="severity",
        ),
        pytest.param(
            IncidentFilter(severity=("down",)), ("open",), {"a-down-open"}, id="severity-and-state"
        ),
        pytest.param(
            IncidentFilter(member_of=(("router-2",),)), (), {"a-down-open"}, id="affected-member"
        ),
        pytest.param(
            IncidentFilter(member_of=(("router", "crm-db"),)),
            (),
            {"c-down-early", "d-degraded-late"},
            id="any-of-a-component",
        ),
        pytest.param(
            IncidentFilter(member_of=(("trunk-a", "router"), ("router-2",))),
            (),
            {"a-down-open"},
            id="every-group",
        ),
        pytest.param(IncidentFilter(member_of=((),)), (), set(), id="empty-group-matches-nothing"),
        pytest.param(
            IncidentFilter(since=5 * 3600.0),
            (),
            {"a-down-open", "b-degraded-open", "d-degraded-late"},
            id="since: still open or resolved after",
        ),
        pytest.param(
            IncidentFilter(until=3 * 3600.0),
            (),
            {"a-down-open", "b-degraded-open"},
            id="until: opened before",
        ),
        pytest.param(
            IncidentFilter(since=3.5 * 3600, until=4 * 3600.0),
            (),
            {"a-down-open", "b-degraded-open", "c-down-early"},
            id="overlap",
        ),
    ],
)
def test_incidents_are_filtered_by_severity_members_and_time_overlap(
    repo: StateRepository,  # noqa: F811
    incidents: dict[str, int],
    flt: IncidentFilter,
    states: tuple[str, ...],
    expected: set[str],
) -> None:
    assert found(repo, flt, states) == {incidents[name] for name in expected}


def test_a_page_past_the_end_is_empty_with_the_total_and_pages_cross_open_and_resolved(
    repo: StateRepository,  # noqa: F811
    incidents: dict[str, int],
) -> None:
    past = queries.incidents_page(repo.engine, (), Page(3, 2))
    assert (past.items, past.total) == ((), 4)
    # open first (newest first), then the resolved ones (newest first), cut across pages
    pages = [queries.incidents_page(repo.engine, (), Page(n, 3)).items for n in (1, 2)]
    order = [r.id for items in pages for r in items]
    assert order == [
        incidents["b-degraded-open"],
        incidents["a-down-open"],
        incidents["d-degraded-late"],
        incidents["c-down-early"],
    ]
