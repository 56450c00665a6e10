"""The health state machine: thresholds, warn, error, flapping, dependencies,
maintenance and serialisation, table-driven.

Sequences are written compactly: observations ``o`` ok, ``w`` warn, ``f``
fail, ``e`` error; reported health ``U`` up, ``G`` degraded, ``D`` down,
``?`` unknown, ``M`` maintenance.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.observation import ErrorClass, Observation, Status
from monitor.health import (
    FlapPolicy,
    Health,
    HealthState,
    Policy,
    StepResult,
    Transition,
    step,
)
from probes.tcp import TcpTarget

OBS = {
    "o": Observation(Status.OK, "200 OK in 12 ms"),
    "w": Observation(Status.WARN, "answered in 900 ms, above 500 ms"),
    "f": Observation(Status.FAIL, "no answer to OPTIONS after 7 retransmissions (4.0 s)"),
    "e": Observation(Status.ERROR, "probe crashed: KeyError 'host'"),
}
CODE = {
    Health.UP: "U",
    Health.DEGRADED: "G",
    Health.DOWN: "D",
    Health.UNKNOWN: "?",
    Health.MAINTENANCE: "M",
}
NO_FLAP = FlapPolicy(enabled=False)


@dataclass
class Run:
    """The outcome of feeding a sequence of observations to one target."""

    state: HealthState
    healths: list[str]
    results: list[StepResult]

    @property
    def transitions(self) -> list[Transition]:
        return [r.transition for r in self.results if r.transition is not None]


def run(
    seq: str,
    policy: Policy,
    *,
    state: HealthState | None = None,
    start: float = 1000.0,
    dt: float = 10.0,
    parents_down: Sequence[str] = (),
    maintenance: str | None = None,
) -> Run:
    state = state or HealthState("trunk-a")
    healths: list[str] = []
    results: list[StepResult] = []
    now = start
    for code in seq.split():
        result = step(state, OBS[code], now, policy, parents_down, maintenance)
        state = result.state
        healths.append(CODE[state.health])
        results.append(result)
        now += dt
    return Run(state, healths, results)


# -- thresholds, warn, error -------------------------------------------------

THRESHOLD_CASES = [
    # id, fail_after, recover_after, observations, reported health after each
    ("first-ok-goes-straight-to-up", 2, 2, "o", "U"),
    ("fail-after-1-one-failure-is-down", 1, 2, "o f", "U D"),
    ("fail-after-2-one-failure-is-a-blip", 2, 2, "o f o", "U U U"),
    ("fail-after-2-two-failures-are-down", 2, 2, "o f f", "U U D"),
    ("fail-after-3-needs-three-failures", 3, 2, "o f f f", "U U U D"),
    ("fail-after-3-broken-streak-starts-again", 3, 2, "o f f o f f f", "U U U U U U D"),
    ("fresh-target-that-fails-stays-unknown-until-fail-after", 3, 2, "f f f", "? ? D"),
    ("recover-after-2-needs-two-oks", 2, 2, "o f f o o", "U U D D U"),
    ("recover-after-1-one-ok-is-up", 2, 1, "o f f o", "U U D U"),
    ("recover-after-3-broken-by-a-failure", 2, 3, "f f o o f o o o", "? D D D D D D U"),
    ("one-warning-is-a-blip-with-fail-after-2", 2, 2, "o w o", "U U U"),
    ("warnings-reaching-fail-after-degrade", 2, 2, "o w w", "U U G"),
    ("fail-after-1-one-warning-degrades", 1, 2, "o w", "U G"),
    ("warning-then-failure-is-degraded-not-down", 2, 2, "o w f", "U U G"),
    ("degraded-then-failures-go-down", 2, 2, "o w w f f", "U U G G D"),
    ("warning-then-two-failures-is-down", 2, 2, "o w f f", "U U G D"),
    ("degraded-stays-degraded-on-more-warnings", 2, 2, "o w w w w", "U U G G G"),
    ("degraded-recovers-after-recover-after-oks", 2, 2, "o w w o o", "U U G G U"),
    ("degraded-one-ok-is-not-enough", 2, 2, "o w w o w", "U U G G G"),
    ("down-answering-with-warnings-becomes-degraded", 2, 2, "f f w w", "? D D G"),
    ("down-warning-then-oks-goes-degraded-then-up", 2, 2, "f f w o o", "? D D G U"),
    ("fresh-target-warning-twice-is-degraded", 2, 2, "w w", "? G"),
    ("error-makes-an-up-target-unknown", 2, 2, "o e", "U ?"),
    ("error-neither-counts-nor-breaks-a-failure-streak", 2, 2, "o f e f", "U U ? D"),
    ("error-then-ok-on-an-up-target-is-up-at-once", 2, 2, "o e o", "U ? U"),
    ("error-while-down-then-ok-still-needs-recover-after", 2, 2, "f f e o o", "? D ? D U"),
    ("error-while-down-then-failure-is-down-again", 2, 2, "f f e f", "? D ? D"),
    ("errors-only-stay-unknown", 2, 2, "e e e", "? ? ?"),
]


@pytest.mark.parametrize(
    ("fail_after", "recover_after", "seq", "expected"),
    [c[1:] for c in THRESHOLD_CASES],
    ids=[c[0] for c in THRESHOLD_CASES],
)
def test_reported_health_follows_thresholds(
    fail_after: int, recover_after: int, seq: str, expected: str
) -> None:
    result = run(seq, Policy(fail_after, recover_after, flap=NO_FLAP))
    assert " ".join(result.healths) == expected


@pytest.mark.parametrize(
    ("fail_after", "recover_after", "seq", "expected"),
    [c[1:] for c in THRESHOLD_CASES],
    ids=[c[0] for c in THRESHOLD_CASES],
)
def test_a_transition_is_reported_exactly_when_health_changes(
    fail_after: int, recover_after: int, seq: str, expected: str
) -> None:
    result = run(seq, Policy(fail_after, recover_after, flap=NO_FLAP))
    previous = "?"
    for code, r in zip(expected.split(), result.results, strict=True):
        if code == previous:
            assert r.transition is None
        else:
            assert r.transition is not None
            assert (CODE[r.transition.from_health], CODE[r.transition.to_health]) == (
                previous,
                code,
            )
        previous = code


REASON_CASES = [
    # id, fail_after, recover_after, observations, reason of the last transition
    (
        "down-after-two-failures",
        2,
        2,
        "o f f",
        "down after 2 consecutive failures: no answer to OPTIONS after 7 retransmissions (4.0 s)",
    ),
    (
        "down-after-one-failure",
        1,
        2,
        "o f",
        "down after 1 failure: no answer to OPTIONS after 7 retransmissions (4.0 s)",
    ),
    ("up-after-recovery", 1, 2, "f o o", "up after 2 successful checks: 200 OK in 12 ms"),
    ("up-at-once-from-fresh", 2, 2, "o", "up: 200 OK in 12 ms"),
    (
        "degraded-after-warnings",
        2,
        2,
        "o w w",
        "degraded after 2 checks in a row with warnings or failures: "
        "answered in 900 ms, above 500 ms",
    ),
    ("degraded-at-once", 1, 2, "o w", "degraded: answered in 900 ms, above 500 ms"),
    (
        "degraded-coming-out-of-down",
        1,
        2,
        "f w w",
        "answering again after 2 checks, but degraded: answered in 900 ms, above 500 ms",
    ),
    (
        "unknown-on-error",
        2,
        2,
        "o e",
        "unknown: the probe could not run: probe crashed: KeyError 'host'",
    ),
    (
        "back-from-error-still-down",
        1,
        2,
        "f e f",
        "the probe runs again; still down: no answer to OPTIONS after 7 retransmissions (4.0 s)",
    ),
]


@pytest.mark.parametrize(
    ("fail_after", "recover_after", "seq", "reason"),
    [c[1:] for c in REASON_CASES],
    ids=[c[0] for c in REASON_CASES],
)
def test_transition_reason_is_a_sentence_with_the_probe_detail(
    fail_after: int, recover_after: int, seq: str, reason: str
) -> None:
    result = run(seq, Policy(fail_after, recover_after, flap=NO_FLAP))
    assert result.transitions[-1].reason == reason


def test_transition_records_target_time_and_both_healths() -> None:
    result = run("o f f", Policy(2, 2, flap=NO_FLAP), start=500.0, dt=30.0)
    assert result.transitions[-1] == Transition(
        "trunk-a",
        560.0,
        Health.UP,
        Health.DOWN,
        "down after 2 consecutive failures: no answer to OPTIONS after 7 retransmissions (4.0 s)",
    )
    assert result.state.since == 560.0


@pytest.mark.parametrize(
    ("seq", "alerts"),
    [("e", 1), ("o e o", 1), ("e e", 2), ("o w f", 0)],
    ids=["one-error", "error-between-oks", "two-errors-two-alerts", "no-error-no-alert"],
)
def test_every_error_observation_asks_for_an_appliance_alert(seq: str, alerts: int) -> None:
    result = run(seq, Policy(flap=NO_FLAP))
    raised = [r.appliance_alert for r in result.results if r.appliance_alert]
    assert len(raised) == alerts
    for text in raised:
        assert text == "the probe for trunk-a could not run: probe crashed: KeyError 'host'"


RECOVERY_CASES = [
    # id, observations that reach the start state, its health, oks to reach up
    ("from-fresh-unknown", "", "?", 1),
    ("from-unknown-after-failures", "f", "?", 1),
    ("from-degraded", "o w w", "G", 3),
    ("from-down", "o f f", "D", 3),
    ("from-unknown-after-error-while-up", "o e", "?", 1),
    ("from-unknown-after-error-while-down", "f f e", "?", 3),
]


@pytest.mark.parametrize(
    ("prefix", "start_health", "oks"),
    [c[1:] for c in RECOVERY_CASES],
    ids=[c[0] for c in RECOVERY_CASES],
)
def test_recovery_from_each_state_takes_the_documented_number_of_oks(
    prefix: str, start_health: str, oks: int
) -> None:
    policy = Policy(fail_after=2, recover_after=3, flap=NO_FLAP)
    before = run(prefix, policy).state if prefix else HealthState("trunk-a")
    assert CODE[before.health] == start_health
    result = run(" ".join(["o"] * oks), policy, state=before, start=2000.0)
    assert result.healths[-1] == "U"
    assert all(h != "U" for h in result.healths[:-1])


def test_policy_is_taken_from_the_target_config() -> None:
    target = TcpTarget(
        id="crm-db",
        kind="tcp",
        address="127.0.0.1:5432",
        fail_after=3,
        recover_after=4,
        incident_on="degraded",
    )
    flap = FlapPolicy(threshold=3, window=60, quiet=120)
    assert Policy.for_target(target, flap) == Policy(3, 4, "degraded", flap)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"fail_after": 0},
        {"recover_after": 0},
        {"incident_on": "up"},
    ],
    ids=["fail-after-zero", "recover-after-zero", "incident-on-up"],
)
def test_a_nonsense_policy_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Policy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 1}, {"window": 0}, {"quiet": -5}],
    ids=["threshold-one", "zero-window", "negative-quiet"],
)
def test_a_nonsense_flap_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        FlapPolicy(**kwargs)  # type: ignore[arg-type]


# -- flapping ------------------------------------------------------------------

FLAP = FlapPolicy(threshold=4, window=600.0, quiet=300.0)
FLAPPY = Policy(fail_after=1, recover_after=1, flap=FLAP)


def test_flapping_is_reported_once_and_further_flips_are_silent() -> None:
    # Changes: ?->U, U->D, D->U, U->D (4th, into trouble: flapping), then silence.
    result = run("o f o f o f o f o f", FLAPPY, dt=10.0)
    assert [(t.from_health, t.to_health, t.flapping) for t in result.transitions] == [
        (Health.UNKNOWN, Health.UP, False),
        (Health.UP, Health.DOWN, False),
        (Health.DOWN, Health.UP, False),
        (Health.UP, Health.DOWN, True),
    ]
    assert result.transitions[-1].reason.startswith("flapping: health changed 4 times in 10m; ")
    assert result.state.flapping
    # Held at the health it flapped into, while the real one is still tracked.
    assert result.healths[3:] == ["D"] * 7
    assert result.state.health is Health.DOWN
    assert result.state.actual is Health.DOWN
    assert run("o", FLAPPY, state=result.state, start=1100.0).state.actual is Health.UP


def test_flapping_is_declared_on_a_change_into_trouble_not_into_up() -> None:
    policy = Policy(1, 1, flap=FlapPolicy(threshold=3, window=600.0, quiet=300.0))
    # ?->U, U->D, D->U would be the 3rd change but lands on up: reported plainly.
    result = run("o f o f", policy)
    assert [t.flapping for t in result.transitions] == [False, False, False, True]
    assert result.transitions[-1].to_health is Health.DOWN


def test_flapping_clears_after_a_quiet_period_and_reports_the_current_health() -> None:
    flapped = run("o f o f o", FLAPPY, dt=10.0)  # last change (to up) at t=1040
    assert flapped.state.flapping and flapped.state.health is Health.DOWN
    quiet = run("o o o o", FLAPPY, state=flapped.state, start=1100.0, dt=100.0)
    # 1100, 1200, 1300: less than 300 s since 1040; 1400: quiet long enough.
    assert quiet.transitions == [
        Transition(
            "trunk-a",
            1400.0,
            Health.DOWN,
            Health.UP,
            "stopped flapping (no change for 5m); up: 200 OK in 12 ms",
        )
    ]
    assert not quiet.state.flapping
    assert quiet.state.changes == ()


def test_flapping_that_clears_on_the_held_health_reports_no_transition() -> None:
    flapped = run("o f o f", FLAPPY, dt=10.0)
    quiet = run("f f", FLAPPY, state=flapped.state, start=1400.0, dt=10.0)
    assert quiet.transitions == []
    assert quiet.results[0].flapping_cleared
    assert not quiet.state.flapping
    assert quiet.state.health is Health.DOWN


def test_a_flip_during_the_quiet_period_restarts_it() -> None:
    flapped = run("o f o f", FLAPPY, dt=10.0)  # flapping from t=1030
    later = run("o f", FLAPPY, state=flapped.state, start=1200.0, dt=100.0)  # changes at 1200, 1300
    assert later.transitions == [] and later.state.flapping
    still = run("f", FLAPPY, state=later.state, start=1590.0)
    assert still.state.flapping
    cleared = run("f", FLAPPY, state=still.state, start=1600.0)
    assert not cleared.state.flapping


def test_changes_spread_wider_than_the_window_never_flap() -> None:
    # One change every 200 s: at most 3 fall within 600 s, threshold is 4.
    result = run("o f o f o f o f", FLAPPY, dt=200.0)
    assert len(result.transitions) == 8
    assert not any(t.flapping for t in result.transitions)


def test_flap_damping_can_be_disabled() -> None:
    result = run("o f o f o f o f", Policy(1, 1, flap=NO_FLAP), dt=1.0)
    assert len(result.transitions) == 8
    assert not result.state.flapping


def test_thresholds_damp_blips_before_flap_damping_sees_them() -> None:
    # With fail_after 2 single failures never change health, so nothing flaps.
    result = run("o f o f o f o f", Policy(2, 2, flap=FLAP), dt=1.0)
    assert result.healths == ["U"] * 8


# -- dependencies ----------------------------------------------------------------


def test_child_going_down_while_its_parent_is_down_is_affected_by_the_parent() -> None:
    result = run("o f f", Policy(2, 2, flap=NO_FLAP), parents_down=["edge-router", "sbc"])
    last = result.transitions[-1]
    assert (last.to_health, last.affected_by) == (Health.DOWN, "edge-router")
    assert result.state.affected_by == "edge-router"


def test_child_that_went_down_first_stays_its_own_outage_when_the_parent_follows() -> None:
    policy = Policy(2, 2, flap=NO_FLAP)
    alone = run("o f f", policy)
    assert alone.transitions[-1].affected_by is None
    later = run("f f", policy, state=alone.state, start=2000.0, parents_down=["edge-router"])
    assert later.transitions == []
    assert later.state.affected_by is None


def test_child_stays_down_and_attributed_when_the_parent_recovers_first() -> None:
    policy = Policy(2, 2, flap=NO_FLAP)
    affected = run("o f f", policy, parents_down=["edge-router"])
    after_parent = run("f f f", policy, state=affected.state, start=2000.0, parents_down=[])
    assert after_parent.transitions == []
    assert after_parent.state.health is Health.DOWN
    assert after_parent.state.affected_by == "edge-router"
    recovered = run("o o", policy, state=after_parent.state, start=3000.0)
    assert recovered.transitions[-1].to_health is Health.UP
    assert recovered.transitions[-1].affected_by is None
    assert recovered.state.affected_by is None


def test_degraded_child_going_down_under_a_down_parent_is_attributed_to_it() -> None:
    policy = Policy(2, 2, flap=NO_FLAP)
    degraded = run("o w w", policy)
    assert degraded.transitions[-1].affected_by is None
    down = run("f f", policy, state=degraded.state, start=2000.0, parents_down=["edge-router"])
    assert down.transitions[-1].to_health is Health.DOWN
    assert down.transitions[-1].affected_by == "edge-router"


@pytest.mark.parametrize(
    ("seq", "to_health"),
    [("o e", Health.UNKNOWN), ("f f o o", Health.UP)],
    ids=["unknown-is-not-attributed", "up-is-not-attributed"],
)
def test_only_trouble_is_attributed_to_a_parent(seq: str, to_health: Health) -> None:
    result = run(seq, Policy(2, 2, flap=NO_FLAP), parents_down=["edge-router"])
    assert result.transitions[-1].to_health is to_health
    assert result.transitions[-1].affected_by is None


# -- maintenance -------------------------------------------------------------------


def test_entering_maintenance_reports_it_once_and_failures_do_not_count() -> None:
    policy = Policy(1, 1, flap=NO_FLAP)
    up = run("o", policy)
    maint = run("f f f w o f", policy, state=up.state, start=2000.0, maintenance="carrier works")
    assert maint.healths == ["M"] * 6
    assert maint.transitions == [
        Transition(
            "trunk-a", 2000.0, Health.UP, Health.MAINTENANCE, "in maintenance: carrier works"
        )
    ]
    assert (maint.state.fail_streak, maint.state.ok_streak) == (0, 0)


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ("o", "o", "U"),
        ("f f", "o", "U"),
        ("o", "f f", "? D"),
        ("o", "w w", "? G"),
        ("o", "e", "?"),
    ],
    ids=[
        "up-before-ok-after-is-up",
        "down-before-ok-after-is-up-at-once",
        "failures-after-need-fail-after-again",
        "warnings-after-need-fail-after-again",
        "error-after-is-unknown",
    ],
)
def test_after_maintenance_the_next_observations_decide_from_a_fresh_start(
    before: str, after: str, expected: str
) -> None:
    policy = Policy(2, 2, flap=NO_FLAP)
    state = run(before, policy).state
    state = run("f f", policy, state=state, start=2000.0, maintenance="").state
    assert state.health is Health.MAINTENANCE
    result = run(after, policy, state=state, start=3000.0)
    assert " ".join(result.healths) == expected
    first = result.transitions[0]
    assert first.from_health is Health.MAINTENANCE
    assert first.reason.startswith("maintenance ended; ")


def test_an_error_during_maintenance_still_asks_for_an_appliance_alert() -> None:
    result = run("o e", Policy(flap=NO_FLAP), maintenance="upgrade")
    assert result.healths == ["M", "M"]
    assert result.results[1].appliance_alert is not None


def test_entering_maintenance_ends_flapping() -> None:
    flapped = run("o f o f", FLAPPY)
    assert flapped.state.flapping
    maint = run("f", FLAPPY, state=flapped.state, start=1100.0, maintenance="")
    assert maint.transitions[0].to_health is Health.MAINTENANCE
    assert not maint.transitions[0].flapping
    assert not maint.state.flapping and maint.state.changes == ()


def test_leaving_maintenance_into_trouble_under_a_down_parent_is_attributed() -> None:
    policy = Policy(1, 1, flap=NO_FLAP)
    state = run("o", policy, maintenance="").state
    result = run("f", policy, state=state, start=2000.0, parents_down=["edge-router"])
    assert result.transitions[0].to_health is Health.DOWN
    assert result.transitions[0].affected_by == "edge-router"


# -- serialisation -------------------------------------------------------------------


def test_state_round_trips_through_json_at_every_step() -> None:
    policy = Policy(2, 2, flap=FlapPolicy(threshold=3, window=600, quiet=60))
    state = HealthState("trunk-a")
    now = 1000.0
    for i, code in enumerate("offoefwwoofofofooooo"):
        maintenance = "planned" if 12 <= i <= 13 else None
        result = step(state, OBS[code], now, policy, ["edge-router"], maintenance)
        state = result.state
        restored = HealthState.from_dict(json.loads(json.dumps(state.to_dict())))
        assert restored == state
        now += 15.0


def test_a_restored_state_behaves_like_the_original() -> None:
    policy = Policy(3, 2, flap=NO_FLAP)
    original = run("o f f", policy).state
    restored = HealthState.from_dict(json.loads(json.dumps(original.to_dict())))
    assert run("f", policy, state=restored, start=5000.0).healths == ["D"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"v": 99, "target_id": "a"}, "health state version 99 is not supported"),
        ({"target_id": "a"}, "health state version None is not supported"),
        ({"v": 1}, "not a saved health state"),
        ({"v": 1, "target_id": "a", "health": "sideways"}, "not a saved health state"),
        ({"v": 1, "target_id": "a", "ok_streak": "many"}, "not a saved health state"),
    ],
    ids=["future-version", "no-version", "no-target-id", "bad-health", "bad-streak"],
)
def test_a_broken_saved_state_is_refused_with_a_reason(data: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HealthState.from_dict(data)


def test_transition_serialises_to_plain_values() -> None:
    t = Transition("a", 1.0, Health.UP, Health.DOWN, "down", True, "b")
    assert json.loads(json.dumps(t.to_dict())) == {
        "target_id": "a",
        "at": 1.0,
        "from_health": "up",
        "to_health": "down",
        "reason": "down",
        "flapping": True,
        "affected_by": "b",
    }


# -- properties --------------------------------------------------------------------

steps = st.lists(
    st.tuples(
        st.sampled_from(list(Status)),
        st.floats(min_value=0.0, max_value=400.0),  # seconds since the previous observation
        st.booleans(),  # in maintenance
        st.booleans(),  # a parent is down
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(
    seq=steps,
    fail_after=st.integers(1, 4),
    recover_after=st.integers(1, 4),
    flap_on=st.booleans(),
    threshold=st.integers(2, 6),
)
def test_any_sequence_gives_consistent_transitions_and_round_trips(
    seq: list[tuple[Status, float, bool, bool]],
    fail_after: int,
    recover_after: int,
    flap_on: bool,
    threshold: int,
) -> None:
    policy = Policy(
        fail_after, recover_after, flap=FlapPolicy(threshold, 300.0, 200.0, enabled=flap_on)
    )
    state = HealthState("t")
    now = 0.0
    for status, gap, maint, parent in seq:
        now += gap
        obs = Observation(status, "detail", error_class=ErrorClass.TIMEOUT)
        result = step(state, obs, now, policy, ["p"] if parent else [], "w" if maint else None)
        t = result.transition
        if t is not None:
            assert t.from_health is not t.to_health
            assert t.from_health is state.health and t.to_health is result.state.health
            assert t.at == now and t.target_id == "t"
            assert t.affected_by in (None, "p")
        else:
            assert result.state.health is state.health
        assert (result.appliance_alert is not None) == (status is Status.ERROR)
        if maint:
            assert result.state.health is Health.MAINTENANCE
        if not result.state.flapping:
            assert result.state.health is result.state.actual
        if not flap_on:
            assert not result.state.flapping
        assert HealthState.from_dict(json.loads(json.dumps(result.state.to_dict()))) == result.state
        state = result.state
