"""The ``failover:`` section: trunk failover groups behind one SIP proxy.

```yaml
failover:
  - id: carriers-sz
    proxy: {kind: kamailio, ctl: unix:/run/kamailio/kamailio_ctl, set: 1}
    members:
      - {target: trunk-ct, destination: "sip:198.51.100.7:5060"}
      - {target: trunk-cu, destination: "sip:203.0.113.9:5060"}
    failback_after: 5m
    failback: auto
    min_active: 1
```
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, field_validator, model_validator

from core.config import Bool, Duration, StrictModel, TargetId, Timeout
from monitor.config.errors import KeyPath


class KamailioProxyConfig(StrictModel):
    """A Kamailio with the dispatcher module: over its ctl socket or its JSON-RPC."""

    kind: Literal["kamailio"]
    ctl: str | None = None
    """The ctl socket, as ``kamcmd -s`` takes it (``unix:/run/kamailio/kamailio_ctl``)."""
    rpc: str | None = None
    """JSON-RPC URL (``http://127.0.0.1:5080/RPC``); Kamailio's JSON-RPC has no
    authentication: bind it to loopback or put basic auth in front (``username``)."""
    set: PositiveInt = 1
    """The dispatcher set (group) the members' destinations are in."""
    username: str | None = None
    """Basic auth for a proxy in front of JSON-RPC."""
    password: str | None = None
    """Its password; write it as ``${file:/path}``. Never logged."""
    verify_tls: Bool = True
    ca_file: str | None = None
    timeout: Timeout = 5.0
    """Longest one command to the proxy may take."""

    @model_validator(mode="after")
    def _one_way_in(self) -> KamailioProxyConfig:
        if (self.ctl is None) == (self.rpc is None):
            raise ValueError("give exactly one of ctl (the ctl socket) or rpc (a JSON-RPC URL)")
        if self.rpc is not None and not self.rpc.startswith(("http://", "https://")):
            raise ValueError(
                "rpc must be an http:// or https:// URL, e.g. http://127.0.0.1:5080/RPC"
            )
        if self.password is not None and self.username is None:
            raise ValueError("password without username")
        return self


class MemberConfig(StrictModel):
    target: TargetId
    """The target whose health decides (a ``sip`` probe of the trunk)."""
    destination: Annotated[str, Field(pattern=r"^sips?:\S+$")]
    """The trunk's destination exactly as it is in the proxy's dispatcher list."""


class GroupRunConfig(StrictModel):
    """A runbook the group starts by itself (pause or resume the campaigns)."""

    runbook: TargetId
    """The id of an entry in ``runbooks:``."""
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"runbook": value} if isinstance(value, str) else value


class FailoverGroupConfig(StrictModel):
    """Trunks behind one SIP proxy that replace each other."""

    id: TargetId
    name: str | None = None
    proxy: KamailioProxyConfig
    members: Annotated[list[MemberConfig], Field(min_length=2)]
    """At least two: a group of one has nowhere to move calls to."""
    failback_after: Duration = 300.0
    """A member taken out takes traffic again after being up this long."""
    failback: Literal["auto", "approve"] = "auto"
    """``approve``: it waits for a person with the operator role to approve in the console."""
    min_active: PositiveInt = 1
    """Never leave fewer than this many members active in the proxy."""
    verify_every: Duration = 120.0
    """Read the proxy's view back this often; a mismatch (a restart that forgot the
    state) is set right again and audited."""
    when_all_down: GroupRunConfig | None = None
    """A runbook started when every member is down (pause the campaigns: there is no
    carrier to call through); write it so that running it twice does no harm."""
    when_back: GroupRunConfig | None = None
    """A runbook started when a member is up again after every one was down (resume the
    campaigns)."""

    @field_validator("members")
    @classmethod
    def _distinct(cls, members: list[MemberConfig]) -> list[MemberConfig]:
        for key in ("target", "destination"):
            seen: set[str] = set()
            for member in members:
                value = getattr(member, key)
                if value in seen:
                    raise ValueError(f"{key} {value!r} is in the group twice")
                seen.add(value)
        return members

    @model_validator(mode="after")
    def _min_active(self) -> FailoverGroupConfig:
        if self.min_active >= len(self.members):
            raise ValueError(
                f"min_active ({self.min_active}) must be less than the number of members "
                f"({len(self.members)}), or no member could ever be taken out"
            )
        return self


def failover_problems(config: Any) -> Iterable[tuple[KeyPath, str]]:
    """Members must be targets of the config, and a target in one group only."""
    targets = sorted(t.id for t in getattr(config, "targets", []))
    known = set(targets)
    owner: dict[str, str] = {}
    for g, group in enumerate(getattr(config, "failover", [])):
        for m, member in enumerate(group.members):
            key: KeyPath = ("failover", g, "members", m, "target")
            if member.target not in known:
                close = difflib.get_close_matches(member.target, targets, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                yield key, f"no target '{member.target}'{hint}"
            elif member.target in owner and owner[member.target] != group.id:
                yield key, f"target '{member.target}' is already in group '{owner[member.target]}'"
            else:
                owner[member.target] = group.id
        runbooks = sorted(r.id for r in getattr(config, "runbooks", []))
        for key_name in ("when_all_down", "when_back"):
            run = getattr(group, key_name)
            if run is None:
                continue
            if run.runbook not in runbooks:
                close = difflib.get_close_matches(run.runbook, runbooks, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                yield ("failover", g, key_name, "runbook"), f"no runbook '{run.runbook}'{hint}"
                continue
            [runbook] = [r for r in getattr(config, "runbooks", []) if r.id == run.runbook]
            for name in run.params:
                if name not in runbook.parameters:
                    shown = ", ".join(runbook.parameters) or "none"
                    yield (
                        ("failover", g, key_name, "params", name),
                        f"runbook '{run.runbook}' has no parameter '{name}' (parameters: {shown})",
                    )
            for name, spec in runbook.parameters.items():
                if spec.required and name not in run.params:
                    yield (
                        ("failover", g, key_name),
                        f"runbook '{run.runbook}' needs parameter '{name}'",
                    )
