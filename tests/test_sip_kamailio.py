"""The sip probe through a real Kamailio proxy: a 408 a proxy makes up is never "alive".

Kamailio (tm module) relays our OPTIONS to a gateway. When the gateway is
silent, Kamailio itself answers ``408 Request Timeout`` after ``fr_timer`` —
the pitfall where a dead carrier behind a proxy stays green. When the
gateway (SIPp) answers, the answer comes back through the proxy's Via
handling and the probe must still match it.

Kamailio runs through ``tests.peers.kamailio.run_kamailio`` with the small
relay-everything route below.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.observation import ErrorClass, Observation, Status
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from tests.peers import free_port
from tests.peers.kamailio import run_kamailio
from tests.peers.sipp import sipp_options_uas

pytestmark = pytest.mark.peer

PROXY_BODY = """
# Give up on the gateway after 1 s, well inside the probe's timeout.
modparam("tm", "fr_timer", 1000)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    $du = "sip:127.0.0.1:{gateway_port}";
    t_relay();
    exit;
}}
"""


@contextlib.contextmanager
def kamailio_proxy(workdir: Path, gateway_port: int) -> Iterator[int]:
    """Kamailio on a free UDP port relaying every request to 127.0.0.1:gateway_port."""
    with run_kamailio(workdir, PROXY_BODY, gateway_port=gateway_port) as instance:
        yield instance.port


def run_probe(port: int) -> Observation:
    target = SipTarget.model_validate(
        {"id": "carrier-a", "kind": "sip", "uri": f"sip:127.0.0.1:{port}", "timeout": "3s"}
    )

    async def probe() -> Observation:
        ctx = ProbeContext(target_id=target.id, timeout=target.timeout)
        try:
            return await check(target, ctx)
        finally:
            await ctx.shared.aclose()

    return asyncio.run(probe())


def test_a_408_made_up_by_a_proxy_for_a_silent_gateway_is_a_failure(tmp_path: Path) -> None:
    silent_gateway = free_port(socket.SOCK_DGRAM)
    with kamailio_proxy(tmp_path, silent_gateway) as proxy:
        observation = run_probe(proxy)
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.RESPONSE)
    assert "408 Request Timeout" in observation.detail
    (point,) = [p for p in observation.metrics if p.measurement == "sip"]
    assert (point.fields["status_code"], point.fields["up"]) == (408, 0)


def test_an_answer_relayed_by_a_proxy_is_matched_to_the_probe(tmp_path: Path) -> None:
    with (
        sipp_options_uas(tmp_path, 200, "OK", "udp") as gateway,
        kamailio_proxy(tmp_path, gateway.port) as proxy,
    ):
        observation = run_probe(proxy)
    assert observation.status is Status.OK, observation.detail
    assert (
        next(p for p in observation.metrics if p.measurement == "sip").fields["status_code"] == 200
    )
