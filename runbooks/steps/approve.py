"""The ``approve`` step: the run waits until a person with the role approves or rejects.

```yaml
- kind: approve
  role: operator             # or admin
  prompt: "Trunk {{ target.id }} is out of the proxy. Pause the campaigns too?"
  timeout: 15m
  on_timeout: abort          # or continue
```

The answer comes from the console or ``POST /api/v1/runs/<id>/decide``; the
person who started the run cannot approve it (four eyes; a run a rule
started can be approved by any operator). A rejection fails the step (then
``on_failure`` decides, ``abort`` by default); no answer in ``timeout``
aborts or continues as ``on_timeout`` says.
"""

from __future__ import annotations

from typing import Literal

from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult, StepTimeout


class ApproveStepConfig(StepConfig):
    """Wait for a person's approval."""

    kind: Literal["approve"]
    role: Literal["operator", "admin"] = "operator"
    prompt: str = ""
    on_timeout: Literal["abort", "continue"] = "abort"
    timeout: StepTimeout = 900.0

    TEMPLATED = ("prompt",)
    WAITS_FOR_PERSON = True


class ApproveStep:
    def __init__(self, config: ApproveStepConfig) -> None:
        self.config = config

    def plan(self) -> list[str]:
        c = self.config
        return [
            f"wait for a person with the {c.role} role to approve (not the one who started "
            f"the run): {c.prompt or '(no prompt)'}",
            f"no answer in {int(c.timeout)} s: {c.on_timeout}",
        ]

    async def run(self, ctx: StepContext) -> StepResult:
        assert ctx.wait_for_person is not None
        c = self.config
        said = await ctx.wait_for_person("approve", c.role, c.prompt)
        if said.decision == "approved":
            return StepResult(f"approved by {said.by}" + (f": {said.note}" if said.note else ""))
        if said.decision == "rejected":
            raise StepFailed(
                f"rejected by {said.by}" + (f": {said.note}" if said.note else ""), retry=False
            )
        if c.on_timeout == "continue":
            return StepResult("no answer in time: went on, as on_timeout: continue says")
        raise StepFailed("no answer in time (on_timeout: abort)", retry=False)
