"""Who is on call: rotations, handoffs across summer time, layers, overrides, now and next.

Instants are written as local wall times in the schedule's zone (``at("2026-12-07
09:00")``) and compared as epoch seconds; nothing reads the clock.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from notify.people import ScheduleConfig
from notify.schedules import OnCall, Override, Shift, on_call, on_call_at, timeline

SHANGHAI = "Asia/Shanghai"
BERLIN = "Europe/Berlin"
HOUR = 3600.0


def at(text: str, zone: str = SHANGHAI) -> float:
    """Epoch seconds of a wall time in ``zone``; for an ambiguous time, the first."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp()


def utc(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def schedule(
    every: str,
    handoff: str,
    members: list[str],
    start: str | None = None,
    zone: str = SHANGHAI,
    layers: list[dict[str, Any]] | None = None,
) -> ScheduleConfig:
    rotation: dict[str, Any] = {"every": every, "handoff": handoff, "members": members}
    if start is not None:
        rotation["start"] = start
    return ScheduleConfig.model_validate(
        {"id": "noc", "timezone": zone, "rotation": rotation, "layers": layers or []}
    )


WEEKLY = schedule("1w", "mon 09:00", ["zhang", "li"], start="2026-12-07")
"""Zhang from Monday 7 December 09:00 (Shanghai), Li the week after, and so on."""
EVERY_3_DAYS = schedule("3d", "08:00", ["a", "b", "c"], start="2026-12-01")
LATE_START = schedule("1w", "mon 09:00", ["zhang", "li"], start="2026-12-09")
"""Started on a Wednesday: the first shift is the first Monday handoff after it."""
BERLIN_SPRING = schedule("1d", "09:00", ["anna", "ben"], start="2026-03-27", zone=BERLIN)
"""Clocks go forward on Sunday 29 March 2026 at 02:00 (to 03:00)."""
BERLIN_AUTUMN = schedule("1d", "09:00", ["anna", "ben"], start="2026-10-23", zone=BERLIN)
"""Clocks go back on Sunday 25 October 2026 at 03:00 (to 02:00)."""
NIGHTS = {
    "rotation": {
        "every": "1d",
        "handoff": "18:00",
        "members": ["chen", "wang"],
        "start": "2026-12-07",
    },
    "days": ["mon", "tue", "wed", "thu", "fri"],
    "hours": "18:00-09:00",
}
LAYERED = schedule("1w", "mon 09:00", ["zhang", "li"], start="2026-12-07", layers=[NIGHTS])
"""Weekdays 18:00 to 09:00 the next morning, Chen and Wang take turns nightly above Zhang and Li."""
LATE_LAYER = schedule(
    "1w",
    "mon 09:00",
    ["zhang", "li"],
    start="2026-12-07",
    layers=[{**NIGHTS, "rotation": {**NIGHTS["rotation"], "start": "2026-12-14"}}],
)
BERLIN_SATURDAY_NIGHT = schedule(
    "1w",
    "mon 09:00",
    ["anna"],
    zone=BERLIN,
    layers=[
        {
            "rotation": {"every": "1w", "handoff": "mon 09:00", "members": ["ben"]},
            "days": ["sat"],
            "hours": "22:00-06:00",
        }
    ],
)


@pytest.mark.parametrize(
    ("sched", "when", "expected"),
    [
        pytest.param(WEEKLY, at("2026-12-07 08:59"), None, id="before-the-start-no-one"),
        pytest.param(
            WEEKLY, at("2026-12-07 09:00"), "zhang", id="first-shift-begins-at-the-handoff"
        ),
        pytest.param(WEEKLY, at("2026-12-11 23:00"), "zhang", id="all-week"),
        pytest.param(WEEKLY, at("2026-12-14 09:00") - 0.001, "zhang", id="until-the-next-handoff"),
        pytest.param(WEEKLY, at("2026-12-14 09:00"), "li", id="second-member-at-the-handoff"),
        pytest.param(WEEKLY, at("2026-12-21 09:00"), "zhang", id="turns-come-round-again"),
        pytest.param(WEEKLY, at("2027-01-04 09:00"), "zhang", id="four-weeks-on"),
        pytest.param(
            LATE_START, at("2026-12-10 12:00"), None, id="start-midweek-waits-for-the-day"
        ),
        pytest.param(LATE_START, at("2026-12-14 09:00"), "zhang", id="start-midweek-first-monday"),
        pytest.param(EVERY_3_DAYS, at("2026-12-04 07:59"), "a", id="n-days-first"),
        pytest.param(EVERY_3_DAYS, at("2026-12-04 08:00"), "b", id="n-days-second"),
        pytest.param(EVERY_3_DAYS, at("2026-12-09 23:00"), "c", id="n-days-third"),
        pytest.param(EVERY_3_DAYS, at("2026-12-10 08:00"), "a", id="n-days-round-again"),
        pytest.param(
            BERLIN_SPRING, at("2026-03-29 08:59", BERLIN), "ben", id="spring-forward-before-0900"
        ),
        pytest.param(
            BERLIN_SPRING, at("2026-03-29 09:00", BERLIN), "anna", id="spring-forward-at-0900"
        ),
        pytest.param(
            BERLIN_AUTUMN, at("2026-10-25 08:59", BERLIN), "ben", id="fall-back-before-0900"
        ),
        pytest.param(BERLIN_AUTUMN, at("2026-10-25 09:00", BERLIN), "anna", id="fall-back-at-0900"),
        pytest.param(LAYERED, at("2026-12-07 12:00"), "zhang", id="daytime-the-base-shows"),
        pytest.param(LAYERED, at("2026-12-07 20:00"), "chen", id="night-layer-wins"),
        pytest.param(LAYERED, at("2026-12-08 08:59"), "chen", id="night-runs-past-midnight"),
        pytest.param(LAYERED, at("2026-12-08 09:00"), "zhang", id="morning-the-base-again"),
        pytest.param(LAYERED, at("2026-12-08 20:00"), "wang", id="night-layer-rotates"),
        pytest.param(LAYERED, at("2026-12-12 08:00"), "chen", id="friday-night-into-saturday"),
        pytest.param(LAYERED, at("2026-12-12 20:00"), "zhang", id="no-window-on-saturday"),
        pytest.param(LAYERED, at("2026-12-14 10:00"), "li", id="layered-week-two-day"),
        pytest.param(LAYERED, at("2026-12-14 20:00"), "wang", id="layered-week-two-night"),
        pytest.param(LATE_LAYER, at("2026-12-08 20:00"), "zhang", id="layer-before-its-start"),
        pytest.param(LATE_LAYER, at("2026-12-14 20:00"), "chen", id="layer-from-its-start"),
        pytest.param(
            BERLIN_SATURDAY_NIGHT, at("2026-03-29 05:59", BERLIN), "ben", id="window-across-dst"
        ),
        pytest.param(
            BERLIN_SATURDAY_NIGHT, at("2026-03-29 06:00", BERLIN), "anna", id="window-ends-local"
        ),
    ],
)
def test_who_is_on_call(sched: ScheduleConfig, when: float, expected: str | None) -> None:
    assert on_call_at(sched, when) == expected


def test_a_rotation_without_start_keeps_its_order_from_a_fixed_reference() -> None:
    # Counted from Monday 3 January 2000: 1,405 weeks before 7 December 2026.
    unstarted = schedule("1w", "mon 09:00", ["zhang", "li"])
    assert (dt.date(2026, 12, 7) - dt.date(2000, 1, 3)).days // 7 == 1405
    assert on_call_at(unstarted, at("2026-12-07 09:00")) == "li"
    assert on_call_at(unstarted, at("2026-12-14 09:00")) == "zhang"
    assert on_call_at(unstarted, at("1999-12-31 12:00")) == "li"  # no start: never empty


LI_COVERS_FRIDAY = Override("noc", "li", at("2026-12-11 00:00"), at("2026-12-12 00:00"))
CHEN_AT_NOON = Override("noc", "chen", at("2026-12-11 10:00"), at("2026-12-11 14:00"))
OTHER_SCHEDULE = Override("sip-team", "wang", at("2026-12-11 00:00"), at("2026-12-12 00:00"))


@pytest.mark.parametrize(
    ("overrides", "when", "expected"),
    [
        pytest.param(
            [LI_COVERS_FRIDAY], at("2026-12-11 12:00"), "li", id="li-covers-zhang-on-friday"
        ),
        pytest.param([LI_COVERS_FRIDAY], at("2026-12-11 20:00"), "li", id="override-beats-layers"),
        pytest.param([LI_COVERS_FRIDAY], at("2026-12-10 23:59"), "wang", id="before-the-override"),
        pytest.param(
            [LI_COVERS_FRIDAY], at("2026-12-12 00:00"), "chen", id="override-ends-exclusive"
        ),
        pytest.param(
            [LI_COVERS_FRIDAY, CHEN_AT_NOON],
            at("2026-12-11 12:00"),
            "chen",
            id="later-override-wins",
        ),
        pytest.param(
            [LI_COVERS_FRIDAY, CHEN_AT_NOON], at("2026-12-11 15:00"), "li", id="earlier-shows-after"
        ),
        pytest.param(
            [OTHER_SCHEDULE], at("2026-12-11 12:00"), "zhang", id="other-schedule-ignored"
        ),
    ],
)
def test_overrides(overrides: list[Override], when: float, expected: str) -> None:
    assert on_call_at(LAYERED, when, overrides) == expected


@pytest.mark.parametrize(
    ("sched", "when", "expected"),
    [
        pytest.param(
            WEEKLY,
            at("2026-12-08 12:00"),
            OnCall(
                Shift("zhang", at("2026-12-07 09:00"), at("2026-12-14 09:00")),
                Shift("li", at("2026-12-14 09:00"), at("2026-12-21 09:00")),
            ),
            id="weekly-now-and-next",
        ),
        pytest.param(
            WEEKLY,
            at("2026-12-06 12:00"),
            OnCall(None, Shift("zhang", at("2026-12-07 09:00"), at("2026-12-14 09:00"))),
            id="before-the-start-no-one-now-first-member-next",
        ),
        pytest.param(
            LAYERED,
            at("2026-12-07 12:00"),
            OnCall(
                Shift("zhang", at("2026-12-07 09:00"), at("2026-12-07 18:00")),
                Shift("chen", at("2026-12-07 18:00"), at("2026-12-08 09:00")),
            ),
            id="layered-day-then-night",
        ),
        pytest.param(
            LAYERED,
            at("2026-12-11 20:00"),
            OnCall(
                Shift("chen", at("2026-12-11 18:00"), at("2026-12-12 09:00")),
                # Saturday and Sunday have no night window: Zhang until Monday's handoff.
                Shift("zhang", at("2026-12-12 09:00"), at("2026-12-14 09:00")),
            ),
            id="friday-night-then-the-weekend",
        ),
        pytest.param(
            schedule("1w", "mon 09:00", ["zhang"]),
            at("2026-12-08 12:00"),
            OnCall(Shift("zhang", None, None), None),
            id="one-member-for-ever-no-next",
        ),
        pytest.param(
            schedule("1w", "mon 09:00", ["zhang", "zhang", "li"], start="2026-12-07"),
            at("2026-12-08 12:00"),
            OnCall(
                Shift("zhang", at("2026-12-07 09:00"), at("2026-12-21 09:00")),
                Shift("li", at("2026-12-21 09:00"), at("2026-12-28 09:00")),
            ),
            id="same-member-twice-is-one-shift",
        ),
    ],
)
def test_now_and_next(sched: ScheduleConfig, when: float, expected: OnCall) -> None:
    assert on_call(sched, when) == expected


def test_next_after_an_override_is_whoever_the_layers_say() -> None:
    found = on_call(LAYERED, at("2026-12-11 12:00"), [LI_COVERS_FRIDAY])
    assert found == OnCall(
        Shift("li", at("2026-12-11 00:00"), at("2026-12-12 00:00")),
        Shift("chen", at("2026-12-12 00:00"), at("2026-12-12 09:00")),
    )


@pytest.mark.parametrize(
    ("sched", "when", "start", "end", "hours"),
    [
        pytest.param(
            BERLIN_SPRING,
            at("2026-03-28 12:00", BERLIN),
            utc("2026-03-28 08:00"),  # 09:00 CET
            utc("2026-03-29 07:00"),  # 09:00 CEST
            23,
            id="spring-shift-is-23-hours",
        ),
        pytest.param(
            BERLIN_AUTUMN,
            at("2026-10-24 12:00", BERLIN),
            utc("2026-10-24 07:00"),  # 09:00 CEST
            utc("2026-10-25 08:00"),  # 09:00 CET
            25,
            id="autumn-shift-is-25-hours",
        ),
        pytest.param(
            schedule("1w", "sun 02:30", ["anna", "ben"], start="2026-03-22", zone=BERLIN),
            at("2026-03-25 12:00", BERLIN),
            utc("2026-03-22 01:30"),  # 02:30 CET
            utc("2026-03-29 01:30"),  # 02:30 does not exist that day: 03:30 CEST
            168,
            id="handoff-in-the-spring-gap-comes-after-it",
        ),
        pytest.param(
            schedule("1w", "sun 02:30", ["anna", "ben"], start="2026-10-18", zone=BERLIN),
            at("2026-10-21 12:00", BERLIN),
            utc("2026-10-18 00:30"),  # 02:30 CEST
            utc("2026-10-25 00:30"),  # 02:30 happens twice that day: the first, CEST
            168,
            id="handoff-in-the-repeated-hour-is-the-first",
        ),
        pytest.param(
            schedule("1d", "09:00", ["a", "b"], start="2026-03-27", zone=SHANGHAI),
            at("2026-03-28 12:00"),
            utc("2026-03-28 01:00"),
            utc("2026-03-29 01:00"),
            24,
            id="no-summer-time-in-shanghai",
        ),
    ],
)
def test_handoffs_are_local_wall_times(
    sched: ScheduleConfig, when: float, start: float, end: float, hours: int
) -> None:
    now = on_call(sched, when).now
    assert now is not None
    assert (now.start, now.end) == (start, end)
    assert now.end - now.start == hours * HOUR


def test_a_timeline_lists_the_shifts_cut_at_its_ends_and_skips_gaps() -> None:
    assert timeline(LAYERED, at("2026-12-07 00:00"), at("2026-12-09 00:00")) == [
        Shift("zhang", at("2026-12-07 09:00"), at("2026-12-07 18:00")),
        Shift("chen", at("2026-12-07 18:00"), at("2026-12-08 09:00")),
        Shift("zhang", at("2026-12-08 09:00"), at("2026-12-08 18:00")),
        Shift("wang", at("2026-12-08 18:00"), at("2026-12-09 00:00")),
    ]
    assert timeline(LAYERED, at("2026-12-09 00:00"), at("2026-12-09 00:00")) == []


def test_a_timeline_with_an_override_has_the_override_as_one_shift() -> None:
    shifts = timeline(LAYERED, at("2026-12-10 12:00"), at("2026-12-12 12:00"), [LI_COVERS_FRIDAY])
    assert shifts == [
        Shift("zhang", at("2026-12-10 12:00"), at("2026-12-10 18:00")),
        Shift("wang", at("2026-12-10 18:00"), at("2026-12-11 00:00")),
        Shift("li", at("2026-12-11 00:00"), at("2026-12-12 00:00")),
        Shift("chen", at("2026-12-12 00:00"), at("2026-12-12 09:00")),
        Shift("zhang", at("2026-12-12 09:00"), at("2026-12-12 12:00")),
    ]


def test_every_minute_of_a_year_agrees_with_the_shifts_of_the_timeline() -> None:
    # The timeline is built from change points; person_at is asked at each
    # instant on its own. They must agree everywhere, DST days included.
    sched = schedule(
        "1d",
        "09:00",
        ["anna", "ben", "carl"],
        start="2026-01-05",
        zone=BERLIN,
        layers=[{**NIGHTS, "rotation": {**NIGHTS["rotation"], "start": "2026-01-05"}}],
    )
    since, until = at("2026-01-01 00:00", BERLIN), at("2027-01-01 00:00", BERLIN)
    shifts = timeline(sched, since, until)
    for shift in shifts:
        assert shift.start is not None and shift.end is not None
        for when in (shift.start, shift.end - 1, (shift.start + shift.end) / 2):
            assert on_call_at(sched, when) == shift.person
    covered = sum(s.end - s.start for s in shifts if s.start is not None and s.end is not None)
    # Before 5 January 09:00 no one is on call; from then on someone always is.
    assert covered == until - at("2026-01-05 09:00", BERLIN)
