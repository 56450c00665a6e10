"""RFC 3263 resolution and per-gateway probing, against dnsmasq and SIPp on loopback.

The DNS server is a real ``dnsmasq`` (``tests.peers.dns``) serving NAPTR, SRV
and A records for ``trunk.test``; the gateways are SIPp OPTIONS responders
on 127.0.0.1 ports (a closed port stands for a dead gateway). The pure
selection rules (NAPTR order, SRV order) are tested on their own first.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.observation import ErrorClass, Observation, Status
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from probes.sip.rfc3263 import NaptrRecord, SrvRecord, naptr_choice, srv_order
from tests.peers import free_port
from tests.peers.dns import Naptr, Srv, dnsmasq
from tests.peers.sipp import SippUas, sipp_options_uas

# -- pure selection ---------------------------------------------------------


@pytest.mark.parametrize(
    ("records", "allowed", "expected"),
    [
        pytest.param(
            [
                NaptrRecord(20, 10, "s", "SIP+D2T", "_sip._tcp.t."),
                NaptrRecord(10, 10, "s", "SIP+D2U", "_sip._udp.t."),
            ],
            ["udp", "tcp", "tls"],
            ("udp", "_sip._udp.t"),
            id="lowest-order-first",
        ),
        pytest.param(
            [
                NaptrRecord(10, 20, "s", "SIP+D2U", "_sip._udp.t"),
                NaptrRecord(10, 10, "s", "SIPS+D2T", "_sips._tcp.t"),
            ],
            ["udp", "tcp", "tls"],
            ("tls", "_sips._tcp.t"),
            id="then-lowest-preference",
        ),
        pytest.param(
            [
                NaptrRecord(10, 10, "s", "SIP+D2U", "_sip._udp.t"),
                NaptrRecord(20, 10, "s", "SIP+D2T", "_sip._tcp.t"),
            ],
            ["tcp"],
            ("tcp", "_sip._tcp.t"),
            id="fixed-transport-skips-others",
        ),
        pytest.param(
            [NaptrRecord(10, 10, "s", "SIP+D2U", "_sip._udp.t")],
            ["tls"],
            None,
            id="sips-needs-sips-service",
        ),
        pytest.param(
            [
                NaptrRecord(5, 10, "u", "SIP+D2U", "_sip._udp.t"),
                NaptrRecord(6, 10, "s", "E2U+sip", "_x.t"),
            ],
            ["udp", "tcp", "tls"],
            None,
            id="other-flags-and-services-ignored",
        ),
    ],
)
def test_naptr_records_choose_the_transport_and_srv_name(
    records: list[NaptrRecord], allowed: list[str], expected: tuple[str, str] | None
) -> None:
    assert naptr_choice(records, allowed) == expected


def test_srv_targets_are_ordered_by_priority_then_weight_and_dot_means_none() -> None:
    records = [
        SrvRecord(20, 50, 5060, "c.t."),
        SrvRecord(10, 10, 5060, "b.t."),
        SrvRecord(10, 60, 5062, "a.t."),
        SrvRecord(30, 0, 0, "."),
    ]
    assert srv_order(records) == [("a.t", 5062), ("b.t", 5060), ("c.t", 5060)]


# -- against dnsmasq and SIPp ------------------------------------------------


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sip-dns")


@pytest.fixture(scope="module")
def gateways(workdir: Path) -> Iterator[tuple[SippUas, SippUas, SippUas]]:
    with (
        sipp_options_uas(workdir, 200, "OK", "udp") as a,
        sipp_options_uas(workdir, 200, "OK", "udp") as b,
        sipp_options_uas(workdir, 200, "OK", "tcp") as c,
    ):
        yield a, b, c


def run(fields: dict[str, object]) -> Observation:
    target = SipTarget.model_validate({"id": "carrier-a", "kind": "sip", "timeout": "2s", **fields})

    async def probe() -> Observation:
        ctx = ProbeContext(target_id=target.id, timeout=target.timeout)
        try:
            return await check(target, ctx)
        finally:
            await ctx.shared.aclose()

    return asyncio.run(probe())


def per_gateway(observation: Observation) -> dict[str, int]:
    return {
        p.tags["gateway"]: int(p.fields["up"])
        for p in observation.metrics
        if p.measurement == "sip"
    }


def counts(observation: Observation) -> tuple[object, object]:
    (point,) = [p for p in observation.metrics if p.measurement == "sip_gateways"]
    return point.fields["total"], point.fields["up"]


HOSTS = {
    "gw1.trunk.test": "127.0.0.1",
    "gw2.trunk.test": "127.0.0.1",
    "gw3.trunk.test": "127.0.0.1",
}
pytestmark = pytest.mark.peer


def test_two_of_three_gateways_alive_is_warn_with_one_series_per_gateway(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    a, b, _ = gateways
    dead = free_port(socket.SOCK_DGRAM)
    srv = [
        Srv("_sip._udp.trunk.test", "gw1.trunk.test", a.port, 10, 50),
        Srv("_sip._udp.trunk.test", "gw2.trunk.test", b.port, 10, 10),
        Srv("_sip._udp.trunk.test", "gw3.trunk.test", dead, 20, 10),
    ]
    naptr = [Naptr("trunk.test", 10, 10, "SIP+D2U", "_sip._udp.trunk.test")]
    with dnsmasq(workdir, HOSTS, srv, naptr) as dns:
        observation = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    assert (observation.status, observation.error_class) == (Status.WARN, ErrorClass.REFUSED)
    assert observation.detail.startswith(
        f"2 of 3 gateways answer; 127.0.0.1:{dead}: connection refused"
    )
    assert per_gateway(observation) == {
        f"127.0.0.1:{a.port}": 1,
        f"127.0.0.1:{b.port}": 1,
        f"127.0.0.1:{dead}": 0,
    }
    assert counts(observation) == (3, 2)
    assert observation.latency is not None


def test_all_gateways_alive_is_ok(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    a, b, _ = gateways
    srv = [
        Srv("_sip._udp.trunk.test", "gw1.trunk.test", a.port),
        Srv("_sip._udp.trunk.test", "gw2.trunk.test", b.port),
    ]
    with dnsmasq(workdir, HOSTS, srv) as dns:
        observation = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    assert observation.status is Status.OK, observation.detail
    assert observation.detail.startswith("all 2 gateways answer:")
    assert counts(observation) == (2, 2)


def test_without_naptr_the_first_existing_srv_transport_is_used(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    _, _, tcp = gateways
    srv = [Srv("_sip._tcp.trunk.test", "gw3.trunk.test", tcp.port)]
    with dnsmasq(workdir, HOSTS, srv) as dns:
        observation = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    assert observation.status is Status.OK, observation.detail
    assert observation.detail.startswith(f"127.0.0.1:{tcp.port}: 200 OK")


def test_a_fixed_transport_follows_the_naptr_entry_for_that_transport(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    a, _, tcp = gateways
    srv = [
        Srv("_sip._udp.trunk.test", "gw1.trunk.test", a.port),
        Srv("_sip._tcp.trunk.test", "gw3.trunk.test", tcp.port),
    ]
    naptr = [
        Naptr("trunk.test", 10, 10, "SIP+D2U", "_sip._udp.trunk.test"),
        Naptr("trunk.test", 20, 10, "SIP+D2T", "_sip._tcp.trunk.test"),
    ]
    with dnsmasq(workdir, HOSTS, srv, naptr) as dns:
        by_tcp = run(
            {"uri": "sip:trunk.test", "transport": "tcp", "dns": {"nameservers": [dns.nameserver]}}
        )
        by_naptr = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    assert by_tcp.detail.startswith(f"127.0.0.1:{tcp.port}: 200 OK"), by_tcp.detail
    assert by_naptr.detail.startswith(f"127.0.0.1:{a.port}: 200 OK"), by_naptr.detail


def test_an_explicit_port_skips_naptr_and_srv(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    a, b, _ = gateways
    srv = [Srv("_sip._udp.trunk.test", "gw2.trunk.test", b.port)]
    with dnsmasq(workdir, {"trunk.test": "127.0.0.1"}, srv) as dns:
        observation = run(
            {"uri": f"sip:trunk.test:{a.port}", "dns": {"nameservers": [dns.nameserver]}}
        )
    assert observation.detail.startswith(f"127.0.0.1:{a.port}: 200 OK"), observation.detail


def test_without_srv_the_host_itself_is_probed_on_5060(workdir: Path) -> None:
    with dnsmasq(workdir, {"trunk.test": "127.0.0.1"}) as dns:
        observation = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    # Nothing of ours listens on 5060 here, so the port shows in a refusal or timeout.
    assert observation.status is Status.FAIL
    assert observation.detail.startswith("127.0.0.1:5060: ")


def test_the_number_of_gateways_probed_is_bounded(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    a, b, _ = gateways
    srv = [
        Srv("_sip._udp.trunk.test", "gw1.trunk.test", a.port, 10),
        Srv("_sip._udp.trunk.test", "gw2.trunk.test", b.port, 20),
        Srv("_sip._udp.trunk.test", "gw3.trunk.test", free_port(socket.SOCK_DGRAM), 30),
    ]
    with dnsmasq(workdir, HOSTS, srv) as dns:
        observation = run(
            {"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver], "max_gateways": 2}}
        )
    assert observation.status is Status.OK, observation.detail
    assert counts(observation) == (2, 2)


def test_an_srv_target_without_address_is_a_failed_gateway(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    a, _, _ = gateways
    srv = [
        Srv("_sip._udp.trunk.test", "gw1.trunk.test", a.port, 10),
        Srv("_sip._udp.trunk.test", "gone.trunk.test", 5060, 20),
    ]
    with dnsmasq(workdir, HOSTS, srv) as dns:
        observation = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    assert observation.status is Status.WARN
    assert "1 of 2 gateways answer; gone.trunk.test:5060: could not resolve gone.trunk.test" in (
        observation.detail
    )


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        pytest.param(
            "sip:nothing.trunk.test", "could not resolve host nothing.trunk.test", id="nxdomain"
        ),
        pytest.param(
            "sips:trunk.test", "could not resolve host trunk.test", id="sips-without-tls-srv"
        ),
    ],
)
def test_names_that_lead_nowhere_fail_as_resolve(workdir: Path, uri: str, expected: str) -> None:
    with dnsmasq(workdir, {}, [Srv("_sip._udp.trunk.test", "gw1.trunk.test", 5060)]) as dns:
        observation = run({"uri": uri, "dns": {"nameservers": [dns.nameserver]}})
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.RESOLVE)
    assert expected in observation.detail


def test_a_dead_dns_server_fails_as_resolve_within_the_timeout() -> None:
    dead = f"127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    observation = run({"uri": "sip:trunk.test", "timeout": "1s", "dns": {"nameservers": [dead]}})
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.RESOLVE)
    assert "could not resolve trunk.test" in observation.detail


def test_a_dual_stack_gateway_is_one_gateway_probed_over_ipv4(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    a, _, _ = gateways
    srv = [Srv("_sip._udp.trunk.test", "gw1.trunk.test", a.port)]
    with dnsmasq(workdir, {"gw1.trunk.test": ["127.0.0.1", "::1"]}, srv) as dns:
        observation = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    assert observation.status is Status.OK, observation.detail
    assert counts(observation) == (1, 1)


def test_a_naptr_pointing_at_missing_srv_records_is_a_dead_end(workdir: Path) -> None:
    naptr = [Naptr("trunk.test", 10, 10, "SIP+D2U", "_sip._udp.trunk.test")]
    with dnsmasq(workdir, {"trunk.test": "127.0.0.1"}, [], naptr) as dns:
        observation = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.RESOLVE)
    assert observation.detail == (
        "could not resolve host trunk.test (NAPTR → SRV _sip._udp.trunk.test: no usable SRV record)"
    )


def test_a_naptr_without_srv_records_falls_back_to_the_next_naptr(
    workdir: Path, gateways: tuple[SippUas, SippUas, SippUas]
) -> None:
    _, _, tcp = gateways
    naptr = [
        Naptr("trunk.test", 10, 10, "SIP+D2U", "_sip._udp.trunk.test"),
        Naptr("trunk.test", 20, 10, "SIP+D2T", "_sip._tcp.trunk.test"),
    ]
    srv = [Srv("_sip._tcp.trunk.test", "gw3.trunk.test", tcp.port)]
    with dnsmasq(workdir, HOSTS, srv, naptr) as dns:
        observation = run({"uri": "sip:trunk.test", "dns": {"nameservers": [dns.nameserver]}})
    assert observation.detail.startswith(f"127.0.0.1:{tcp.port}: 200 OK"), observation.detail
