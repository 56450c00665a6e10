"""A local DNS server for RFC 3263 tests: dnsmasq on a loopback port with NAPTR, SRV and A records.

``dnsmasq`` (Debian ``dnsmasq-base``) answers only the records given on its
command line (``--no-resolv --no-hosts``, no config file), in the foreground,
on 127.0.0.1 and a free port (UDP and TCP), and is stopped at teardown.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.peers import port_bound, require_binary, spare_port, stop_process


@dataclass(frozen=True)
class Srv:
    name: str
    """``_sip._udp.trunk.test``"""
    target: str
    port: int
    priority: int = 10
    weight: int = 10


@dataclass(frozen=True)
class Naptr:
    name: str
    order: int
    preference: int
    service: str
    """``SIP+D2U``, ``SIP+D2T``, ``SIPS+D2T``"""
    replacement: str
    flags: str = "s"


@dataclass
class Dnsmasq:
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def nameserver(self) -> str:
        """host:port, for a dns target's ``server:`` or a SIP target's ``dns.nameservers``."""
        return f"127.0.0.1:{self.port}"

    server = nameserver


@contextlib.contextmanager
def dnsmasq(
    workdir: Path,
    hosts: dict[str, str | Sequence[str]] | None = None,
    srv: Sequence[Srv] = (),
    naptr: Sequence[Naptr] = (),
    zone: str = "test",
    extra: Sequence[str] = (),
) -> Iterator[Dnsmasq]:
    """dnsmasq answering ``hosts`` (name → address(es)), ``srv`` and ``naptr`` records.

    Other names under ``zone`` get NXDOMAIN / no data (``--local``), as from
    a real authoritative server; names elsewhere are REFUSED (no upstream).
    ``extra``: more dnsmasq options as written on its command line
    (``--cname=…``, ``--mx-host=…``, ``--txt-record=…``).
    """
    binary = require_binary("dnsmasq")
    records: list[str] = [f"--local=/{zone}/"]
    for name, addresses in (hosts or {}).items():
        listed = [addresses] if isinstance(addresses, str) else list(addresses)
        records.append(f"--host-record={name},{','.join(listed)}")
    for record in srv:
        records.append(
            f"--srv-host={record.name},{record.target},{record.port},{record.priority},{record.weight}"
        )
    for record in naptr:
        records.append(
            f"--naptr-record={record.name},{record.order},{record.preference},"
            f"{record.flags},{record.service},,{record.replacement}"
        )
    records.extend(extra)
    # A spare port (below the ephemeral range) cannot be taken by another test's
    # port-0 socket between our check and dnsmasq's bind; a port taken anyway
    # (another dnsmasq) makes it exit at once, and a new port is tried.
    for _ in range(5):
        port = spare_port(socket.SOCK_DGRAM)
        process, log = _start(binary, workdir, port, records)
        if process is not None:
            break
        if "Address already in use" not in log.read_text():
            raise RuntimeError(f"dnsmasq exited: {log.read_text()[-2000:]}")
    else:
        raise RuntimeError("dnsmasq found no free port in 5 tries")
    try:
        yield Dnsmasq(port, process, log)
    finally:
        stop_process(process, 5)


def _start(
    binary: str, workdir: Path, port: int, records: Sequence[str]
) -> tuple[subprocess.Popen[bytes] | None, Path]:
    """dnsmasq on 127.0.0.1:port once it has bound it; None if it exited first."""
    args = [
        binary,
        "--no-daemon",
        "--conf-file=/dev/null",
        f"--port={port}",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--no-negcache",
        f"--pid-file={workdir / f'dnsmasq-{port}.pid'}",
        "--log-queries",
        "--user=root",
        *records,
    ]
    log = workdir / f"dnsmasq-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while not port_bound(port, "udp"):
        if process.poll() is not None:
            return None, log
        if time.monotonic() > deadline:
            stop_process(process, 5)
            raise TimeoutError(f"dnsmasq did not bind udp port {port} within 10 s")
        time.sleep(0.02)
    return process, log
