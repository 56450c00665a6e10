"""The read model's up/down timeline (``queries.health_spans``) and health counts per kind,
on SQLite and on a real PostgreSQL."""

from __future__ import annotations

from sqlalchemy import Engine

from monitor.health import Health
from monitor.store import queries
from tests.test_web_support import add_targets, add_transition

UP, DOWN, DEGRADED, UNKNOWN = Health.UP, Health.DOWN, Health.DEGRADED, Health.UNKNOWN


def spans(db: Engine, start: float = 1000.0, end: float = 2000.0, **kw) -> list[tuple]:
    return [(s.start, s.end, s.health) for s in queries.health_spans(db, "t", start, end, **kw)]


def test_a_target_that_went_down_shows_up_then_down(db: Engine) -> None:
    add_targets(db, [{"target_id": "t", "health": "down", "since": 1500.0}])
    add_transition(db, "t", 100.0, "unknown", "up", "first probe ok")
    add_transition(db, "t", 1500.0, "up", "down", "2 failed probes")
    add_transition(db, "other", 1200.0, "up", "down", "not this target")
    assert spans(db) == [(1000.0, 1500.0, UP), (1500.0, 2000.0, DOWN)]


def test_changes_within_the_window_and_after_it_are_cut_at_its_edges(db: Engine) -> None:
    add_transition(db, "t", 900.0, "unknown", "up", "")
    add_transition(db, "t", 1200.0, "up", "degraded", "")
    add_transition(db, "t", 1300.0, "degraded", "up", "")
    add_transition(db, "t", 2500.0, "up", "down", "after the window")
    assert spans(db) == [
        (1000.0, 1200.0, UP),
        (1200.0, 1300.0, DEGRADED),
        (1300.0, 2000.0, UP),
    ]


def test_without_a_transition_before_the_window_it_starts_from_the_first_ones_from(
    db: Engine,
) -> None:
    add_transition(db, "t", 1400.0, "unknown", "up", "first probe ok")
    assert spans(db) == [(1000.0, 1400.0, UNKNOWN), (1400.0, 2000.0, UP)]


def test_a_quiet_target_is_in_its_last_health_all_window(db: Engine) -> None:
    add_transition(db, "t", 10.0, "unknown", "down", "")
    assert spans(db) == [(1000.0, 2000.0, DOWN)]


def test_a_target_without_transitions_is_in_its_current_health_since_when_it_says(
    db: Engine,
) -> None:
    add_targets(db, [{"target_id": "t", "health": "up", "since": 1700.0}])
    assert spans(db) == [(1000.0, 1700.0, UNKNOWN), (1700.0, 2000.0, UP)]


def test_flaps_of_the_same_health_merge_and_an_unknown_target_has_no_timeline(
    db: Engine,
) -> None:
    add_transition(db, "t", 900.0, "unknown", "up", "")
    add_transition(db, "t", 1100.0, "up", "up", "flapping marker changed")
    assert spans(db) == [(1000.0, 2000.0, UP)]
    assert queries.health_spans(db, "nobody", 1000.0, 2000.0) == ()


def test_a_busy_window_reads_only_the_newest_transitions(db: Engine) -> None:
    add_transition(db, "t", 900.0, "unknown", "up", "")
    for i in range(6):
        at = 1100.0 + i * 100
        add_transition(
            db, "t", at, "up" if i % 2 == 0 else "down", "down" if i % 2 == 0 else "up", ""
        )
    # limit 2: the last two changes (1500 up→down, 1600 down→up); before them, the first's "from"
    assert spans(db, limit=2) == [
        (1000.0, 1500.0, UP),
        (1500.0, 1600.0, DOWN),
        (1600.0, 2000.0, UP),
    ]


def test_health_by_kind_counts_every_health_per_kind(db: Engine) -> None:
    add_targets(
        db,
        [
            {"target_id": "a", "kind": "sip", "health": "down"},
            {"target_id": "b", "kind": "sip", "health": "up"},
            {"target_id": "c", "kind": "sip", "health": "up"},
            {"target_id": "d", "kind": "tcp", "health": "maintenance"},
        ],
    )
    got = queries.health_by_kind(db)
    assert list(got) == ["sip", "tcp"]
    assert got["sip"] == {
        Health.DOWN: 1,
        Health.DEGRADED: 0,
        Health.UNKNOWN: 0,
        Health.MAINTENANCE: 0,
        Health.UP: 2,
    }
    assert got["tcp"][Health.MAINTENANCE] == 1 and sum(got["tcp"].values()) == 1
