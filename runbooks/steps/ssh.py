"""The ``ssh`` step: log in to a host and run one command there, under the step's timeout.

```yaml
- kind: ssh
  host: 10.0.0.21
  user: dialwatch
  key_file: /etc/dialwatch/ssh/id_ed25519
  known_hosts: /etc/dialwatch/ssh/known_hosts
  command: "asterisk -rx {{ params.cli_command }}"
  expect_exit: 0
  expect_output: "(?P<calls>\\d+) active calls?"
  timeout: 30s
```

The login is ``core.net.ssh_login.SshLogin`` (the server probe's fields, same
host-key checking) and the connection comes from the engine-wide pool the
server probe uses (``ctx.services.shared``), so a step on a host the probe
already watches rides on its login.

A timed-out command is stopped **on the host**: the command runs as
``exec timeout -s TERM -k 2 <seconds> sh -c '<command>' </dev/null``, where
``<seconds>`` is a little less than what is left of the step's time, so the
host's coreutils ``timeout`` ends the command (and every process it started)
and its exit status still arrives before the engine cancels the step; at the
deadline itself the channel is closed. The engine's cancellation alone could
not do this: it stops the asyncio task, not the worker thread doing the SSH
work, and neither reaches the process on the host.

``command`` is in ``SHELL``: the engine shell-quotes every ``{{ value }}`` in
it, so a reason phrase holding ``; touch /tmp/pwned`` reaches ``sh`` as one
word. No paramiko at import time: loading a config must not load it.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, field_validator

from core.net.ssh_login import SshLogin
from core.observation import ErrorClass
from runbooks import template
from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult, short, tail, took

if TYPE_CHECKING:
    from core.net.ssh import CommandResult, Connection, Endpoint, SshPool

KILL_AFTER = 2.0
"""Seconds the host's ``timeout`` waits after TERM before it sends KILL."""
MIN_MARGIN, MAX_MARGIN = 0.5, 2.0
"""Time kept back from the host's ``timeout`` (10 % of what is left, within these
bounds, never more than half): the host's shell starts (``.bashrc``: 0.1-0.3 s on
loopback) and the exit status travels back before the step's deadline."""
MIN_COMMAND_TIME = 0.1
"""A command is not started with less time than this left after the login."""
TIMED_OUT = (124, 128 + 9)
"""Exit codes of ``timeout`` when it stopped the command (TERM, then KILL)."""
_NO_TIMEOUT_RE = re.compile(r"\btimeout: (?:command )?not found|\btimeout: No such file")

ExitCode = Annotated[int, Field(ge=0, le=255)]


def _regex(value: str | None) -> str | None:
    if value is None:
        return value
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"is not a valid regular expression ({exc})") from None
    return value


class SshStepConfig(SshLogin, StepConfig):
    """Run one command on a host over SSH."""

    kind: Literal["ssh"]
    command: str
    """The command line, run by ``sh -c`` on the host with no input (``</dev/null``);
    ``{{ values }}`` in it are shell-quoted."""
    expect_exit: list[ExitCode] = Field(default_factory=lambda: [0], min_length=1)
    """Exit codes that mean it worked: one (``0``) or a list (``[0, 3]``)."""
    expect_output: str | None = None
    """A Python regular expression that must be found in stdout; its named groups
    (``(?P<calls>\\d+)``) are in ``steps.<id>.data.match``."""
    refuse_output: str | None = None
    """A Python regular expression that must not be found in stdout or stderr."""

    TEMPLATED = ("host",)
    SHELL = ("command",)

    @field_validator("host", "user")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        # SshLogin's check, but a host may be a template ("{{ target.host }}"),
        # which is checked again once rendered (SshStep.run).
        if template.is_template(value) and value.strip():
            return value
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("must not be empty or contain spaces")
        return value

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a command line")
        return value

    @field_validator("expect_exit", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("expect_output", "refuse_output")
    @classmethod
    def _regexes(cls, value: str | None) -> str | None:
        return _regex(value)


def remote_limit(left: float) -> float:
    """Seconds the host's ``timeout`` gives a command when ``left`` remain of the step."""
    return max(left - min(MAX_MARGIN, max(MIN_MARGIN, left * 0.1)), left / 2)


def remote_command(command: str, seconds: float) -> str:
    """``command`` as the login shell receives it: under ``timeout``, no input."""
    return (
        f"exec timeout -s TERM -k {KILL_AFTER:g} {seconds:.2f} "
        f"sh -c {shlex.quote(command)} </dev/null"
    )


class SshStep:
    def __init__(self, config: SshStepConfig) -> None:
        self.config = config

    def _address(self) -> str:
        c = self.config
        return f"[{c.host}]:{c.port}" if ":" in c.host else f"{c.host}:{c.port}"

    def plan(self) -> list[str]:
        c = self.config
        login = []
        if c.key_file:
            login.append(f"key {c.key_file}")
        if c.password is not None:
            login.append("password (not shown)")
        checks = [f"exit {' or '.join(str(code) for code in c.expect_exit)}"]
        if c.expect_output:
            checks.append(f"stdout matches /{c.expect_output}/")
        if c.refuse_output:
            checks.append(f"output without /{c.refuse_output}/")
        return [
            f"ssh {c.user}@{self._address()}: {c.command}",
            f"  login: {', then '.join(login)}; host key {c.host_key_policy}, "
            f"known_hosts {c.known_hosts}",
            f"  expect {', '.join(checks)}",
            f"  stopped on the host at the {took(c.timeout)} timeout (timeout: TERM, then KILL "
            f"{KILL_AFTER:g}s later)",
        ]

    async def run(self, ctx: StepContext) -> StepResult:
        c = self.config
        if template.is_template(c.host) or not c.host.strip() or any(ch.isspace() for ch in c.host):
            raise StepFailed(
                f"host {c.host!r} is not a host name or address (as rendered)", retry=False
            )
        left = ctx.remaining()
        if left <= 0:
            raise StepFailed("no time left to log in (the step's timeout has passed)")
        # ctx.deadline is on ctx.clock; core.net.ssh counts in time.monotonic().
        deadline = time.monotonic() + left
        from probes.server.ssh import shared_pool  # paramiko: only when a step runs

        pool = shared_pool(ctx.services.shared)
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        result, limit = await loop.run_in_executor(
            pool.executor, _execute, pool, c, c.command, deadline
        )
        return self._judge(result, limit, time.monotonic() - started)

    def _judge(self, result: CommandResult, limit: float, seconds: float) -> StepResult:
        c = self.config
        where = f"{c.user}@{self._address()}"
        output = tail(_joined(result.stdout, result.stderr))
        code = result.exit_code
        data: dict[str, Any] = {
            "exit_code": code,
            "stdout": tail(result.stdout),
            "stderr": tail(result.stderr),
        }
        last = short(_last_line(result.stderr) or _last_line(result.stdout), 200)
        said = f": {last}" if last else ""
        if code in TIMED_OUT and result.seconds >= limit * 0.9:
            raise StepFailed(
                f"the command on {where} did not finish before the step's timeout: stopped "
                f"on the host after {took(round(limit, 1))} (timeout: TERM, then KILL "
                f"{KILL_AFTER:g}s later){said}",
                output=output,
            )
        if code == 127 and _NO_TIMEOUT_RE.search(result.stderr):
            raise StepFailed(
                f"{where} has no timeout command (GNU coreutils or BusyBox): the ssh step runs "
                "every command under it so that one that overruns is stopped on the host",
                output=output,
                retry=False,
            )
        if code is None or code < 0:
            raise StepFailed(f"{where} sent no exit status for the command{said}", output=output)
        if code not in c.expect_exit:
            expected = " or ".join(str(e) for e in c.expect_exit)
            raise StepFailed(f"exit {code} on {where} (expected {expected}){said}", output=output)
        if c.refuse_output:
            found = re.search(c.refuse_output, _joined(result.stdout, result.stderr), re.M)
            if found:
                raise StepFailed(
                    f"the output on {where} has {short(found.group(0), 200)!r}, which "
                    f"refuse_output /{c.refuse_output}/ refuses",
                    output=output,
                )
        if c.expect_output:
            found = re.search(c.expect_output, result.stdout, re.M)
            if not found:
                raise StepFailed(
                    f"the output on {where} does not match expect_output /{c.expect_output}/ "
                    f"(exit {code}){said}",
                    output=output,
                )
            data["match"] = found.groupdict()
        line = short(_last_line(result.stdout), 200)
        shown = f": {line}" if line else ""
        return StepResult(f"exit {code} on {where} in {took(seconds)}{shown}", output, data)


def _joined(stdout: str, stderr: str) -> str:
    if not stderr:
        return stdout
    if stdout and not stdout.endswith("\n"):
        stdout += "\n"
    return stdout + stderr


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _execute(
    pool: SshPool, config: SshStepConfig, command: str, deadline: float
) -> tuple[CommandResult, float]:
    """Log in (or reuse the pooled login) and run ``command`` under ``timeout`` (a worker thread).

    Returns the result and the seconds the host's ``timeout`` was given. Every
    failure is a ``StepFailed`` in the words of ``core.net.ssh``.
    """
    import paramiko

    from core.net.ssh import Endpoint, SshError, remaining

    endpoint = Endpoint.from_options(config)
    if remaining(deadline) <= 0:
        raise StepFailed(
            f"SSH: the step waited for a free SSH worker thread until its timeout (every "
            f"worker is busy with slow hosts); {endpoint.address} was not contacted"
        )
    try:
        return _run_once_more_if_stale(pool, endpoint, command, deadline)
    except SshError as exc:
        raise StepFailed(exc.detail, retry=exc.error_class is not ErrorClass.AUTH) from None
    except paramiko.SSHException as exc:  # anything paramiko raises that we did not place
        raise StepFailed(f"SSH: {endpoint.address}: {exc}") from None


def _run_once_more_if_stale(
    pool: SshPool, endpoint: Endpoint, command: str, deadline: float
) -> tuple[CommandResult, float]:
    # As the server probe does: a pooled connection can die between uses (sshd
    # restarted, NAT timeout) unnoticed; one fresh login tells a dead connection
    # from a dead host. Only when the command was not sent: never run it twice.
    from core.net.ssh import SshError

    connection, reused = pool.connection(endpoint, deadline)
    try:
        return _run_on(connection, endpoint, command, deadline)
    except SshError as exc:
        if exc.broken:
            pool.drop(endpoint, connection)
        if not (reused and exc.error_class is ErrorClass.UNREACHABLE and not exc.started):
            raise
    connection, _ = pool.connection(endpoint, deadline)
    try:
        return _run_on(connection, endpoint, command, deadline)
    except SshError as exc:
        if exc.broken:
            pool.drop(endpoint, connection)
        raise


def _run_on(
    connection: Connection, endpoint: Endpoint, command: str, deadline: float
) -> tuple[CommandResult, float]:
    from core.net.ssh import SshError, remaining

    # The host's limit is set now, after the login took its share of the time.
    limit = remote_limit(remaining(deadline))
    if limit < MIN_COMMAND_TIME:
        raise SshError(
            f"SSH: no time left to run the command on {endpoint.address} after the login",
            ErrorClass.TIMEOUT,
            broken=False,
            started=False,
        )
    try:
        result = connection.run(remote_command(command, limit), deadline, endpoint.address)
    except SshError as exc:
        if exc.error_class is ErrorClass.TIMEOUT and exc.broken:
            # The deadline came before the exit status (a command that ignores TERM):
            # the channel is closed now, and the host's timeout sends KILL shortly.
            raise SshError(
                f"{exc.detail}; the host's timeout stops it (KILL at most {KILL_AFTER:g}s "
                "after TERM)",
                exc.error_class,
                broken=True,
            ) from None
        raise
    return result, limit
