"""Daily uptime arithmetic (monitor.uptime, monitor.components): timelines in, seconds per health out."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from monitor.components import component_health, members
from monitor.config.models import ComponentConfig
from monitor.config.schema import Config
from monitor.health import Health
from monitor.uptime import (
    HealthSeconds,
    Timeline,
    component_seconds,
    day_bounds,
    day_of,
    days_to_roll,
    scope_following,
    scope_of,
    seconds_in,
)
from probes.tcp import TcpTarget

UP, DEGRADED, DOWN, MAINT, UNKNOWN = (
    Health.UP,
    Health.DEGRADED,
    Health.DOWN,
    Health.MAINTENANCE,
    Health.UNKNOWN,
)
H = 3600.0
UTC = ZoneInfo("UTC")
BERLIN = ZoneInfo("Europe/Berlin")
SHANGHAI = ZoneInfo("Asia/Shanghai")


def at(tz: ZoneInfo, *parts: int) -> float:
    return datetime(*parts, tzinfo=tz).timestamp()  # type: ignore[misc]


# -- one target ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("timeline", "expected"),
    [
        pytest.param(Timeline(UP), HealthSeconds(up=24 * H), id="no-transitions-inherits-up"),
        pytest.param(Timeline(DOWN), HealthSeconds(down=24 * H), id="no-transitions-inherits-down"),
        pytest.param(Timeline(None), HealthSeconds(), id="never-observed-counts-nothing"),
        pytest.param(Timeline(None, ((12 * H, UP),)), HealthSeconds(up=12 * H), id="added-at-noon"),
        pytest.param(
            Timeline(None, ((12 * H, UNKNOWN), (12 * H + 30, UP))),
            HealthSeconds(up=12 * H - 30, unknown=30),
            id="added-at-noon-unknown-until-first-probe",
        ),
        pytest.param(
            Timeline(UP, ((1 * H, DOWN), (1.5 * H, UP))),
            HealthSeconds(up=23.5 * H, down=0.5 * H),
            id="half-hour-outage",
        ),
        pytest.param(
            Timeline(UP, ((2 * H, MAINT), (4 * H, UP), (20 * H, DEGRADED))),
            HealthSeconds(up=18 * H, maintenance=2 * H, degraded=4 * H),
            id="maintenance-then-degraded-till-midnight",
        ),
        pytest.param(
            Timeline(UP, ((0.0, DOWN),)), HealthSeconds(down=24 * H), id="change-at-midnight"
        ),
        pytest.param(
            Timeline(UP, ((-5 * H, DOWN),)),
            HealthSeconds(down=24 * H),
            id="change-before-the-day-sets-its-start",
        ),
        pytest.param(
            Timeline(UP, ((30 * H, DOWN),)),
            HealthSeconds(up=24 * H),
            id="change-after-the-day-is-ignored",
        ),
        pytest.param(
            Timeline(UP, ((5 * H, DOWN), (5 * H, UP), (6 * H, DOWN))),
            HealthSeconds(up=6 * H, down=18 * H),
            id="two-changes-at-one-instant-the-last-wins",
        ),
    ],
)
def test_a_targets_day_adds_up_its_time_in_each_health(
    timeline: Timeline, expected: HealthSeconds
) -> None:
    assert seconds_in(timeline, 0.0, 24 * H) == expected


def test_a_running_day_counts_only_up_to_now() -> None:
    assert seconds_in(Timeline(UP, ((1 * H, DOWN),)), 0.0, 3 * H) == HealthSeconds(
        up=1 * H, down=2 * H
    )


# -- days in the site timezone -------------------------------------------------------
@pytest.mark.parametrize(
    ("tz", "day", "hours"),
    [
        pytest.param(UTC, date(2026, 3, 29), 24, id="utc"),
        pytest.param(BERLIN, date(2026, 3, 29), 23, id="berlin-spring-forward"),
        pytest.param(BERLIN, date(2026, 10, 25), 25, id="berlin-fall-back"),
        pytest.param(BERLIN, date(2026, 7, 1), 24, id="berlin-summer"),
        pytest.param(SHANGHAI, date(2026, 3, 29), 24, id="shanghai-has-no-dst"),
        # Santiago moves its clocks at midnight: 2026-09-06 00:00 does not exist.
        pytest.param(ZoneInfo("America/Santiago"), date(2026, 9, 6), 23, id="midnight-skipped"),
    ],
)
def test_a_day_is_its_calendar_day_in_the_site_timezone(
    tz: ZoneInfo, day: date, hours: int
) -> None:
    begin, end = day_bounds(day, tz)
    assert end - begin == hours * H
    assert day_of(begin, tz) == day and day_of(end - 1, tz) == day and day_of(end, tz) != day


def test_a_dst_day_in_berlin_splits_an_outage_at_the_local_hours() -> None:
    # Down from 01:00 to 04:00 local on the spring-forward day: 02:00-03:00 does not
    # exist, so that is two hours of outage, and the day has 21 hours up.
    begin, end = day_bounds(date(2026, 3, 29), BERLIN)
    timeline = Timeline(UP, ((at(BERLIN, 2026, 3, 29, 1), DOWN), (at(BERLIN, 2026, 3, 29, 4), UP)))
    assert seconds_in(timeline, begin, end) == HealthSeconds(up=21 * H, down=2 * H)


def test_a_dst_day_adds_up_to_25_hours_when_the_clocks_go_back() -> None:
    begin, end = day_bounds(date(2026, 10, 25), BERLIN)
    timeline = Timeline(DOWN, ((at(BERLIN, 2026, 10, 25, 12), UP),))
    # 00:00-12:00 local is 13 hours that day (02:00-03:00 happens twice).
    assert seconds_in(timeline, begin, end) == HealthSeconds(down=13 * H, up=12 * H)


@pytest.mark.parametrize(
    ("newest", "oldest", "now", "keep", "expected"),
    [
        pytest.param(None, None, at(UTC, 2026, 5, 3, 10), 400, [], id="nothing-to-roll"),
        pytest.param(
            None,
            at(UTC, 2026, 5, 1, 23),
            at(UTC, 2026, 5, 3, 10),
            400,
            [date(2026, 5, 1), date(2026, 5, 2), date(2026, 5, 3)],
            id="first-run-from-the-oldest-transition-through-today",
        ),
        pytest.param(
            None,
            at(UTC, 2025, 1, 1),
            at(UTC, 2026, 5, 3, 10),
            1,
            [date(2026, 5, 2), date(2026, 5, 3)],
            id="first-run-no-further-back-than-kept",
        ),
        pytest.param(
            date(2026, 5, 2),
            at(UTC, 2025, 1, 1),
            at(UTC, 2026, 5, 3, 0, 5),
            400,
            [date(2026, 5, 2), date(2026, 5, 3)],
            id="the-newest-day-is-rolled-again-it-was-still-running",
        ),
        pytest.param(
            date(2026, 5, 3),
            None,
            at(UTC, 2026, 5, 3, 10),
            None,
            [date(2026, 5, 3)],
            id="same-day-again",
        ),
    ],
)
def test_days_to_roll(
    newest: date | None, oldest: float | None, now: float, keep: int | None, expected: list[date]
) -> None:
    assert days_to_roll(newest, oldest, now, UTC, keep) == expected


def test_the_day_of_an_instant_is_the_site_timezones() -> None:
    instant = at(UTC, 2026, 5, 1, 20)  # 04:00 on 2 May in Shanghai
    assert (day_of(instant, UTC), day_of(instant, SHANGHAI)) == (date(2026, 5, 1), date(2026, 5, 2))


# -- components --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("healths", "expected"),
    [
        pytest.param([], None, id="no-member-observed"),
        pytest.param([UNKNOWN, UNKNOWN], UNKNOWN, id="all-unknown"),
        pytest.param([UP, UNKNOWN], UP, id="unknown-does-not-count"),
        pytest.param([MAINT, UNKNOWN], MAINT, id="maintenance-when-nothing-else-counts"),
        pytest.param([MAINT, UP], UP, id="maintenance-does-not-count-beside-others"),
        pytest.param([DOWN, DOWN, MAINT], DOWN, id="all-counted-down"),
        pytest.param([DOWN, UP], DEGRADED, id="partial-outage-is-degraded"),
        pytest.param([DEGRADED, UP], DEGRADED, id="one-degraded"),
        pytest.param([UP, UP], UP, id="all-up"),
    ],
)
def test_component_health_from_its_members(healths: list[Health], expected: Health | None) -> None:
    assert component_health(healths) is expected


def test_a_components_day_follows_its_members_moment_by_moment() -> None:
    a = Timeline(UP, ((2 * H, DOWN), (4 * H, UP)))
    b = Timeline(UP, ((3 * H, DOWN), (5 * H, UP)))
    # 2-3 one down (degraded), 3-4 both down, 4-5 one down, else up.
    assert component_seconds([a, b], 0.0, 24 * H) == HealthSeconds(
        up=21 * H, degraded=2 * H, down=1 * H
    )


def test_a_member_added_mid_day_counts_from_its_first_observation() -> None:
    old = Timeline(DOWN)
    new = Timeline(None, ((12 * H, UP),))
    # Alone the old member is down all morning; once the new one is up it is a partial outage.
    assert component_seconds([old, new], 0.0, 24 * H) == HealthSeconds(down=12 * H, degraded=12 * H)


def test_a_component_nobody_observed_has_no_time() -> None:
    assert component_seconds([Timeline(None)], 0.0, 24 * H) == HealthSeconds()
    assert component_seconds([], 0.0, 24 * H) == HealthSeconds()


def test_one_member_makes_the_component_what_it_is() -> None:
    timeline = Timeline(UP, ((1 * H, MAINT), (2 * H, DEGRADED), (3 * H, UP)))
    assert component_seconds([timeline], 0.0, 24 * H) == seconds_in(timeline, 0.0, 24 * H)


def test_component_members_are_its_list_then_its_tag_selector_without_repeats() -> None:
    targets = [
        TcpTarget(id="a", kind="tcp", address="192.0.2.1:1", tags={"carrier": "x"}),
        TcpTarget(id="b", kind="tcp", address="192.0.2.1:2", tags={"carrier": "y"}),
        TcpTarget(id="c", kind="tcp", address="192.0.2.1:3", tags={"carrier": "x"}),
    ]
    component = ComponentConfig(
        id="calls",
        name={"zh-CN": "呼叫", "en": "Calls"},
        targets=["c", "b"],
        selector={"carrier": "x"},
    )
    assert members(component, targets) == ["c", "b", "a"]


def test_the_rollup_scope_comes_from_the_config_and_follows_a_reload() -> None:
    def config(timezone: str) -> Config:
        return Config.model_validate(
            {
                "site": {"timezone": timezone},
                "storage": {"retention": {"uptime": {"max_age": "90d"}}},
                "targets": [
                    {"id": "a", "kind": "tcp", "address": "192.0.2.1:1", "tags": {"carrier": "x"}},
                    {"id": "b", "kind": "tcp", "address": "192.0.2.1:2"},
                ],
                "components": [
                    {
                        "id": "calls",
                        "name": {"zh-CN": "呼叫", "en": "Calls"},
                        "selector": {"carrier": "x"},
                    }
                ],
            }
        )

    running = {"config": config("Asia/Shanghai")}
    scope = scope_following(lambda: running["config"])
    first = scope()
    assert (first.tz, dict(first.components), first.keep_days) == (SHANGHAI, {"calls": ("a",)}, 90)
    assert scope() is first  # same config: not resolved again
    running["config"] = config("Europe/Berlin")
    assert scope().tz == BERLIN
    assert scope_of(running["config"]) == scope()
