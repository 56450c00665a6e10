"""Turning a transaction's Outcome into an Observation: status, sentence, metrics.

Pure: the same Outcome always gives the same Observation (apart from its time).

- 2xx: ``ok``.
- A code in ``warn_codes`` (default 401, 403, 404, 405, 407, 420, 481, 484,
  489) or any 3xx: ``warn`` — the peer's SIP stack is alive and parsed our
  request, but is unhappy with it (not whitelisted, unknown user, OPTIONS not
  allowed, wants credentials, redirects). A trunk in this state will likely
  reject calls too, so it is not ``ok``; but the box is up, so it is not
  ``fail`` either.
- 408 is always ``fail``: a proxy (Kamailio, an SBC) generates it itself when
  the gateway behind it did not answer, so it proves nothing about the peer.
  The config refuses 408 in ``warn_codes`` for that reason.
- Any other 4xx, 5xx, 6xx: ``fail`` with error class RESPONSE and the reason phrase.
- 1xx never ends a transaction; a timeout after one says so.
- No answer: ``fail`` TIMEOUT; ICMP port unreachable / TCP RST: REFUSED;
  no such host: RESOLVE.
"""

from __future__ import annotations

import ssl
from collections.abc import Collection

from core.errors import describe_os_error
from core.observation import ErrorClass, FieldValue, MetricPoint, Observation, Status
from probes.sip.config import DEFAULT_WARN_CODES
from probes.sip.tls import TlsFailure, describe_tls_error
from probes.sip.transaction import Outcome, PeerClosedError

MEASUREMENT = "sip"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def metric_point(outcome: Outcome, up: bool) -> MetricPoint:
    """The ``sip`` point. Field types never change: influx rejects a field whose type flips.

    ``rtt_ms`` is present only when a final response arrived, so a graph of
    RTT is not polluted by timeouts; ``status_code`` is 0 when nothing answered.
    """
    fields: dict[str, FieldValue] = {
        "status_code": int(outcome.response.status) if outcome.response else 0,
        "retransmissions": int(outcome.retransmissions),
        "up": 1 if up else 0,
    }
    if outcome.response is not None and outcome.rtt is not None:
        fields["rtt_ms"] = round(float(outcome.rtt) * 1000, 3)
    return MetricPoint(MEASUREMENT, fields)


def classify(
    outcome: Outcome,
    *,
    transport: str,
    timeout: float,
    warn_codes: Collection[int] = DEFAULT_WARN_CODES,
    peer: str = "the peer",
    method: str = "OPTIONS",
) -> Observation:
    """Observation for one OPTIONS transaction; ``timeout`` is the Timer F that was used."""
    response = outcome.response
    if response is not None:
        code = response.status
        phrase = f"{code} {response.reason}".strip()
        rtt = outcome.rtt if outcome.rtt is not None else outcome.elapsed
        timing = f"in {rtt * 1000:.1f} ms"
        if outcome.retransmissions:
            timing += f" after {_plural(outcome.retransmissions, 'retransmission')}"
        if 200 <= code < 300:
            return Observation.ok(
                f"{phrase} {timing}", (metric_point(outcome, up=True),), latency=rtt
            )
        if code == 408:
            return Observation.fail(
                f"answered {phrase} {timing}: a proxy gave up waiting for the peer behind it",
                ErrorClass.RESPONSE,
                (metric_point(outcome, up=False),),
                latency=rtt,
            )
        if 300 <= code < 400 or code in warn_codes:
            note = " (redirects are not followed)" if code < 400 else ""
            return Observation(
                status=Status.WARN,
                detail=f"alive, but answered {phrase} to {method} {timing}{note}",
                metrics=(metric_point(outcome, up=True),),
                latency=rtt,
                error_class=ErrorClass.RESPONSE,
            )
        return Observation.fail(
            f"answered {phrase} to {method} {timing}",
            ErrorClass.RESPONSE,
            (metric_point(outcome, up=False),),
            latency=rtt,
        )
    point = (metric_point(outcome, up=False),)
    if isinstance(outcome.error, PeerClosedError):
        return Observation.fail(
            "the peer closed the TCP connection without answering OPTIONS",
            ErrorClass.PROTOCOL,
            point,
        )
    if isinstance(outcome.error, TlsFailure):
        return Observation.fail(outcome.error.detail, ErrorClass.TLS, point)
    if isinstance(outcome.error, ssl.SSLError):
        # A TLS alert after the handshake (TLS 1.3 sends "certificate required" then).
        return Observation.fail(describe_tls_error(outcome.error, peer), ErrorClass.TLS, point)
    if outcome.error is not None:
        detail, error_class = describe_os_error(outcome.error)
        if error_class is ErrorClass.REFUSED and transport == "udp":
            detail = "connection refused (ICMP port unreachable: nothing listens on that port)"
        return Observation.fail(detail, error_class, point)
    if transport == "udp":
        tail = f"after {_plural(outcome.retransmissions, 'retransmission')} ({timeout:.1f} s)"
    else:
        tail = f"over TCP within {timeout:.1f} s"
    if outcome.provisional is not None:
        prov = f"{outcome.provisional.status} {outcome.provisional.reason}".strip()
        detail = f"only {prov}, no final answer to {method} {tail}"
    else:
        detail = f"no answer to {method} {tail}"
    return Observation.fail(detail, ErrorClass.TIMEOUT, point)
