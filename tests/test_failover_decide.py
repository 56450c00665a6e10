"""The failover decision, table by table (pure: no proxy, no clock but ``now``)."""

from __future__ import annotations

import pytest

from monitor.health import Health
from runbooks.failover.decide import Change, GroupRules, MemberView, Wanted, decide

NOW = 1_800_000_000.0
UP, DOWN, UNKNOWN, DEGRADED = Health.UP, Health.DOWN, Health.UNKNOWN, Health.DEGRADED
ON, OFF = Wanted.ACTIVE, Wanted.INACTIVE


def m(target: str, health: Health, *, ago: float = 0.0, wanted: Wanted = ON,
      parent: str | None = None, approved: bool = False) -> MemberView:  # fmt: skip
    return MemberView(target, health, NOW - ago, parent, wanted, approved)


def changes(members: list[MemberView], **rules: object) -> list[tuple[str, Wanted]]:
    decision = decide(members, GroupRules(**rules), NOW)  # type: ignore[arg-type]
    return [(c.target, c.to) for c in decision.changes]


@pytest.mark.parametrize(
    ("members", "rules", "expected"),
    [
        pytest.param([m("ct", UP), m("cu", UP)], {}, [], id="all-up"),
        pytest.param([m("ct", DOWN), m("cu", UP)], {}, [("ct", OFF)], id="primary-down"),
        pytest.param([m("ct", DOWN), m("cu", DOWN)], {}, [], id="every-member-down"),
        pytest.param(
            [m("ct", DOWN, parent="uplink"), m("cu", UP)], {}, [], id="down-because-of-a-parent"
        ),
        pytest.param([m("ct", UNKNOWN), m("cu", UP)], {}, [], id="unknown-changes-nothing"),
        pytest.param([m("ct", DEGRADED), m("cu", UP)], {}, [], id="degraded-changes-nothing"),
        pytest.param(
            [m("a", DOWN), m("b", DOWN), m("c", UP)], {}, [("a", OFF), ("b", OFF)], id="two-down"
        ),
        pytest.param(
            [m("a", DOWN), m("b", DOWN), m("c", UP)],
            {"min_active": 2},
            [("a", OFF)],
            id="min-active-keeps-one-in",
        ),
        pytest.param(
            [m("ct", UP, ago=299, wanted=OFF), m("cu", UP)], {}, [], id="not-stable-long-enough"
        ),
        pytest.param(
            [m("ct", UP, ago=300, wanted=OFF), m("cu", UP)], {}, [("ct", ON)], id="failback"
        ),
        pytest.param(
            [m("ct", UP, ago=600, wanted=OFF), m("cu", UP)],
            {"failback": "approve"},
            [],
            id="failback-waits-for-approval",
        ),
        pytest.param(
            [m("ct", UP, ago=600, wanted=OFF, approved=True), m("cu", UP)],
            {"failback": "approve"},
            [("ct", ON)],
            id="failback-approved",
        ),
        pytest.param(
            [m("ct", UP, ago=900, wanted=OFF), m("cu", DOWN)],
            {},
            [("ct", ON), ("cu", OFF)],
            id="back-one-makes-room-for-the-other",
        ),
        pytest.param([m("ct", DOWN, wanted=OFF), m("cu", UP)], {}, [], id="already-out-stays-out"),
        pytest.param(
            [m("ct", DOWN, wanted=OFF), m("cu", DOWN)],
            {},
            [("ct", ON)],
            id="every-member-down-puts-back-the-one-taken-out",
        ),
        pytest.param(
            [m("ct", UP, ago=1, wanted=OFF), m("cu", DOWN)],
            {"failback": "approve"},
            [("ct", ON), ("cu", OFF)],
            id="up-again-while-nothing-in-the-proxy-is-goes-back-at-once",
        ),
        pytest.param(
            [m("ct", UP, ago=1, wanted=OFF), m("cu", DOWN, parent="uplink")],
            {},
            [("ct", ON)],
            id="nothing-in-the-proxy-up-counts-a-parents-failure-too",
        ),
    ],
)
def test_the_decision_table(
    members: list[MemberView], rules: dict[str, object], expected: list[tuple[str, Wanted]]
) -> None:
    assert changes(members, **rules) == expected


def test_every_member_down_says_why_nothing_moved() -> None:
    decision = decide([m("ct", DOWN), m("cu", DOWN)], GroupRules(), NOW)
    assert decision.changes == ()
    assert any("every member is down" in note for note in decision.notes)


def test_a_member_down_because_of_its_parent_says_so() -> None:
    decision = decide([m("ct", DOWN, parent="uplink"), m("cu", UP)], GroupRules(), NOW)
    assert decision.notes == (
        "ct is down because uplink is: not taken out (the trunk itself may be fine)",
    )


def test_waiting_for_approval_is_named_and_the_reason_of_a_failback_says_how_long() -> None:
    members = [m("ct", UP, ago=600, wanted=OFF), m("cu", UP)]
    assert decide(members, GroupRules(failback="approve"), NOW).waiting == ("ct",)
    [change] = decide(members, GroupRules(failback_after=300), NOW).changes
    assert change == Change("ct", ON, "up for 10 min (failback after 5 min)")


def test_the_decision_is_pure() -> None:
    members = [m("a", DOWN), m("b", UP, ago=400, wanted=OFF), m("c", UP)]
    assert decide(members, GroupRules(), NOW) == decide(members, GroupRules(), NOW)
