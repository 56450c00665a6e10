"""What a delivery does after a failed attempt, and the per-person rate limit (pure, table-tested)."""

from __future__ import annotations

import pytest

from monitor.store.models import DELIVERY_FAILED, DELIVERY_PENDING
from notify.fallback import Next, RateLimit, RetryPolicy, after_failure, rate_wait

POLICY = RetryPolicy(retries=2, backoff=(2.0, 10.0), max_wait=60.0)
NOW = 1000.0


@pytest.mark.parametrize(
    ("index", "channels", "tries", "permanent", "retry_after", "expected"),
    [
        pytest.param(
            0, 3, 0, True, None, Next(DELIVERY_PENDING, 1, 0, NOW), id="permanent-next-at-once"
        ),
        pytest.param(
            0, 3, 0, False, None, Next(DELIVERY_PENDING, 0, 1, NOW + 2), id="transient-retry-1"
        ),
        pytest.param(
            0, 3, 1, False, None, Next(DELIVERY_PENDING, 0, 2, NOW + 10), id="transient-retry-2"
        ),
        pytest.param(
            0, 3, 2, False, None, Next(DELIVERY_PENDING, 1, 0, NOW), id="retries-spent-next"
        ),
        pytest.param(
            2, 3, 0, True, None, Next(DELIVERY_FAILED, 3, 1, NOW), id="last-channel-permanent"
        ),
        pytest.param(
            2, 3, 2, False, None, Next(DELIVERY_FAILED, 3, 3, NOW), id="last-channel-spent"
        ),
        pytest.param(
            0, 2, 0, False, 30.0, Next(DELIVERY_PENDING, 0, 1, NOW + 30), id="retry-after-honoured"
        ),
        pytest.param(
            0, 2, 0, False, 1.0, Next(DELIVERY_PENDING, 0, 1, NOW + 2), id="retry-after-shorter"
        ),
        pytest.param(
            0, 2, 0, False, 3600.0, Next(DELIVERY_PENDING, 1, 0, NOW), id="retry-after-too-long"
        ),
    ],
)
def test_after_a_failure(
    index: int,
    channels: int,
    tries: int,
    permanent: bool,
    retry_after: float | None,
    expected: Next,
) -> None:
    got = after_failure(
        channel_index=index,
        channels=channels,
        tries=tries,
        permanent=permanent,
        now=NOW,
        policy=POLICY,
        retry_after=retry_after,
    )
    assert got == expected


def test_no_retries_means_the_next_channel_at_once() -> None:
    got = after_failure(
        channel_index=0,
        channels=2,
        tries=0,
        permanent=False,
        now=NOW,
        policy=RetryPolicy(retries=0),
    )
    assert got == Next(DELIVERY_PENDING, 1, 0, NOW)


@pytest.mark.parametrize(
    ("sent", "expected"),
    [
        pytest.param([], None, id="nothing-sent"),
        pytest.param([NOW - 500, NOW - 100], None, id="under-the-limit"),
        pytest.param([NOW - 500, NOW - 300, NOW - 100], NOW - 500 + 600, id="full-window"),
        pytest.param([NOW - 700, NOW - 300, NOW - 100], None, id="oldest-left-the-window"),
        pytest.param([NOW - 590, NOW - 400, NOW - 300, NOW - 1], NOW - 400 + 600, id="over"),
    ],
)
def test_the_rate_limit(sent: list[float], expected: float | None) -> None:
    assert rate_wait(sent, NOW, RateLimit(messages=3, window=600.0)) == expected
