"""The bodies of the incident workflow's changes: one strict model per change.

The API parses them from JSON (``web.bodies.parse_body``), the console pages
from their forms (``from_form``), so a note, an ETA or a declaration is
checked by the same rules wherever it comes from; ``web.openapi`` publishes
their JSON schemas.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Field, StringConstraints, ValidationError, WithJsonSchema, model_validator
from pydantic.functional_validators import BeforeValidator

from core.config import Language, TargetId, parse_duration
from monitor import incident_actions
from web.bodies import PLAIN, VISIBLE, Body, BodyError, Id, describe
from web.eta import HINT as WHEN_HINT
from web.eta import PATTERN as WHEN_PATTERN

B = TypeVar("B", bound=Body)

Note = Annotated[str, StringConstraints(max_length=incident_actions.MAX_TEXT), *VISIBLE]
Reason = Annotated[str, StringConstraints(max_length=incident_actions.MAX_TEXT), *PLAIN]
Title = Annotated[str, StringConstraints(max_length=incident_actions.MAX_TITLE), *VISIBLE]
CustomerText = Annotated[
    str, StringConstraints(max_length=incident_actions.MAX_CUSTOMER_TEXT), *VISIBLE
]
PerLanguage = Annotated[dict[Language, CustomerText], Field(min_length=1)]
Severity = Literal["down", "degraded"]
When = Annotated[
    str,
    StringConstraints(max_length=64),
    Field(description=f"When: {WHEN_HINT}.", json_schema_extra={"pattern": WHEN_PATTERN}),
]


def _duration(value: Any) -> float:
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return parse_duration(value)
    raise ValueError("must be a duration like 30m, 2h or 1d, or a number of seconds")


Duration = Annotated[
    float,
    BeforeValidator(_duration),
    WithJsonSchema(
        {
            "description": "How long: 30m, 2h, 1d (ms, s, m, h, d), or a number of seconds; "
            "at most 30 days.",
            "anyOf": [
                {"type": "string", "pattern": "^[0-9]{1,6}(\\.[0-9]{1,3})?(ms|s|m|h|d)$"},
                {"type": "number", "exclusiveMinimum": 0, "maximum": incident_actions.MAX_SILENCE},
            ],
        }
    ),
]
MAX_IDS = 1000
"""Targets or components one declaration may name."""


class EmptyBody(Body):
    """No fields: the call needs none (send no body, or ``{}``)."""


class NoteBody(Body):
    """An internal note on the incident's timeline; customers never see it."""

    text: Note


class CustomerUpdateBody(Body):
    """A message for the status page under this incident, per language."""

    text: PerLanguage = Field(
        description='Per language: {"zh-CN": "...", "en": "..."}.',
        examples=[
            {"zh-CN": "运营商线路故障，正在切换备用线路。", "en": "Carrier outage; failing over."}
        ],
    )


class ResolveBody(Body):
    """Resolve by hand, saying why (the note goes on the timeline)."""

    note: Note


class IncidentPatch(Body):
    """What changed; only the fields given change, ``null`` clears cause, ETA or summary."""

    cause: Reason | None = None
    eta: When | None = None
    summary: PerLanguage | None = None
    severity: Severity | None = None

    @model_validator(mode="after")
    def _severity_stays(self) -> IncidentPatch:
        if "severity" in self.model_fields_set and self.severity is None:
            raise ValueError("severity: cannot be cleared; give down or degraded")
        return self


class DeclareBody(Body):
    """Open an incident by hand for targets and/or every target of components."""

    title: Title
    severity: Severity = "down"
    targets: Annotated[list[TargetId], Field(max_length=MAX_IDS)] = []
    components: Annotated[list[TargetId], Field(max_length=MAX_IDS)] = []

    @model_validator(mode="after")
    def _something(self) -> DeclareBody:
        if not self.targets and not self.components:
            raise ValueError("give targets or components (or both)")
        return self


class SilenceBody(Body):
    """Hold back notifications about one target, component or open incident for a while."""

    target_id: TargetId | None = None
    component_id: TargetId | None = None
    incident_id: Id | None = None
    duration: Duration
    reason: Reason = ""

    @model_validator(mode="after")
    def _one_subject(self) -> SilenceBody:
        subjects = (self.target_id, self.component_id, self.incident_id)
        given = [s for s in subjects if s is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of target_id, component_id or incident_id")
        return self


class MaintenanceBody(Body):
    """Start maintenance now for a target or every target of a component."""

    target_id: TargetId | None = None
    component_id: TargetId | None = None
    until: When | None = Field(
        default=None, description=f"When it ends: {WHEN_HINT}; none: until someone ends it."
    )
    reason: Reason = ""

    @model_validator(mode="after")
    def _one_subject(self) -> MaintenanceBody:
        if (self.target_id is None) == (self.component_id is None):
            raise ValueError("give exactly one of target_id or component_id")
        return self


def from_form(model: type[B], data: Mapping[str, Any]) -> B:
    """``data`` (built by a page from its form) as ``model``, or ``BodyError`` naming the field."""
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise BodyError(describe(exc, model)) from None
