"""From a validated config to what paging needs (``Roster``), and the checks across its sections.

``paging_problems`` is the ``check`` of the ``people:`` section
(``dialwatch.schema``): every ``schedule:``, ``person:``, channel and
``escalate:`` reference must name something configured, reported with
file:line:key like any config error. Console users live in the state DB, so
``check-config`` cannot see them; the appliance checks ``user:`` against
them when it starts or reloads (``unknown_users``).
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from typing import Any

from monitor.config.errors import KeyPath
from notify.paging import Roster
from notify.people import reference_problems


def _escalations(config: Any) -> list[tuple[int, Any, str]]:
    found = []
    for index, rule in enumerate(getattr(config, "rules", [])):
        action = getattr(rule, "escalate", None)
        if action is not None:
            found.append((index, rule, action.policy))
    return found


def roster_of(config: Any) -> Roster:
    return Roster(
        rules=tuple((rule, policy) for _, rule, policy in _escalations(config)),
        policies={p.id: p for p in getattr(config, "escalations", [])},
        schedules={s.id: s for s in getattr(config, "schedules", [])},
        people={p.id: p for p in getattr(config, "people", [])},
        targets={t.id: t for t in config.targets},
        components=tuple(config.components),
    )


def paging_problems(config: Any) -> list[tuple[KeyPath, str]]:
    people = getattr(config, "people", [])
    schedules = getattr(config, "schedules", [])
    escalations = getattr(config, "escalations", [])
    channels = [c.id for c in getattr(config, "channels", [])]
    found = reference_problems(people, schedules, escalations, channels, None)
    policies = sorted({p.id for p in escalations})
    for index, _rule, policy in _escalations(config):
        if policy not in policies:
            close = difflib.get_close_matches(policy, policies, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(policies) or "none is configured"
            found.append(
                (
                    ("rules", index, "escalate"),
                    f"no escalation policy '{policy}'{hint} (escalations: {known})",
                )
            )
    return found


def unknown_users(config: Any, user_names: Collection[str]) -> list[str]:
    """Sentences for people whose ``user:`` is not a console user (their acks cannot be told)."""
    known = set(user_names)
    return [
        f"person '{p.id}' names user '{p.user}', who is not a console user: an acknowledgement "
        f"by them cannot stop their paging until the user is added (dialwatch user add {p.user})"
        for p in getattr(config, "people", [])
        if p.user not in known
    ]
