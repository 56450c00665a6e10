"""The sip probe's pure parts: target config, RFC 3261 timer schedule, classification."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.observation import ErrorClass, Status
from monitor.config import load_config
from monitor.config.schema import Config
from probes.sip import DEFAULT_WARN_CODES, SipTarget
from probes.sip.classify import classify
from probes.sip.message import SipResponse, parse_response
from probes.sip.transaction import (
    Outcome,
    PeerClosedError,
    UdpClientTransaction,
    retransmit_offsets,
)


def sip_target(**fields: object) -> SipTarget:
    return SipTarget.model_validate(
        {"id": "trunk-a", "kind": "sip", "uri": "sip:192.0.2.1", **fields}
    )


# -- config --------------------------------------------------------------


def test_defaults_suit_a_carrier_trunk() -> None:
    target = sip_target()
    assert target.transport == "udp"
    assert target.interval == 30.0
    assert target.timeout == 4.0
    assert target.source_address is None and target.source_port == 0
    assert target.from_user == "dialwatch" and target.from_domain is None
    assert target.user_agent.startswith("Dialwatch/")
    assert target.warn_codes == list(DEFAULT_WARN_CODES)
    assert {403, 404, 405} <= set(target.warn_codes)


def test_transport_is_taken_from_the_uri_when_not_given() -> None:
    assert sip_target(uri="sip:192.0.2.1;transport=TCP").transport == "tcp"


def test_a_sip_target_loads_through_the_whole_config_schema() -> None:
    config = Config.model_validate(
        {
            "targets": [
                {
                    "id": "carrier-a",
                    "kind": "sip",
                    "uri": "sip:+8610@gw.example.com:5080",
                    "source_address": "192.0.2.5",
                    "source_port": 5070,
                    "timeout": "3s",
                    "warn_codes": [403],
                }
            ]
        }
    )
    target = config.target("carrier-a")
    assert isinstance(target, SipTarget)
    assert (target.source_port, target.timeout, target.warn_codes) == (5070, 3.0, [403])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"uri": "http://gw.example.com"}, "must be a SIP URI", id="not-a-sip-uri"),
        pytest.param(
            {"uri": "sips:gw.example.com", "transport": "udp"},
            "a sips: URI needs transport tls",
            id="sips-needs-tls",
        ),
        pytest.param(
            {"uri": "sip:gw.example.com;transport=sctp"},
            "transport=sctp is not supported (udp, tcp or tls)",
            id="sctp",
        ),
        pytest.param(
            {"uri": "sip:gw.example.com;transport=tcp", "transport": "udp"},
            "the uri says transport=tcp",
            id="transport-conflict",
        ),
        pytest.param(
            {"transport": "sctp"}, "Input should be 'udp', 'tcp' or 'tls'", id="sctp-transport"
        ),
        pytest.param(
            {"tls": {"key_file": "/k.pem"}}, "key_file needs cert_file", id="key-without-cert"
        ),
        pytest.param(
            {"dns": {"nameservers": ["ns.example.com"]}},
            "a nameserver must be an IP address",
            id="nameserver-by-name",
        ),
        pytest.param(
            {"registration": {"username": "u"}}, "Field required", id="register-needs-password"
        ),
        pytest.param(
            {"registration": {"username": "u", "password": "p\nq"}},
            "must be one line",
            id="password-one-line",
        ),
        pytest.param(
            {"test_call": {"number": "100"}},
            "a test call needs a timeout of at least 10.5s",
            id="call-needs-a-longer-timeout",
        ),
        pytest.param(
            {
                "test_call": {"number": "100", "rate_limit": "10s"},
                "timeout": "20s",
                "interval": "60s",
            },
            "rate_limit must not be shorter than interval",
            id="call-rate-limit",
        ),
        pytest.param({"warn_codes": [403, 408]}, "408 cannot be a warn code", id="408-never-alive"),
        pytest.param(
            {"warn_codes": [200]}, "200 is not a SIP error code", id="2xx-is-not-a-warning"
        ),
        pytest.param(
            {"source_address": "gw.example.com"}, "must be an IP address", id="source-not-ip"
        ),
        pytest.param(
            {"uri": "sip:[2001:db8::1]", "source_address": "192.0.2.5"},
            "are not the same IP version",
            id="source-and-peer-ip-versions",
        ),
        pytest.param({"source_port": 70000}, "less than or equal to 65535", id="source-port-range"),
        pytest.param({"from_user": "bad user"}, "must be a SIP user name", id="from-user-space"),
        pytest.param({"from_domain": "bad domain"}, "must be a SIP URI", id="from-domain"),
        pytest.param(
            {"from_domain": "example.com:5060"}, "must be a host name or IP", id="from-domain-port"
        ),
        pytest.param(
            {"user_agent": "a\r\nX-Injected: 1"}, "must be one non-empty line", id="ua-crlf"
        ),
        pytest.param(
            {"timeout": "40s"}, "must not be longer than interval", id="timeout-over-interval"
        ),
        pytest.param({"retries": 3}, "Extra inputs are not permitted", id="unknown-key"),
    ],
)
def test_bad_sip_target_config_is_rejected_with_a_clear_reason(
    fields: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError) as info:
        sip_target(**fields)
    assert message in str(info.value)


# -- timers --------------------------------------------------------------


@pytest.mark.parametrize(
    ("timer_f", "offsets"),
    [
        pytest.param(0.4, [], id="shorter-than-t1"),
        pytest.param(1.0, [0.5], id="1s"),
        pytest.param(4.0, [0.5, 1.5, 3.5], id="default-4s"),
        pytest.param(
            32.0, [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5], id="rfc-64-t1"
        ),
    ],
)
def test_timer_e_doubles_from_t1_up_to_t2_until_timer_f(
    timer_f: float, offsets: list[float]
) -> None:
    assert retransmit_offsets(timer_f) == offsets


def _count_sends(provisional: bool) -> Outcome:
    """Run a transaction with short timers (T1 50 ms, T2 200 ms, F 600 ms) against nobody."""

    async def run() -> Outcome:
        txn: UdpClientTransaction

        def send() -> None:
            if provisional:
                asyncio.get_running_loop().call_soon(txn.on_response, TRYING)

        txn = UdpClientTransaction(send, timer_f=0.6, t1=0.05, t2=0.2)
        return await txn.run()

    return asyncio.run(run())


TRYING = parse_response(
    b"SIP/2.0 100 Trying\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\nCSeq: 1 OPTIONS\r\n\r\n"
)


def test_retransmissions_double_while_calling_and_stay_at_t2_once_proceeding() -> None:
    calling = _count_sends(provisional=False)
    proceeding = _count_sends(provisional=True)
    # Calling: 0.05, 0.15, 0.35, 0.55. Proceeding after the first 100: 0.05, 0.25, 0.45.
    assert calling.retransmissions == 4 == len(retransmit_offsets(0.6, 0.05, 0.2))
    assert proceeding.retransmissions == 3
    assert calling.response is None and proceeding.response is None
    assert proceeding.provisional is TRYING


# -- classification --------------------------------------------------------


def response(code: int, reason: str) -> SipResponse:
    return SipResponse(status=code, reason=reason, headers={})


@pytest.mark.parametrize(
    ("code", "reason", "status", "error_class", "detail"),
    [
        pytest.param(200, "OK", Status.OK, None, "200 OK in 12.5 ms", id="200-ok"),
        pytest.param(202, "Accepted", Status.OK, None, "202 Accepted in 12.5 ms", id="202-ok"),
        pytest.param(
            404,
            "Not Found",
            Status.WARN,
            ErrorClass.RESPONSE,
            "alive, but answered 404 Not Found to OPTIONS in 12.5 ms",
            id="404-warn",
        ),
        pytest.param(
            407,
            "Proxy Authentication Required",
            Status.WARN,
            ErrorClass.RESPONSE,
            "alive, but answered 407 Proxy Authentication Required to OPTIONS in 12.5 ms",
            id="407-warn",
        ),
        pytest.param(
            302,
            "Moved Temporarily",
            Status.WARN,
            ErrorClass.RESPONSE,
            "alive, but answered 302 Moved Temporarily to OPTIONS in 12.5 ms (redirects are not followed)",
            id="302-warn",
        ),
        pytest.param(
            408,
            "Request Timeout",
            Status.FAIL,
            ErrorClass.RESPONSE,
            "answered 408 Request Timeout in 12.5 ms: a proxy gave up waiting for the peer behind it",
            id="408-fail",
        ),
        pytest.param(
            480,
            "Temporarily Unavailable",
            Status.FAIL,
            ErrorClass.RESPONSE,
            "answered 480 Temporarily Unavailable to OPTIONS in 12.5 ms",
            id="480-fail",
        ),
        pytest.param(
            503,
            "Service Unavailable",
            Status.FAIL,
            ErrorClass.RESPONSE,
            "answered 503 Service Unavailable to OPTIONS in 12.5 ms",
            id="503-fail",
        ),
        pytest.param(
            603,
            "Decline",
            Status.FAIL,
            ErrorClass.RESPONSE,
            "answered 603 Decline to OPTIONS in 12.5 ms",
            id="603-fail",
        ),
    ],
)
def test_final_responses_are_classified(
    code: int, reason: str, status: Status, error_class: ErrorClass | None, detail: str
) -> None:
    outcome = Outcome(response=response(code, reason), rtt=0.0125, elapsed=0.0125)
    observation = classify(outcome, transport="udp", timeout=4.0)
    assert (observation.status, observation.error_class, observation.detail) == (
        status,
        error_class,
        detail,
    )
    assert observation.latency == 0.0125
    (point,) = observation.metrics
    assert point.fields == {
        "status_code": code,
        "retransmissions": 0,
        "up": 1 if status is not Status.FAIL else 0,
        "rtt_ms": 12.5,
    }


def test_warn_codes_are_configurable() -> None:
    outcome = Outcome(response=response(404, "Not Found"), rtt=0.01)
    assert classify(outcome, transport="udp", timeout=4.0, warn_codes=[403]).status is Status.FAIL
    outcome = Outcome(response=response(503, "Service Unavailable"), rtt=0.01)
    assert classify(outcome, transport="udp", timeout=4.0, warn_codes=[503]).status is Status.WARN


@pytest.mark.parametrize(
    ("outcome", "transport", "error_class", "detail"),
    [
        pytest.param(
            Outcome(retransmissions=3),
            "udp",
            ErrorClass.TIMEOUT,
            "no answer to OPTIONS after 3 retransmissions (4.0 s)",
            id="udp-timeout",
        ),
        pytest.param(
            Outcome(retransmissions=1),
            "udp",
            ErrorClass.TIMEOUT,
            "no answer to OPTIONS after 1 retransmission (4.0 s)",
            id="udp-timeout-singular",
        ),
        pytest.param(
            Outcome(retransmissions=3, provisional=TRYING),
            "udp",
            ErrorClass.TIMEOUT,
            "only 100 Trying, no final answer to OPTIONS after 3 retransmissions (4.0 s)",
            id="udp-timeout-after-100",
        ),
        pytest.param(
            Outcome(),
            "tcp",
            ErrorClass.TIMEOUT,
            "no answer to OPTIONS over TCP within 4.0 s",
            id="tcp-timeout",
        ),
        pytest.param(
            Outcome(error=ConnectionRefusedError(111, "Connection refused")),
            "udp",
            ErrorClass.REFUSED,
            "connection refused (ICMP port unreachable: nothing listens on that port)",
            id="udp-refused",
        ),
        pytest.param(
            Outcome(error=ConnectionRefusedError(111, "Connection refused")),
            "tcp",
            ErrorClass.REFUSED,
            "connection refused",
            id="tcp-refused",
        ),
        pytest.param(
            Outcome(error=OSError(113, "No route to host")),
            "udp",
            ErrorClass.UNREACHABLE,
            "host unreachable (No route to host)",
            id="unreachable",
        ),
        pytest.param(
            Outcome(error=PeerClosedError(104, "closed")),
            "tcp",
            ErrorClass.PROTOCOL,
            "the peer closed the TCP connection without answering OPTIONS",
            id="tcp-closed",
        ),
    ],
)
def test_no_final_response_fails_with_a_sentence(
    outcome: Outcome, transport: str, error_class: ErrorClass, detail: str
) -> None:
    observation = classify(outcome, transport=transport, timeout=4.0)
    assert (observation.status, observation.error_class, observation.detail) == (
        Status.FAIL,
        error_class,
        detail,
    )
    assert observation.latency is None
    (point,) = observation.metrics
    assert point.fields == {"status_code": 0, "retransmissions": outcome.retransmissions, "up": 0}


def test_every_yaml_example_in_the_sip_docs_loads_and_hides_the_password(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs/probes/sip.md").read_text()
    blocks = re.findall(r"(?ms)^```yaml\n(.*?)^```", doc)
    assert len(blocks) >= 5
    env = {"PBX_TRUNK_A_PASSWORD": "pbx-pw-value", "DIALWATCH_TEST_SIP_PASSWORD": "test-pw-value"}
    for index, block in enumerate(blocks):
        path = tmp_path / f"example-{index}.yaml"
        path.write_text(block)
        loaded = load_config(path, env=env)
        for target in loaded.config.targets:
            assert isinstance(target, SipTarget)
            shown = repr(loaded.config) + str(loaded.redacted())
            assert "pbx-pw-value" not in shown and "test-pw-value" not in shown
            if target.registration is not None:
                assert target.registration.password in env.values()
