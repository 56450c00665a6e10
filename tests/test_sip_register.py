"""REGISTER probe against a real registrar: Kamailio 5.6 (auth + registrar + usrloc, no DB).

The registrar (``tests.peers.kamailio.kamailio_registrar``) checks passwords
written into its config with ``pv_www_authenticate`` and challenges with MD5
or SHA-256 (``qop=auth``). A "PBX" binding is added behind the probe's back
with ``kamcmd ul.add`` to show that the default query mode reports it and
leaves it alone.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.observation import ErrorClass, Observation, Status
from monitor.config.secrets import Secret
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from tests.peers import free_port
from tests.peers.kamailio import REALM, Kamailio, kamailio_registrar
from tests.peers.sipp import Authority, sipp_tls_front

pytestmark = pytest.mark.peer

PASSWORDS = {"alice": "alice-s3cret", "pbx": "pbx-s3cret", "blocked": "blocked-s3cret"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sip-register")


@pytest.fixture(scope="module", params=["MD5", "SHA-256"])
def registrar(request: pytest.FixtureRequest, workdir: Path) -> Iterator[Kamailio]:
    with kamailio_registrar(workdir, PASSWORDS, algorithm=request.param) as instance:
        yield instance


def target(uri: str, **registration: object) -> SipTarget:
    return SipTarget.model_validate(
        {
            "id": "pbx-registration",
            "kind": "sip",
            "uri": uri,
            "timeout": "2s",
            "registration": {"domain": REALM, **registration},
        }
    )


def run(t: SipTarget) -> Observation:
    async def probe() -> Observation:
        ctx = ProbeContext(target_id=t.id, timeout=t.timeout)
        try:
            return await check(t, ctx)
        finally:
            await ctx.shared.aclose()

    return asyncio.run(probe())


def fields(observation: Observation, measurement: str) -> dict[str, object]:
    (point,) = [p for p in observation.metrics if p.measurement == measurement]
    return dict(point.fields)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_binding_query_reports_the_pbx_binding_and_leaves_it_in_place(
    registrar: Kamailio, transport: str
) -> None:
    registrar.add_binding("pbx", "sip:pbx@127.0.0.1:5099", expires=3600)
    port = registrar.port if transport == "udp" else registrar.tcp_port
    t = target(
        f"sip:127.0.0.1:{port};transport={transport}", username="pbx", password=Secret("pbx-s3cret")
    )
    first, second = run(t), run(t)
    for observation in (first, second):
        assert observation.status is Status.OK, observation.detail
        assert (
            "pbx authenticated; registered with 1 binding: sip:pbx@127.0.0.1:5099 expires in"
            in (observation.detail)
        )
        register = fields(observation, "sip_register")
        assert (register["registered"], register["bindings"], register["auth_rounds"]) == (1, 1, 1)
        assert 3500 < int(register["expires_s"]) <= 3600  # type: ignore[call-overload]
        assert fields(observation, "sip")["status_code"] == 200
    assert "pbx@127.0.0.1:5099" in registrar.rpc("ul.lookup", "location", "pbx")


def test_an_account_without_binding_is_ok_or_warn_as_configured(registrar: Kamailio) -> None:
    uri = f"sip:127.0.0.1:{registrar.port}"
    plain = run(target(uri, username="alice", password="alice-s3cret"))
    strict = run(target(uri, username="alice", password="alice-s3cret", warn_no_binding=True))
    assert plain.status is Status.OK, plain.detail
    assert plain.detail == "alice authenticated; no binding is registered for it"
    assert strict.status is Status.WARN
    assert fields(strict, "sip_register")["registered"] == 0


def test_a_register_cycle_adds_our_contact_then_removes_it(registrar: Kamailio) -> None:
    uri = f"sip:127.0.0.1:{registrar.port}"
    observation = run(
        target(uri, username="alice", password="alice-s3cret", register_cycle=True, expires=120)
    )
    assert observation.status is Status.OK, observation.detail
    assert "alice registered sip:alice@127.0.0.1:" in observation.detail
    assert "and unregistered it again" in observation.detail
    register = fields(observation, "sip_register")
    assert register["registered"] == 1 and 100 < int(register["expires_s"]) <= 120  # type: ignore[call-overload]
    after = run(target(uri, username="alice", password="alice-s3cret"))
    assert after.detail == "alice authenticated; no binding is registered for it"


@pytest.mark.parametrize(
    ("user", "password", "expected"),
    [
        pytest.param(
            "alice", "not-her-pw-93", "a 401 loop: wrong password or user name", id="wrong-password"
        ),
        pytest.param(
            "mallory", "mallory-pw-17", "a 401 loop: wrong password or user name", id="unknown-user"
        ),
        pytest.param(
            "blocked", "blocked-s3cret", "the registrar refused blocked: 403 Forbidden", id="403"
        ),
    ],
)
def test_refused_credentials_fail_as_auth_with_the_reason(
    registrar: Kamailio, user: str, password: str, expected: str
) -> None:
    observation = run(target(f"sip:127.0.0.1:{registrar.port}", username=user, password=password))
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.AUTH)
    assert expected in observation.detail
    assert password not in observation.detail
    assert fields(observation, "sip_register")["registered"] == 0
    assert fields(observation, "sip")["status_code"] == (403 if user == "blocked" else 401)


def test_a_silent_registrar_times_out_with_a_register_sentence() -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        observation = run(
            target(f"sip:127.0.0.1:{silent.getsockname()[1]}", username="a", password="p")
        )
    finally:
        silent.close()
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.TIMEOUT)
    assert "no answer to REGISTER after" in observation.detail


def test_the_password_never_shows_in_the_target_repr_detail_or_metrics(registrar: Kamailio) -> None:
    secret = Secret("alice-s3cret")
    t = target(f"sip:127.0.0.1:{registrar.port}", username="alice", password=secret)
    observation = run(t)
    assert observation.status is Status.OK
    assert "alice-s3cret" not in repr(t)
    assert "alice-s3cret" not in str(observation.to_json())


def test_a_closed_registrar_port_is_refused() -> None:
    observation = run(
        target(f"sip:127.0.0.1:{free_port(socket.SOCK_DGRAM)}", username="a", password="p")
    )
    assert observation.error_class is ErrorClass.REFUSED


def test_a_challenge_for_another_realm_than_configured_is_not_answered(registrar: Kamailio) -> None:
    observation = run(
        target(
            f"sip:127.0.0.1:{registrar.port}",
            username="alice",
            password="alice-s3cret",
            realm="pbx.example.local",
        )
    )
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.AUTH)
    assert observation.detail == (
        f"cannot authenticate alice: the registrar challenged for realm {REALM}, "
        "not the configured realm pbx.example.local"
    )


def test_a_binding_query_over_tls_authenticates_on_one_connection(
    registrar: Kamailio, workdir: Path
) -> None:
    # TLS from socat's OpenSSL in front of Kamailio's TCP listener (no tls module here).
    ca = Authority(workdir, f"registrar-{registrar.port}")
    server = ca.issue(f"registrar-{registrar.port}", ["registrar.dialwatch.test"])
    with sipp_tls_front(workdir, registrar.tcp_port, server.cert, server.key) as tls:
        t = SipTarget.model_validate(
            {
                "id": "pbx-registration",
                "kind": "sip",
                "uri": f"sips:127.0.0.1:{tls.port}",
                "timeout": "2s",
                "tls": {"ca_file": str(ca.ca_file), "server_name": "registrar.dialwatch.test"},
                "registration": {"domain": REALM, "username": "alice", "password": "alice-s3cret"},
            }
        )
        observation = run(t)
    assert observation.status is Status.OK, observation.detail
    assert observation.detail == "alice authenticated; no binding is registered for it"
    assert fields(observation, "sip_register")["auth_rounds"] == 1
