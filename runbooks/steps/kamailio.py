"""The ``kamailio`` step: the dispatcher of a Kamailio, over kamcmd (ctl) or JSON-RPC.

```yaml
- kind: kamailio
  proxy: {kind: kamailio, ctl: "unix:/run/kamailio/kamailio_ctl", set: 1}
  action: set_state          # or reload, list
  state: i                   # a, i, d; with p for probing (ip)
  destination: "sip:{{ params.trunk_ip }}:5060"
```

``set_state`` checks the answer by reading the list back: a destination that
is not in the set is a failure with Kamailio's own words. ``list`` puts the
destinations in the output and in ``steps.<id>.data.destinations``.
Kamailio's JSON-RPC has no authentication: bind it to loopback or put basic
auth in front (``proxy.username`` / ``password``).
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import model_validator

from runbooks.failover.config import KamailioProxyConfig
from runbooks.kamailio import STATES, Destination, Dispatcher, KamailioError, dispatcher_of
from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult


class KamailioStepConfig(StepConfig):
    """Change or read a Kamailio dispatcher."""

    kind: Literal["kamailio"]
    proxy: KamailioProxyConfig
    action: Literal["set_state", "reload", "list"]
    state: str | None = None
    """For ``set_state``: ``a`` active, ``i`` inactive, ``d`` disabled; add ``p`` for
    Kamailio's own probing (``ip``)."""
    destination: str | None = None
    """For ``set_state``: the SIP URI as it is in the dispatcher list."""
    set: int | None = None
    """The dispatcher set; default ``proxy.set``."""

    TEMPLATED = ("destination", "state")

    @model_validator(mode="after")
    def _set_state_needs(self) -> KamailioStepConfig:
        if self.action == "set_state":
            if not self.state or not self.destination:
                raise ValueError("set_state needs state (a, i, d, ip...) and destination")
            if "{" not in self.state and self.state not in STATES:
                raise ValueError(f"state must be one of {', '.join(sorted(STATES))}")
        return self


def _listing(found: list[Destination]) -> str:
    return "\n".join(f"set {d.set_id} {d.uri} {d.flags}" for d in found)


class KamailioStep:
    def __init__(self, config: KamailioStepConfig, dispatcher: Dispatcher | None = None) -> None:
        self.config = config
        self.dispatcher = dispatcher or dispatcher_of(config.proxy)

    def plan(self) -> list[str]:
        c = self.config
        via = f"ctl {c.proxy.ctl}" if c.proxy.ctl else f"JSON-RPC {c.proxy.rpc}"
        if c.action == "set_state":
            return [
                f"kamailio ({via}): dispatcher.set_state {c.state} {self._set()} {c.destination}"
            ]
        return [f"kamailio ({via}): dispatcher.{c.action}"]

    def _set(self) -> int:
        return self.config.set or self.config.proxy.set

    async def run(self, ctx: StepContext) -> StepResult:
        c = self.config
        try:
            if c.action == "list":
                found = await asyncio.to_thread(self.dispatcher.list)
                return StepResult(
                    f"{len(found)} destinations",
                    _listing(found),
                    {
                        "destinations": [
                            {"set": d.set_id, "uri": d.uri, "flags": d.flags, "active": d.active}
                            for d in found
                        ]
                    },  # fmt: skip
                )
            if c.action == "reload":
                said = await asyncio.to_thread(self.dispatcher.reload)
                return StepResult(f"dispatcher reloaded ({said})")
            assert c.state is not None and c.destination is not None
            if c.state not in STATES:
                raise StepFailed(f"state {c.state!r} is not one of {', '.join(sorted(STATES))}",
                                 retry=False)  # fmt: skip
            said = await asyncio.to_thread(
                self.dispatcher.set_state, c.state, self._set(), c.destination
            )
            found = await asyncio.to_thread(self.dispatcher.list)
        except KamailioError as exc:
            raise StepFailed(exc.reason, retry=not exc.refused) from exc
        mine = [d for d in found if d.set_id == self._set() and d.uri == c.destination]
        if not mine:
            raise StepFailed(
                f"{c.destination} is not in dispatcher set {self._set()} after set_state",
                output=_listing(found),
                retry=False,
            )
        return StepResult(
            f"{c.destination} is {mine[0].flags} in set {self._set()} ({said})", _listing(found)
        )
