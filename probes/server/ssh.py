"""``via: ssh`` — log in to the machine and read it with a few shell commands.

One poll, in one of the pool's worker threads (paramiko blocks): take the
pooled connection for the host (or open one, verifying the host key), run
the basic script, ``systemctl is-active`` and the target's own commands, each
on its own channel, all within the target's ``timeout``. The output is parsed
by ``ssh_profiles`` into the same ``ServerSample`` ``via: local`` produces,
plus findings for services and commands.

A connection that fails before anything was read makes the whole poll fail
(``SourceError``); a failing own command is one finding among the readings.
"""

from __future__ import annotations

import asyncio
import time

import paramiko

from core.net.ssh import CommandResult, Endpoint, SshError, SshPool, remaining
from core.observation import ErrorClass, Status
from core.shared import SharedResources
from probes.base import ProbeContext
from probes.server.config import ServerTarget
from probes.server.findings import Finding, SampleWithFindings
from probes.server.sample import SourceError
from probes.server.ssh_config import SshCommand, SshOptions
from probes.server.ssh_profiles import (
    BasicReadings,
    ParseError,
    basic_script,
    judge_command,
    judge_services,
    parse_basic,
    services_command,
)

SHARED_KEY = "server.ssh.pool"


def shared_pool(shared: SharedResources) -> SshPool:
    """The engine-wide SSH pool, created on first use and closed with ``ctx.shared``."""
    pool = shared.get(SHARED_KEY)
    if pool is None:
        pool = SshPool()

        async def close() -> None:
            # Closing transports joins their threads: not on the event loop.
            await asyncio.to_thread(pool.close)

        shared.set(SHARED_KEY, pool, close=close)
    return pool


async def collect(target: ServerTarget, ctx: ProbeContext) -> SampleWithFindings:
    if target.ssh is None:  # the config validator already insists on it
        raise SourceError("via: ssh needs an ssh section", ErrorClass.PROTOCOL)
    pool = shared_pool(ctx.shared)
    deadline = time.monotonic() + ctx.timeout
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(pool.executor, poll, pool, target, target.ssh, deadline)


class _Session:
    """The connection one poll uses: reconnects once if a reused one turns out dead."""

    def __init__(self, pool: SshPool, endpoint: Endpoint, deadline: float) -> None:
        self.pool, self.endpoint, self.deadline = pool, endpoint, deadline

    def run(self, command: str, deadline: float | None = None) -> CommandResult:
        until = min(self.deadline, deadline) if deadline is not None else self.deadline
        connection, reused = self.pool.connection(self.endpoint, self.deadline)
        try:
            return connection.run(command, until, self.endpoint.address)
        except SshError as exc:
            if exc.broken:
                self.pool.drop(self.endpoint, connection)
            # A pooled connection can die between polls (sshd restarted, NAT
            # timeout) without paramiko noticing yet; one fresh try tells a dead
            # connection from a dead host. Only if the command was not sent: a
            # command is never run twice.
            if not (reused and exc.error_class is ErrorClass.UNREACHABLE and not exc.started):
                raise
        connection, _ = self.pool.connection(self.endpoint, self.deadline)
        try:
            return connection.run(command, until, self.endpoint.address)
        except SshError as exc:
            if exc.broken:
                self.pool.drop(self.endpoint, connection)
            raise


def poll(
    pool: SshPool, target: ServerTarget, options: SshOptions, deadline: float
) -> SampleWithFindings:
    """One blocking poll (runs in a worker thread)."""
    if remaining(deadline) <= 0:
        raise SourceError(
            f"SSH: the poll of {options.host} waited for a free SSH worker thread until its "
            "timeout (every worker is busy with slow hosts)",
            ErrorClass.TIMEOUT,
        )
    session = _Session(pool, Endpoint.from_options(options), deadline)
    readings = BasicReadings()
    want_basic = "basic" in options.profiles
    try:
        if want_basic or target.processes:
            result = session.run(basic_script(target, want_basic))
            try:
                readings = parse_basic(result.stdout, target, want_basic)
            except ParseError as exc:
                raise SourceError(
                    f"SSH: could not read the basic readings of {options.host}: {exc}",
                    ErrorClass.PROTOCOL,
                ) from None
        findings: list[Finding] = []
        if "services" in options.profiles:
            result = session.run(services_command(options.systemctl, options.services))
            findings.append(judge_services(options.services, result))
        for command in options.commands:
            findings.append(_own_command(session, command, deadline))
    except SshError as exc:
        raise SourceError(exc.detail, exc.error_class) from None
    except paramiko.SSHException as exc:  # anything paramiko raises that we did not place
        raise SourceError(f"SSH: {options.host}: {exc}", ErrorClass.PROTOCOL) from None
    return SampleWithFindings(
        taken_at=time.time(),
        boot_time=readings.boot_time,
        cpu_count=readings.cpu_count,
        cpu=readings.cpu,
        load=readings.load,
        memory_percent=readings.memory_percent,
        memory_available_bytes=readings.memory_available_bytes,
        swap_percent=readings.swap_percent,
        disks=readings.disks,
        interfaces=readings.interfaces,
        processes=readings.processes or {},
        findings=tuple(findings),
        has_readings=want_basic or bool(target.processes),
    )


def _own_command(session: _Session, command: SshCommand, deadline: float) -> Finding:
    own_deadline = None
    if command.timeout is not None:
        own_deadline = time.monotonic() + command.timeout
    try:
        result = session.run(command.run, own_deadline)
    except SshError as exc:
        if exc.error_class is ErrorClass.TIMEOUT and command.timeout and remaining(deadline) > 0:
            # Only this command overran its own timeout; the others still get their turn.
            return Finding(
                Status.FAIL,
                f"command {command.name} did not finish within {command.timeout:g}s",
                error_class=ErrorClass.TIMEOUT,
            )
        if not exc.broken and exc.error_class is not ErrorClass.TIMEOUT:
            return Finding(
                Status.FAIL, f"command {command.name}: {exc.detail}", (), exc.error_class
            )
        raise
    return judge_command(command, result)
