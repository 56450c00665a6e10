"""What a customer hears about a component, table by table (pure: events and time in,
notices out, each with the time it is sent)."""

from __future__ import annotations

from datetime import time

import pytest

from notify.customer_policy import QuietHours, Rules, replay

T0 = 1_800_000_000.0  # 2027-01-15 16:00 in Asia/Shanghai
M = 60.0
DEFAULT = Rules()  # notify: auto, delay 5 min, settle 10 min


def heard(events: list[tuple[str, float, str]], rules: Rules = DEFAULT) -> list[tuple[str, float]]:
    """(kind, minutes after T0 it is sent)."""
    return [(n.kind, (sent - T0) / M) for sent, n in replay(events, rules, T0 + 6 * 3600)]


def ev(kind: str, minutes: float, ref: str = "") -> tuple[str, float, str]:
    return (kind, T0 + minutes * M, ref)


@pytest.mark.parametrize(
    ("events", "rules", "expected"),
    [
        pytest.param([ev("trouble", 0), ev("ok", 2)], DEFAULT, [], id="a-blip-tells-nobody"),
        pytest.param(
            [ev("trouble", 0), ev("ok", 30)], DEFAULT, [("outage", 5.0), ("resolved", 40.0)],
            id="outage-then-the-all-clear-after-settle",
        ),
        pytest.param(
            [ev("trouble", 0), ev("ok", 30), ev("trouble", 35), ev("ok", 60)], DEFAULT,
            [("outage", 5.0), ("resolved", 70.0)], id="a-flap-inside-settle-is-one-outage",
        ),
        pytest.param(
            [ev("trouble", 0), ev("ok", 30), ev("trouble", 45), ev("ok", 90)], DEFAULT,
            [("outage", 5.0), ("resolved", 40.0), ("outage", 50.0), ("resolved", 100.0)],
            id="a-new-outage-after-settle-is-new",
        ),
        pytest.param(
            [ev("trouble", 0), ev("ok", 30)], Rules(mode="manual"), [],
            id="manual-says-nothing-by-itself",
        ),
        pytest.param(
            [ev("trouble", 0), ev("update", 10, "u1"), ev("ok", 30)], Rules(mode="manual"),
            [("update", 10.0), ("resolved", 40.0)], id="manual-an-update-is-the-outage-notice",
        ),
        pytest.param(
            [ev("trouble", 0), ev("update", 10, "u1"), ev("update", 20, "u2")], DEFAULT,
            [("outage", 5.0), ("update", 10.0), ("update", 20.0)], id="every-update-is-sent",
        ),
    ],
)  # fmt: skip
def test_the_notice_table(
    events: list[tuple[str, float, str]], rules: Rules, expected: list[tuple[str, float]]
) -> None:
    assert heard(events, rules) == expected


QUIET = QuietHours(time(22, 0), time(8, 0))
NIGHT = T0 + 7 * 3600  # 23:00 local


def test_quiet_hours_hold_updates_and_send_only_the_newest_in_the_morning() -> None:
    events = [("trouble", NIGHT, ""), ("update", NIGHT + 10 * M, "u1"),
              ("update", NIGHT + 20 * M, "u2")]  # fmt: skip
    got = replay(events, Rules(quiet=QUIET, outage_in_quiet_hours=True), NIGHT + 12 * 3600)
    assert [(n.kind, n.ref, sent - NIGHT) for sent, n in got] == [
        ("outage", "", 5 * M),  # in the night, as configured
        ("update", "u2", 9 * 3600),  # 08:00: the newest held update only
    ]


def test_an_outage_inside_quiet_hours_that_ended_there_is_never_mentioned() -> None:
    events = [("trouble", NIGHT, ""), ("ok", NIGHT + 60 * M, "")]
    assert replay(events, Rules(quiet=QUIET), NIGHT + 12 * 3600) == []


def test_without_outage_in_quiet_hours_the_outage_waits_for_the_morning() -> None:
    [(sent, outage)] = replay([("trouble", NIGHT, "")], Rules(quiet=QUIET), NIGHT + 12 * 3600)
    assert (outage.kind, sent - NIGHT) == ("outage", 9 * 3600)


def test_maintenance_notices_are_held_in_quiet_hours_too() -> None:
    events = [("maintenance", NIGHT + M, "w1:ahead-1h")]
    [(sent, notice)] = replay(events, Rules(quiet=QUIET), NIGHT + 12 * 3600)
    assert (notice.kind, notice.ref, sent - NIGHT) == ("maintenance", "w1:ahead-1h", 9 * 3600)


def test_quiet_hours_that_do_not_span_midnight() -> None:
    lunch = QuietHours(time(12, 0), time(13, 30))
    noon = T0 - 4 * 3600 + 30 * M  # 12:30 local
    assert lunch.inside(noon) and not lunch.inside(noon + 3600)
    assert lunch.ends_after(noon) == noon + 3600
