"""Base configuration models every package's config builds on.

Strict, frozen pydantic models (an unknown key is an error), durations written
as ``10s``, ids and tag keys, the fields every target has (``TargetBase``) and
the site section. Each package defines its own sections from these; the
composition root assembles them into the top-level Config.
"""

from __future__ import annotations

import difflib
import re
import zoneinfo
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PositiveInt,
    StrictBool,
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

MIN_INTERVAL = 1.0
"""Shortest probe interval: faster polling is a load test, not monitoring."""
MIN_TIMEOUT = 0.1
"""Shortest probe timeout: below 100 ms scheduling jitter alone fails a healthy probe."""


def _at_least(minimum: float) -> Any:
    def check(seconds: float) -> float:
        if seconds < minimum:
            raise ValueError(
                f"must be at least {format_duration(minimum)} (got {format_duration(seconds)})"
            )
        return seconds

    return AfterValidator(check)


Interval = Annotated[Duration, _at_least(MIN_INTERVAL)]
"""How often something is probed: a duration of at least 1s."""
Timeout = Annotated[Duration, _at_least(MIN_TIMEOUT)]
"""How long one probe (or one step of it) may take: a duration of at least 100ms."""

Bool = StrictBool
"""``true`` or ``false`` only. Pydantic's plain ``bool`` would also take the
strings ``yes``/``no``/``on``/``off``/``1``/``0``, which the loader keeps as
text (YAML 1.2): a config must say what it means."""


def check_timezone(name: str) -> str:
    """``name`` if this machine's zoneinfo knows it; else an error with a hint."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        hint = "use an IANA name like Asia/Shanghai or UTC"
        close = difflib.get_close_matches(name, zoneinfo.available_timezones(), n=1, cutoff=0.8)
        if close:
            hint = f"did you mean {close[0]}?"
        raise ValueError(f"unknown timezone {name!r}; {hint}") from None
    return name


Timezone = Annotated[str, AfterValidator(check_timezone)]
"""An IANA timezone name this machine knows (``Asia/Shanghai``, ``UTC``)."""

Language = Literal["zh-CN", "en"]
"""A language the UI and the public status page are shown in."""
LANGUAGES: tuple[str, ...] = get_args(Language)
"""Every language the pages offer (the language switch lists them all)."""

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
    r"credentials?|passphrase|webhook|apprise_url)($|_)",
    re.IGNORECASE,
)
"""Key names whose values are secrets wherever they appear: hidden in repr and in
``LoadedConfig.redacted()``, even when written literally in the YAML. (``webhook``: a
chat robot's URL holds its token; so does an ``apprise_url``.)"""


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
    interval: Interval = 30.0
    """How often the target is probed."""
    timeout: Timeout = 5.0
    """How long one probe may take; not longer than ``interval``.
    When not given, the kind's default or ``interval``, whichever is shorter."""
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
    enabled: Bool = True
    """``false`` keeps the target in the config but stops probing it."""

    @model_validator(mode="before")
    @classmethod
    def _default_timeout_within_interval(cls, data: Any) -> Any:
        # A kind's default timeout (5s, SIP's 4s...) must not make a short
        # interval invalid: ``interval: 1s`` alone means "probe every second",
        # so a timeout not written is capped at the interval.
        if not isinstance(data, dict) or "timeout" in data or "interval" not in data:
            return data
        try:
            interval = parse_duration(data["interval"])
        except ValueError:
            return data  # the interval's own check reports it
        default = cls.model_fields["timeout"].default
        # An interval under the minimum is reported on its own, not also as a short timeout.
        if isinstance(default, float) and MIN_INTERVAL <= interval < default:
            return {**data, "timeout": interval}
        return data

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
    timezone: Timezone = "UTC"
    """IANA name (``Asia/Shanghai``); times on the dashboard and status page use it."""
    language: Language = "zh-CN"
    """Default UI language when the browser asks for neither."""
