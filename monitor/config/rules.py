"""The ``rules:`` section: when a rule fires, and the actions other packages register for it.

A rule is ``when:`` (which events, about which targets, in which health, for
how long) plus one key per action: ``run:`` (runbooks), ``escalate:``
(notifications)... Monitor performs no action itself, so it knows none by
name: the package that performs an action kind describes it with an
``ActionKind`` and the composition root passes the installed ones to
``rule_model``, which adds one optional key per kind. A rule that uses a kind
no installed package provides is an error naming the key and the kinds that
are installed. What fires is decided by ``monitor.rules`` (pure).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, model_validator

from core.config import Bool, Duration, FieldValueError, StrictModel, TagKey, TargetId
from monitor.health import Health
from monitor.incidents import Severity

# The kinds ``monitor.events.EventKind`` writes, which lands beside this
# section (issue 9); once both are in, this list is built from that enum.
EventKind = Literal[
    "transition",
    "opened",
    "joined",
    "recovered",
    "resolved",
    "merged",
    "acknowledged",
    "noted",
    "updated",
    "customer_update",
    "declared",
    "resolved_by_hand",
    "silenced",
    "maintenance",
    "run",
]
"""The kinds of event a rule can select: a target's change of health (``transition``),
what happens to an incident, silences and maintenance started by hand."""

EVENT_KINDS: tuple[str, ...] = EventKind.__args__  # type: ignore[attr-defined]

TARGET_EVENTS: frozenset[str] = frozenset({"transition", "maintenance", "run"})
"""Event kinds that carry no severity (about a target alone, or a runbook run); the others
may concern an incident and carry its severity."""

# From the enum and the incidents' own type, so a new health or severity is
# selectable without a second list to keep in step.
HealthName = Literal[tuple(h.value for h in Health)]  # type: ignore[valid-type]


@dataclass(frozen=True)
class ActionKind:
    """A registry entry: an action kind's key in a rule, its config model, one line on what it does.

    The same shape as ``probes.ProbeKind`` without the implementation: the
    package that registers the kind performs it (a subscriber to events that
    asks ``monitor.rules`` which rules fire), so monitor never calls it.
    """

    kind: str
    model: type[BaseModel]
    summary: str


def _one_or_more(value: Any) -> Any:
    """``health: down`` means ``health: [down]``."""
    return [value] if isinstance(value, str) else value


OneOrMore = BeforeValidator(_one_or_more)


class WhenConfig(StrictModel):
    """Which events fire the rule. Every key given must match (AND); a key left out matches anything.

    An event is about one target (an incident event: the member it names, or
    the incident's root target); ``targets``, ``tags`` and ``components`` are
    matched against that target.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    event: Annotated[list[EventKind], OneOrMore, Field(min_length=1)] = ["transition"]
    """Event kinds (one or a list): ``transition`` (a change of health), an incident's
    ``opened``, ``joined``, ``recovered``, ``resolved``, ``merged``... (docs/rules.md)."""
    targets: list[TargetId] = Field(default_factory=list)
    """Target ids; the event's target must be one of them."""
    tags: dict[TagKey, str] = Field(default_factory=dict)
    """The event's target must have all of these tags (``{carrier: telecom}``)."""
    components: list[TargetId] = Field(default_factory=list)
    """Component ids; the event's target must belong to one of them."""
    health: Annotated[list[HealthName], OneOrMore] = Field(default_factory=list)
    """Health values (one or a list); the target's health after the event must be one of them."""
    severity: Annotated[list[Severity], OneOrMore] = Field(default_factory=list)
    """Incident severities (one or a list): ``down``, ``degraded``; only incident events have one."""
    for_: Duration | None = Field(None, alias="for")
    """The target has been in its current health at least this long (counted from its last
    change of health); until then the rule waits, and does not fire if the health changes."""

    @model_validator(mode="after")
    def _severity_needs_incident_events(self) -> WhenConfig:
        if self.severity and TARGET_EVENTS.issuperset(self.event):
            raise FieldValueError(
                "severity",
                "only incident events have a severity; add event: with one or more of "
                + ", ".join(k for k in EVENT_KINDS if k not in TARGET_EVENTS),
            )
        return self


class RuleConfig(StrictModel):
    """One rule: ``when:`` it fires, and what it does (one key per action kind).

    The action keys are those of the installed packages (see below); a rule
    needs at least one.
    """

    id: TargetId
    """Unique name of the rule (same form as a target id), used in logs, runs and deliveries."""
    description: str = ""
    """What the rule is for, in a sentence; shown with what it started."""
    enabled: Bool = True
    """``false`` keeps the rule in the config but it never fires."""
    when: WhenConfig
    """Which events fire the rule."""

    actions: ClassVar[Mapping[str, ActionKind]] = {}
    """The action kinds this model accepts (set by ``rule_model``)."""

    @classmethod
    def unknown_key_message(cls, key: str) -> str:
        """What to say about a key that is neither a rule key nor an installed action kind."""
        keys = sorted(
            field.alias or name
            for name, field in cls.model_fields.items()
            if name not in cls.actions
        )
        kinds = ", ".join(cls.actions) or "none"
        close = difflib.get_close_matches(key, [*keys, *cls.actions], n=1)
        if close:
            head = f"unknown key; did you mean '{close[0]}'?"
        else:
            head = (
                f"unknown key; no package providing the '{key}' action is installed in this build"
            )
        return f"{head} (action kinds installed: {kinds}; rule keys: {', '.join(keys)})"

    def action_configs(self) -> dict[str, BaseModel]:
        """Action kind → its config, for the actions this rule has."""
        return {kind: value for kind in self.actions if (value := getattr(self, kind)) is not None}

    @model_validator(mode="after")
    def _has_an_action(self) -> RuleConfig:
        if not self.action_configs():
            if self.actions:
                raise ValueError("a rule needs an action: one of " + ", ".join(self.actions))
            raise ValueError(
                "a rule needs an action, and no package providing actions is installed in this build"
            )
        return self


def rule_model(
    actions: Mapping[str, ActionKind], *, name: str = "RuleConfig", module: str | None = None
) -> type[RuleConfig]:
    """``RuleConfig`` with one optional key per action kind in ``actions``.

    With no actions this is ``RuleConfig`` itself. Otherwise a new model: bind
    it at module level in ``module`` under ``name`` so that pickle (the
    isolated loader) finds it.
    """
    if not actions:
        return RuleConfig
    for kind, entry in actions.items():
        if kind != entry.kind:
            raise ValueError(f"action registry key '{kind}' names kind '{entry.kind}'")
        if kind in RuleConfig.model_fields or hasattr(RuleConfig, kind):
            raise ValueError(f"action kind '{kind}' is taken by a rule key or attribute")
    fields: dict[str, Any] = {
        kind: (entry.model | None, Field(None, description=entry.summary))
        for kind, entry in actions.items()
    }
    model = create_model(name, __base__=RuleConfig, __module__=module or __name__, **fields)
    model.actions = dict(actions)
    return model
