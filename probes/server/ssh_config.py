"""The ``ssh:`` section of a ``server`` target read ``via: ssh``: where to log in, how, what to run.

Kept out of ``probes/server/config.py`` so that file only names the section;
everything SSH-specific (host-key policy, profiles, command parsing rules)
is declared and validated here.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config import StrictModel, Timeout
from core.net.ssh_login import SshLogin
from probes.thresholds import DirectedLimit

PROFILES = ("basic", "services")
"""Built-in sets of readings: ``basic`` (disk, memory, load, CPU, network) and ``services``."""

_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
_FIELD_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_SERVICE_RE = re.compile(r"^[A-Za-z0-9@._:\\-]{1,128}$")

MAX_COMMANDS = 16
MAX_FIELDS = 16


class FieldLimit(DirectedLimit):
    """Warn/fail levels of one field a command produces."""


class SshCommand(StrictModel):
    """One command run on the host each poll, and how its output becomes numbers."""

    name: str
    """Names the command in metrics (tag ``command``) and in the detail text."""
    run: str
    """The command line, run by the login user's shell on the host."""
    parse: Literal["exit", "number", "regex", "json"] = "exit"
    """``exit``: only the exit code counts; ``number``: the output is one number (field
    ``value``); ``regex``: ``pattern``'s named groups are numbers; ``json``: ``fields``
    maps field names to paths in the JSON output."""
    pattern: str | None = None
    """For ``parse: regex``: a Python regular expression with named groups
    (``(?P<queued>\\d+)``); each group becomes a field of that name."""
    fields: dict[str, str] = Field(default_factory=dict)
    """For ``parse: json``: field name -> dotted path into the output (``queues.0.waiting``)."""
    thresholds: dict[str, FieldLimit | None] = Field(default_factory=dict)
    """Field name -> ``{warn, fail, below}``. ``parse: exit`` defaults to
    ``{exit_code: {fail: 0}}`` (any non-zero exit fails); ``null`` turns it off."""
    ok_exit: list[int] = Field(default_factory=lambda: [0])
    """For ``number``/``regex``/``json``: exit codes that still mean the output is good."""
    timeout: Timeout | None = None
    """Longest this command may run; the poll's own ``timeout`` bounds it in any case."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be lower-case letters, digits, - and _ (e.g. queue-depth)")
        return value

    @field_validator("run")
    @classmethod
    def _run(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must be a command line")
        return value

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"is not a valid regular expression ({exc})") from None
        if not compiled.groupindex:
            raise ValueError("needs at least one named group, e.g. (?P<waiting>\\d+)")
        return value

    @model_validator(mode="after")
    def _parse_options(self) -> SshCommand:
        if self.parse == "regex" and self.pattern is None:
            raise ValueError("parse: regex needs a pattern with named groups")
        if self.parse != "regex" and self.pattern is not None:
            raise ValueError("pattern is only used with parse: regex")
        if self.parse == "json" and not self.fields:
            raise ValueError("parse: json needs fields (name: dotted.path)")
        if self.parse != "json" and self.fields:
            raise ValueError("fields is only used with parse: json")
        produced = set(self.field_names())
        if len(produced) > MAX_FIELDS:
            raise ValueError(f"at most {MAX_FIELDS} fields per command")
        for name in produced:
            if not _FIELD_RE.match(name):
                raise ValueError(f"field name {name!r} must be letters, digits and _")
        unknown = sorted(set(self.thresholds) - produced - {"exit_code"})
        if unknown:
            raise ValueError(
                f"thresholds name {', '.join(repr(n) for n in unknown)}, which this command "
                f"does not produce; it produces: {', '.join(sorted(produced | {'exit_code'}))}"
            )
        return self

    def field_names(self) -> list[str]:
        """The numeric fields this command's parser produces (besides ``exit_code``)."""
        if self.parse == "number":
            return ["value"]
        if self.parse == "regex" and self.pattern is not None:
            return list(re.compile(self.pattern).groupindex)
        if self.parse == "json":
            return list(self.fields)
        return []

    def limits(self) -> dict[str, FieldLimit]:
        """Thresholds in force: the configured ones plus the ``exit`` default."""
        given: dict[str, FieldLimit | None] = {}
        if self.parse == "exit":
            given["exit_code"] = FieldLimit(fail=0)
        given.update(self.thresholds)
        return {name: limit for name, limit in given.items() if limit is not None}


class SshOptions(SshLogin):
    """How to reach a host over SSH and what to read there."""

    profiles: list[Literal["basic", "services"]] = Field(default_factory=lambda: ["basic"])
    """Built-in readings: ``basic`` = disk, memory, load, CPU, network like ``via: local``;
    ``services`` = ``systemctl is-active`` for ``services``."""
    services: list[str] = Field(default_factory=list, max_length=32)
    """systemd units that must be active (``asterisk``, ``kamailio.service``)."""
    systemctl: str = "systemctl"
    """The systemctl command the ``services`` profile runs (a full path if PATH lacks it)."""
    commands: list[SshCommand] = Field(default_factory=list, max_length=MAX_COMMANDS)
    """Own commands whose exit code or output become metrics with thresholds."""

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each profile may appear once")
        return value

    @field_validator("services")
    @classmethod
    def _services(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _SERVICE_RE.match(name) or name.startswith("-"):
                raise ValueError(f"{name!r} is not a systemd unit name (give e.g. asterisk)")
        if len(set(value)) != len(value):
            raise ValueError("each service may appear once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SshOptions:
        if "services" in self.profiles and not self.services:
            raise ValueError("the services profile needs services: [names of systemd units]")
        if self.services and "services" not in self.profiles:
            raise ValueError("services are only checked with the services profile in profiles")
        names = [command.name for command in self.commands]
        if len(set(names)) != len(names):
            raise ValueError("each command name may appear once")
        if not self.profiles and not self.commands:
            raise ValueError("nothing to read: give profiles or commands")
        return self
