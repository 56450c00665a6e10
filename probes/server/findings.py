"""Results a source adds beyond the shared ``ServerSample`` readings (pure).

``evaluate`` judges what every source reads (CPU, memory, disks...). Some
sources can check more: over SSH, whether systemd units are active and what
the operator's own commands report. Such a source returns a
``SampleWithFindings``; each ``Finding`` carries its own status, sentence and
points, and ``with_findings`` folds them into the observation ``evaluate``
made, so the detail and the status still come out as one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.server.sample import ServerSample
from probes.thresholds import worst

_SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3}


@dataclass(frozen=True, slots=True)
class Finding:
    """One extra check: ``sentence`` says what was found (a problem, or a short summary if ok)."""

    status: Status
    sentence: str
    points: tuple[MetricPoint, ...] = ()
    error_class: ErrorClass | None = None


@dataclass(frozen=True, slots=True)
class SampleWithFindings(ServerSample):
    findings: tuple[Finding, ...] = ()
    has_readings: bool = True
    """False when the source read none of the shared values (only extra checks ran)."""


def with_findings(
    observation: Observation, findings: Sequence[Finding], has_readings: bool = True
) -> Observation:
    """The observation with the findings' points, status and sentences folded in.

    Problems come first, worst first (the shared readings' problems keep their
    place among them); when all is well the detail is the summaries joined.
    """
    if not findings:
        return observation
    problems = sorted(
        (f for f in findings if f.status is not Status.OK), key=lambda f: -_SEVERITY[f.status]
    )
    status = worst([observation.status, *(f.status for f in findings)])
    if problems or observation.status is not Status.OK:
        sentences = [f.sentence for f in problems if f.status is Status.FAIL]
        if observation.status is not Status.OK:
            sentences.append(observation.detail)
        sentences += [f.sentence for f in problems if f.status is not Status.FAIL]
        detail = "; ".join(sentences)
    else:
        parts = [observation.detail] if has_readings else []
        detail = ", ".join(parts + [f.sentence for f in findings])
    error_class = observation.error_class
    if _SEVERITY[status] > _SEVERITY[observation.status]:
        error_class = next(f.error_class for f in problems if f.status is status)
    points = observation.metrics + tuple(p for f in findings for p in f.points)
    return replace(
        observation, status=status, detail=detail, metrics=points, error_class=error_class
    )
