"""Combining the results of a target's gateways into one Observation. Pure.

A trunk whose name resolves to three gateways is ``up`` only when all three
answer: two of three alive is ``warn`` (the state machine's ``degraded``),
none is ``fail``. Each gateway's metric points carry a ``gateway`` tag
(``ip:port``), so every gateway is its own series; a ``sip_gateways`` point
counts how many answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.observation import ErrorClass, MetricPoint, Observation, Status

MEASUREMENT = "sip_gateways"
_ALIVE = (Status.OK, Status.WARN)


def tagged(observation: Observation, gateway: str) -> Observation:
    """The observation with ``gateway`` added to the tags of each of its points."""
    points = tuple(
        replace(point, tags={**point.tags, "gateway": gateway}) for point in observation.metrics
    )
    return replace(observation, metrics=points)


def combine(
    results: Sequence[tuple[str, Observation]], unresolved: Sequence[tuple[str, str]] = ()
) -> Observation:
    """One Observation for all gateways, in resolution order; ``results`` must not be empty
    unless ``unresolved`` is not."""
    total = len(results) + len(unresolved)
    alive = [(label, o) for label, o in results if o.status in _ALIVE]
    failed: list[tuple[str, str, Observation | None]] = [
        (label, o.detail, o) for label, o in results if o.status not in _ALIVE
    ]
    failed += [(label, detail, None) for label, detail in unresolved]
    metrics: list[MetricPoint] = [p for _, o in results for p in o.metrics]
    metrics.append(MetricPoint(MEASUREMENT, {"total": total, "up": len(alive)}))
    latency = alive[0][1].latency if alive else None
    if not failed:
        worst = next((o for _, o in alive if o.status is Status.WARN), None)
        if total == 1:
            label, only = alive[0]
            return replace(only, detail=f"{label}: {only.detail}", metrics=tuple(metrics))
        detail = f"all {total} gateways answer: " + "; ".join(
            f"{label} {o.detail}" for label, o in alive
        )
        return Observation(
            Status.WARN if worst else Status.OK,
            detail,
            tuple(metrics),
            latency,
            worst.error_class if worst else None,
        )
    first = next((o for _, _, o in failed if o is not None), None)
    reasons = "; ".join(f"{label}: {detail}" for label, detail, _ in failed)
    error_class = first.error_class if first is not None else None
    if alive:
        return Observation(
            Status.WARN,
            f"{len(alive)} of {total} gateways answer; {reasons}",
            tuple(metrics),
            latency,
            error_class,
        )
    if first is not None and all(o is not None and o.status is Status.ERROR for _, _, o in failed):
        return replace(first, metrics=tuple(metrics))
    if total == 1:
        status = first.status if first is not None else Status.FAIL
        return Observation(status, reasons, tuple(metrics), None, error_class or ErrorClass.RESOLVE)
    return Observation(
        Status.FAIL,
        f"none of the {total} gateways answers: {reasons}",
        tuple(metrics),
        None,
        error_class or ErrorClass.RESOLVE,
    )
