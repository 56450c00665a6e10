"""The ``notify`` step: tell people something, through paging's channels and outbox.

```yaml
- kind: notify
  to: [person:chen, schedule:noc]
  subject: "Failover: {{ target.id }} is out of the proxy"
  text: "Calls go over the backup carrier. Run {{ run.id }}."
```

Sent through the one place that sends notifications (``notify``, wired by
the appliance): its fallback channels, retries and the exactly-once outbox.
Where paging is not running (a tool, a test), the step records what it
would have sent and succeeds, saying so.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from pydantic import Field, StringConstraints

from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult

Recipient = Annotated[str, StringConstraints(pattern=r"^(person|schedule):[a-z0-9][a-z0-9-]*$")]


class NotifyStepConfig(StepConfig):
    """Tell people, through paging's channels."""

    kind: Literal["notify"]
    to: list[Recipient] = Field(min_length=1)
    """``person:<id>`` or ``schedule:<id>`` (whoever is on call)."""
    subject: str
    text: str = ""

    TEMPLATED = ("subject", "text")


class NotifyStep:
    def __init__(self, config: NotifyStepConfig) -> None:
        self.config = config

    def plan(self) -> list[str]:
        c = self.config
        return [f"notify {', '.join(c.to)}: {c.subject}", *([c.text] if c.text else [])]

    async def run(self, ctx: StepContext) -> StepResult:
        c = self.config
        send = ctx.services.notify
        if send is None:
            ctx.log(f"to {', '.join(c.to)}: {c.subject}\n{c.text}")
            return StepResult(f"paging is not running here: recorded, not sent ({', '.join(c.to)})")
        try:
            queued = await asyncio.to_thread(send, c.to, c.subject, c.text)
        except ValueError as exc:
            raise StepFailed(str(exc), retry=False) from exc
        return StepResult(f"queued for {', '.join(queued) or 'nobody'}", data={"queued": queued})
