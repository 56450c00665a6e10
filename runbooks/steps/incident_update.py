"""The ``incident_update`` step: set the run's incident's cause and ETA, add a note, or
publish a customer update — through the same monitor functions as the console.

```yaml
- kind: incident_update
  cause: "carrier {{ target.name }} is down; calls are routed over a backup carrier"
  eta: 30m                   # from now
  note: "failover done by run {{ run.id }}"
  customer_update:
    zh-CN: "线路故障，已切换备用线路，预计30分钟内恢复。"
    en: "A carrier failed; calls are routed over a backup carrier. Expected back within 30 minutes."
```

Each key given is one change (``update``, ``add_note``,
``publish_customer_update``), made as ``runbook:<id>``. A run with no
incident fails this step, saying so.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field, model_validator

from core.config import Duration
from monitor.incident_actions import add_note, publish_customer_update, update
from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult


class IncidentUpdateStepConfig(StepConfig):
    """Cause, ETA, a note, a customer update on the run's incident."""

    kind: Literal["incident_update"]
    cause: str | None = None
    eta: Duration | None = Field(None, gt=0)
    """From now."""
    note: str | None = None
    customer_update: dict[Literal["zh-CN", "en"], str] | None = None

    TEMPLATED = ("cause", "note", "customer_update")

    @model_validator(mode="after")
    def _something(self) -> IncidentUpdateStepConfig:
        if not any((self.cause, self.eta, self.note, self.customer_update)):
            raise ValueError("give at least one of cause, eta, note, customer_update")
        return self


class IncidentUpdateStep:
    def __init__(self, config: IncidentUpdateStepConfig) -> None:
        self.config = config

    def plan(self) -> list[str]:
        c = self.config
        lines = []
        if c.cause:
            lines.append(f"cause: {c.cause}")
        if c.eta:
            lines.append(f"ETA: in {int(c.eta)} s")
        if c.note:
            lines.append(f"note: {c.note}")
        for lang, text in (c.customer_update or {}).items():
            lines.append(f"customer update ({lang}): {text}")
        return lines

    async def run(self, ctx: StepContext) -> StepResult:
        return await asyncio.to_thread(self._run, ctx)

    def _run(self, ctx: StepContext) -> StepResult:
        c = self.config
        if ctx.incident_id is None:
            raise StepFailed("this run has no incident to update", retry=False)
        repo, actor, now = ctx.services.repo, f"runbook:{ctx.runbook_id}", ctx.clock.time()
        done = []
        try:
            fields = {}
            if c.cause:
                fields["cause"] = c.cause
            if c.eta:
                fields["eta"] = now + c.eta
            if fields:
                update(repo, actor, ctx.incident_id, at=now, **fields)  # type: ignore[arg-type]
                done.append(" and ".join(fields))
            if c.note:
                add_note(repo, actor, ctx.incident_id, c.note, at=now)
                done.append("note")
            if c.customer_update:
                publish_customer_update(
                    repo, actor, ctx.incident_id, dict(c.customer_update), at=now
                )
                done.append("customer update")
        except (ValueError, LookupError) as exc:
            raise StepFailed(str(exc), retry=False) from exc
        return StepResult(f"incident {ctx.incident_id}: {', '.join(done)} set")
