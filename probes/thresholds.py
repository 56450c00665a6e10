"""Warn/fail thresholds on measured values, shared by every probe that has them.

A probe declares its metrics once as ``Rule`` values (name, how to say it,
unit, which direction is bad, default limits). A target's ``thresholds:``
mapping is resolved against those rules at config time: unknown names are
errors listing the allowed ones, given keys override the defaults key by key,
and ``null`` turns a level (or a whole metric) off::

    thresholds:
      cpu_percent: {warn: 70}        # fail keeps its default
      swap_percent: null             # no swap check at all
      disk_percent: {fail: null}     # warn only

Evaluating is pure: ``judge(rule, limit, value, subject)`` returns a
``Breach`` (or None) whose ``sentence()`` is the human detail text, e.g.
``disk / at 93% (fail above 90%)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import model_validator

from core.config import Bool, StrictModel
from core.observation import Status

_SEVERITY = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3}


class Limit(StrictModel):
    """The two levels of one metric; a level left out keeps its default, ``null`` turns it off."""

    warn: float | None = None
    """Crossing this makes the observation ``warn``."""
    fail: float | None = None
    """Crossing this makes the observation ``fail``."""

    @model_validator(mode="before")
    @classmethod
    def _no_booleans(cls, data: Any) -> Any:
        # YAML `warn: yes` would otherwise become 1.0 silently.
        if isinstance(data, Mapping):
            for key in ("warn", "fail"):
                if isinstance(data.get(key), bool):
                    raise ValueError(f"{key} must be a number, not {str(data[key]).lower()}")
        return data

    @property
    def off(self) -> bool:
        return self.warn is None and self.fail is None


class DirectedLimit(Limit):
    """Levels of a value the config names itself (an OID, a command's field), with its direction."""

    below: Bool = False
    """``true``: the value is bad when it drops *below* the levels (free space, trunks up)."""

    @model_validator(mode="after")
    def _order(self) -> DirectedLimit:
        if self.warn is None or self.fail is None:
            return self
        if self.below and self.warn < self.fail:
            raise ValueError("warn must not be below fail when below: true (lower is worse)")
        if not self.below and self.warn > self.fail:
            raise ValueError("warn must not be above fail")
        return self


OFF = Limit()


@dataclass(frozen=True)
class Rule:
    """One metric a threshold can be set on.

    ``label`` is how the detail text names the measured thing; ``{subject}``
    in it is replaced by the instance (a mount, an interface).
    ``lower_is_worse``: the metric fails when it drops *below* the limits
    (free space), instead of rising above them (usage).
    """

    name: str
    label: str
    unit: str = ""
    default: Limit = OFF
    lower_is_worse: bool = False
    doc: str = ""

    def says(self, subject: str = "") -> str:
        return self.label.format(subject=subject).strip()


@dataclass(frozen=True)
class Breach:
    """A value that crossed a limit: what, how far, and which level."""

    status: Status  # WARN or FAIL
    rule: Rule
    subject: str
    value: float
    bound: float

    def sentence(self) -> str:
        word = "below" if self.rule.lower_is_worse else "above"
        level = "fail" if self.status is Status.FAIL else "warn"
        value = format_value(self.value, self.rule.unit)
        bound = format_value(self.bound, self.rule.unit)
        return f"{self.rule.says(self.subject)} at {value} ({level} {word} {bound})"


def format_value(value: float, unit: str = "") -> str:
    """Short human number: 93 -> '93', 93.46 -> '93.5', 0.001 -> '0.001', with the unit."""
    if value == int(value) and abs(value) < 1e15:
        text = str(int(value))
    elif abs(value) >= 1:
        text = f"{value:.1f}".rstrip("0").rstrip(".")
    else:
        text = f"{value:.3g}"
    if not unit:
        return text
    return f"{text}{unit}" if unit in ("%", "/s") else f"{text} {unit}"


def resolve(given: Mapping[str, Limit | None] | None, rules: Iterable[Rule]) -> dict[str, Limit]:
    """Merge a target's ``thresholds`` with the rules' defaults.

    Raises ValueError (a config error) for unknown names and for a warn level
    that is not on the safe side of the fail level.
    """
    by_name = {rule.name: rule for rule in rules}
    given = given or {}
    unknown = sorted(set(given) - set(by_name))
    if unknown:
        raise ValueError(
            f"unknown metric {', '.join(repr(n) for n in unknown)}; "
            f"allowed: {', '.join(sorted(by_name))}"
        )
    resolved: dict[str, Limit] = {}
    for name, rule in by_name.items():
        if name not in given:
            resolved[name] = rule.default
            continue
        override = given[name]
        if override is None:
            resolved[name] = OFF
            continue
        # Only the keys written in the config replace the defaults.
        merged = {"warn": rule.default.warn, "fail": rule.default.fail}
        merged.update({key: getattr(override, key) for key in override.model_fields_set})
        limit = Limit(**merged)
        _check_order(rule, limit)
        resolved[name] = limit
    return resolved


def _check_order(rule: Rule, limit: Limit) -> None:
    if limit.warn is None or limit.fail is None:
        return
    if rule.lower_is_worse and limit.warn < limit.fail:
        raise ValueError(
            f"{rule.name}: warn ({format_value(limit.warn)}) must not be below "
            f"fail ({format_value(limit.fail)}) — lower values are worse"
        )
    if not rule.lower_is_worse and limit.warn > limit.fail:
        raise ValueError(
            f"{rule.name}: warn ({format_value(limit.warn)}) must not be above "
            f"fail ({format_value(limit.fail)})"
        )


def judge(rule: Rule, limit: Limit, value: float, subject: str = "") -> Breach | None:
    """The level ``value`` crosses, fail first; equal to a limit is not a crossing."""
    for status, bound in ((Status.FAIL, limit.fail), (Status.WARN, limit.warn)):
        if bound is None:
            continue
        crossed = value < bound if rule.lower_is_worse else value > bound
        if crossed:
            return Breach(status, rule, subject, value, bound)
    return None


def worst(statuses: Iterable[Status]) -> Status:
    """The most severe status (ok < warn < fail < error); ok for none."""
    return max(statuses, key=_SEVERITY.__getitem__, default=Status.OK)


def by_severity(breaches: Iterable[Breach]) -> list[Breach]:
    """Fails before warns, otherwise in the order given (stable)."""
    return sorted(breaches, key=lambda b: -_SEVERITY[b.status])
