"""Base configuration models every package's config builds on.

Strict, frozen pydantic models (an unknown key is an error), durations written
as ``10s``, ids and tag keys, the fields every target has (``TargetBase``) and
the site section. Each package defines its own sections from these; the
composition root assembles them into the top-level Config.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    StringConstraints,
    model_validator,
)

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}

DURATION_HINT = "must be a duration like 10s"


def parse_duration(value: Any) -> float:
    """Parse ``500ms``, ``10s``, ``5m``, ``2h``, ``30d`` (or a bare number of seconds) into seconds."""
    if isinstance(value, bool):
        raise ValueError(DURATION_HINT)
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (m := _DURATION_RE.match(value)):
        seconds = float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    else:
        raise ValueError(DURATION_HINT)
    if seconds <= 0:
        raise ValueError("must be a positive duration like 10s")
    return seconds


def format_duration(seconds: float) -> str:
    """Inverse of parse_duration for display: 10.0 -> '10s', 0.5 -> '500ms'."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Seconds as a float; written in YAML as ``10s``, ``500ms``, ``5m``."""

TargetId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")]
"""Lower-case letters, digits and dashes: ``trunk-a``, ``edge-router``."""

TagKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]


class FieldValueError(ValueError):
    """A model-level check that belongs to one field.

    Raise it from a ``model_validator`` when the problem is best reported at a
    key of the model (``timeout`` rather than the whole target): the loader
    appends ``field`` to the error's location, so the message reads
    ``targets[1].timeout: ...`` with that key's line.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


SECRET_KEY_RE = re.compile(
    r"(^|_)(token|password|passwd|secret|community|auth_key|priv_key|privkey|api_key|apikey|"
    r"credentials?|passphrase)($|_)",
    re.IGNORECASE,
)
"""Key names whose values are secrets wherever they appear: hidden in repr and in
``LoadedConfig.redacted()``, even when written literally in the YAML."""


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def __repr_args__(self) -> Any:
        # repr() and str() of a config end up in logs and tracebacks: never show
        # a value under a secret-looking key. Values substituted from ${ENV} or
        # ${file:} are masked by their own repr (see monitor.config.secrets).
        for name, value in super().__repr_args__():
            if name is not None and value is not None and SECRET_KEY_RE.search(name):
                yield name, "***"
            else:
                yield name, value


class MaintenanceWindow(StrictModel):
    """A planned period during which a target's failures do not count.

    One-off: ``start`` and ``end`` (ISO 8601 datetimes, site timezone when naive).
    Recurring: ``cron`` (5-field crontab, site timezone) and ``duration``.
    """

    start: str | None = None
    """One-off window: when it begins (``2026-12-01T02:00``)."""
    end: str | None = None
    """One-off window: when it ends."""
    cron: str | None = None
    """Recurring window: when each one begins, as a 5-field crontab (``0 2 * * 0`` = Sundays 02:00)."""
    duration: Duration | None = None
    """Recurring window: how long each one lasts."""
    reason: str = ""
    """Shown on the dashboard and in the timeline while the window is open."""

    @model_validator(mode="after")
    def _one_kind(self) -> MaintenanceWindow:
        one_off = self.start is not None or self.end is not None
        recurring = self.cron is not None or self.duration is not None
        if one_off == recurring:
            raise ValueError("give either start and end (one-off) or cron and duration (recurring)")
        if one_off and (self.start is None or self.end is None):
            raise ValueError("a one-off window needs both start and end")
        if recurring and (self.cron is None or self.duration is None):
            raise ValueError("a recurring window needs both cron and duration")
        return self


class TargetBase(StrictModel):
    """Fields every target has, whatever its kind.

    A probe kind subclasses this with ``kind: Literal["<kind>"]`` and its own
    fields, and may override the defaults (e.g. a longer ``interval``).
    """

    id: TargetId
    """Unique name of the target, used in ``depends_on``, components, metrics and URLs."""
    kind: str
    """Which probe checks it: one of the kinds below."""
    name: str | None = None
    """Human name shown on the dashboard; defaults to the id."""
    interval: Duration = 30.0
    """How often the target is probed."""
    timeout: Duration = 5.0
    """How long one probe may take; not longer than ``interval``."""
    fail_after: PositiveInt = 2
    """Consecutive ``fail`` observations before the target is ``down``."""
    recover_after: PositiveInt = 2
    """Consecutive ``ok`` observations before a down target is ``up`` again."""
    depends_on: list[TargetId] = Field(default_factory=list)
    """Targets this one needs; while a parent is down, this one is ``affected_by`` it."""
    tags: dict[TagKey, str] = Field(default_factory=dict)
    """Labels copied onto every metric point and usable in selectors (carrier, role, customer)."""
    incident_on: Literal["down", "degraded"] = "down"
    """Which health opens an incident: only ``down`` (default) or also ``degraded``."""
    maintenance: list[MaintenanceWindow] = Field(default_factory=list)
    """Planned windows during which failures do not count (health ``maintenance``)."""
    enabled: bool = True
    """``false`` keeps the target in the config but stops probing it."""

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> TargetBase:
        if self.timeout > self.interval:
            raise FieldValueError(
                "timeout",
                f"timeout ({format_duration(self.timeout)}) must not be longer than "
                f"interval ({format_duration(self.interval)})",
            )
        return self

    @property
    def display_name(self) -> str:
        return self.name or self.id


class SiteConfig(StrictModel):
    """The call center this appliance watches."""

    name: str = "Dialwatch"
    """The center's name, shown on the dashboard and the public status page."""
    timezone: str = "UTC"
    """IANA name (``Asia/Shanghai``); times on the dashboard and status page use it."""
    language: Literal["zh-CN", "en"] = "zh-CN"
    """Default UI language when the browser asks for neither."""
