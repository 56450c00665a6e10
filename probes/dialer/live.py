"""From a live source's queue snapshot to an Observation (the thin stateful step).

``probes.dialer.check`` hands a ``QueueSample`` here. The only memory
between polls is the queues' call counters and when they were read, kept in
``ctx.state["dialer_queues"]`` (JSON values, so it survives a restart).
"""

from __future__ import annotations

import time

from core.observation import Observation
from probes.base import ProbeContext
from probes.dialer.config import DialerTarget
from probes.dialer.queue_config import AmiSource, HttpSource
from probes.dialer.queues import QueueSample, evaluate_queues, overall_rate, rates

STATE_KEY = "dialer_queues"


def judge(
    sample: QueueSample, target: DialerTarget, ctx: ProbeContext, latency: float | None = None
) -> Observation:
    """Rates from the counters since the last poll, then thresholds, points and detail."""
    source = target.source
    assert isinstance(source, AmiSource | HttpSource)
    per_minute, state = rates(ctx.state.get(STATE_KEY), sample.queues, time.time())
    ctx.state[STATE_KEY] = state
    return evaluate_queues(
        sample,
        target.thresholds,
        source.max_queues,
        per_minute,
        overall_rate(per_minute, sample.queues),
        latency,
    )
