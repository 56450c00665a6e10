"""The dialer's live-queue evaluation (pure): rates between polls, capping, judging."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.observation import Status
from probes.dialer.queues import (
    QUEUE_RULES,
    QueueSample,
    QueueStats,
    cap_queues,
    combine,
    evaluate_queues,
    rates,
)
from probes.thresholds import Limit, resolve


def q(waiting: int = 0, total: int | None = None, logged_in: int | None = None) -> QueueStats:
    return QueueStats(calls_waiting=waiting, calls_total=total, logged_in=logged_in)


@pytest.mark.parametrize(
    ("previous", "now", "queues", "expected"),
    [
        pytest.param(None, 100.0, {"a": q(total=10)}, {}, id="first-poll-has-no-rate"),
        pytest.param({"time": 40.0, "totals": {"a": 10}}, 100.0, {"a": q(total=40)}, {"a": 30.0}, id="growth-per-minute"),
        pytest.param({"time": 40.0, "totals": {"a": 10}}, 100.0, {"a": q(total=4)}, {}, id="reset-counter-no-rate"),
        pytest.param({"time": 100.0, "totals": {"a": 10}}, 90.0, {"a": q(total=20)}, {}, id="clock-went-back"),
        pytest.param({"time": 40.0, "totals": {}}, 100.0, {"a": q(total=20)}, {}, id="new-queue-waits-a-poll"),
        pytest.param({"time": 40.0, "totals": {"a": True}}, 100.0, {"a": q(total=20)}, {}, id="corrupt-state-ignored"),
        pytest.param({"time": "x", "totals": {"a": 1}}, 100.0, {"a": q(total=20)}, {}, id="corrupt-time-ignored"),
        pytest.param({"time": 40.0, "totals": {"a": 10}}, 100.0, {"a": q()}, {}, id="no-counter-no-rate"),
    ],
)  # fmt: skip
def test_calls_per_minute_between_polls(
    previous: dict[str, Any] | None, now: float, queues: dict[str, QueueStats], expected: dict
) -> None:
    got, _state = rates(previous, queues, now)
    assert got == pytest.approx(expected)


def test_the_kept_state_survives_a_restart_as_json() -> None:
    _, state = rates(None, {"a": q(total=100)}, 1000.0)
    restored = json.loads(json.dumps(state))
    got, _ = rates(restored, {"a": q(total=160)}, 1120.0)
    assert got == {"a": 30.0}


def test_combining_sums_counts_and_takes_the_longest_wait() -> None:
    a = QueueStats(2, longest_wait=10.0, logged_in=3, available=1, paused=None, calls_total=5)
    b = QueueStats(1, longest_wait=40.0, logged_in=None, available=2, paused=1, calls_total=None)
    c = combine([a, b])
    assert (c.calls_waiting, c.longest_wait, c.logged_in, c.available, c.paused) == (
        3,
        40.0,
        3,
        3,
        1,
    )
    assert c.calls_total == 5
    assert combine([]).longest_wait is None


def test_a_real_queue_named_other_joins_the_overflow() -> None:
    queues = {"a": q(1, logged_in=9), "other": q(2, logged_in=1), "b": q(0, logged_in=5)}
    capped = cap_queues(queues, 2)
    assert sorted(capped) == ["a", "other"]
    assert capped["other"].calls_waiting == 2 and capped["other"].logged_in == 6


def test_no_queues_at_all_is_ok_and_says_so() -> None:
    obs = evaluate_queues(QueueSample({}), resolve({}, QUEUE_RULES), 32, {}, None)
    assert obs.status is Status.OK
    assert obs.detail == "0 queues: 0 calls waiting"
    assert [p.measurement for p in obs.metrics] == ["dialer"]


def test_calls_per_minute_below_its_limit_fails_overall() -> None:
    thresholds = resolve({"calls_per_minute": Limit(warn=20, fail=5)}, QUEUE_RULES)
    sample = QueueSample({"a": q(total=1)})
    obs = evaluate_queues(sample, thresholds, 32, {"a": 3.0}, 3.0)
    assert obs.status is Status.FAIL
    assert obs.detail.startswith("calls per minute at 3 /min (fail below 5 /min)")
