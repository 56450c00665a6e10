"""The ``dns`` probe against a real dnsmasq on a loopback port: answers of each type,
expected values, NXDOMAIN, REFUSED, SERVFAIL (a local server that always answers it),
timeouts, and config errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import dns.resolver
import pytest
from pydantic import ValidationError

from core.observation import ErrorClass, Observation, Status
from probes import PROBES
from probes.base import ProbeContext
from probes.dns import DnsTarget, check, normalize, parse_server
from tests.peers.dnsmasq import (
    Dnsmasq,
    dnsmasq,
    garbage_server,
    servfail_server,
    silent_dns_server,
)

__all__ = ["dnsmasq"]  # the fixture


def lookup(query: str, server: str | None, **fields: object) -> DnsTarget:
    return DnsTarget.model_validate(
        {"id": "crm-dns", "kind": "dns", "query": query, "server": server, **fields}
    )


def run(target: DnsTarget, timeout: float = 3.0) -> Observation:
    return asyncio.run(check(target, ProbeContext("crm-dns", timeout=timeout)))


def test_dns_is_registered_with_its_model():
    assert PROBES["dns"].model is DnsTarget


@pytest.mark.peer
@pytest.mark.parametrize(
    ("query", "record_type", "answers"),
    [
        ("crm.dw.test", "A", ["192.0.2.10", "192.0.2.11"]),
        ("crm.dw.test", "AAAA", ["2001:db8::10"]),
        ("api.dw.test", "CNAME", ["crm.dw.test"]),
        ("api.dw.test", "A", ["192.0.2.10", "192.0.2.11"]),
        ("dw.test", "MX", ["10 mail.dw.test"]),
        ("_sip._udp.dw.test", "SRV", ["10 5 5060 sip1.dw.test", "20 5 5060 sip2.dw.test"]),
        ("dw.test", "TXT", ["v=spf1 -all"]),
    ],
    ids=["a", "aaaa", "cname", "a-through-a-cname", "mx", "srv", "txt"],
)
def test_each_record_type_is_answered_with_its_records_and_time(
    dnsmasq: Dnsmasq, query: str, record_type: str, answers: list[str]
):
    observation = run(lookup(query, dnsmasq.server, record_type=record_type))
    assert observation.status is Status.OK, observation.detail
    (point,) = observation.metrics
    assert point.measurement == "dns"
    assert point.fields["answers"] == len(answers)
    assert isinstance(point.fields["answers"], int)
    assert isinstance(point.fields["answer_ms"], float)
    assert point.fields["answer_ms"] == round(observation.latency * 1000, 3)
    noun = "record" if len(answers) == 1 else "records"
    assert observation.detail.startswith(f"{len(answers)} {record_type} {noun}: ")
    for answer in answers:
        assert answer in observation.detail
    assert observation.detail.endswith(f" ms from {dnsmasq.server}")


@pytest.mark.peer
@pytest.mark.parametrize(
    ("fields", "status", "detail_part"),
    [
        ({"expect_contains": ["192.0.2.10"]}, Status.OK, "2 A records"),
        ({"expect_contains": ["192.0.2.99"]}, Status.FAIL,
         "the answer lacks 192.0.2.99 (got 192.0.2.10, 192.0.2.11), in "),
        ({"expect_equals": ["192.0.2.11", "192.0.2.10"]}, Status.OK, "2 A records"),
        ({"expect_equals": ["192.0.2.10"]}, Status.FAIL,
         "the answer is 192.0.2.10, 192.0.2.11, expected exactly 192.0.2.10, in "),
        ({"record_type": "AAAA", "expect_equals": ["2001:DB8:0::10"]}, Status.OK, "1 AAAA record"),
        ({"record_type": "MX", "expect_contains": ["10 MAIL.dw.test."]}, Status.OK, "1 MX record"),
    ],
    ids=["contains", "lacks", "equals-in-any-order", "not-equal", "aaaa-written-differently",
         "mx-name-case-and-dot"],
)  # fmt: skip
def test_the_answer_is_checked_against_expected_values(
    dnsmasq: Dnsmasq, fields: dict, status: Status, detail_part: str
):
    query = "dw.test" if fields.get("record_type") == "MX" else "crm.dw.test"
    observation = run(lookup(query, dnsmasq.server, **fields))
    assert observation.status is status, observation.detail
    assert detail_part in observation.detail
    if status is Status.FAIL:
        assert observation.error_class is ErrorClass.RESPONSE
        assert observation.metrics[0].fields["answers"] == 2


@pytest.mark.peer
@pytest.mark.parametrize(
    ("query", "record_type", "detail"),
    [
        ("nope.dw.test", "A", "nope.dw.test does not exist (NXDOMAIN)"),
        ("crm.example", "A", "the server refused to answer for crm.example (REFUSED)"),
        ("dw.test", "A", "dw.test has no A records"),
    ],
    ids=["nxdomain", "refused", "no-records-of-that-type"],
)
def test_an_error_answer_fails_with_a_sentence(
    dnsmasq: Dnsmasq, query: str, record_type: str, detail: str
):
    observation = run(lookup(query, dnsmasq.server, record_type=record_type))
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.RESPONSE
    assert observation.detail.startswith(f"{detail} in "), observation.detail
    (point,) = observation.metrics
    assert point.fields["answers"] == 0


def test_servfail_from_a_local_server_that_always_answers_it_fails_with_a_sentence():
    with servfail_server() as server:
        observation = run(lookup("crm.dw.test", server))
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.RESPONSE
    assert observation.detail.startswith("the server could not resolve crm.dw.test (SERVFAIL) in ")


def test_an_answer_that_is_not_dns_from_a_local_junk_server_is_a_protocol_failure():
    with garbage_server() as server:
        observation = run(lookup("crm.dw.test", server))
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.PROTOCOL
    assert observation.detail.startswith(f"{server} sent an answer that is not valid DNS (")


def test_no_resolv_conf_and_no_server_fails_with_a_sentence(monkeypatch: pytest.MonkeyPatch):
    def no_conf(self: dns.resolver.Resolver, f: object) -> None:
        raise dns.resolver.NoResolverConfiguration("no resolv.conf")

    monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", no_conf)
    observation = run(lookup("crm.dw.test", None))
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.RESOLVE
    assert observation.detail == "no DNS server configured and none in /etc/resolv.conf"


def test_a_server_that_never_answers_times_out():
    with silent_dns_server() as server:
        observation = run(lookup("crm.dw.test", server), timeout=0.3)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TIMEOUT
    assert observation.detail == f"no answer from {server} within 0.3s"
    assert observation.metrics == ()


@pytest.mark.peer
@pytest.mark.parametrize(
    ("warn_answer_time", "status"),
    [(1e-9, Status.WARN), ("10s", Status.OK)],
    ids=["slower-than-a-nanosecond-warns", "faster-than-ten-seconds-is-ok"],
)
def test_warn_answer_time_turns_a_slow_answer_into_a_warning(
    dnsmasq: Dnsmasq, warn_answer_time: object, status: Status
):
    observation = run(lookup("crm.dw.test", dnsmasq.server, warn_answer_time=warn_answer_time))
    assert observation.status is status
    if status is Status.WARN:
        assert observation.error_class is ErrorClass.THRESHOLD
        assert "(slower than " in observation.detail


@pytest.mark.peer
def test_without_a_server_the_system_resolvers_are_asked_in_order(
    dnsmasq: Dnsmasq, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    # /etc/resolv.conf cannot point at a test port, so the resolver reads a written one with
    # dnsmasq's port. The first server, 127.0.0.2, has nothing on that port and stays silent;
    # the second is the real dnsmasq.
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 127.0.0.2\nnameserver 127.0.0.1\n")
    original = dns.resolver.Resolver.read_resolv_conf

    def read_test_conf(self: dns.resolver.Resolver, f: object) -> None:
        original(self, str(conf))
        self.port = dnsmasq.port

    monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", read_test_conf)
    observation = run(lookup("crm.dw.test", None), timeout=1.0)
    assert observation.status is Status.OK, observation.detail
    assert observation.detail.endswith(f"from {dnsmasq.server}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("192.0.2.53", ("192.0.2.53", 53)),
        ("192.0.2.53:5353", ("192.0.2.53", 5353)),
        ("2001:db8::53", ("2001:db8::53", 53)),
        ("[2001:db8::53]:5353", ("2001:db8::53", 5353)),
    ],
    ids=["ipv4", "ipv4-port", "ipv6", "ipv6-port"],
)
def test_server_is_an_ip_address_with_an_optional_port(value: str, expected: tuple[str, int]):
    assert parse_server(value) == expected


@pytest.mark.parametrize(
    ("record_type", "value", "expected"),
    [
        ("A", " 192.0.2.1 ", "192.0.2.1"),
        ("AAAA", "2001:DB8:0:0::1", "2001:db8::1"),
        ("CNAME", "CRM.Example.com.", "crm.example.com"),
        ("MX", "10  Mail.Example.com.", "10 mail.example.com"),
        ("SRV", "10 5 5060 SIP.example.com", "10 5 5060 sip.example.com"),
        ("TXT", "v=spf1 -all", "v=spf1 -all"),
    ],
)
def test_answers_and_expected_values_are_compared_in_one_form(
    record_type: str, value: str, expected: str
):
    assert normalize(record_type, value) == expected


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"server": "dns.example.com"}, "must be an IP address with an optional port"),
        ({"server": "192.0.2.53:99999"}, "must be an IP address with an optional port"),
        ({"record_type": "NAPTR"}, "Input should be 'A', 'AAAA', 'CNAME', 'MX', 'SRV' or 'TXT'"),
        ({"query": "a..b"}, "not a valid DNS name"),
        ({"expect_contains": ["crm.example.com"]}, "'crm.example.com' is not an IPv4 address"),
        ({"record_type": "AAAA", "expect_equals": ["192.0.2.1"]}, "is not an IPv6 address"),
        ({"record_type": "MX", "expect_contains": ["mail.example.com"]},
         "is not an MX answer like '10 mail.example.com'"),
        ({"expect_contains": ["192.0.2.1"], "expect_equals": ["192.0.2.1"]},
         "give expect_contains or expect_equals, not both"),
        ({"name": "CRM DNS", "nameserver": "192.0.2.53"}, "Extra inputs are not permitted"),
    ],
    ids=["server-name-not-ip", "server-port-too-big", "unsupported-type", "bad-name",
         "a-expects-a-name", "aaaa-expects-ipv4", "mx-without-preference", "both-expectations",
         "unknown-key"],
)  # fmt: skip
def test_bad_dns_settings_are_config_errors_saying_why(fields: dict, message: str):
    with pytest.raises(ValidationError) as info:
        lookup(**{"query": "crm.example.com", "server": None, **fields})
    assert message in str(info.value)


def test_when_no_system_resolver_answers_the_detail_names_each_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    # Two loopback addresses with nothing on the chosen port: both stay silent.
    with silent_dns_server() as silent:
        _, port = parse_server(silent)
        conf = tmp_path / "resolv.conf"
        conf.write_text("nameserver 127.0.0.2\nnameserver 127.0.0.3\n")
        original = dns.resolver.Resolver.read_resolv_conf

        def read_test_conf(self: dns.resolver.Resolver, f: object) -> None:
            original(self, str(conf))
            self.port = port

        monkeypatch.setattr(dns.resolver.Resolver, "read_resolv_conf", read_test_conf)
        observation = run(lookup("crm.dw.test", None), timeout=0.4)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TIMEOUT
    first, second = observation.detail.split("; ")
    assert first.startswith(f"no answer from 127.0.0.2:{port} within 0.2")
    assert second.startswith(f"no answer from 127.0.0.3:{port} within ")
