"""The ``escalate:`` rule action: page an incident's people by an escalation policy.

```yaml
rules:
  - {id: trunk-down, when: {event: opened, tags: {role: trunk}, for: 30s}, escalate: trunks}
```

``escalate: trunks`` is short for ``escalate: {policy: trunks}``. Registered in
``dialwatch.schema.RULE_ACTIONS``; performed by ``notify.paging``.
"""

from __future__ import annotations

from typing import Any

from pydantic import model_validator

from core.config import StrictModel, TargetId
from monitor.config.rules import ActionKind


class EscalateConfig(StrictModel):
    """Page the incident by this escalation policy until someone acknowledges it."""

    policy: TargetId
    """The id of an entry in ``escalations:``."""

    @model_validator(mode="before")
    @classmethod
    def _short_form(cls, value: Any) -> Any:
        return {"policy": value} if isinstance(value, str) else value


ESCALATE = ActionKind(
    "escalate",
    EscalateConfig,
    "page people by an escalation policy until someone acknowledges (docs/oncall.md)",
)
