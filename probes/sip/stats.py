"""Per-trunk (per-gateway) statistics over the last probes: RTT deviation, loss, response codes.

A single OPTIONS says "alive, 12 ms". What an operator needs next is whether
the path is steady: the RTT's mean and standard deviation over the last
``stats_window`` probes, the share of probes that needed a retransmission or
got no answer at all (probe packet loss), and which codes came back. The
window lives in ``ctx.state`` (JSON: lists of numbers), one per gateway, so
it survives an engine restart; gateways that DNS no longer returns are
dropped from it.

Fields (fixed types): ``rtt_avg_ms`` float and ``rtt_dev_ms`` float (only
once the window holds one / two answered probes), ``loss_pct`` float,
``window`` int; and one ``sip_responses`` point per code seen in the window
(tag ``code``, ``0`` = no answer; field ``count`` int).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from monitor.observation import ErrorClass, FieldValue, MetricPoint, Observation, Status

STATE_KEY = "sip_stats"
RESPONSES = "sip_responses"

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


def summarize(window: Iterable[Sample]) -> tuple[dict[str, FieldValue], Counter[int]]:
    """Pure: the fields and code counts for a window of samples."""
    samples = list(window)
    rtts = [s[0] for s in samples if s[0] is not None]
    fields: dict[str, FieldValue] = {
        "loss_pct": round(100.0 * sum(s[1] for s in samples) / len(samples), 3) if samples else 0.0,
        "window": len(samples),
    }
    if rtts:
        mean = sum(rtts) / len(rtts)
        fields["rtt_avg_ms"] = round(mean, 3)
        if len(rtts) >= 2:
            fields["rtt_dev_ms"] = round(
                math.sqrt(sum((r - mean) ** 2 for r in rtts) / len(rtts)), 3
            )
    return fields, Counter(int(s[2]) for s in samples)


def record(state: dict[str, Any], key: str, observation: Observation, size: int) -> Observation:
    """Add this probe to the gateway's window and its statistics to the observation's points."""
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
    window = [*window, sample][-size:]
    windows[key] = window
    fields, codes = summarize(window)
    points: list[MetricPoint] = []
    for point in observation.metrics:
        if point.measurement == "sip":
            point = replace(point, fields={**point.fields, **fields})
        points.append(point)
    for code, count in sorted(codes.items()):
        points.append(MetricPoint(RESPONSES, {"count": count}, {"code": str(code)}))
    return replace(observation, metrics=tuple(points))


def forget_others(state: dict[str, Any], keep: Iterable[str]) -> None:
    """Drop the windows of gateways not probed any more (bounded state)."""
    windows = state.get(STATE_KEY)
    if isinstance(windows, dict):
        wanted = set(keep)
        for key in [k for k in windows if k not in wanted]:
            del windows[key]
