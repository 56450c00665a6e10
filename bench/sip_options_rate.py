"""How many SIP OPTIONS per second the sip probe sustains against a SIPp UAS on loopback.

Runs the real ``probes.sip.check`` (one shared UDP socket, branch dispatcher,
RFC 3261 timers) on one asyncio loop, the way the engine does, against SIPp
answering 200 OK. Two modes:

- paced (default): start ``--rate`` probes per second for ``--duration``
  seconds, like 10,000 targets on a 10 s interval (``--rate 1000``), and
  report whether every probe got its answer and the RTT percentiles;
- ``--burst N``: start N probes at once and report how long they all took.

Usage (from the repository root)::

    .venv/bin/python -m bench.sip_options_rate --rate 1000 --duration 10
    .venv/bin/python -m bench.sip_options_rate --burst 5000

SIPp is single-threaded and shares the two CPUs with the probe here, so the
numbers are a floor for the probe, not a ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import statistics
import tempfile
import time
from pathlib import Path

from core.observation import Observation
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from probes.sip.transport import SHARED_KEY
from tests.peers.sipp import sipp_options_uas


def _targets(uri: str, n: int) -> list[SipTarget]:
    return [
        SipTarget.model_validate({"id": f"trunk-{i}", "kind": "sip", "uri": uri}) for i in range(n)
    ]


def _report(observations: list[Observation], elapsed: float, cpu: float, ctx: ProbeContext) -> None:
    statuses = collections.Counter(o.status.value for o in observations)
    retrans = sum(int(o.metrics[0].fields["retransmissions"]) for o in observations if o.metrics)
    rtts = sorted(o.latency * 1000 for o in observations if o.latency is not None)
    print(f"probes: {len(observations)} in {elapsed:.2f} s = {len(observations) / elapsed:,.0f}/s")
    print(f"status: {dict(statuses)}  retransmissions: {retrans}")
    # CPU per probe is the number that does not depend on what else the machine is doing.
    print(f"cpu: {cpu:.2f} s = {cpu / len(observations) * 1e6:.0f} us per probe (this process)")
    if rtts:
        p50 = statistics.median(rtts)
        p99 = rtts[min(len(rtts) - 1, int(len(rtts) * 0.99))]
        print(f"rtt ms: p50 {p50:.2f}  p99 {p99:.2f}  max {rtts[-1]:.2f}")
    endpoints = ctx.shared.get(SHARED_KEY)
    if endpoints is not None:
        for ep in endpoints.endpoints():
            print(
                f"socket {ep.local_address}: received {ep.received}, "
                f"unmatched {ep.unmatched}, malformed {ep.malformed}"
            )


async def _paced(uri: str, rate: int, duration: float) -> None:
    ctx = ProbeContext(target_id="bench", timeout=4.0)
    targets = _targets(uri, rate)
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Observation]] = []
    started = loop.time()
    cpu_started = time.process_time()
    total = int(rate * duration)
    lag_max = 0.0
    for i in range(total):
        due = started + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            lag_max = max(lag_max, -delay)
        tasks.append(asyncio.create_task(check(targets[i % rate], ctx)))
    observations = list(await asyncio.gather(*tasks))
    elapsed = loop.time() - started
    print(f"paced {rate}/s for {duration:g} s; worst start lag {lag_max * 1000:.1f} ms")
    _report(observations, elapsed, time.process_time() - cpu_started, ctx)
    await ctx.shared.aclose()


async def _burst(uri: str, n: int) -> None:
    ctx = ProbeContext(target_id="bench", timeout=4.0)
    targets = _targets(uri, n)
    started, cpu_started = time.perf_counter(), time.process_time()
    observations = list(await asyncio.gather(*(check(t, ctx) for t in targets)))
    print(f"burst of {n}")
    _report(observations, time.perf_counter() - started, time.process_time() - cpu_started, ctx)
    await ctx.shared.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=int, default=1000, help="probes started per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (paced mode)")
    parser.add_argument("--burst", type=int, default=0, help="start this many probes at once")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        sipp_options_uas(Path(tmp), 200, "OK", "udp") as uas,
    ):
        if args.burst:
            asyncio.run(_burst(uas.uri, args.burst))
        else:
            asyncio.run(_paced(uas.uri, args.rate, args.duration))


if __name__ == "__main__":
    main()
