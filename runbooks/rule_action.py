"""The ``run:`` rule action: start a runbook for the target a rule fired on.

```yaml
rules:
  - {id: trunk-down, when: {event: opened, tags: {role: trunk}, for: 30s},
     run: {runbook: pause-campaigns, mode: approve, params: {campaign: all}}}
```

``run: pause-campaigns`` is short for ``run: {runbook: pause-campaigns}``.
``mode: auto`` queues the run at once; ``approve`` makes it wait for an
operator to approve the start in the console or API. Registered in
``dialwatch.schema.RULE_ACTIONS``; performed by ``runbooks.triggers``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from core.config import StrictModel, TargetId
from monitor.config.rules import ActionKind


class RunActionConfig(StrictModel):
    """Start this runbook for the rule's target (and its incident)."""

    runbook: TargetId
    """The id of an entry in ``runbooks:``."""
    mode: Literal["auto", "approve"] = "auto"
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"runbook": value} if isinstance(value, str) else value


RUN = ActionKind(
    "run",
    RunActionConfig,
    "start a runbook for the target, at once or after an operator approves (docs/runbooks.md)",
)
