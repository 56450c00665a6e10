"""A real OpenSSH ``sshd`` for tests: own config, host key and authorized key in a temp dir.

``sshd_factory`` starts servers on free 127.0.0.1 ports (``sshd -D -E LOG -f
CONFIG``) and stops them, with every connection's child process, at teardown.
Each server has an Ed25519 host key (more types on request) and a client
key pair whose public half is its only authorized key; logins are as the
user running the tests. The
server logs at VERBOSE, so tests count logins (``Accepted publickey``) in
its log. ``sshd_server`` is one server shared by a test module.

sshd needs its privilege-separation directory ``/run/sshd``; as root the
fixture creates it. Password logins need PAM or a shadow password, which a
test must not set for a real account, so these servers take keys only;
``password_ssh_server`` is a local paramiko SSH server that checks one
password (named as the stand-in it is) for the password path.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import paramiko
import psutil
import pytest

from tests.peers import free_port, require_binary, wait_tcp

START_TIMEOUT = 10.0

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
{host_keys}
AuthorizedKeysFile {root}/authorized_keys
PidFile {root}/sshd.pid
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
LogLevel VERBOSE
MaxStartups 100:30:200
"""


def keygen(path: Path, comment: str = "dialwatch-test", key_type: str = "ed25519") -> Path:
    """A new key pair at ``path`` (private) and ``path.pub``; returns ``path``."""
    subprocess.run(
        [require_binary("ssh-keygen"), "-q", "-t", key_type, "-N", "", "-C", comment,
         "-f", str(path)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return path


@dataclass
class SshdServer:
    """A running sshd; ``known_hosts_line()`` is what a client should trust."""

    port: int
    root: Path
    binary: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def user(self) -> str:
        return getpass.getuser()

    @property
    def client_key(self) -> Path:
        return self.root / "client_key"

    @property
    def log(self) -> Path:
        return self.root / "sshd.log"

    def known_hosts_line(self, host_key_type: str = "ed25519") -> str:
        public = self.root / f"ssh_host_{host_key_type}_key.pub"
        key_type, blob = public.read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {blob}\n"

    def write_known_hosts(self, path: Path) -> Path:
        path.write_text(self.known_hosts_line())
        return path

    def logins(self) -> int:
        """Successful logins so far (each is one TCP connection that authenticated)."""
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count("Accepted publickey for ")

    def start(self) -> None:
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
        self.process = subprocess.Popen(
            [self.binary, "-D", "-E", str(self.log), "-f", str(self.root / "sshd_config")],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, apart from pytest's
        )
        try:
            wait_tcp(self.port, START_TIMEOUT)
        except TimeoutError:
            self.stop()
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            pytest.fail(f"sshd did not start on 127.0.0.1:{self.port}:\n{log[-2000:]}")

    def stop(self) -> None:
        """Stop the listener and every connection it forked (as a host going away does).

        Each connection's sshd calls setsid(), so the process group alone would
        leave them running (as `systemctl restart ssh` does); they are ended one
        by one so that pooled client connections really die.
        """
        if self.process is None:
            return
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process(self.process.pid).children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_sshd(root: Path, host_key_types: tuple[str, ...] = ("ed25519",)) -> SshdServer:
    """An sshd with one host key per type (sshd offers the client's preferred one)."""
    binary = require_binary("sshd")
    root.mkdir(parents=True, exist_ok=True)
    host_keys = []
    for key_type in host_key_types:
        keygen(root / f"ssh_host_{key_type}_key", "dialwatch-test-host", key_type)
        host_keys.append(f"HostKey {root}/ssh_host_{key_type}_key")
    keygen(root / "client_key")
    (root / "authorized_keys").write_text((root / "client_key.pub").read_text())
    port = free_port()
    config = CONFIG.format(port=port, root=root, host_keys="\n".join(host_keys))
    (root / "sshd_config").write_text(config)
    server = SshdServer(port, root, binary)
    server.start()
    return server


@pytest.fixture
def sshd_factory(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., SshdServer]]:
    """Start as many sshd servers as a test needs; all are stopped at teardown."""
    servers: list[SshdServer] = []

    def make(host_key_types: tuple[str, ...] = ("ed25519",)) -> SshdServer:
        server = start_sshd(tmp_path_factory.mktemp("sshd"), host_key_types)
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """One sshd shared by a test module (do not restart it; use sshd_factory for that)."""
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


# -- password logins --------------------------------------------------------------


class _PasswordServer(paramiko.ServerInterface):
    """Accepts one user with one password and runs exec requests with /bin/sh."""

    def __init__(self, user: str, password: str) -> None:
        self.user, self.password = user, password
        self.logins = 0

    def get_allowed_auths(self, username: str) -> str:
        return "password"

    def check_auth_password(self, username: str, password: str) -> int:
        if username == self.user and password == self.password:
            self.logins += 1
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=_execute, args=(channel, command), daemon=True).start()
        return True


def _execute(channel: paramiko.Channel, command: bytes) -> None:
    done = subprocess.run(["/bin/sh", "-c", command.decode()], capture_output=True, check=False)
    with contextlib.suppress(Exception):
        channel.sendall(done.stdout)
        channel.sendall_stderr(done.stderr)
        channel.send_exit_status(done.returncode)
        channel.close()


@dataclass
class PasswordSshServer:
    """A local paramiko SSH server that checks one password — a stand-in for sshd's
    password logins, which need PAM or a shadow password on a real account."""

    port: int
    user: str
    password: str
    host_key: Path
    interface: _PasswordServer

    def known_hosts_line(self) -> str:
        key_type, blob = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {blob}\n"


@pytest.fixture
def password_ssh_server(tmp_path: Path) -> Iterator[PasswordSshServer]:
    host_key_path = keygen(tmp_path / "host_key")
    host_key = paramiko.Ed25519Key.from_private_key_file(str(host_key_path))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    interface = _PasswordServer("operator", "s3cret-passw0rd")
    server = PasswordSshServer(
        listener.getsockname()[1], "operator", "s3cret-passw0rd", host_key_path, interface
    )
    transports: list[paramiko.Transport] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            transport = paramiko.Transport(conn)
            transport.add_server_key(host_key)
            transports.append(transport)
            with contextlib.suppress(Exception):
                transport.start_server(server=interface)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    stop.set()
    thread.join()
    for transport in transports:
        transport.close()
    listener.close()
