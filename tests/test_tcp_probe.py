"""The ``tcp`` probe against real sockets on loopback: open, refused, timed out, slow."""

from __future__ import annotations

import asyncio
import errno
import select
import socket
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from core.errors import describe_os_error
from core.net.address import split_host_port
from core.observation import ErrorClass, Status
from probes import PROBES
from probes.base import ProbeContext
from probes.tcp import TcpTarget, check


def tcp(address: str, **fields: object) -> TcpTarget:
    return TcpTarget.model_validate({"id": "crm-db", "kind": "tcp", "address": address, **fields})


def run(target: TcpTarget, timeout: float = 2.0):
    return asyncio.run(check(target, ProbeContext("crm-db", timeout=timeout)))


@pytest.fixture
def listener() -> Iterator[int]:
    """A real TCP listener on an ephemeral loopback port."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def bound_not_listening() -> Iterator[int]:
    """A port we hold but never listen on: the kernel answers a SYN with RST (refused),
    and no other test can grab the port meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A listener that never accepts, with its accept queue already full.

    Linux drops a SYN for a full accept queue instead of refusing it, so a new
    connect gets no answer at all — a silent peer, without sending anything
    off loopback.
    """
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(2):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    # The first filler completes its handshake (it fills the queue); wait for that.
    select.select([], fillers[:1], [], 2.0)
    try:
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_tcp_is_registered_with_its_model():
    assert PROBES["tcp"].model is TcpTarget


def test_an_open_port_is_ok_with_its_connect_time(listener: int):
    observation = run(tcp(f"127.0.0.1:{listener}"))
    assert observation.status is Status.OK
    assert observation.detail.startswith("connected in ")
    assert observation.latency is not None and observation.latency > 0
    (point,) = observation.metrics
    assert point.measurement == "tcp"
    assert point.tags == {}
    assert isinstance(point.fields["connect_ms"], float)
    assert point.fields["connect_ms"] == round(observation.latency * 1000, 3)


def test_an_ipv6_loopback_listener_is_reached_by_bracketed_address():
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as server:
        port = server.getsockname()[1]
        assert run(tcp(f"[::1]:{port}")).status is Status.OK


def test_a_port_nobody_listens_on_is_refused(bound_not_listening: int):
    observation = run(tcp(f"127.0.0.1:{bound_not_listening}"))
    assert observation.status is Status.FAIL
    assert observation.detail == "connection refused"
    assert observation.error_class is ErrorClass.REFUSED
    assert observation.metrics == ()


def test_a_peer_that_never_answers_times_out(full_backlog: int):
    observation = run(tcp(f"127.0.0.1:{full_backlog}"), timeout=0.3)
    assert observation.status is Status.FAIL
    assert observation.detail == "no answer to TCP connect within 0.3s"
    assert observation.error_class is ErrorClass.TIMEOUT


@pytest.mark.parametrize(
    ("warn_connect_time", "status"),
    [(1e-9, Status.WARN), ("10s", Status.OK)],
    ids=["slower-than-a-nanosecond-warns", "faster-than-ten-seconds-is-ok"],
)
def test_warn_connect_time_turns_a_slow_connect_into_a_warning(
    listener: int, warn_connect_time: object, status: Status
):
    observation = run(tcp(f"127.0.0.1:{listener}", warn_connect_time=warn_connect_time))
    assert observation.status is status
    assert len(observation.metrics) == 1
    if status is Status.WARN:
        assert observation.error_class is ErrorClass.THRESHOLD
        assert observation.detail.startswith("connected in ")
        assert "(above " in observation.detail


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("192.0.2.1:22", ("192.0.2.1", 22)),
        ("crm.example:5432", ("crm.example", 5432)),
        ("[2001:db8::1]:5060", ("2001:db8::1", 5060)),
        ("127.0.0.1:65535", ("127.0.0.1", 65535)),
    ],
    ids=["ipv4", "hostname", "bracketed-ipv6", "highest-port"],
)
def test_split_host_port_accepts_host_and_port(address: str, expected: tuple[str, int]):
    assert split_host_port(address) == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("192.0.2.1", "must be host:port"),
        (":22", "must be host:port"),
        ("host:0", "port must be a number from 1 to 65535"),
        ("host:65536", "port must be a number from 1 to 65535"),
        ("host:ssh", "port must be a number from 1 to 65535"),
    ],
    ids=["no-port", "no-host", "port-zero", "port-too-big", "port-name"],
)
def test_a_bad_address_is_a_config_error_saying_why(address: str, message: str):
    with pytest.raises(ValidationError) as info:
        tcp(address)
    assert message in str(info.value)


def test_timeout_longer_than_interval_is_a_config_error():
    with pytest.raises(ValidationError) as info:
        tcp("127.0.0.1:22", interval="5s", timeout="10s")
    assert "timeout (10s) must not be longer than interval (5s)" in str(info.value)


@pytest.mark.parametrize(
    ("error", "detail", "error_class"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection refused",
         ErrorClass.REFUSED),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
         "could not resolve host (Name or service not known)", ErrorClass.RESOLVE),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "host unreachable (No route to host)",
         ErrorClass.UNREACHABLE),
        (OSError(errno.ENETUNREACH, "Network is unreachable"),
         "host unreachable (Network is unreachable)", ErrorClass.UNREACHABLE),
        (OSError(errno.ECONNRESET, "Connection reset by peer"),
         "connection failed (Connection reset by peer)", ErrorClass.UNREACHABLE),
    ],
    ids=["refused", "unresolvable", "host-unreachable", "network-unreachable", "other"],
)  # fmt: skip
def test_socket_errors_map_to_a_sentence_and_the_fixed_vocabulary(
    error: OSError, detail: str, error_class: ErrorClass
):
    # Name resolution and unreachable networks cannot be produced on loopback
    # without sending traffic elsewhere, so the mapping is checked on its own.
    assert describe_os_error(error) == (detail, error_class)
