"""One incident's paging: levels, repeats, acknowledge, resolve, dedup, and idempotence.

The policy is the issue's: level 1 the NOC schedule, level 2 Chen five minutes
later, one repeat. ``T0`` is a Tuesday 10:00 in Shanghai (Zhang on call).
Times are plain floats; ``plan`` reads no clock.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from notify.escalation import IncidentFacts, Page, Plan, Step, Unstaffed, plan, steps
from notify.people import EscalationConfig, PersonConfig, ScheduleConfig
from notify.schedules import Override

MINUTE = 60.0


def at(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


T0 = at("2026-12-08 10:00")
NOC = ScheduleConfig.model_validate(
    {
        "id": "noc",
        "timezone": "Asia/Shanghai",
        "rotation": {
            "every": "1w",
            "handoff": "mon 09:00",
            "members": ["zhang", "li"],
            "start": "2026-12-07",
        },
    }
)
SCHEDULES = {"noc": NOC}
PEOPLE = [
    PersonConfig(id=name, user=name, name=name.title(), contact=["sms"])
    for name in ("zhang", "li", "chen")
]


def policy(levels: list[dict[str, object]], **more: object) -> EscalationConfig:
    return EscalationConfig.model_validate({"id": "trunks", "levels": levels, **more})


TRUNKS = policy(
    [{"notify": ["schedule:noc"]}, {"after": "5m", "notify": ["person:chen"]}], repeat=1
)


def page(person: str, reason: str, level: int | None, repeat: int | None, minutes: float) -> Page:
    return Page(person, reason, level, repeat, T0 + minutes * MINUTE)  # type: ignore[arg-type]


ZHANG_OPENED = page("zhang", "opened", 1, 0, 0)
CHEN_ESCALATED = page("chen", "escalated", 2, 0, 5)
ZHANG_REPEAT = page("zhang", "repeat", 1, 1, 10)
CHEN_REPEAT = page("chen", "repeat", 2, 1, 15)


def step(level: int, repeat: int, minutes: float) -> Step:
    return Step(level, repeat, T0 + minutes * MINUTE)


def test_steps_fire_after_the_level_before_and_repeat_after_the_last() -> None:
    assert steps(TRUNKS, T0) == [step(1, 0, 0), step(2, 0, 5), step(1, 1, 10), step(2, 1, 15)]
    delayed = policy(
        [
            {"after": "1m", "notify": ["schedule:noc"]},
            {"after": "5m", "notify": ["person:chen"]},
            {"after": "10m", "notify": ["person:li"]},
        ],
        repeat=2,
        repeat_after="30m",
    )
    assert steps(delayed, T0) == [
        step(1, 0, 1), step(2, 0, 6), step(3, 0, 16),
        step(1, 1, 46), step(2, 1, 51), step(3, 1, 61),
        step(1, 2, 91), step(2, 2, 96), step(3, 2, 106),
    ]  # fmt: skip


OPEN = IncidentFacts(opened_at=T0)
ACKED_BY_ZHANG = IncidentFacts(T0, acknowledged_at=T0 + 7 * MINUTE, acknowledged_by="zhang")


@pytest.mark.parametrize(
    ("facts", "minutes", "made", "due", "next_step"),
    [
        pytest.param(OPEN, 0, [], [ZHANG_OPENED], step(2, 0, 5), id="level-1-pages-whoever-is-on-call-at-once"),
        pytest.param(OPEN, 1, [ZHANG_OPENED], [], step(2, 0, 5), id="asked-again-pages-no-one-again"),
        pytest.param(OPEN, 4.99, [ZHANG_OPENED], [], step(2, 0, 5), id="just-before-level-2-nothing"),
        pytest.param(OPEN, 5, [ZHANG_OPENED], [CHEN_ESCALATED], step(1, 1, 10), id="level-2-after-its-delay"),
        pytest.param(
            OPEN, 10, [ZHANG_OPENED, CHEN_ESCALATED], [ZHANG_REPEAT], step(2, 1, 15),
            id="repeat-starts-at-level-1-the-last-levels-after-later",
        ),
        pytest.param(
            OPEN, 15, [ZHANG_OPENED, CHEN_ESCALATED, ZHANG_REPEAT], [CHEN_REPEAT], None,
            id="last-repeat-last-level-then-nothing-more-fires",
        ),
        pytest.param(
            OPEN, 60, [ZHANG_OPENED, CHEN_ESCALATED, ZHANG_REPEAT, CHEN_REPEAT], [], None,
            id="all-made-nothing-due",
        ),
        pytest.param(
            OPEN, 12, [], [CHEN_ESCALATED, ZHANG_REPEAT], step(2, 1, 15),
            id="late-call-one-page-per-person-for-their-latest-step",
        ),
        pytest.param(
            OPEN, 12, [ZHANG_OPENED], [CHEN_ESCALATED, ZHANG_REPEAT], step(2, 1, 15),
            id="late-call-after-some-were-made",
        ),
        pytest.param(
            ACKED_BY_ZHANG, 60, [ZHANG_OPENED], [], None, id="ack-stops-the-paging",
        ),
        pytest.param(
            ACKED_BY_ZHANG, 7, [ZHANG_OPENED, CHEN_ESCALATED], [page("chen", "acknowledged", None, None, 7)], None,
            id="ack-tells-the-others-paged-and-not-the-one-who-took-it",
        ),
        pytest.param(
            ACKED_BY_ZHANG, 8,
            [ZHANG_OPENED, CHEN_ESCALATED, page("chen", "acknowledged", None, None, 7)], [], None,
            id="ack-notice-once",
        ),
        pytest.param(
            IncidentFacts(T0, T0 + 7 * MINUTE, "admin"), 7, [ZHANG_OPENED, CHEN_ESCALATED],
            [page("zhang", "acknowledged", None, None, 7), page("chen", "acknowledged", None, None, 7)],
            None,
            id="ack-by-a-user-who-is-no-person-tells-everyone-paged",
        ),
        pytest.param(
            ACKED_BY_ZHANG, 5, [ZHANG_OPENED], [CHEN_ESCALATED], step(1, 1, 10),
            id="an-ack-later-than-now-has-not-happened-yet",
        ),
        pytest.param(
            ACKED_BY_ZHANG, 6, [], [ZHANG_OPENED, CHEN_ESCALATED], step(1, 1, 10),
            id="a-late-call-before-the-ack-makes-the-missed-pages",
        ),
        pytest.param(
            IncidentFacts(T0, resolved_at=T0 + 7 * MINUTE), 7, [ZHANG_OPENED, CHEN_ESCALATED],
            [page("zhang", "resolved", None, None, 7), page("chen", "resolved", None, None, 7)], None,
            id="resolve-tells-everyone-paged",
        ),
        pytest.param(
            IncidentFacts(T0, T0 + 1 * MINUTE, "zhang", T0 + 7 * MINUTE), 7,
            [ZHANG_OPENED], [page("zhang", "resolved", None, None, 7)], None,
            id="resolve-after-ack-tells-the-one-who-took-it-too",
        ),
        pytest.param(
            IncidentFacts(T0, T0 + 6 * MINUTE, "zhang", T0 + 7 * MINUTE), 8,
            [ZHANG_OPENED, CHEN_ESCALATED], [page("zhang", "resolved", None, None, 7), page("chen", "resolved", None, None, 7)],
            None,
            id="resolve-drops-an-ack-notice-not-yet-made",
        ),
        pytest.param(
            IncidentFacts(T0, resolved_at=T0 + 7 * MINUTE), 8, [ZHANG_OPENED],
            [page("zhang", "resolved", None, None, 7)], None,
            id="resolve-drops-pages-not-yet-made-and-tells-only-those-paged",
        ),
        pytest.param(
            IncidentFacts(T0, resolved_at=T0 + 7 * MINUTE), 9,
            [ZHANG_OPENED, CHEN_ESCALATED, page("zhang", "resolved", None, None, 7), page("chen", "resolved", None, None, 7)],
            [], None,
            id="resolved-notice-once",
        ),
        pytest.param(
            IncidentFacts(T0 - 1, resolved_at=T0 - 0.5), 0, [], [], None,
            id="resolved-before-anyone-was-paged-tells-no-one",
        ),
    ],
)  # fmt: skip
def test_what_is_due(
    facts: IncidentFacts, minutes: float, made: list[Page], due: list[Page], next_step: Step | None
) -> None:
    found = plan(TRUNKS, facts, T0 + minutes * MINUTE, made, schedules=SCHEDULES, people=PEOPLE)
    assert found == Plan(tuple(due), next_step)


def test_a_person_named_twice_in_one_level_gets_one_page() -> None:
    both = policy([{"notify": ["schedule:noc", "person:zhang", "person:chen"]}])
    found = plan(both, OPEN, T0, [], schedules=SCHEDULES)
    assert found.due == (ZHANG_OPENED, page("chen", "opened", 1, 0, 0))


def test_schedule_means_whoever_is_on_call_when_the_level_fires() -> None:
    # Opened five minutes before Monday's handoff: Zhang gets level 1, Li the repeat.
    opened = at("2026-12-14 08:55")
    facts = IncidentFacts(opened)
    made: list[Page] = []
    seen = []
    for minute in range(0, 20):
        now = opened + minute * MINUTE
        due = plan(TRUNKS, facts, now, made, schedules=SCHEDULES).due
        made += due
        seen += [(minute, p.person, p.reason, p.level, p.repeat) for p in due]
    assert seen == [
        (0, "zhang", "opened", 1, 0),
        (5, "chen", "escalated", 2, 0),
        (10, "li", "repeat", 1, 1),
        (15, "chen", "repeat", 2, 1),
    ]


def test_an_override_counts_when_the_level_fires() -> None:
    cover = Override("noc", "li", T0 - MINUTE, T0 + MINUTE)
    found = plan(TRUNKS, OPEN, T0, [], schedules=SCHEDULES, overrides=[cover])
    assert found.due == (page("li", "opened", 1, 0, 0),)


def test_a_schedule_with_no_one_on_call_pages_no_one_and_says_so() -> None:
    # Before the rotation's first shift (Monday 7 December 09:00) the NOC has no one.
    opened = at("2026-12-06 10:00")
    found = plan(TRUNKS, IncidentFacts(opened), opened, [], schedules=SCHEDULES)
    assert found == Plan((), Step(2, 0, opened + 5 * MINUTE), (Unstaffed(1, 0, "noc", opened),))
    later = plan(TRUNKS, IncidentFacts(opened), opened + 5 * MINUTE, [], schedules=SCHEDULES)
    assert later.due == (Page("chen", "escalated", 2, 0, opened + 5 * MINUTE),)


def test_the_first_levels_after_delays_the_first_page() -> None:
    waiting = policy([{"after": "2m", "notify": ["schedule:noc"]}])
    assert plan(waiting, OPEN, T0 + MINUTE, [], schedules=SCHEDULES) == Plan((), step(1, 0, 2))
    resolved = IncidentFacts(T0, resolved_at=T0 + MINUTE)
    assert plan(waiting, resolved, T0 + 3 * MINUTE, [], schedules=SCHEDULES) == Plan((), None)


def test_pages_are_the_same_page_by_key_not_by_time() -> None:
    # A page stored with a rounded time (the DB keeps milliseconds) still counts as made.
    stored = Page("zhang", "opened", 1, 0, T0 + 0.0004)
    assert plan(TRUNKS, OPEN, T0, [stored], schedules=SCHEDULES).due == ()


@pytest.mark.parametrize("every", [1, 7, 30, 61, 299], ids=lambda s: f"asked-every-{s}s")
def test_however_often_it_is_asked_each_page_is_made_once(every: int) -> None:
    acked = IncidentFacts(T0, acknowledged_at=T0 + 12 * MINUTE, acknowledged_by="chen")
    made: list[Page] = []
    now = T0
    while now <= T0 + 30 * MINUTE:
        made += plan(TRUNKS, acked, now, made, schedules=SCHEDULES, people=PEOPLE).due
        now += every
    keys = [p.key for p in made]
    assert len(keys) == len(set(keys))
    assert ("zhang", "acknowledged", None, None) in keys
    assert all(p.person != "chen" or p.reason != "acknowledged" for p in made)
    assert {p.person for p in made if p.reason in ("opened", "escalated", "repeat")} == {
        "zhang",
        "chen",
    }
