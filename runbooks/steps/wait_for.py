"""The ``wait_for`` step: wait until a target is in a health (or leaves one), with a timeout.

```yaml
- kind: wait_for
  target: trunk-cu            # default: the run's target
  health: [up]                # any of up, degraded, down, unknown, maintenance
  timeout: 2m
```

It looks at the engine's health every second; it succeeds as soon as the
target is in one of ``health`` (or, with ``not: true``, in none of them)
and fails at ``timeout`` saying the health it was last in.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from core.config import Bool, Duration, TargetId
from monitor.health import Health
from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult

HealthName = Literal[tuple(h.value for h in Health)]  # type: ignore[valid-type]


class WaitForStepConfig(StepConfig):
    """Wait for a target's health."""

    kind: Literal["wait_for"]
    target: TargetId | None = None
    """Default: the run's target."""
    health: list[HealthName] = Field(min_length=1)  # type: ignore[valid-type]
    not_: Bool = Field(False, alias="not")
    """Wait until the target is in none of ``health``."""
    every: Annotated[Duration, Field(gt=0, le=60)] = 1.0
    """Time between looks (``1s``, ``5s``)."""


class WaitForStep:
    def __init__(self, config: WaitForStepConfig) -> None:
        self.config = config

    def _wanted(self) -> str:
        names = " or ".join(self.config.health)
        return f"not {names}" if self.config.not_ else names

    def plan(self) -> list[str]:
        who = self.config.target or "the run's target"
        return [f"wait until {who} is {self._wanted()} (at most {int(self.config.timeout)} s)"]

    async def run(self, ctx: StepContext) -> StepResult:
        target = self.config.target or ctx.target_id
        if target is None:
            raise StepFailed("wait_for needs a target: this run has none", retry=False)
        last = "unknown"
        while True:
            state = ctx.services.health_of(target)
            if state is None:
                raise StepFailed(f"no target {target!r} in the engine", retry=False)
            last = state.health.value
            if (last in self.config.health) != self.config.not_:
                return StepResult(f"{target} is {last}", data={"health": last})
            if ctx.remaining() <= 0:
                break
            await ctx.clock.sleep(min(self.config.every, ctx.remaining()))
        raise StepFailed(f"{target} is still {last}, not {self._wanted()}")
