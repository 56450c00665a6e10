"""``server`` probe: a machine's CPU, load, memory, swap, disks, network errors and processes.

``via`` picks the source that reads the machine (``local``: psutil on the
Dialwatch host; SNMP and SSH sources plug in the same way). Every source
returns a ``ServerSample``; ``evaluate`` turns it into rates, points and a
status against the target's thresholds, the same for all sources.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping

from core.observation import Observation
from probes.base import LazyEntries, ProbeContext
from probes.server.config import SERVER_RULES, ServerTarget
from probes.server.evaluate import evaluate
from probes.server.findings import SampleWithFindings, with_findings
from probes.server.sample import ServerSample, SourceError

Source = Callable[[ServerTarget, ProbeContext], Awaitable[ServerSample]]

# paramiko and pysnmp cost ~48 MB of RSS: imported only by a site with SSH or SNMP targets.
SOURCES: Mapping[str, Source] = LazyEntries(
    {"local": "probes.server.local", "ssh": "probes.server.ssh", "snmp": "probes.server.snmp"},
    "collect",
)
"""``via`` value -> the coroutine that reads one sample (raises SourceError when it cannot)."""

STATE_KEY = "server"


def max_rate_age(target: ServerTarget) -> float:
    """Oldest previous poll that rates are still computed against.

    A few missed polls are fine (the rate is an average over the gap); after
    a long pause (engine stopped, then restarted with persisted state) the
    first poll only re-primes the counters.
    """
    return max(3 * target.interval, 60.0)


async def check(target: ServerTarget, ctx: ProbeContext) -> Observation:
    started = time.perf_counter()
    try:
        sample = await SOURCES[target.via](target, ctx)
    except SourceError as exc:
        return Observation.fail(exc.detail, exc.error_class)
    judgement = evaluate(
        sample,
        ctx.state.get(STATE_KEY),
        target.thresholds,
        target.processes,
        max_age=max_rate_age(target),
    )
    ctx.state[STATE_KEY] = judgement.state
    observation = judgement.observation(latency=time.perf_counter() - started)
    if isinstance(sample, SampleWithFindings):  # services, own commands (via: ssh)
        observation = with_findings(observation, sample.findings, sample.has_readings)
    return observation


__all__ = ["SERVER_RULES", "SOURCES", "ServerSample", "ServerTarget", "SourceError", "check"]
