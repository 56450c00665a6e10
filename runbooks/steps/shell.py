"""The ``shell`` step: a local command on the appliance, from an allow-list only.

```yaml
runbook_settings:
  shell_allow: [/usr/local/bin/switch-carrier]
runbooks:
  - id: switch
    steps:
      - kind: shell
        command: "/usr/local/bin/switch-carrier --to backup --reason {{ incident.cause }}"
        expect_exit: [0]
```

No shell runs it: the command is split into words (as a shell would split
them) after every ``{{ value }}`` was shell-quoted, and executed directly,
so a value is always one word — ``; touch /tmp/pwned`` in an incident's
cause is an argument, never a second command. The first word must be one
of ``runbook_settings.shell_allow`` (checked when the config loads and
again before it runs). At the timeout the command and its children are
killed. Output is stdout and stderr, the end kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
from typing import Literal

from pydantic import Field

from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult, tail

MAX_KEEP = 256 * 1024
"""Bytes of output kept (the end); the run stores the last 64 KiB of them."""


async def _collect(stream: asyncio.StreamReader) -> bytes:
    kept = bytearray()
    while chunk := await stream.read(65536):
        kept += chunk
        if len(kept) > MAX_KEEP:
            del kept[: len(kept) - MAX_KEEP]
    return bytes(kept)


class ShellStepConfig(StepConfig):
    """Run an allowed local command."""

    kind: Literal["shell"]
    command: str
    """The command line; values in ``{{ }}`` are shell-quoted, then it is split into words."""
    expect_exit: list[int] = Field(default_factory=lambda: [0])
    cwd: str | None = None

    SHELL = ("command",)


class ShellStep:
    def __init__(self, config: ShellStepConfig) -> None:
        self.config = config

    def argv(self) -> list[str]:
        try:
            words = shlex.split(self.config.command)
        except ValueError as exc:
            raise StepFailed(f"the command does not split into words: {exc}", retry=False) from exc
        if not words:
            raise StepFailed("the command is empty", retry=False)
        return words

    def plan(self) -> list[str]:
        return [f"run on this appliance: {shlex.join(self.argv())}"]

    async def run(self, ctx: StepContext) -> StepResult:
        argv = self.argv()
        if argv[0] not in ctx.services.shell_allow:
            allowed = ", ".join(ctx.services.shell_allow) or "none"
            raise StepFailed(
                f"{argv[0]} is not in runbook_settings.shell_allow (allowed: {allowed})",
                retry=False,
            )
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                cwd=self.config.cwd,
                start_new_session=True,  # its own process group: killed whole at the timeout
            )
        except OSError as exc:
            raise StepFailed(
                f"{argv[0]} could not start: {exc.strerror or exc}", retry=False
            ) from exc
        assert proc.stdout is not None
        # Read to the end, keeping the last MAX_KEEP bytes: a command that writes much
        # must never block on a full pipe (nor its wait, which waits for the pipe too).
        reader = asyncio.create_task(_collect(proc.stdout))
        try:
            code = await proc.wait()
            out = await reader
        except asyncio.CancelledError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(asyncio.gather(reader, proc.wait())), 5)
            raise
        text = tail(out.decode(errors="replace"))
        if code not in self.config.expect_exit:
            raise StepFailed(
                f"{argv[0]} exited {code} (expected {self.config.expect_exit})", output=text
            )
        return StepResult(f"{argv[0]} exited {code}", text, {"exit": code})
