"""``dialer`` probe: call outcomes of an outbound dialer over a sliding window, overall and per trunk.

``source.type`` picks the adapter that reads the calls (``sql``: the CDR
table through SQLAlchemy; ``csv``: Asterisk's ``Master.csv`` followed across
rotation and restarts). Every CDR source returns a ``WindowSample`` of
per-trunk counts; ``evaluate`` turns it into KPIs (``kpi``), points and a
status against the target's thresholds, the same for all sources. Sources
that read queues rather than CDRs (AMI, HTTP) plug into ``SOURCES`` the same way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from core.observation import Observation
from probes.base import LazyEntries, ProbeContext
from probes.dialer import live
from probes.dialer.cdr import SourceError, WindowSample
from probes.dialer.config import DIALER_RULES, CsvSource, DialerTarget, SqlSource
from probes.dialer.evaluate import evaluate
from probes.dialer.queues import QueueSample

Source = Callable[[DialerTarget, ProbeContext], Awaitable[WindowSample | QueueSample]]

# Imported on first use, like the server probe's sources: urllib3 (``http``) is paid only
# by a site that reads queues over HTTP. (SQLAlchemy is loaded anyway, by the state store.)
SOURCES: Mapping[str, Source] = LazyEntries(
    {
        "sql": "probes.dialer.cdr_sql",
        "csv": "probes.dialer.cdr_csv",
        "ami": "probes.dialer.ami",
        "http": "probes.dialer.http_source",
    },
    "collect",
)
"""``source.type`` -> the coroutine that reads one window (raises SourceError when it cannot)."""


async def check(target: DialerTarget, ctx: ProbeContext) -> Observation:
    started = time.perf_counter()
    try:
        sample = await SOURCES[target.source.type](target, ctx)
    except SourceError as exc:
        return Observation.fail(exc.detail, exc.error_class, latency=time.perf_counter() - started)
    if isinstance(sample, QueueSample):
        return live.judge(sample, target, ctx, latency=time.perf_counter() - started)
    return evaluate(
        sample,
        target.thresholds,
        target.min_attempts,
        target.max_trunks,
        measure_abandon=target.source.abandon is not None,
        latency=time.perf_counter() - started,
    )


__all__ = [
    "DIALER_RULES",
    "SOURCES",
    "CsvSource",
    "DialerTarget",
    "SourceError",
    "SqlSource",
    "WindowSample",
    "check",
]
