"""``sip`` probe: is a SIP trunk, gateway or proxy alive? OPTIONS or REGISTER over UDP, TCP or TLS.

One probe run sends one OPTIONS request (RFC 3261 §11) to ``target.uri`` (or,
with a ``register:`` block, a REGISTER with digest authentication, see
``register``) to every gateway the URI resolves to (``resolve``), and
classifies the final response (see ``classify``): 2xx ``ok``; codes that
prove the peer alive but unhappy (``warn_codes``) ``warn``; other errors,
timeouts, ICMP/TCP refusals and unresolvable hosts ``fail``. It records the
RTT, the status code and the number of retransmissions in a ``sip`` metric
point; the Observation's latency is the RTT in seconds.

Modules: ``config`` (the target model), ``message`` (build and parse, pure), ``transaction`` (RFC 3261
timers for UDP, framing for TCP, and the RTT choice for retransmitted
requests), ``transport`` (the shared UDP socket per source address and port,
its branch dispatcher, and why ICMP "port unreachable" still reaches the
right probe through IP_RECVERR), ``classify`` (Outcome → Observation, pure),
``session`` (one run's path to one gateway over UDP, TCP or TLS), ``tls``
(contexts and TLS failure sentences), ``resolve`` and ``rfc3263`` (DNS),
``digest`` and ``register`` (REGISTER with authentication), ``call`` (the
opt-in test call), ``stats`` (RTT deviation, loss and response counts over a
window kept in probe state), ``gateways`` (combining several gateways' results).
User documentation: ``docs/probes/sip.md``.

Why our own minimal SIP client and not a library. On PyPI (2026-11):
``aiosip`` is abandoned (last release 2017); ``PyVoIP`` is built around a
phone with threads, RTP and a socket of its own; PJSUA2 bindings need a
native build or platform wheels and run their own event loop and threads;
``aiosipua`` and ``pysipio`` are young single-maintainer projects. None offers
what the probe is about: thousands of concurrent non-INVITE transactions on
one shared asyncio socket, routed by branch, with exact Timer E/F behaviour
and per-destination ICMP errors. An OPTIONS client is a few hundred lines of
well-specified code that we can test byte for byte; a SIP stack would be
far more code than we use. REGISTER with digest, TLS (the standard
library's ``ssl``), RFC 3263 (``dnspython``) and a test call with INVITE,
CANCEL and BYE were added here on the same basis: a few well-specified
requests, not a phone.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.base import ProbeContext
from probes.sip import stats
from probes.sip.call import MEASUREMENT as CALL_MEASUREMENT
from probes.sip.call import CallSummary, StreamCallChannel, TestCall, summarize
from probes.sip.classify import classify
from probes.sip.config import DEFAULT_WARN_CODES, SipTarget
from probes.sip.gateways import combine, tagged
from probes.sip.message import build_options, parse_uri
from probes.sip.register import register
from probes.sip.resolve import NO_ANSWER, resolve
from probes.sip.session import Destination, Session, StreamSession, UdpSession, open_session

__all__ = ["DEFAULT_WARN_CODES", "SipTarget", "check"]


async def check(target: SipTarget, ctx: ProbeContext) -> Observation:
    """Probe every gateway ``target.uri`` resolves to and combine what they answer."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    budget = min(target.timeout, ctx.timeout)
    uri = parse_uri(target.uri)
    resolved = await resolve(target, uri, budget, ctx.shared)
    if isinstance(resolved, Observation):
        return resolved
    remaining = max(budget - (loop.time() - started), 0.001)
    first = resolved.destinations[0]
    call = None
    if target.test_call is not None and call_due(ctx.state, target.test_call.rate_limit):
        call = asyncio.ensure_future(place_call(target, ctx, first, started + budget))
        # If this run is cancelled (runner timeout) the call is *not* cancelled with
        # it: it must still hang up or CANCEL, within its own deadline. Its result
        # is then never awaited, so retrieve any exception here.
        call.add_done_callback(lambda task: task.cancelled() or task.exception())
    if len(resolved.destinations) == 1:
        # The common case (a trunk by IP): no gather, whose task costs show at 1,000 probes/s.
        observations = [await probe_gateway(target, ctx, first, remaining)]
    else:
        observations = list(
            await asyncio.gather(
                *(probe_gateway(target, ctx, d, remaining) for d in resolved.destinations)
            )
        )
    keys = [d.label if resolved.named else "" for d in resolved.destinations]
    observations = [
        stats.record(ctx.state, key, o, target.stats_window)
        for key, o in zip(keys, observations, strict=True)
    ]
    stats.forget_others(ctx.state, keys)
    if not resolved.named:
        observation = observations[0]
    else:
        results = [
            (d.label, tagged(o, d.label))
            for d, o in zip(resolved.destinations, observations, strict=True)
        ]
        observation = combine(results, resolved.unresolved)
    if call is not None:
        summary = await asyncio.shield(call)
        if summary is not None:
            tags = {"gateway": first.label} if resolved.named else {}
            observation = with_call(observation, summary, tags)
    return observation


def call_due(state: dict[str, Any], rate_limit: float) -> bool:
    """Is a test call allowed now? Records the attempt at once, so a crash cannot repeat it."""
    now = time.time()
    last = state.get("sip_call_last")
    if isinstance(last, int | float) and 0 <= now - last < rate_limit:
        return False
    state["sip_call_last"] = now
    return True


async def place_call(
    target: SipTarget, ctx: ProbeContext, destination: Destination, deadline: float
) -> CallSummary | None:
    """The test call through the first gateway: UDP from the shared socket, or its own
    TCP/TLS connection."""
    options = target.test_call
    assert options is not None
    loop = asyncio.get_running_loop()
    session = await open_session(target, ctx, destination, max(deadline - loop.time(), 0.001))
    if isinstance(session, UdpSession):
        result = await TestCall(
            target, options, session.endpoint, destination.sockaddr, session.local_host
        ).run(deadline)
        return summarize(result, options)
    if isinstance(session, StreamSession):
        channel = StreamCallChannel(session)
        try:
            result = await TestCall(
                target,
                options,
                channel,
                destination.sockaddr,
                session.local_host,
                session.transport,
            ).run(deadline)
        finally:
            await channel.close()
        return summarize(result, options)
    return None  # could not connect: the OPTIONS probe of the same gateway says why


_RANK = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3}


def with_call(observation: Observation, call: CallSummary, tags: dict[str, str]) -> Observation:
    """The observation with the call's sentence, its ``sip_call`` point and, if worse, its status."""
    call_status = Status(call.status)
    point = MetricPoint(CALL_MEASUREMENT, call.fields, tags)
    worse = _RANK[call_status] > _RANK[observation.status]
    return Observation(
        call_status if worse else observation.status,
        f"{observation.detail}; {call.detail}",
        (*observation.metrics, point),
        observation.latency,
        ErrorClass(call.error_class) if worse and call.error_class else observation.error_class,
    )


def next_cseq(state: dict[str, Any]) -> int:
    # One counter per target across runs: harmless to peers (each run has a new
    # Call-ID) and it makes consecutive probes easy to tell apart in a trace.
    cseq = int(state.get("sip_cseq", 0)) % (2**31 - 1) + 1
    state["sip_cseq"] = cseq
    return cseq


async def probe_gateway(
    target: SipTarget, ctx: ProbeContext, destination: Destination, budget: float
) -> Observation:
    """One gateway: open a session, run the configured flow, close."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    session = await open_session(target, ctx, destination, budget)
    if isinstance(session, Observation):
        return session
    host, port = destination.server_name, destination.sockaddr[1]
    if session is None:
        return Observation.fail(
            f"no {destination.transport.upper()} connection to {host}:{port} within {budget:.1f} s",
            ErrorClass.TIMEOUT,
            NO_ANSWER,
        )
    if not isinstance(session, Session):
        return classify(session, transport=destination.transport, timeout=budget, peer=host)
    try:
        remaining = max(budget - (loop.time() - started), 0.001)
        if target.registration is not None:
            return await register(target, ctx, session, remaining, host)
        return await options(target, ctx, session, remaining, host)
    finally:
        await session.close()


async def options(
    target: SipTarget, ctx: ProbeContext, session: Session, timer_f: float, peer: str
) -> Observation:
    """One OPTIONS transaction, classified."""
    request = build_options(
        request_uri=target.uri,
        transport=session.transport,
        local_host=session.local_host,
        local_port=session.local_port,
        from_user=target.from_user,
        from_domain=target.from_domain or session.local_host,
        user_agent=target.user_agent,
        cseq=next_cseq(ctx.state),
    )
    outcome = await session.transact(request, timer_f)
    return classify(
        outcome,
        transport=session.transport,
        timeout=timer_f,
        warn_codes=target.warn_codes,
        peer=peer,
    )
