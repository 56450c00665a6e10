"""A real ``dnsmasq`` DNS server for tests, on a free 127.0.0.1 port, with the records of ``ZONE``.

dnsmasq runs in the foreground with no config file (``--conf-file=/dev/null``),
no upstream servers, no /etc/hosts and no pid file; every record comes from
its command line. Names under ``dw.test`` it does not know are NXDOMAIN
(``--local``); names elsewhere get REFUSED (it has nobody to forward to).

dnsmasq cannot be made to answer SERVFAIL or garbage on purpose, so
``servfail_server`` and ``garbage_server`` are small local UDP servers (a
socket and dnspython) that answer every query that way — named as such where
a test uses them.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import dns.message
import dns.rcode
import pytest

from tests.peers import free_port, require_binary, stop_process, wait_tcp

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


@dataclass
class Dnsmasq:
    """A running dnsmasq; ``server`` is the value for a dns target's ``server:`` key."""

    port: int
    process: subprocess.Popen[bytes]

    @property
    def server(self) -> str:
        return f"127.0.0.1:{self.port}"


def _start(binary: str, port: int) -> subprocess.Popen[bytes]:
    command = [
        binary,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--pid-file=",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        f"--local=/{DOMAIN}/",
        "--log-facility=-",
        *(f"{option}={value}" for option, value in ZONE),
    ]
    if os.geteuid() == 0:
        command.append("--user=root")  # no need to drop to `nobody` for a test server
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture(scope="session")
def dnsmasq() -> Iterator[Dnsmasq]:
    """One dnsmasq for the test session (it only answers; tests never change it)."""
    binary = require_binary("dnsmasq")
    process = None
    # dnsmasq needs the port free for both UDP and TCP; retry if another test took it.
    for _ in range(5):
        port = free_port(socket.SOCK_DGRAM)
        process = _start(binary, port)
        try:
            wait_tcp(port, timeout=5.0)
            break
        except TimeoutError:
            process.kill()
            process.wait()
            process = None
    if process is None:
        pytest.fail("dnsmasq did not start on a free loopback port", pytrace=False)
    try:
        yield Dnsmasq(port, process)
    finally:
        stop_process(process, 5)
        if process.stderr is not None:
            process.stderr.close()


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
