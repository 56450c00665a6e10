"""The sip probe against a real SIPp UAS on loopback (UDP and TCP), and through a dropping relay."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.observation import ErrorClass, Observation, Status
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from tests.peers import free_port
from tests.peers import sipp as sipp_peer
from tests.peers.sipp import DroppingUdpRelay, SippUas, sipp_options_uas

pytestmark = pytest.mark.peer

sipp_uas = sipp_peer.sipp_uas  # the fixture, under its own name so pytest finds it


def sip_target(uri: str, **fields: object) -> SipTarget:
    return SipTarget.model_validate({"id": "trunk-a", "kind": "sip", "uri": uri, **fields})


def run_probe(target: SipTarget) -> Observation:
    async def probe() -> Observation:
        ctx = ProbeContext(target_id=target.id, timeout=target.timeout)
        try:
            return await check(target, ctx)
        finally:
            await ctx.shared.aclose()

    return asyncio.run(probe())


def fields_of(observation: Observation) -> dict[str, object]:
    (point,) = [p for p in observation.metrics if p.measurement == "sip"]
    assert point.measurement == "sip"
    return dict(point.fields)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sipp")


@pytest.fixture(scope="module")
def udp_uas(workdir: Path) -> Iterator[SippUas]:
    with sipp_options_uas(workdir, 200, "OK", "udp") as uas:
        yield uas


def test_udp_options_answered_200_is_ok_with_rtt(udp_uas: SippUas) -> None:
    observation = run_probe(sip_target(udp_uas.uri))
    assert observation.status is Status.OK, observation.detail
    fields = fields_of(observation)
    assert fields["status_code"] == 200
    assert fields["retransmissions"] == 0
    assert fields["up"] == 1
    assert isinstance(fields["rtt_ms"], float) and fields["rtt_ms"] > 0
    assert observation.latency == pytest.approx(fields["rtt_ms"] / 1000, abs=1e-6)
    assert observation.detail.startswith("200 OK in ")


def test_tcp_options_answered_200_is_ok(sipp_uas: Callable[..., SippUas]) -> None:
    observation = run_probe(sip_target(sipp_uas(200, "OK", "tcp").uri))
    assert observation.status is Status.OK, observation.detail
    assert fields_of(observation)["status_code"] == 200


@pytest.mark.parametrize(
    ("transport", "code", "reason", "status", "error_class"),
    [
        pytest.param(
            "udp", 503, "Service Unavailable", Status.FAIL, ErrorClass.RESPONSE, id="udp-503-fails"
        ),
        pytest.param("udp", 404, "Not Found", Status.WARN, ErrorClass.RESPONSE, id="udp-404-warns"),
        pytest.param(
            "udp", 408, "Request Timeout", Status.FAIL, ErrorClass.RESPONSE, id="udp-408-fails"
        ),
        pytest.param(
            "tcp", 503, "Service Unavailable", Status.FAIL, ErrorClass.RESPONSE, id="tcp-503-fails"
        ),
        pytest.param("tcp", 403, "Forbidden", Status.WARN, ErrorClass.RESPONSE, id="tcp-403-warns"),
    ],
)
def test_error_responses_are_classified_with_their_reason_phrase(
    sipp_uas: Callable[..., SippUas],
    transport: str,
    code: int,
    reason: str,
    status: Status,
    error_class: ErrorClass,
) -> None:
    observation = run_probe(sip_target(sipp_uas(code, reason, transport).uri))
    assert observation.status is status, observation.detail
    assert observation.error_class is error_class
    assert f"{code} {reason}" in observation.detail
    assert fields_of(observation)["status_code"] == code


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_provisional_100_trying_is_ignored_until_the_final_response(
    sipp_uas: Callable[..., SippUas], transport: str
) -> None:
    observation = run_probe(sip_target(sipp_uas(200, "OK", transport, provisional=True).uri))
    assert observation.status is Status.OK, observation.detail
    assert fields_of(observation)["status_code"] == 200


@pytest.mark.parametrize(
    ("transport", "kind"),
    [("udp", socket.SOCK_DGRAM), ("tcp", socket.SOCK_STREAM)],
)
def test_nobody_listening_fails_as_refused(transport: str, kind: int) -> None:
    port = free_port(kind)
    observation = run_probe(sip_target(f"sip:127.0.0.1:{port}", transport=transport))
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.REFUSED, observation.detail
    assert fields_of(observation)["up"] == 0


def test_lost_first_datagram_is_recovered_by_one_retransmission(udp_uas: SippUas) -> None:
    with DroppingUdpRelay(("127.0.0.1", udp_uas.port), drop_first=1) as relay:
        observation = run_probe(sip_target(f"sip:127.0.0.1:{relay.port}"))
    assert observation.status is Status.OK, observation.detail
    fields = fields_of(observation)
    assert fields["retransmissions"] == 1
    assert relay.dropped == 1
    # RTT is measured from the first transmission, so it includes the 500 ms T1 wait.
    assert fields["rtt_ms"] >= 500
    assert "after 1 retransmission" in observation.detail


def test_a_black_hole_times_out_after_the_rfc_retransmissions(udp_uas: SippUas) -> None:
    with DroppingUdpRelay(("127.0.0.1", udp_uas.port), drop_first=-1) as relay:
        observation = run_probe(sip_target(f"sip:127.0.0.1:{relay.port}", timeout="2s"))
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TIMEOUT
    # Timer E at 0.5 s and 1.5 s, Timer F at 2 s.
    assert observation.detail == "no answer to OPTIONS after 2 retransmissions (2.0 s)"
    assert relay.received == 3
    assert fields_of(observation) == {
        "status_code": 0,
        "retransmissions": 2,
        "up": 0,
        "loss_pct": 100.0,
        "window": 1,
        "responses_none": 1,
    }


def test_many_targets_share_one_socket_and_all_get_their_own_answer(udp_uas: SippUas) -> None:
    targets = [sip_target(udp_uas.uri, id=f"trunk-{i}", from_user=f"probe{i}") for i in range(200)]

    async def probe_all() -> tuple[list[Observation], int]:
        ctx = ProbeContext(target_id="many", timeout=4.0)
        try:
            results = await asyncio.gather(*(check(t, ctx) for t in targets))
            endpoints = ctx.shared.get("sip.udp_endpoints")
            return list(results), len(endpoints.endpoints())
        finally:
            await ctx.shared.aclose()

    observations, sockets = asyncio.run(probe_all())
    assert sockets == 1
    assert [o.status for o in observations] == [Status.OK] * len(targets)
