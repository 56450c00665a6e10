"""The rule matcher: every selector, AND within a rule, ``for:`` holding, broken and re-armed.

Pure functions, so time is just a number: a target went down at ``T0`` and
each case says what ``now`` is.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from monitor.health import Health
from monitor.rules import Facts, Verdict, evaluate, hold_key, mismatch, recheck
from tests.rule_actions import RuleConfig

T0 = 1_000_000.0
"""When the target entered its current health."""


def rule(enabled: bool = True, **when: Any) -> RuleConfig:
    if "for_" in when:
        when["for"] = when.pop("for_")
    return RuleConfig.model_validate(
        {"id": "r", "enabled": enabled, "when": when, "page": {"who": "noc"}}
    )


TRUNK = Facts(
    event="transition",
    target_id="trunk-a",
    health=Health.DOWN,
    since=T0,
    tags={"carrier": "telecom", "role": "primary"},
    components=frozenset({"calling"}),
)
"""trunk-a went down at T0 (a transition; no incident severity)."""

OPENED = replace(TRUNK, event="opened", severity="down")
"""The incident opened for it, severity down."""


# (rule's when, facts, fires?, reason when it does not)
SELECTORS = [
    # event kind
    pytest.param({}, TRUNK, True, None, id="no-selector-fires-on-any-transition"),
    pytest.param(
        {},
        OPENED,
        False,
        "event 'opened' is not one of: transition",
        id="no-event-selector-means-transitions-only",
    ),
    pytest.param({"event": "opened"}, OPENED, True, None, id="event-kind-matches"),
    pytest.param(
        {"event": "opened"},
        replace(OPENED, event="resolved", health=Health.UP),
        False,
        "event 'resolved' is not one of: opened",
        id="event-kind-differs",
    ),
    pytest.param(
        {"event": ["opened", "resolved"]},
        replace(OPENED, event="resolved", health=Health.UP),
        True,
        None,
        id="event-kind-one-of-several",
    ),
    pytest.param(
        {"event": ["acknowledged"]},
        replace(OPENED, event="acknowledged"),
        True,
        None,
        id="incident-action-event",
    ),
    # targets
    pytest.param({"targets": ["trunk-a", "trunk-b"]}, TRUNK, True, None, id="target-listed"),
    pytest.param(
        {"targets": ["trunk-b"]},
        TRUNK,
        False,
        "target 'trunk-a' is not one of: trunk-b",
        id="target-not-listed",
    ),
    # tags
    pytest.param({"tags": {"carrier": "telecom"}}, TRUNK, True, None, id="tag-matches"),
    pytest.param(
        {"tags": {"carrier": "telecom", "role": "primary"}},
        TRUNK,
        True,
        None,
        id="all-tags-match",
    ),
    pytest.param(
        {"tags": {"carrier": "telecom", "role": "backup"}},
        TRUNK,
        False,
        "target 'trunk-a' has role: primary, not backup",
        id="one-tag-of-two-differs",
    ),
    pytest.param(
        {"tags": {"site": "beijing"}},
        TRUNK,
        False,
        "target 'trunk-a' has no tag site",
        id="tag-missing",
    ),
    # components
    pytest.param({"components": ["calling"]}, TRUNK, True, None, id="component-member"),
    pytest.param(
        {"components": ["status-page", "calling"]},
        TRUNK,
        True,
        None,
        id="member-of-one-of-several-components",
    ),
    pytest.param(
        {"components": ["status-page"]},
        TRUNK,
        False,
        "target 'trunk-a' is in none of the components: status-page",
        id="component-not-member",
    ),
    # health
    pytest.param({"health": "down"}, TRUNK, True, None, id="health-matches"),
    pytest.param({"health": ["degraded", "down"]}, TRUNK, True, None, id="health-one-of-several"),
    pytest.param(
        {"health": "down"},
        replace(TRUNK, health=Health.UP),
        False,
        "target 'trunk-a' is up, not down",
        id="health-differs",
    ),
    pytest.param(
        {"health": "maintenance"},
        replace(TRUNK, health=Health.MAINTENANCE),
        True,
        None,
        id="maintenance-is-a-health",
    ),
    # severity
    pytest.param(
        {"event": "opened", "severity": "down"}, OPENED, True, None, id="severity-matches"
    ),
    pytest.param(
        {"event": "opened", "severity": "down"},
        replace(OPENED, severity="degraded"),
        False,
        "severity is degraded, not down",
        id="severity-differs",
    ),
    pytest.param(
        {"event": ["transition", "opened"], "severity": "down"},
        TRUNK,
        False,
        "event 'transition' has no severity",
        id="severity-never-matches-a-transition",
    ),
    # AND within a rule
    pytest.param(
        {
            "event": "opened",
            "targets": ["trunk-a"],
            "tags": {"carrier": "telecom"},
            "components": ["calling"],
            "health": "down",
            "severity": "down",
        },
        OPENED,
        True,
        None,
        id="every-selector-matches",
    ),
    pytest.param(
        {"targets": ["trunk-a"], "health": "degraded"},
        TRUNK,
        False,
        "target 'trunk-a' is down, not degraded",
        id="target-matches-but-health-does-not",
    ),
    pytest.param(
        {"tags": {"carrier": "unicom"}, "health": "down"},
        TRUNK,
        False,
        "target 'trunk-a' has carrier: telecom, not unicom",
        id="health-matches-but-tag-does-not",
    ),
    pytest.param(
        {"components": ["calling"], "targets": ["trunk-b"]},
        TRUNK,
        False,
        "target 'trunk-a' is not one of: trunk-b",
        id="component-matches-but-target-does-not",
    ),
]


@pytest.mark.parametrize(("when", "facts", "fires", "reason"), SELECTORS)
def test_a_rule_fires_only_when_every_selector_matches(
    when: dict[str, Any], facts: Facts, fires: bool, reason: str | None
) -> None:
    verdict = evaluate(rule(**when), facts, now=T0)
    assert verdict.fires is fires
    assert verdict.recheck_at is None
    assert mismatch(rule(**when).when, facts) == reason
    if reason is not None:
        assert verdict.reason == reason


def test_a_disabled_rule_never_fires() -> None:
    assert evaluate(rule(enabled=False, health="down"), TRUNK, now=T0) == Verdict(
        False, reason="the rule is disabled"
    )


def test_a_firing_says_what_matched() -> None:
    assert evaluate(rule(health="down"), TRUNK, now=T0).reason == (
        "target 'trunk-a' is down (transition)"
    )


# ``for: 2m`` on trunk-a being down since T0: (now, fires?, recheck_at, reason)
HOLD = [
    pytest.param(
        T0, False, T0 + 120, "target 'trunk-a' is down for 0s of 2m: waiting", id="just-went-down"
    ),
    pytest.param(
        T0 + 30, False, T0 + 120, "target 'trunk-a' is down for 30s of 2m: waiting", id="not-yet"
    ),
    pytest.param(
        T0 + 120, True, None, "target 'trunk-a' is down for 2m (for: 2m)", id="exactly-then"
    ),
    pytest.param(
        T0 + 600, True, None, "target 'trunk-a' is down for 10m (for: 2m)", id="long-since"
    ),
    pytest.param(
        T0 - 5, False, T0 + 120, "target 'trunk-a' is down for 0s of 2m: waiting", id="clock-behind"
    ),
]


@pytest.mark.parametrize(("now", "fires", "recheck_at", "reason"), HOLD)
def test_for_waits_until_the_health_has_held_long_enough(
    now: float, fires: bool, recheck_at: float | None, reason: str
) -> None:
    assert evaluate(rule(health="down", for_="2m"), TRUNK, now) == Verdict(
        fires, recheck_at, reason
    )


def test_for_does_not_wait_for_a_rule_that_does_not_select_the_event() -> None:
    verdict = evaluate(rule(health="up", for_="2m"), TRUNK, now=T0)
    assert verdict == Verdict(False, None, "target 'trunk-a' is down, not up")


def test_for_counts_from_the_change_of_health_not_from_the_event() -> None:
    # A note two minutes into the outage: the target has been down since T0.
    noted = replace(OPENED, event="noted")
    verdict = evaluate(rule(event="noted", health="down", for_="2m"), noted, now=T0 + 120)
    assert verdict.fires


# The wait armed at T0 is looked at again at T0 + 2m with the target's facts then.
RECHECK = [
    pytest.param(
        TRUNK,
        T0 + 120,
        Verdict(True, None, "target 'trunk-a' is down for 2m (for: 2m)"),
        id="holding-fires",
    ),
    pytest.param(
        TRUNK,
        T0 + 100,
        Verdict(False, T0 + 120, "target 'trunk-a' is down for 100s of 2m: waiting"),
        id="holding-but-early-waits-again",
    ),
    pytest.param(
        replace(TRUNK, health=Health.UP, since=T0 + 60),
        T0 + 120,
        Verdict(False, None, "target 'trunk-a' left down (now up): the hold broke"),
        id="broken-by-recovery",
    ),
    pytest.param(
        replace(TRUNK, health=Health.DEGRADED, since=T0 + 60),
        T0 + 120,
        Verdict(False, None, "target 'trunk-a' left down (now degraded): the hold broke"),
        id="broken-by-another-trouble",
    ),
    pytest.param(
        replace(TRUNK, since=T0 + 90),
        T0 + 120,
        Verdict(False, None, "target 'trunk-a' left down and came back: the hold broke"),
        id="broken-even-if-back-in-the-same-health",
    ),
    pytest.param(
        replace(TRUNK, tags={"carrier": "unicom", "role": "primary"}),
        T0 + 120,
        Verdict(False, None, "target 'trunk-a' has carrier: unicom, not telecom"),
        id="selector-no-longer-matches-after-a-reload",
    ),
]


@pytest.mark.parametrize(("current", "now", "expected"), RECHECK)
def test_a_recheck_fires_only_if_the_hold_did_not_break(
    current: Facts, now: float, expected: Verdict
) -> None:
    r = rule(tags={"carrier": "telecom"}, health="down", for_="2m")
    assert evaluate(r, TRUNK, now=T0).recheck_at == T0 + 120
    assert recheck(r, TRUNK, current, now) == expected


def test_a_recheck_keeps_the_event_kind_that_armed_it() -> None:
    r = rule(event="opened", severity="down", for_="1m")
    assert evaluate(r, OPENED, now=T0).recheck_at == T0 + 60
    # The incident's severity fell to degraded meanwhile: the rule no longer applies.
    assert recheck(r, OPENED, replace(OPENED, severity="degraded"), T0 + 60) == Verdict(
        False, None, "severity is degraded, not down"
    )
    assert recheck(r, OPENED, OPENED, T0 + 60).fires


def test_a_new_stay_in_the_health_re_arms_the_rule() -> None:
    r = rule(health="down", for_="2m")
    first = evaluate(r, TRUNK, now=T0)
    # Up at T0+60, down again at T0+90: the first wait broke...
    again = replace(TRUNK, since=T0 + 90)
    assert not recheck(r, TRUNK, again, now=first.recheck_at).fires  # type: ignore[arg-type]
    # ...and the transition at T0+90 arms a new one, which fires two minutes later.
    second = evaluate(r, again, now=T0 + 90)
    assert second.recheck_at == T0 + 210
    assert recheck(r, again, again, now=T0 + 210).fires
    assert hold_key(r, again) != hold_key(r, TRUNK)


def test_events_of_one_hold_share_its_key() -> None:
    r = rule(event=["transition", "opened"], health="down", for_="2m")
    assert hold_key(r, TRUNK) == hold_key(r, OPENED) == ("r", "trunk-a", T0)


def test_a_recheck_with_another_targets_facts_is_refused() -> None:
    r = rule(health="down", for_="2m")
    with pytest.raises(ValueError, match="recheck of 'trunk-a' with facts of 'trunk-b'"):
        recheck(r, TRUNK, replace(TRUNK, target_id="trunk-b"), T0 + 120)
