"""The dns probe's DNS peers: a session-wide real ``dnsmasq`` with the records of
``ZONE`` (started by ``tests.peers.dns``), and scripted servers.

Names under ``dw.test`` dnsmasq does not know are NXDOMAIN (``--local``); names
elsewhere get REFUSED (it has nobody to forward to).

dnsmasq cannot be made to answer SERVFAIL or garbage on purpose, so
``servfail_server`` and ``garbage_server`` are small local UDP servers (a
socket and dnspython) that answer every query that way — named as such where
a test uses them.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator

import dns.message
import dns.rcode
import pytest

from tests.peers.dns import Dnsmasq
from tests.peers.dns import dnsmasq as start_dnsmasq

DOMAIN = "dw.test"

# (dnsmasq option, value): what the server answers.
ZONE = [
    ("--host-record", "crm.dw.test,192.0.2.10,2001:db8::10"),
    ("--host-record", "crm.dw.test,192.0.2.11"),
    ("--cname", "api.dw.test,crm.dw.test"),
    ("--mx-host", "dw.test,mail.dw.test,10"),
    ("--srv-host", "_sip._udp.dw.test,sip1.dw.test,5060,10,5"),
    ("--srv-host", "_sip._udp.dw.test,sip2.dw.test,5060,20,5"),
    ("--txt-record", "dw.test,v=spf1 -all"),
]


@pytest.fixture(scope="session")
def dnsmasq(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dnsmasq]:
    """One dnsmasq with ``ZONE`` for the test session (it only answers; tests never change it)."""
    workdir = tmp_path_factory.mktemp("dnsmasq")
    with start_dnsmasq(workdir, zone=DOMAIN, extra=[f"{o}={v}" for o, v in ZONE]) as server:
        yield server


@contextlib.contextmanager
def scripted_dns_server(reply: Callable[[bytes], bytes]) -> Iterator[str]:
    """A local UDP server that answers each datagram with ``reply(datagram)``;
    yields ``127.0.0.1:PORT``."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            sock.sendto(reply(data), peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(2)
        sock.close()


def _servfail(query: bytes) -> bytes:
    response = dns.message.make_response(dns.message.from_wire(query))
    response.set_rcode(dns.rcode.SERVFAIL)
    return response.to_wire()


def servfail_server() -> contextlib.AbstractContextManager[str]:
    """A local DNS server that answers every query with SERVFAIL; yields ``127.0.0.1:PORT``."""
    return scripted_dns_server(_servfail)


def garbage_server() -> contextlib.AbstractContextManager[str]:
    """A local UDP server that answers every query with the query's ID and then junk."""
    return scripted_dns_server(lambda query: query[:2] + b"\x81\x80not dns at all")


@contextlib.contextmanager
def silent_dns_server() -> Iterator[str]:
    """A bound UDP port that reads nothing and answers nothing; yields ``127.0.0.1:PORT``."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"
