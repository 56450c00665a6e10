"""Helpers for starting real peers (sipp, snmpd, sshd, influxd...) in test fixtures.

Each peer has its own module here (``tests/peers/sipp.py``...). A missing peer
is a test failure that says how to install it, never a skip.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

# Binary -> Debian package that provides it; the test command (.ci/run) installs these.
PEER_PACKAGES = {
    "sipp": "sip-tester",
    "kamailio": "kamailio",
    "snmpd": "snmpd",
    "snmpbulkwalk": "snmp",
    "sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "chromedriver": "chromium-driver",
    "initdb": "postgresql",
    "mariadbd": "mariadb-server",
    "influxd": "influxdb",
    "victoria-metrics": "victoria-metrics",
    "chromium": "chromium",
    "dnsmasq": "dnsmasq-base",
    "socat": "socat",
    "kamcmd": "kamailio",
    "mariadb": "mariadb-client",
    "mariadb-install-db": "mariadb-server",
}

_SBIN = ("/usr/sbin", "/usr/local/sbin", "/sbin")


def require_binary(name: str) -> str:
    """Path of a peer binary, or fail the test with the command that installs it."""
    path = shutil.which(name) or next(
        (str(Path(d) / name) for d in _SBIN if (Path(d) / name).exists()), None
    )
    if path is None:
        package = PEER_PACKAGES.get(name, name)
        pytest.fail(
            f"{name} is not installed: run `sudo apt-get install -y {package}` "
            f"(or ./install.sh --test, which installs every test peer)",
            pytrace=False,
        )
    return path


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """An ephemeral loopback port that is free right now (TCP or UDP)."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


SPARE_PORTS = range(20_000, 32_768)
"""Below Linux's default ephemeral range (32768-60999): no socket bound to port 0
(a SIP probe's source port, sipp's media ports) can take one of these between
the check and the peer's own bind."""


def spare_port(kind: int = socket.SOCK_STREAM) -> int:
    """A loopback port outside the ephemeral range that is free right now (TCP or UDP),
    for peers that bind a port they are told and cannot be given port 0 (dnsmasq)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.choice(SPARE_PORTS)
        with socket.socket(socket.AF_INET, kind) as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {SPARE_PORTS.start}-{SPARE_PORTS.stop - 1}")


def wait_tcp(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Wait until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout}s") from None
            time.sleep(0.05)


def port_bound(port: int, proto: str = "udp") -> bool:
    """Is something bound (udp) or listening (tcp, state 0A) on 127.0.0.1:port? Read from /proc,
    so checking sends nothing to the peer."""
    wanted = f"0100007F:{port:04X}"
    for line in Path(f"/proc/net/{proto}").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and (proto == "udp" or fields[3] == "0A"):
            return True
    return False


def stop_process(
    process: subprocess.Popen[bytes], timeout: float = 10.0, sig: int = signal.SIGTERM
) -> None:
    """Ask a peer to stop (``sig``), and kill it if it has not within ``timeout`` seconds."""
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
