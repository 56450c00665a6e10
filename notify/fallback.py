"""What happens to a delivery after a failed attempt, and when a person may get the next one.

Pure functions, table-tested (tests/test_notify_fallback.py). The rule:

- a **permanent** failure (the same message would fail again on that
  channel: a refused address, a bad signature, no subscription) moves to the
  person's next channel at once;
- a **transient** failure (a timeout, a 5xx, a rate limit) is retried on the
  same channel ``retries`` times, after ``backoff`` (or the provider's
  ``Retry-After`` when longer, up to ``max_wait``), then moves on;
- when the last channel has failed, the delivery has failed.

Retries are few and short on purpose: during an outage the next channel is
more likely to reach the person than the same one a minute later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from monitor.store.models import DELIVERY_FAILED, DELIVERY_PENDING


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    retries: int = 1
    """Transient failures retried on the same channel before the next one is tried."""
    backoff: tuple[float, ...] = (2.0, 10.0)
    """Seconds before each retry (the last repeats)."""
    max_wait: float = 60.0
    """A provider's ``Retry-After`` is honoured up to this; beyond, the next channel is better."""


@dataclass(frozen=True, slots=True)
class Next:
    """The delivery after a failure: its state, which channel, tries on it, when."""

    state: str
    channel_index: int
    tries: int
    due_at: float

    def as_tuple(self) -> tuple[str, int, int, float]:
        return (self.state, self.channel_index, self.tries, self.due_at)


def after_failure(
    *,
    channel_index: int,
    channels: int,
    tries: int,
    permanent: bool,
    now: float,
    policy: RetryPolicy,
    retry_after: float | None = None,
) -> Next:
    """Where a delivery goes after its attempt on ``channel_index`` failed (``tries`` before it)."""
    tried = tries + 1
    if not permanent and tried <= policy.retries:
        wait = policy.backoff[min(tried, len(policy.backoff)) - 1] if policy.backoff else 0.0
        if retry_after is not None:
            if retry_after > policy.max_wait:
                return _next_channel(channel_index, channels, tried, now)
            wait = max(wait, retry_after)
        return Next(DELIVERY_PENDING, channel_index, tried, now + wait)
    return _next_channel(channel_index, channels, tried, now)


def _next_channel(channel_index: int, channels: int, tried: int, now: float) -> Next:
    following = channel_index + 1
    if following < channels:
        return Next(DELIVERY_PENDING, following, 0, now)
    return Next(DELIVERY_FAILED, following, tried, now)


@dataclass(frozen=True, slots=True)
class RateLimit:
    messages: int = 6
    """At most this many messages to one person per ``window``; the rest wait and are grouped."""
    window: float = 600.0


def rate_wait(sent: Sequence[float], now: float, limit: RateLimit) -> float | None:
    """When the next message to a person may go, given when the last ones went (sorted);
    None: now. The overflow waits for the window and goes as one grouped message."""
    recent = [at for at in sent if at > now - limit.window]
    if len(recent) < limit.messages:
        return None
    return recent[len(recent) - limit.messages] + limit.window
