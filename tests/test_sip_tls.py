"""The sip probe over TLS: certificate checks on by default, one sentence per TLS failure.

Peer: SIPp answering OPTIONS over TCP behind socat, which terminates TLS with
OpenSSL (this machine's SIPp is built without TLS and Kamailio's tls module
is not installed; see ``tests.peers.sipp.sipp_tls_front``). Every certificate
is generated here by the test with ``cryptography``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.observation import ErrorClass, Observation, Status
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from tests.peers.sipp import (
    Authority,
    Issued,
    SippUas,
    TlsFront,
    sipp_options_uas,
    sipp_tls_front,
)

pytestmark = pytest.mark.peer


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sip-tls")


@pytest.fixture(scope="module")
def ca(workdir: Path) -> Authority:
    return Authority(workdir, "carrier")


@pytest.fixture(scope="module")
def tcp_uas(workdir: Path) -> Iterator[SippUas]:
    with sipp_options_uas(workdir, 200, "OK", "tcp") as uas:
        yield uas


def front(workdir: Path, uas: SippUas, issued: Issued, client_ca: Path | None = None):  # type: ignore[no-untyped-def]
    return sipp_tls_front(workdir, uas.port, issued.cert, issued.key, client_ca)


def run_probe(fields: dict[str, object]) -> Observation:
    target = SipTarget.model_validate({"id": "carrier-tls", "kind": "sip", **fields})
    assert target.transport == "tls"

    async def probe() -> Observation:
        ctx = ProbeContext(target_id=target.id, timeout=target.timeout)
        try:
            return await check(target, ctx)
        finally:
            await ctx.shared.aclose()

    return asyncio.run(probe())


def uri(tls: TlsFront) -> str:
    return f"sip:127.0.0.1:{tls.port};transport=tls"


def test_options_over_tls_with_the_carriers_ca_is_ok(
    workdir: Path, ca: Authority, tcp_uas: SippUas
) -> None:
    server = ca.issue("good", ["sip.carrier.test", "127.0.0.1"])
    with front(workdir, tcp_uas, server) as tls:
        observation = run_probe({"uri": uri(tls), "tls": {"ca_file": str(ca.ca_file)}})
    assert observation.status is Status.OK, observation.detail
    assert (
        next(p for p in observation.metrics if p.measurement == "sip").fields["status_code"] == 200
    )


def test_a_sips_uri_checks_the_certificate_against_the_server_name(
    workdir: Path, ca: Authority, tcp_uas: SippUas
) -> None:
    server = ca.issue("named", ["sip.carrier.test"])
    with front(workdir, tcp_uas, server) as tls:
        named = run_probe(
            {
                "uri": f"sips:127.0.0.1:{tls.port}",
                "tls": {"ca_file": str(ca.ca_file), "server_name": "sip.carrier.test"},
            }
        )
        by_ip = run_probe(
            {"uri": f"sips:127.0.0.1:{tls.port}", "tls": {"ca_file": str(ca.ca_file)}}
        )
    assert named.status is Status.OK, named.detail
    assert (by_ip.status, by_ip.error_class) == (Status.FAIL, ErrorClass.TLS)
    assert "not valid for 127.0.0.1 (wrong name" in by_ip.detail


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param("expired", "the certificate of 127.0.0.1 has expired", id="expired"),
        pytest.param(
            "unknown-ca", "is signed by an unknown CA (not in the trusted bundle", id="unknown-ca"
        ),
        pytest.param("system-trust", "is signed by an unknown CA", id="private-ca-not-in-system"),
        pytest.param(
            "wrong-name", "not valid for other.carrier.test (wrong name", id="wrong-server-name"
        ),
    ],
)
def test_each_certificate_problem_fails_with_its_own_sentence(
    workdir: Path, ca: Authority, tcp_uas: SippUas, case: str, expected: str
) -> None:
    other = Authority(workdir, f"other-{case}")
    issued = {
        "expired": ca.issue(f"expired-{case}", ["127.0.0.1"], expired=True),
        "unknown-ca": other.issue(f"stranger-{case}", ["127.0.0.1"]),
        "system-trust": ca.issue(f"private-{case}", ["127.0.0.1"]),
        "wrong-name": ca.issue(f"wrong-{case}", ["sip.carrier.test", "127.0.0.1"]),
    }[case]
    tls_options: dict[str, object] = {"ca_file": str(ca.ca_file)}
    if case == "system-trust":
        tls_options = {}
    if case == "wrong-name":
        tls_options["server_name"] = "other.carrier.test"
    with front(workdir, tcp_uas, issued) as tls:
        observation = run_probe({"uri": uri(tls), "tls": tls_options})
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.TLS)
    assert expected in observation.detail
    assert next(p for p in observation.metrics if p.measurement == "sip").fields["up"] == 0


def test_verify_false_accepts_a_certificate_nobody_vouches_for(
    workdir: Path, tcp_uas: SippUas
) -> None:
    lab = Authority(workdir, "lab").issue("lab", ["lab.invalid"], expired=True)
    with front(workdir, tcp_uas, lab) as tls:
        observation = run_probe({"uri": uri(tls), "tls": {"verify": False}})
    assert observation.status is Status.OK, observation.detail


def test_a_peer_that_wants_a_client_certificate_refuses_us_without_one_and_accepts_ours(
    workdir: Path, ca: Authority, tcp_uas: SippUas
) -> None:
    server = ca.issue("mtls-server", ["127.0.0.1"])
    client = ca.issue("mtls-client", ["dialwatch.test"], client=True)
    with front(workdir, tcp_uas, server, client_ca=ca.ca_file) as tls:
        without = run_probe({"uri": uri(tls), "tls": {"ca_file": str(ca.ca_file)}})
        with_cert = run_probe(
            {
                "uri": uri(tls),
                "tls": {
                    "ca_file": str(ca.ca_file),
                    "cert_file": str(client.cert),
                    "key_file": str(client.key),
                },
            }
        )
    assert (without.status, without.error_class) == (Status.FAIL, ErrorClass.TLS), without.detail
    assert "refused the handshake" in without.detail, without.detail
    assert with_cert.status is Status.OK, with_cert.detail


def test_nothing_listening_on_the_tls_port_is_refused_not_a_tls_failure() -> None:
    from tests.peers import free_port

    observation = run_probe({"uri": f"sips:127.0.0.1:{free_port()}", "timeout": "1s"})
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.REFUSED)


def test_an_unreadable_ca_file_is_a_probe_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    observation = run_probe(
        {"uri": "sips:127.0.0.1:5061", "tls": {"ca_file": str(missing)}, "timeout": "1s"}
    )
    assert observation.status is Status.ERROR
    assert f"cannot load tls.ca_file {missing}" in observation.detail
