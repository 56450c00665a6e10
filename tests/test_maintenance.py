"""Maintenance windows: one-off and recurring, in the site timezone, across
midnight and DST changes, and the errors a bad window gets."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from core.config import MaintenanceWindow
from monitor.maintenance import (
    MaintenanceCheck,
    check_maintenance,
    cron_trigger,
    in_maintenance,
    occurrence,
    parse_datetime,
    resolve_tz,
    validate_cron,
    validate_window,
)

SHANGHAI = "Asia/Shanghai"
BERLIN = "Europe/Berlin"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))  # type: ignore[misc]


ONE_OFF = MaintenanceWindow(start="2026-11-24T02:00", end="2026-11-24T04:00", reason="SBC upgrade")

ONE_OFF_CASES = [
    # id, now (naive datetimes are in the site timezone), covered
    ("a-second-before-start", datetime(2026, 11, 24, 1, 59, 59), False),
    ("at-start-is-inside", datetime(2026, 11, 24, 2, 0), True),
    ("in-the-middle", datetime(2026, 11, 24, 3, 0), True),
    ("at-end-is-outside", datetime(2026, 11, 24, 4, 0), False),
    ("the-same-wall-time-in-utc-is-not-inside", utc(2026, 11, 24, 3, 0), False),
    ("aware-utc-inside", utc(2026, 11, 23, 19, 0), True),
    ("epoch-seconds-inside", utc(2026, 11, 23, 18, 30).timestamp(), True),
    ("epoch-seconds-after", utc(2026, 11, 23, 20, 0).timestamp(), False),
]


@pytest.mark.parametrize(
    ("now", "covered"), [c[1:] for c in ONE_OFF_CASES], ids=[c[0] for c in ONE_OFF_CASES]
)
def test_one_off_window_in_site_timezone(now: datetime | float, covered: bool) -> None:
    found = in_maintenance([ONE_OFF], now, SHANGHAI)
    assert (found is ONE_OFF) is covered


def test_one_off_window_with_an_explicit_offset_ignores_the_site_timezone() -> None:
    window = MaintenanceWindow(start="2026-11-24T02:00Z", end="2026-11-24T04:00+00:00")
    assert in_maintenance([window], utc(2026, 11, 24, 3, 0), SHANGHAI) is window
    assert in_maintenance([window], local(SHANGHAI, 2026, 11, 24, 3, 0), SHANGHAI) is None


def test_occurrence_gives_the_window_bounds_in_utc() -> None:
    assert occurrence(ONE_OFF, datetime(2026, 11, 24, 3, 0), SHANGHAI) == (
        utc(2026, 11, 23, 18, 0),
        utc(2026, 11, 23, 20, 0),
    )


NIGHTLY = MaintenanceWindow(cron="0 23 * * *", duration="2h", reason="nightly backup")
FRIDAY_NIGHT = MaintenanceWindow(cron="0 23 * * 5", duration="2h", reason="carrier works")

RECURRING_CASES = [
    # id, window, now in Asia/Shanghai (naive), covered
    ("nightly-a-second-before", NIGHTLY, datetime(2026, 11, 23, 22, 59, 59), False),
    ("nightly-at-start", NIGHTLY, datetime(2026, 11, 23, 23, 0), True),
    ("nightly-after-midnight", NIGHTLY, datetime(2026, 11, 24, 0, 30), True),
    ("nightly-last-second", NIGHTLY, datetime(2026, 11, 24, 0, 59, 59), True),
    ("nightly-at-end", NIGHTLY, datetime(2026, 11, 24, 1, 0), False),
    ("nightly-at-noon", NIGHTLY, datetime(2026, 11, 24, 12, 0), False),
    # 2026-11-27 is a Friday.
    ("friday-night-on-friday", FRIDAY_NIGHT, datetime(2026, 11, 27, 23, 30), True),
    ("friday-night-runs-into-saturday", FRIDAY_NIGHT, datetime(2026, 11, 28, 0, 30), True),
    ("friday-night-not-on-saturday-night", FRIDAY_NIGHT, datetime(2026, 11, 28, 23, 30), False),
    (
        "friday-night-not-on-sunday-after-midnight",
        FRIDAY_NIGHT,
        datetime(2026, 11, 29, 0, 30),
        False,
    ),
    ("friday-night-not-on-thursday", FRIDAY_NIGHT, datetime(2026, 11, 26, 23, 30), False),
]


@pytest.mark.parametrize(
    ("window", "now", "covered"),
    [c[1:] for c in RECURRING_CASES],
    ids=[c[0] for c in RECURRING_CASES],
)
def test_recurring_window_across_midnight_in_shanghai(
    window: MaintenanceWindow, now: datetime, covered: bool
) -> None:
    assert (in_maintenance([window], now, SHANGHAI) is window) is covered
    # The same instant as epoch seconds gives the same answer.
    epoch = now.replace(tzinfo=ZoneInfo(SHANGHAI)).timestamp()
    assert (in_maintenance([window], epoch, ZoneInfo(SHANGHAI)) is window) is covered


def test_nightly_window_bounds_are_the_occurrence_that_began_the_evening_before() -> None:
    assert occurrence(NIGHTLY, datetime(2026, 11, 24, 0, 30), SHANGHAI) == (
        utc(2026, 11, 23, 15, 0),
        utc(2026, 11, 23, 17, 0),
    )


@pytest.mark.parametrize(
    "weekday",
    ["0", "7", "sun", "6-7", "0,3", "*/3"],
    ids=["zero-is-sunday", "seven-is-sunday", "name", "range-to-seven", "list", "step-from-sunday"],
)
def test_crontab_weekday_numbers_mean_what_they_mean_in_crontab(weekday: str) -> None:
    window = MaintenanceWindow(cron=f"0 2 * * {weekday}", duration="1h")
    # 2026-11-22 is a Sunday, 2026-11-23 a Monday.
    assert in_maintenance([window], datetime(2026, 11, 22, 2, 30), "UTC") is window
    assert in_maintenance([window], datetime(2026, 11, 23, 2, 30), "UTC") is None


@pytest.mark.parametrize(
    ("weekday", "days"),
    [
        ("1-5", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("mon-fri", "mon-fri"),
        ("*", "*"),
        ("6,0", "sat,sun"),
    ],
    ids=["workdays", "every-other-day-from-sunday", "names-pass-through", "star", "weekend"],
)
def test_crontab_weekdays_are_handed_to_apscheduler_as_names(weekday: str, days: str) -> None:
    trigger = cron_trigger(f"0 2 * * {weekday}", "UTC")
    assert str(trigger.fields[4]) == days  # fields: year, month, day, week, day_of_week...


DST_CASES = [
    # id, window, now (UTC), covered
    # Europe/Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC).
    ("normal-night-starts-at-01-cet", "0 1 * * *", utc(2026, 3, 28, 0, 0), True),
    ("normal-night-ends-at-03-cet", "0 1 * * *", utc(2026, 3, 28, 2, 0), False),
    ("spring-night-starts-at-01-cet", "0 1 * * *", utc(2026, 3, 29, 0, 0), True),
    ("spring-night-lasts-two-real-hours", "0 1 * * *", utc(2026, 3, 29, 1, 59), True),
    ("spring-night-ends-at-04-cest", "0 1 * * *", utc(2026, 3, 29, 2, 0), False),
    ("start-in-the-skipped-hour-still-happens", "30 2 * * *", utc(2026, 3, 29, 2, 0), True),
    ("summer-night-starts-at-01-cest", "0 1 * * *", utc(2026, 7, 1, 23, 0), True),
    ("summer-night-is-not-on-cet-hours", "0 1 * * *", utc(2026, 7, 2, 1, 0), False),
    # It falls back 2026-10-25 03:00 CEST -> 02:00 CET (01:00 UTC): 02:xx happens twice.
    ("autumn-night-starts-at-01-cest", "0 1 * * *", utc(2026, 10, 24, 23, 0), True),
    ("autumn-first-02-30-is-inside", "0 1 * * *", utc(2026, 10, 25, 0, 30), True),
    ("autumn-second-02-30-is-outside", "0 1 * * *", utc(2026, 10, 25, 1, 30), False),
    # A start time inside the repeated hour happens on both passes (cron-like
    # "once" would need a rule of our own; a longer window is the safe side).
    ("autumn-repeated-start-first-pass", "30 2 * * *", utc(2026, 10, 25, 0, 45), True),
    ("autumn-repeated-start-second-pass", "30 2 * * *", utc(2026, 10, 25, 3, 15), True),
    ("autumn-repeated-start-ends-after-second", "30 2 * * *", utc(2026, 10, 25, 3, 30), False),
]


@pytest.mark.parametrize(
    ("cron", "now", "covered"), [c[1:] for c in DST_CASES], ids=[c[0] for c in DST_CASES]
)
def test_recurring_window_duration_is_real_time_across_dst_in_berlin(
    cron: str, now: datetime, covered: bool
) -> None:
    window = MaintenanceWindow(cron=cron, duration="2h")
    assert (in_maintenance([window], now, BERLIN) is window) is covered


def test_the_first_covering_window_is_returned() -> None:
    windows = [ONE_OFF, NIGHTLY, MaintenanceWindow(cron="0 * * * *", duration="30m")]
    assert in_maintenance(windows, datetime(2026, 11, 23, 23, 10), SHANGHAI) is NIGHTLY
    assert in_maintenance(windows, datetime(2026, 11, 23, 12, 10), SHANGHAI) is windows[2]
    assert in_maintenance(windows, datetime(2026, 11, 23, 12, 40), SHANGHAI) is None
    assert in_maintenance([], datetime(2026, 11, 23, 12, 10), SHANGHAI) is None


VALID = [
    MaintenanceWindow(start="2026-11-24T02:00", end="2026-11-24T04:00"),
    MaintenanceWindow(start="2026-11-24T02:00:00+08:00", end="2026-11-24 04:00:00+08:00"),
    MaintenanceWindow(cron="0 23 * * *", duration="2h"),
    MaintenanceWindow(cron="*/15 1-5 * 1,7 mon-fri", duration="10m"),
    MaintenanceWindow(cron="0 2 29 2 *", duration="1h"),
]


@pytest.mark.parametrize(
    "window", VALID, ids=["naive", "offset", "nightly", "busy-cron", "leap-day"]
)
def test_a_good_window_validates(window: MaintenanceWindow) -> None:
    validate_window(window, SHANGHAI)


INVALID = [
    (
        "start-not-a-datetime",
        MaintenanceWindow(start="tomorrow 2am", end="2026-11-24T04:00"),
        "start: 'tomorrow 2am' is not an ISO 8601 datetime like 2026-11-23T02:00",
    ),
    (
        "end-not-a-datetime",
        MaintenanceWindow(start="2026-11-24T02:00", end="2026-13-01T00:00"),
        "end: '2026-13-01T00:00' is not an ISO 8601 datetime like 2026-11-23T02:00",
    ),
    (
        "end-before-start",
        MaintenanceWindow(start="2026-11-24T04:00", end="2026-11-24T02:00"),
        "end (2026-11-24T02:00) must be after start (2026-11-24T04:00)",
    ),
    (
        "end-equal-to-start-in-another-offset",
        MaintenanceWindow(start="2026-11-24T02:00+08:00", end="2026-11-23T18:00Z"),
        "end (2026-11-23T18:00Z) must be after start (2026-11-24T02:00+08:00)",
    ),
    (
        "cron-with-four-fields",
        MaintenanceWindow(cron="0 2 * *", duration="1h"),
        "cron '0 2 * *' must have 5 fields (minute hour day month weekday), not 4",
    ),
    (
        "cron-with-seconds-field",
        MaintenanceWindow(cron="0 0 2 * * *", duration="1h"),
        "cron '0 0 2 * * *' must have 5 fields (minute hour day month weekday), not 6",
    ),
    (
        "cron-minute-out-of-range",
        MaintenanceWindow(cron="61 2 * * *", duration="1h"),
        "cron '61 2 * * *': Error validating expression '61': "
        "the last value (61) is higher than the maximum value (59)",
    ),
    (
        "cron-weekday-eight",
        MaintenanceWindow(cron="0 2 * * 8", duration="1h"),
        "cron '0 2 * * 8': weekday '8' is not a day 0-7 (0 and 7 are Sunday) or a range",
    ),
    (
        "cron-bad-month-name",
        MaintenanceWindow(cron="0 2 * smarch *", duration="1h"),
        "cron '0 2 * smarch *': Invalid month name \"smarch\"",
    ),
    (
        "cron-that-never-matches",
        MaintenanceWindow(cron="0 2 31 2 *", duration="1h"),
        "cron '0 2 31 2 *' never matches any date",
    ),
]


@pytest.mark.parametrize(
    ("window", "message"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_a_bad_window_gets_a_clear_error(window: MaintenanceWindow, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        validate_window(window, SHANGHAI)
    assert str(caught.value) == message


def test_an_unknown_timezone_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown timezone 'Asia/Shanghia': use an IANA name"):
        validate_window(NIGHTLY, "Asia/Shanghia")
    with pytest.raises(ValueError, match="unknown timezone"):
        resolve_tz("../etc/passwd")


def test_validate_cron_accepts_a_plain_expression() -> None:
    validate_cron("0 2 * * *")
    with pytest.raises(ValueError, match="never matches"):
        validate_cron("0 0 30 2 *", SHANGHAI)


def test_naive_datetimes_are_read_in_the_site_timezone() -> None:
    assert parse_datetime("2026-11-24T02:00", SHANGHAI) == utc(2026, 11, 23, 18, 0)
    assert parse_datetime("2026-11-24T02:00", "UTC") == utc(2026, 11, 24, 2, 0)


def test_check_maintenance_says_how_long_the_answer_holds() -> None:
    outside = check_maintenance([NIGHTLY], datetime(2026, 11, 24, 12, 0), SHANGHAI)
    assert outside == MaintenanceCheck(None, local(SHANGHAI, 2026, 11, 24, 23, 0).timestamp())
    inside = check_maintenance([NIGHTLY], datetime(2026, 11, 24, 0, 30), SHANGHAI)
    assert inside == MaintenanceCheck(NIGHTLY, local(SHANGHAI, 2026, 11, 24, 1, 0).timestamp())
    past = check_maintenance([ONE_OFF], datetime(2026, 12, 1), SHANGHAI)
    assert past == MaintenanceCheck(None, math.inf)


@pytest.mark.parametrize("tz", [SHANGHAI, BERLIN], ids=["shanghai", "berlin-with-dst"])
def test_check_maintenance_answer_really_holds_until_it_says(tz: str) -> None:
    windows = [
        MaintenanceWindow(cron="0 23 * * 5", duration="2h"),
        MaintenanceWindow(cron="30 2 * * *", duration="45m"),
        MaintenanceWindow(start="2026-10-24T22:00", end="2026-10-25T03:10"),
    ]
    now = local(tz, 2026, 10, 22, 0, 0).timestamp()
    end = local(tz, 2026, 10, 27, 0, 0).timestamp()
    changes = 0
    while now < end:
        check = check_maintenance(windows, now, tz)
        assert check.window is in_maintenance(windows, now, tz)
        assert now < check.until
        assert in_maintenance(windows, check.until - 0.001, tz) is check.window
        if in_maintenance(windows, check.until, tz) is not check.window:
            changes += 1
        now += 780.0  # 13 minutes: lands at many offsets from the windows' edges
    assert changes > 10
