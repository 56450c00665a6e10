"""SSH connections (the server probe's ``via: ssh``, runbook steps, backups): open, verify the host key, log in, run commands, reuse.

Blocking paramiko code, meant to run in the pool's own worker threads (never
on the event loop). Every step is bounded by a deadline (``time.monotonic()``
value) so a worker always comes back: a host that accepts TCP and never
speaks, a login that stalls, a command that never ends.

One authenticated connection is kept per (host, port, user) — plus a digest
of the credentials and host-key settings, so a target with a wrong password
or a stricter policy never rides on another target's login — and reused by
every poll until its transport dies (then the next poll reconnects) or a
command overruns (then it is dropped, since the channel state is unknown).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import select
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from core.errors import describe_os_error
from core.net.ssh_login import SshLogin
from core.observation import ErrorClass

MAX_OUTPUT = 1024 * 1024
"""Bytes of stdout (and of stderr) read from one command; more is an error."""
WORKERS = 32
"""Threads for SSH work, apart from the default executor so SSH polls waiting on
slow hosts cannot starve psutil readings and other probes."""
CHANNELS_PER_CONNECTION = 8
"""Commands in flight on one login; OpenSSH refuses more than ``MaxSessions`` (10)."""
_RSA_ALGORITHMS = ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]

# paramiko logs each failed connection at ERROR, with a traceback, from its
# transport thread ("Error reading SSH protocol banner"); the poll already
# reports the failure as a sentence, so those lines would only repeat it.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)


class SshError(Exception):
    """A connection step failed; ``detail`` is the human sentence for the observation."""

    def __init__(
        self, detail: str, error_class: ErrorClass, *, broken: bool = True, started: bool = True
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error_class = error_class
        self.broken = broken
        """True when the connection can no longer be trusted and must be dropped."""
        self.started = started
        """False when it failed before the command was sent, so trying again is safe."""


@dataclass(frozen=True)
class CommandResult:
    """What one command did: its exit code (None if the host sent none) and output."""

    exit_code: int | None
    stdout: str
    stderr: str
    seconds: float


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to open one login; ``key`` says which logins may be shared."""

    host: str
    port: int
    user: str
    password: str | None = field(default=None, repr=False)
    key_file: str | None = None
    passphrase: str | None = field(default=None, repr=False)
    known_hosts: str = "~/.ssh/known_hosts"
    host_key_policy: str = "strict"

    @classmethod
    def from_options(cls, options: SshLogin) -> Endpoint:
        return cls(
            options.host,
            options.port,
            options.user,
            None if options.password is None else str(options.password),
            options.key_file,
            None if options.passphrase is None else str(options.passphrase),
            options.known_hosts,
            options.host_key_policy,
        )

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How OpenSSH writes this host in known_hosts (``[host]:port`` off port 22)."""
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def key(self) -> tuple[str, int, str, str]:
        settings = "\0".join(
            str(v)
            for v in (
                self.password,
                self.key_file,
                self.passphrase,
                self.known_hosts,
                self.host_key_policy,
            )
        )
        # A digest, so pool keys (which may show up in a debugger or log) hold no secret.
        return self.host, self.port, self.user, hashlib.sha256(settings.encode()).hexdigest()


def remaining(deadline: float) -> float:
    return deadline - time.monotonic()


def connect(endpoint: Endpoint, deadline: float) -> paramiko.Transport:
    """A logged-in transport, or SshError with the step that failed in its sentence."""
    known_hosts = Path(endpoint.known_hosts).expanduser()
    known = load_known_hosts(known_hosts)
    pkey = load_key(endpoint) if endpoint.key_file else None
    budget = max(remaining(deadline), 0.001)
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=budget)
    except TimeoutError:
        raise SshError(
            f"SSH: no answer from {endpoint.address} to TCP connect within {budget:.1f}s",
            ErrorClass.TIMEOUT,
        ) from None
    except OSError as exc:
        detail, error_class = describe_os_error(exc)
        raise SshError(f"SSH: {endpoint.address}: {detail}", error_class) from None
    transport = paramiko.Transport(sock)
    try:
        _handshake(transport, endpoint, known, deadline)
        verify_host_key(transport.get_remote_server_key(), endpoint, known, known_hosts)
        _login(transport, endpoint, pkey, deadline)
    except BaseException:
        transport.close()
        raise
    # Keepalives let a dead peer be noticed between polls instead of at the next command.
    transport.set_keepalive(30)
    return transport


def _handshake(
    transport: paramiko.Transport, endpoint: Endpoint, known: paramiko.HostKeys, deadline: float
) -> None:
    budget = max(remaining(deadline), 0.001)
    # paramiko's own limits sit just past ours, so our wait below decides and words it.
    transport.banner_timeout = budget + 1
    transport.handshake_timeout = budget + 1
    # Ask for the key type known_hosts holds, or a host with several keys may offer
    # another one and look "changed".
    entries = known.lookup(endpoint.known_hosts_name) or {}
    wanted = [a for t in entries for a in (_RSA_ALGORITHMS if t == "ssh-rsa" else [t])]
    if wanted:
        options = transport.get_security_options()
        available = list(options.key_types)
        first = [a for a in wanted if a in available]
        options.key_types = first + [a for a in available if a not in first]
    done = threading.Event()
    transport.start_client(event=done)
    if not done.wait(budget):
        step = (
            "sent no SSH greeting"
            if not transport.remote_version
            else ("did not finish the SSH handshake")
        )
        raise SshError(
            f"SSH: {endpoint.address} accepted the connection but {step} within {budget:.1f}s",
            ErrorClass.TIMEOUT,
        )
    if not transport.is_active():
        reason = transport.get_exception()
        raise SshError(
            f"SSH: handshake with {endpoint.address} failed ({_reason(reason)})",
            ErrorClass.PROTOCOL,
        )


def load_known_hosts(path: Path) -> paramiko.HostKeys:
    keys = paramiko.HostKeys()
    try:
        keys.load(str(path))
    except FileNotFoundError:
        pass  # no file yet: every host is unknown (accept-new creates it)
    except (OSError, UnicodeDecodeError) as exc:
        raise SshError(
            f"SSH: cannot read known_hosts {path} ({getattr(exc, 'strerror', None) or exc})",
            ErrorClass.AUTH,
        ) from None
    return keys


def verify_host_key(
    key: paramiko.PKey, endpoint: Endpoint, known: paramiko.HostKeys, path: Path
) -> None:
    """Accept the server's key, record it (``accept-new``), or raise SshError saying why not."""
    if endpoint.host_key_policy == "accept-any":
        return
    name = endpoint.known_hosts_name
    offered = f"{key.get_name()} {key.fingerprint}"
    entries = known.lookup(name)
    if entries:
        expected = entries.get(key.get_name())
        if expected is not None and expected == key:
            return
        if expected is not None:
            raise SshError(
                f"SSH: host key CHANGED for {endpoint.address} — possible man-in-the-middle "
                f"(known_hosts {path} has {expected.get_name()} {expected.fingerprint}, "
                f"the server offered {offered}); if the host was reinstalled, replace its "
                f"line in known_hosts",
                ErrorClass.AUTH,
            )
        raise SshError(
            f"SSH: host key for {endpoint.address} is of another type than known_hosts {path} "
            f"holds ({', '.join(entries)}; the server offered {offered}) — possible "
            "man-in-the-middle",
            ErrorClass.AUTH,
        )
    if endpoint.host_key_policy == "accept-new":
        record_host_key(path, name, key)
        return
    raise SshError(
        f"SSH: host key for {endpoint.address} is not in known_hosts ({path}; the server "
        f"offered {offered}). Add it with `ssh-keyscan -p {endpoint.port} {endpoint.host} "
        f">> {path}` after checking the fingerprint, or set host_key_policy: accept-new",
        ErrorClass.AUTH,
    )


def record_host_key(path: Path, name: str, key: paramiko.PKey) -> None:
    """Append one OpenSSH known_hosts line, under a lock (targets connect in parallel)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="ascii") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            again = load_known_hosts(path).lookup(name)
            if not again or key.get_name() not in again:
                handle.write(f"{name} {key.get_name()} {key.get_base64()}\n")
    except OSError as exc:
        raise SshError(
            f"SSH: cannot record the host key of {name} in {path} ({exc.strerror or exc})",
            ErrorClass.AUTH,
        ) from None


def load_key(endpoint: Endpoint) -> paramiko.PKey:
    path = Path(str(endpoint.key_file)).expanduser()
    try:
        return paramiko.PKey.from_path(path, endpoint.passphrase)
    except FileNotFoundError:
        problem = "no such file"
    except PermissionError:
        problem = "permission denied"
    except paramiko.PasswordRequiredException:
        problem = "it is encrypted: give its passphrase"
    except (paramiko.SSHException, ValueError, OSError) as exc:
        problem = _reason(exc) if endpoint.passphrase is None else "wrong passphrase or not a key"
    raise SshError(f"SSH: cannot load key file {path} ({problem})", ErrorClass.AUTH)


def _login(
    transport: paramiko.Transport,
    endpoint: Endpoint,
    pkey: paramiko.PKey | None,
    deadline: float,
) -> None:
    transport.auth_timeout = max(remaining(deadline), 0.001)
    tried: list[str] = []
    allowed: list[str] = []
    attempts: list[tuple[str, object]] = []
    if pkey is not None:
        attempts.append(("publickey", pkey))
    if endpoint.password is not None:
        attempts.append(("password", endpoint.password))
    for method, secret in attempts:
        tried.append(method)
        try:
            if isinstance(secret, paramiko.PKey):
                more = transport.auth_publickey(endpoint.user, secret)
            else:
                more = transport.auth_password(endpoint.user, str(secret))
        except paramiko.BadAuthenticationType as exc:
            allowed = list(exc.allowed_types)
            continue
        except paramiko.AuthenticationException:
            continue
        except (paramiko.SSHException, OSError, EOFError) as exc:
            if remaining(deadline) <= 0:
                raise SshError(
                    f"SSH: {endpoint.address} did not answer the login within "
                    f"{transport.auth_timeout:.1f}s",
                    ErrorClass.TIMEOUT,
                ) from None
            raise SshError(
                f"SSH: login to {endpoint.address} broke off ({_reason(exc)})",
                ErrorClass.PROTOCOL,
            ) from None
        if transport.is_authenticated():
            return
        raise SshError(
            f"SSH: {endpoint.address} wants further login steps ({', '.join(more)}), "
            "which are not supported",
            ErrorClass.AUTH,
        )
    hint = f"; the server allows {', '.join(allowed)}" if allowed else ""
    raise SshError(
        f"SSH: authentication failed for {endpoint.user}@{endpoint.address} "
        f"(tried {', '.join(tried)}{hint})",
        ErrorClass.AUTH,
    )


def run_command(
    transport: paramiko.Transport, command: str, deadline: float, address: str = "the host"
) -> CommandResult:
    """Run one command on its own channel; SshError on timeout or a broken connection.

    The channel is closed in every case. A timeout is ``broken``: the command
    may still run on the host and the channel's state is unknown, so the
    connection is dropped rather than reused.
    """
    started = time.monotonic()
    try:
        channel = transport.open_session(timeout=max(remaining(deadline), 0.001))
    except paramiko.ChannelException as exc:
        raise SshError(
            f"SSH: {address} refused a new session ({_reason(exc)}; is MaxSessions below "
            f"{CHANNELS_PER_CONNECTION}?)",
            ErrorClass.RESPONSE,
            broken=False,
            started=False,
        ) from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SshError(
            f"SSH: could not open a session on {address} ({_reason(exc)})",
            ErrorClass.UNREACHABLE,
            started=False,
        ) from None
    try:
        channel.exec_command(command)
        out, err = bytearray(), bytearray()
        while True:
            while channel.recv_ready():
                out += channel.recv(65536)
            while channel.recv_stderr_ready():
                err += channel.recv_stderr(65536)
            if len(out) > MAX_OUTPUT or len(err) > MAX_OUTPUT:
                raise SshError(
                    f"SSH: a command on {address} printed more than {MAX_OUTPUT // 1024} KiB",
                    ErrorClass.PROTOCOL,
                    broken=False,  # closing its channel is enough
                )
            if channel.exit_status_ready() and not (
                channel.recv_ready() or channel.recv_stderr_ready()
            ):
                break
            left = remaining(deadline)
            if left <= 0:
                raise SshError(
                    f"SSH: a command on {address} did not finish within "
                    f"{time.monotonic() - started:.1f}s",
                    ErrorClass.TIMEOUT,
                )
            if channel.eof_received:
                # Output is over; only the exit status is still to come. The
                # channel's pipe stays readable after EOF, so select would spin.
                channel.status_event.wait(left)
            else:
                select.select([channel], [], [], left)
            if channel.closed and not channel.exit_status_ready():
                raise SshError(
                    f"SSH: the connection to {address} closed during a command",
                    ErrorClass.UNREACHABLE,
                )
        return CommandResult(
            channel.recv_exit_status(),
            out.decode("utf-8", "replace"),
            err.decode("utf-8", "replace"),
            time.monotonic() - started,
        )
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise SshError(
            f"SSH: the connection to {address} broke during a command ({_reason(exc)})",
            ErrorClass.UNREACHABLE,
        ) from None
    finally:
        with contextlib.suppress(Exception):
            channel.close()


@dataclass
class Connection:
    """A pooled login and how many channels it may have open at once."""

    transport: paramiko.Transport
    slots: threading.BoundedSemaphore = field(
        default_factory=lambda: threading.BoundedSemaphore(CHANNELS_PER_CONNECTION)
    )

    def run(self, command: str, deadline: float, address: str) -> CommandResult:
        """``run_command`` once a channel slot is free (many targets may share one login)."""
        if not self.slots.acquire(timeout=max(remaining(deadline), 0.001)):
            raise SshError(
                f"SSH: every session on the connection to {address} stayed busy until the timeout",
                ErrorClass.TIMEOUT,
                broken=False,
            )
        try:
            return run_command(self.transport, command, deadline, address)
        finally:
            self.slots.release()


class SshPool:
    """Logged-in connections by ``Endpoint.key``, and the worker threads that use them."""

    def __init__(self, workers: int = WORKERS) -> None:
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dialwatch-ssh")
        self._connections: dict[tuple[str, int, str, str], Connection] = {}
        self._locks: dict[tuple[str, int, str, str], threading.Lock] = {}
        self._guard = threading.Lock()
        self.connects = 0
        """How many connections this pool has opened (for tests and the benchmark)."""

    def connection(self, endpoint: Endpoint, deadline: float) -> tuple[Connection, bool]:
        """A live logged-in connection and whether it was reused (False: just opened)."""
        key = endpoint.key
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        # One connect per key at a time: polls of targets on the same host wait
        # for the first login instead of each opening their own.
        if not lock.acquire(timeout=max(remaining(deadline), 0.001)):
            raise SshError(
                f"SSH: timed out waiting for another poll's login to {endpoint.address}",
                ErrorClass.TIMEOUT,
                broken=False,
            )
        try:
            current = self._connections.get(key)
            if current is not None:
                transport = current.transport
                if transport.is_active() and transport.is_authenticated():
                    return current, True
                self.drop(endpoint, current)
            fresh = Connection(connect(endpoint, deadline))
            with self._guard:
                self.connects += 1
                self._connections[key] = fresh
            return fresh, False
        finally:
            lock.release()

    def drop(self, endpoint: Endpoint, connection: Connection) -> None:
        """Forget and close a connection (if it is still the pooled one for its key)."""
        with self._guard:
            if self._connections.get(endpoint.key) is connection:
                del self._connections[endpoint.key]
        with contextlib.suppress(Exception):
            connection.transport.close()

    def open_count(self) -> int:
        with self._guard:
            connections = list(self._connections.values())
        return sum(1 for c in connections if c.transport.is_active())

    def close(self) -> None:
        with self._guard:
            connections, self._connections = list(self._connections.values()), {}
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.transport.close()
        self.executor.shutdown(wait=False, cancel_futures=True)


def _reason(exc: BaseException | None) -> str:
    if exc is None:
        return "no reason given"
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 200 else text[:200] + "…"
