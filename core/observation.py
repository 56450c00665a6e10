"""What a probe reports: an Observation with a Status and metric points.

These are plain frozen values shared by probes, the runner, the health state
machine and the metric sinks. Nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

FieldValue = float | int | bool | str


class Status(StrEnum):
    """Outcome of one probe run.

    ``error`` means the probe itself could not run (a bug, a missing
    dependency, a crash) — it says nothing about the target's health.
    """

    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    ERROR = "error"


class ErrorClass(StrEnum):
    """Small fixed vocabulary for why a probe failed (STYLE.md)."""

    TIMEOUT = "timeout"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    RESOLVE = "resolve"
    TLS = "tls"
    AUTH = "auth"
    PROTOCOL = "protocol"  # the peer answered, but not in a way we understand
    RESPONSE = "response"  # the peer answered with an error (e.g. SIP 503)
    THRESHOLD = "threshold"  # a measured value crossed a configured threshold
    CRASH = "crash"  # the probe raised; the runner turned it into an error observation


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One point of a labelled series.

    ``tags`` holds only the labels the probe adds (``mount``, ``gateway``,
    ``interface``...). The engine adds the standard tags (``target``,
    ``kind``, ``site`` and the target's configured tags) before a sink sees
    the point. ``time_ns`` 0 means "the observation's time".
    """

    measurement: str
    fields: Mapping[str, FieldValue]
    tags: Mapping[str, str] = field(default_factory=dict)
    time_ns: int = 0


@dataclass(frozen=True, slots=True)
class Observation:
    """Result of one probe run against one target."""

    status: Status
    detail: str = ""
    metrics: tuple[MetricPoint, ...] = ()
    latency: float | None = None  # seconds the check took (for SIP: the RTT)
    error_class: ErrorClass | None = None
    time: float = field(default_factory=time.time)  # epoch seconds, when it finished

    @staticmethod
    def ok(
        detail: str = "", metrics: tuple[MetricPoint, ...] = (), latency: float | None = None
    ) -> Observation:
        return Observation(Status.OK, detail, metrics, latency)

    @staticmethod
    def fail(
        detail: str,
        error_class: ErrorClass,
        metrics: tuple[MetricPoint, ...] = (),
        latency: float | None = None,
    ) -> Observation:
        return Observation(Status.FAIL, detail, metrics, latency, error_class)

    def to_json(self) -> dict[str, object]:
        """The shape `dialwatch probe --json` and the API print."""
        return {
            "status": self.status.value,
            "detail": self.detail,
            "latency": self.latency,
            "error_class": self.error_class.value if self.error_class else None,
            "time": self.time,
            "metrics": [
                {
                    "measurement": p.measurement,
                    "tags": dict(p.tags),
                    "fields": dict(p.fields),
                    **({"time_ns": p.time_ns} if p.time_ns else {}),
                }
                for p in self.metrics
            ],
        }
