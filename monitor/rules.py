"""Which rules fire: the facts of one event and the time in, a verdict out.

Pure code, no clock and no I/O. The caller (a subscriber to events, in the
package that performs the rule's actions) turns each event into ``Facts``
about the target it concerns and asks ``evaluate`` for every rule:

- ``Verdict.fires``: perform the rule's actions now;
- ``Verdict.recheck_at``: the rule selects the event but has a ``for:`` that
  has not elapsed; at that time, ask ``recheck`` with the target's facts as
  they are then — it fires only if the target stayed in the same health
  throughout (the hold did not break);
- neither: the rule does not apply; ``reason`` says why, for logs and for
  an operator asking why a rule did not fire.

A hold is one stay of one target in one health, so ``hold_key`` (rule,
target, since) names it: several events of one hold (``transition`` and
``opened`` at the same moment) arm the same wait, and a hold fires a rule
once. A new stay (the target recovered and went down again) is a new hold:
the rule is armed again by the event that started it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from core.config import format_duration
from monitor.config.rules import RuleConfig, WhenConfig
from monitor.health import Health
from monitor.incidents import Severity


@dataclass(frozen=True, slots=True)
class Facts:
    """What a rule can know about one event: its kind and the state of the target it is about.

    For an incident event the target is the member the event names (opened:
    the root; joined, recovered: that member; resolved: the last one back),
    or the incident's root for an event about the whole incident
    (acknowledged, noted, updated, merged).
    """

    event: str
    """The event's kind (``transition``, ``opened``...; ``monitor.config.rules.EVENT_KINDS``)."""
    target_id: str
    health: Health
    """The target's health after the event."""
    since: float
    """When the target entered ``health`` (epoch seconds); ``for:`` counts from here."""
    tags: Mapping[str, str] = field(default_factory=dict)
    components: frozenset[str] = frozenset()
    """Ids of the components the target belongs to."""
    severity: Severity | None = None
    """The incident's severity, for an incident event; None for a transition."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a rule fires on some facts, or when to look again."""

    fires: bool
    recheck_at: float | None = None
    """Set while a ``for:`` is being waited out: ask ``recheck`` at this time."""
    reason: str = ""
    """Why, in a sentence: what matched, or the first thing that did not."""


def mismatch(when: WhenConfig, facts: Facts) -> str | None:
    """The first selector of ``when`` that ``facts`` do not meet, as a sentence; None when all do."""
    who = f"target '{facts.target_id}'"
    if facts.event not in when.event:
        return f"event '{facts.event}' is not one of: {', '.join(when.event)}"
    if when.targets and facts.target_id not in when.targets:
        return f"{who} is not one of: {', '.join(when.targets)}"
    if when.components and facts.components.isdisjoint(when.components):
        return f"{who} is in none of the components: {', '.join(when.components)}"
    for key, wanted in when.tags.items():
        have = facts.tags.get(key)
        if have is None:
            return f"{who} has no tag {key}"
        if have != wanted:
            return f"{who} has {key}: {have}, not {wanted}"
    if when.health and facts.health not in when.health:
        return f"{who} is {facts.health}, not {' or '.join(when.health)}"
    if when.severity:
        if facts.severity is None:
            return f"event '{facts.event}' has no severity"
        if facts.severity not in when.severity:
            return f"severity is {facts.severity}, not {' or '.join(when.severity)}"
    return None


def evaluate(rule: RuleConfig, facts: Facts, now: float) -> Verdict:
    """Does ``rule`` fire on ``facts`` at ``now``, and if it waits, until when?"""
    if not rule.enabled:
        return Verdict(False, reason="the rule is disabled")
    missing = mismatch(rule.when, facts)
    if missing is not None:
        return Verdict(False, reason=missing)
    hold = rule.when.for_
    subject = f"target '{facts.target_id}' is {facts.health}"
    if hold is None:
        return Verdict(True, reason=f"{subject} ({facts.event})")
    held = max(0.0, now - facts.since)
    if held >= hold:
        return Verdict(True, reason=f"{subject} for {_dur(held)} (for: {_dur(hold)})")
    return Verdict(
        False,
        recheck_at=facts.since + hold,
        reason=f"{subject} for {_dur(held)} of {_dur(hold)}: waiting",
    )


def recheck(rule: RuleConfig, armed: Facts, current: Facts, now: float) -> Verdict:
    """At ``Verdict.recheck_at``: does the hold ``armed`` started still hold, and long enough?

    ``armed`` are the facts ``evaluate`` said to wait on; ``current`` the same
    target's facts now (tags, components, health, severity as they are). A
    change of health since then broke the hold: no fire, even if the target
    is back in the same health (that is a new hold, armed by its own event).
    """
    if current.target_id != armed.target_id:
        raise ValueError(f"recheck of '{armed.target_id}' with facts of '{current.target_id}'")
    who = f"target '{armed.target_id}'"
    if current.health != armed.health:
        return Verdict(
            False, reason=f"{who} left {armed.health} (now {current.health}): the hold broke"
        )
    if current.since != armed.since:
        return Verdict(False, reason=f"{who} left {armed.health} and came back: the hold broke")
    return evaluate(rule, replace(current, event=armed.event), now)


def hold_key(rule: RuleConfig, facts: Facts) -> tuple[str, str, float]:
    """Names one hold of one rule: a rule with ``for:`` fires once per key."""
    return (rule.id, facts.target_id, facts.since)


def _dur(seconds: float) -> str:
    return format_duration(seconds) if seconds > 0 else "0s"
