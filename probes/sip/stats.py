"""Per-trunk (per-gateway) statistics over the last probes: RTT deviation, loss, response codes.

A single OPTIONS says "alive, 12 ms". What an operator needs next is whether
the path is steady: the RTT's mean and standard deviation over the last
``stats_window`` probes, the share of probes that needed a retransmission or
got no answer at all (probe packet loss), and which codes came back. The
window lives in ``ctx.state`` (JSON: lists of numbers), one per gateway, so
it survives an engine restart; gateways that DNS no longer returns are
dropped from it.

Fields of the ``sip`` point (fixed types): ``rtt_avg_ms`` float and
``rtt_dev_ms`` float (only once the window holds one / two answered
probes), ``loss_pct`` float, ``window`` int, and the response counts per
class ``responses_2xx`` … ``responses_6xx``, ``responses_none`` (int,
present when non-zero). Counts by class as fields, not a point per code:
every extra point per probe would double what the metric sinks write at
1,000 probes a second, and the exact code of each probe is already in
``status_code``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from core.observation import ErrorClass, FieldValue, MetricPoint, Observation, Status

STATE_KEY = "sip_stats"
CLASS_FIELDS = {
    1: "responses_1xx",
    2: "responses_2xx",
    3: "responses_3xx",
    4: "responses_4xx",
    5: "responses_5xx",
    6: "responses_6xx",
}
"""Final responses per class in the window; ``responses_none`` counts probes without one."""

Sample = list[Any]
"""[rtt_ms or None, lost (0/1), status code] — lists, because the state is stored as JSON."""


def sample_of(observation: Observation) -> Sample | None:
    """The window sample for one gateway's observation; None when the probe could not run."""
    if observation.status is Status.ERROR:
        return None
    point = next((p for p in observation.metrics if p.measurement == "sip"), None)
    if point is None:
        return None
    code = int(point.fields.get("status_code", 0))
    rtt = point.fields.get("rtt_ms")
    retransmitted = int(point.fields.get("retransmissions", 0)) > 0
    timed_out = code == 0 and observation.error_class is ErrorClass.TIMEOUT
    return [
        float(rtt) if isinstance(rtt, int | float) else None,
        int(retransmitted or timed_out),
        code,
    ]


def summarize(window: Iterable[Sample]) -> dict[str, FieldValue]:
    """Pure: the statistics fields for a window of samples."""
    samples = window if isinstance(window, list) else list(window)
    n = len(samples)
    rtts = [s[0] for s in samples if s[0] is not None]
    fields: dict[str, FieldValue] = {
        "loss_pct": round(100.0 * sum([s[1] for s in samples]) / n, 3) if n else 0.0,
        "window": n,
    }
    for s in samples:
        code = s[2]
        name = CLASS_FIELDS.get(code // 100, "responses_none") if code > 0 else "responses_none"
        fields[name] = int(fields.get(name, 0)) + 1
    if rtts:
        count = len(rtts)
        mean = sum(rtts) / count
        fields["rtt_avg_ms"] = round(mean, 3)
        if count >= 2:
            variance = max(sum([r * r for r in rtts]) / count - mean * mean, 0.0)
            fields["rtt_dev_ms"] = round(math.sqrt(variance), 3)
    return fields


def record(state: dict[str, Any], key: str, observation: Observation, size: int) -> Observation:
    """Add this probe to the gateway's window and its statistics to the observation's ``sip`` point."""
    sample = sample_of(observation)
    if sample is None:
        return observation
    windows = state.get(STATE_KEY)
    if not isinstance(windows, dict):
        windows = {}
        state[STATE_KEY] = windows
    window = windows.get(key)
    if not isinstance(window, list):
        window = []
        windows[key] = window
    window.append(sample)
    if len(window) > size:
        del window[: len(window) - size]
    fields = summarize(window)
    # Rebuilt by hand rather than with dataclasses.replace: this runs for every
    # probe, ~1,000 times a second on a large site.
    points = tuple(
        MetricPoint(p.measurement, {**p.fields, **fields}, p.tags, p.time_ns)
        if p.measurement == "sip"
        else p
        for p in observation.metrics
    )
    return Observation(
        observation.status,
        observation.detail,
        points,
        observation.latency,
        observation.error_class,
        observation.time,
    )


def forget_others(state: dict[str, Any], keep: Iterable[str]) -> None:
    """Drop the windows of gateways not probed any more (bounded state)."""
    windows = state.get(STATE_KEY)
    if isinstance(windows, dict):
        wanted = set(keep)
        for key in [k for k in windows if k not in wanted]:
            del windows[key]
