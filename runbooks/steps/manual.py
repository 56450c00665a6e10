"""The ``manual`` step: a checklist item a person does by hand and ticks, with a note.

```yaml
- kind: manual
  prompt: "Call the carrier NOC (400-000-0000) and give them ticket {{ incident.id }}"
  timeout: 30m
```

The run waits until someone with the role ticks it done in the console or
``POST /api/v1/runs/<id>/decide`` (``{"decision": "done", "note": "..."}``);
how long it took is in the step's record. No tick in ``timeout`` fails the
step (``on_failure`` decides).
"""

from __future__ import annotations

from typing import Literal

from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult, StepTimeout


class ManualStepConfig(StepConfig):
    """A task a person does by hand, then ticks."""

    kind: Literal["manual"]
    prompt: str
    role: Literal["operator", "admin"] = "operator"
    timeout: StepTimeout = 3600.0

    TEMPLATED = ("prompt",)
    WAITS_FOR_PERSON = True


class ManualStep:
    def __init__(self, config: ManualStepConfig) -> None:
        self.config = config

    def plan(self) -> list[str]:
        return [f"a person ({self.config.role}) does by hand and ticks: {self.config.prompt}"]

    async def run(self, ctx: StepContext) -> StepResult:
        assert ctx.wait_for_person is not None
        start = ctx.clock.time()
        said = await ctx.wait_for_person("manual", self.config.role, self.config.prompt)
        if said.decision != "done":
            raise StepFailed("nobody ticked it done in time", retry=False)
        took = int((said.at if said.at is not None else ctx.clock.time()) - start)
        return StepResult(
            f"done by {said.by} after {took} s" + (f": {said.note}" if said.note else ""),
            data={"by": said.by, "note": said.note, "seconds": took},
        )
