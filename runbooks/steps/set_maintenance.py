"""The ``set_maintenance`` step: start or end a target's maintenance window.

```yaml
- kind: set_maintenance
  target: pbx-1              # default: the run's target
  action: start              # or end
  for: 30m                   # start only; none: until ended
  reason: "restart during failover (run {{ run.id }})"
```

Through the same monitor function as the console (``start_maintenance`` /
``end_maintenance``), as the run's actor (``runbook:<id>``): the target's
health is ``maintenance`` meanwhile, so its alarms do not page.
"""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import Field
from sqlalchemy import select

from core.config import Duration, TargetId
from monitor.incident_actions import end_maintenance, start_maintenance
from monitor.store.models import ManualMaintenance
from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult

_WINDOW = ManualMaintenance.__table__


class SetMaintenanceStepConfig(StepConfig):
    """Start or end a maintenance window of a target."""

    kind: Literal["set_maintenance"]
    target: TargetId | None = None
    action: Literal["start", "end"] = "start"
    for_: Duration | None = Field(None, alias="for")
    reason: str = ""

    TEMPLATED = ("reason",)


class SetMaintenanceStep:
    def __init__(self, config: SetMaintenanceStepConfig) -> None:
        self.config = config

    def plan(self) -> list[str]:
        c = self.config
        who = c.target or "the run's target"
        if c.action == "end":
            return [f"end the maintenance window of {who}"]
        until = f" for {int(c.for_)} s" if c.for_ else " until ended"
        return [f"start maintenance of {who}{until}: {c.reason or '(no reason)'}"]

    async def run(self, ctx: StepContext) -> StepResult:
        return await asyncio.to_thread(self._run, ctx)

    def _run(self, ctx: StepContext) -> StepResult:
        c = self.config
        repo = ctx.services.repo
        target = c.target or ctx.target_id
        if target is None:
            raise StepFailed("set_maintenance needs a target: this run has none", retry=False)
        actor = f"runbook:{ctx.runbook_id}"
        now = ctx.clock.time()
        try:
            if c.action == "start":
                until = now + c.for_ if c.for_ else None
                reason = c.reason or f"run {ctx.run_id}"
                start_maintenance(repo, actor, target, until=until, reason=reason, at=now)
                return StepResult(
                    f"{target} is in maintenance" + (f" for {int(c.for_)} s" if c.for_ else "")
                )
            with repo.reading() as conn:
                window = conn.execute(
                    select(_WINDOW.c.id).where(
                        _WINDOW.c.target_id == target, _WINDOW.c.ended_at.is_(None)
                    )
                ).first()
            if window is None:
                return StepResult(f"{target} had no maintenance window open")
            end_maintenance(repo, actor, window.id, at=now)
        except (ValueError, LookupError) as exc:
            raise StepFailed(str(exc), retry=False) from exc
        return StepResult(f"maintenance of {target} ended")
