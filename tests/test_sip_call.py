"""The opt-in test call, placed through a real Kamailio proxy to a SIPp callee.

Kamailio (``tests.peers.kamailio.kamailio_record_routing_proxy``) record-routes
the dialog, so our ACK and BYE must follow the Route set back through it;
SIPp (``tests.peers.sipp.sipp_call_uas``) answers, rings until CANCEL, is busy
or fails. What the callee received is read from SIPp's message trace.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from core.observation import ErrorClass, Observation, Status
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from tests.peers.kamailio import kamailio_record_routing_proxy
from tests.peers.sipp import Authority, sipp_call_uas, sipp_tls_front

pytestmark = pytest.mark.peer


def target(port: int, transport: str = "udp", **call: object) -> SipTarget:
    return SipTarget.model_validate(
        {
            "id": "carrier-a",
            "kind": "sip",
            "uri": f"sip:127.0.0.1:{port};transport={transport}",
            "interval": "60s",
            "timeout": "6s",
            "test_call": {"number": "100", "ring_timeout": "2s", "hangup_after": "200ms", **call},
        }
    )


def run(t: SipTarget, state: dict[str, object] | None = None) -> Observation:
    async def probe() -> Observation:
        ctx = ProbeContext(
            target_id=t.id, timeout=t.timeout, state=state if state is not None else {}
        )
        try:
            return await check(t, ctx)
        finally:
            await ctx.shared.aclose()

    return asyncio.run(probe())


def call_fields(observation: Observation) -> dict[str, object]:
    (point,) = [p for p in observation.metrics if p.measurement == "sip_call"]
    return dict(point.fields)


def callee_saw(workdir: Path, port: int) -> str:
    return (workdir / f"sipp-call-{port}-messages.log").read_text(errors="replace")


def wait_for(predicate, timeout: float = 3.0) -> bool:  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_an_answered_call_measures_ringing_and_answer_then_hangs_up_through_the_proxy(
    tmp_path: Path,
) -> None:
    with (
        sipp_call_uas(tmp_path, "answer", ring_ms=300) as callee,
        kamailio_record_routing_proxy(tmp_path, callee.port) as proxy,
    ):
        observation = run(target(proxy.port))
        assert wait_for(lambda: "BYE sip:" in callee_saw(tmp_path, callee.port))
    assert observation.status is Status.OK, observation.detail
    assert "test call to 100: ringing after" in observation.detail
    assert "hung up" in observation.detail
    fields = call_fields(observation)
    assert (fields["status_code"], fields["answered"], fields["cancelled"]) == (200, 1, 0)
    assert float(fields["answer_ms"]) >= 300 > float(fields["post_dial_delay_ms"])  # type: ignore[arg-type]
    trace = callee_saw(tmp_path, callee.port)
    assert "ACK sip:callee@127.0.0.1" in trace  # the ACK reached the callee through the proxy


def test_an_unanswered_call_is_cancelled_after_the_ring_timeout(tmp_path: Path) -> None:
    with (
        sipp_call_uas(tmp_path, "ring") as callee,
        kamailio_record_routing_proxy(tmp_path, callee.port) as proxy,
    ):
        observation = run(target(proxy.port, ring_timeout="1s"))
        assert wait_for(lambda: "CANCEL sip:100@" in callee_saw(tmp_path, callee.port))
    assert observation.status is Status.OK, observation.detail
    assert "not answered within 1 s, cancelled" in observation.detail
    fields = call_fields(observation)
    assert (fields["status_code"], fields["answered"], fields["cancelled"]) == (487, 0, 1)
    assert "answer_ms" not in fields and "post_dial_delay_ms" in fields


@pytest.mark.parametrize(
    ("behaviour", "status", "error_class", "sentence"),
    [
        pytest.param(
            "busy",
            Status.WARN,
            ErrorClass.RESPONSE,
            "the number is busy (486 Busy Here)",
            id="busy",
        ),
        # RFC 3261 §16.7: a proxy must not relay a 503; Kamailio turns it into a 500.
        pytest.param(
            "fail",
            Status.FAIL,
            ErrorClass.RESPONSE,
            "was refused: 500 Service Unavailable",
            id="503-relayed-as-500",
        ),
    ],
)
def test_a_refused_call_changes_the_status_even_when_options_is_answered(
    tmp_path: Path, behaviour: str, status: Status, error_class: ErrorClass, sentence: str
) -> None:
    # The proxy answers OPTIONS itself, like an SBC: the trunk looks alive, the call fails.
    with (
        sipp_call_uas(tmp_path, behaviour) as callee,
        kamailio_record_routing_proxy(tmp_path, callee.port) as proxy,
    ):
        observation = run(target(proxy.port))
    assert observation.detail.startswith("200 OK in ")
    assert sentence in observation.detail
    assert (observation.status, observation.error_class) == (status, error_class)
    fields = call_fields(observation)
    assert fields["answered"] == 0


def test_calls_are_rate_limited_across_runs(tmp_path: Path) -> None:
    state: dict[str, object] = {}
    with (
        sipp_call_uas(tmp_path, "answer", ring_ms=50) as callee,
        kamailio_record_routing_proxy(tmp_path, callee.port) as proxy,
    ):
        first = run(target(proxy.port, rate_limit="1h"), state)
        second = run(target(proxy.port, rate_limit="1h"), state)
    assert "test call to 100" in first.detail
    assert "test call" not in second.detail
    assert not [p for p in second.metrics if p.measurement == "sip_call"]


@pytest.mark.parametrize("behaviour", ["answer", "ring"])
def test_a_call_over_tcp_is_answered_or_cancelled_without_retransmissions(
    tmp_path: Path, behaviour: str
) -> None:
    # Kamailio takes our TCP connection and relays to the SIPp callee over UDP.
    with (
        sipp_call_uas(tmp_path, behaviour) as callee,
        kamailio_record_routing_proxy(tmp_path, callee.port) as proxy,
    ):
        observation = run(target(proxy.tcp_port, "tcp", ring_timeout="1s"))
        expected = "BYE sip:" if behaviour == "answer" else "CANCEL sip:100@"
        assert wait_for(lambda: expected in callee_saw(tmp_path, callee.port))
    assert observation.status is Status.OK, observation.detail
    fields = call_fields(observation)
    assert fields["retransmissions"] == 0
    if behaviour == "answer":
        assert "hung up" in observation.detail
        assert (fields["status_code"], fields["answered"]) == (200, 1)
    else:
        assert "cancelled" in observation.detail
        assert (fields["status_code"], fields["cancelled"]) == (487, 1)


def test_a_call_over_tls_reaches_the_callee_and_hangs_up(tmp_path: Path) -> None:
    # TLS from socat's OpenSSL in front of Kamailio's TCP listener; Kamailio relays over UDP.
    ca = Authority(tmp_path, "proxy")
    server = ca.issue("proxy", ["proxy.dialwatch.test"])
    with (
        sipp_call_uas(tmp_path, "answer", ring_ms=50) as callee,
        kamailio_record_routing_proxy(tmp_path, callee.port) as proxy,
        sipp_tls_front(tmp_path, proxy.tcp_port, server.cert, server.key) as tls,
    ):
        t = SipTarget.model_validate(
            {
                "id": "carrier-a",
                "kind": "sip",
                "uri": f"sips:127.0.0.1:{tls.port}",
                "interval": "60s",
                "timeout": "6s",
                "tls": {"ca_file": str(ca.ca_file), "server_name": "proxy.dialwatch.test"},
                "test_call": {"number": "100", "ring_timeout": "2s", "hangup_after": "100ms"},
            }
        )
        observation = run(t)
        assert wait_for(lambda: "BYE sip:" in callee_saw(tmp_path, callee.port))
    assert observation.status is Status.OK, observation.detail
    assert "answered after" in observation.detail and "hung up" in observation.detail
    assert call_fields(observation)["status_code"] == 200
