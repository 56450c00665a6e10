"""The ``tls`` probe against a local HTTPS server (Python's http.server with ssl) and
generated certificates: valid, near expiry, expired, wrong name, unknown CA."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.net.tls import shared_context
from core.observation import ErrorClass, Observation, Status
from core.shared import SharedResources
from probes import PROBES
from probes.base import ProbeContext
from probes.tls import TlsTarget, check
from tests.peers.https import CertPair, LocalWebServer, TestPki, serve


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def servers(pki: TestPki) -> Iterator[dict[str, LocalWebServer]]:
    """One local HTTPS server per certificate variant."""
    pairs: dict[str, CertPair] = {
        "good": pki.leaf("good"),
        "warn": pki.leaf("warn", days_left=10),
        "fail": pki.leaf("fail", days_left=2),
        "expired": pki.leaf("expired", days_left=-5),
        "wrong-name": pki.leaf("wrong-name", dns_names=("billing.example",), ips=()),
        "unknown-ca": pki.leaf("unknown-ca", rogue=True),
    }
    with ExitStack() as stack:
        yield {name: stack.enter_context(serve(pair)) for name, pair in pairs.items()}


def tls(address: str, **fields: object) -> TlsTarget:
    return TlsTarget.model_validate({"id": "crm-cert", "kind": "tls", "address": address, **fields})


def run(target: TlsTarget, timeout: float = 3.0) -> Observation:
    return asyncio.run(check(target, ProbeContext("crm-cert", timeout=timeout)))


def probe(servers: dict[str, LocalWebServer], name: str, pki: TestPki, **fields: object):
    fields.setdefault("ca_file", str(pki.ca_file))
    return run(tls(f"localhost:{servers[name].port}", **fields))


def test_tls_is_registered_with_its_model():
    assert PROBES["tls"].model is TlsTarget


@pytest.mark.peer
def test_a_valid_certificate_is_ok_with_its_days_left_issuer_and_sans(servers, pki):
    observation = probe(servers, "good", pki)
    assert observation.status is Status.OK, observation.detail
    (point,) = observation.metrics
    assert point.measurement == "tls"
    days = point.fields["days_left"]
    assert isinstance(days, float)
    assert 89 < days <= 90
    assert observation.detail.startswith("certificate expires in 9")
    assert "subject CN=localhost, issuer CN=Dialwatch Test CA, 2 SANs" in observation.detail
    assert observation.latency is not None and observation.latency > 0


@pytest.mark.peer
def test_an_ip_address_is_checked_against_the_ip_sans(servers, pki):
    observation = run(tls(f"127.0.0.1:{servers['good'].port}", ca_file=str(pki.ca_file)))
    assert observation.status is Status.OK, observation.detail


@pytest.mark.peer
@pytest.mark.parametrize(
    ("server", "status", "expected_detail"),
    [
        ("warn", Status.WARN, "(warn below 14 days)"),
        ("fail", Status.FAIL, "(fail below 3 days)"),
    ],
    ids=["ten-days-left-warns", "two-days-left-fails"],
)
def test_a_certificate_near_expiry_crosses_the_default_thresholds(
    servers, pki, server: str, status: Status, expected_detail: str
):
    observation = probe(servers, server, pki)
    assert observation.status is status
    assert observation.error_class is ErrorClass.THRESHOLD
    assert expected_detail in observation.detail
    (point,) = observation.metrics
    assert point.fields["days_left"] < (14 if status is Status.WARN else 3)


@pytest.mark.peer
@pytest.mark.parametrize(
    ("thresholds", "status"),
    [
        ({"warn": 5}, Status.OK),
        ({"warn": 30, "fail": 20}, Status.FAIL),
        (None, Status.OK),
    ],
    ids=["lower-warn-makes-ten-days-ok", "higher-fail-fails", "null-turns-the-check-off"],
)
def test_cert_expiry_days_overrides_the_defaults(servers, pki, thresholds, status: Status):
    observation = probe(servers, "warn", pki, cert_expiry_days=thresholds)
    assert observation.status is status, observation.detail


@pytest.mark.peer
@pytest.mark.parametrize(
    ("server", "fields", "expected"),
    [
        (
            "expired",
            {},
            "certificate expired on ",
        ),
        (
            "wrong-name",
            {},
            "certificate is not valid for localhost (it covers billing.example)",
        ),
        (
            "unknown-ca",
            {},
            "certificate is signed by an unknown CA CN=Rogue Test CA (not in the trusted CA bundle)",
        ),
        (
            "good",
            {"ca_file": None},
            "certificate is signed by an unknown CA CN=Dialwatch Test CA",
        ),
    ],
    ids=["expired", "wrong-name", "unknown-ca", "private-ca-without-ca-file"],
)
def test_a_certificate_that_fails_verification_fails_with_a_sentence_saying_why(
    servers, pki, server: str, fields: dict, expected: str
):
    observation = probe(servers, server, pki, **fields)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TLS
    assert observation.detail.startswith(expected), observation.detail
    assert observation.metrics == ()


@pytest.mark.peer
def test_an_expired_certificate_says_how_many_days_ago(servers, pki):
    observation = probe(servers, "expired", pki)
    assert "(5 days ago)" in observation.detail


@pytest.mark.peer
def test_verify_off_still_judges_the_expiry_of_an_expired_certificate(servers, pki):
    observation = probe(servers, "expired", pki, verify=False, ca_file=None)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.THRESHOLD
    assert observation.detail.startswith("certificate expired 5.0 days ago (fail below 3 days)")
    (point,) = observation.metrics
    assert point.fields["days_left"] < -4.9


@pytest.mark.peer
def test_verify_off_accepts_a_wrong_name(servers, pki):
    assert probe(servers, "wrong-name", pki, verify=False, ca_file=None).status is Status.OK


@pytest.mark.peer
def test_server_name_is_the_name_checked(servers, pki):
    observation = run(
        tls(
            f"127.0.0.1:{servers['wrong-name'].port}",
            server_name="billing.example",
            ca_file=str(pki.ca_file),
        )
    )
    assert observation.status is Status.OK, observation.detail


def test_a_port_that_does_not_speak_tls_fails_the_handshake():
    # A plain TCP server that answers with an HTTP line, like a port without TLS.
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        async def main() -> Observation:
            async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
                writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                await writer.drain()
                writer.close()

            plain = await asyncio.start_server(answer, sock=server)
            async with plain:
                return await check(tls(f"127.0.0.1:{port}"), ProbeContext("crm-cert", timeout=3.0))

        observation = asyncio.run(main())
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TLS
    assert observation.detail.startswith("TLS handshake failed (")


def test_a_server_that_never_completes_the_handshake_times_out():
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never answers
        port = server.getsockname()[1]
        observation = run(tls(f"127.0.0.1:{port}"), timeout=0.3)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TIMEOUT
    assert observation.detail == f"no TLS handshake with 127.0.0.1:{port} within 0.3s"


def test_a_closed_port_is_refused():
    with socket.socket() as holder:  # bound, not listening: the kernel refuses
        holder.bind(("127.0.0.1", 0))
        observation = run(tls(f"127.0.0.1:{holder.getsockname()[1]}"))
    assert observation.status is Status.FAIL
    assert (observation.detail, observation.error_class) == (
        "connection refused",
        ErrorClass.REFUSED,
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"address": "crm.example"}, "must be host:port"),
        ({"ca_file": "/nonexistent/ca.pem"}, "CA file /nonexistent/ca.pem does not exist"),
        (
            {"cert_expiry_days": {"warn": 2, "fail": 7}},
            "warn (2) must not be below fail (7)",
        ),
        ({"cert_expiry_days": {"warn": True}}, "warn must be a number, not true"),
        ({"starttls": "smtp"}, "Extra inputs are not permitted"),
        ({"verify": False, "ca_file": "/etc/hostname"}, "ca_file has no effect with verify: false"),
    ],
    ids=[
        "no-port",
        "missing-ca-file",
        "warn-below-fail",
        "boolean-threshold",
        "no-starttls",
        "ca-file-without-verify",
    ],
)
def test_bad_tls_settings_are_config_errors_saying_why(fields: dict, message: str):
    with pytest.raises(ValidationError) as info:
        tls(**{"address": "crm.example:443", **fields})
    assert message in str(info.value)


def test_a_ca_file_without_certificates_fails_the_poll_with_a_sentence(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("this is not a certificate\n")
    observation = run(tls("127.0.0.1:1", ca_file=str(ca)))
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TLS
    assert observation.detail.startswith(f"CA file {ca} holds no usable certificate (")


def test_the_tls_context_is_built_once_and_again_when_the_ca_file_changes(pki: TestPki):
    shared = SharedResources()
    first = shared_context(shared, True, str(pki.ca_file))
    assert shared_context(shared, True, str(pki.ca_file)) is first
    assert shared_context(shared, False, None) is not first
    stat = pki.ca_file.stat()
    os.utime(pki.ca_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert shared_context(shared, True, str(pki.ca_file)) is not first


def test_a_ca_file_that_exists_is_accepted(tmp_path: Path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not checked until used")
    assert tls("crm.example:443", ca_file=str(ca)).ca_file == str(ca)
