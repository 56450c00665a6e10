"""Components: which targets make up one, and the one health their members add up to.

A component (``components:`` in the config) is a line on the public status
page, made of targets listed by id and of every target matching its tag
selector. ``members`` resolves it; the web shows the live state from it and the
uptime rollup (``monitor.uptime``) counts a component's seconds per health
with ``component_health``.

``component_health`` follows the status page's rule (docs/web.md) with two
differences that matter for uptime: a partial outage (some members down)
counts as ``degraded``, since the component still works, less well; and a
component with no member observed yet is ``unknown`` rather than operational,
since the day's uptime must not claim what nobody saw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from core.config import TargetBase
from monitor.config.models import ComponentConfig
from monitor.health import Health


def members(component: ComponentConfig, targets: Sequence[TargetBase]) -> list[str]:
    """Target ids of a component: its explicit list, then every target matching its tag selector."""
    ids = list(component.targets)
    if component.selector:
        for t in targets:
            if all(t.tags.get(k) == v for k, v in component.selector.items()):
                ids.append(t.id)
    return list(dict.fromkeys(ids))


def component_health(healths: Iterable[Health]) -> Health | None:
    """The health a component has while its observed members have ``healths``.

    None when no member is observed at all (the time is not counted).
    ``unknown`` members do not count unless every member is unknown; members
    in maintenance count only when every other one is unknown too.
    """
    return health_of_counts(Counter(healths))


def health_of_counts(counts: Mapping[Health, int]) -> Health | None:
    """``component_health`` from how many observed members are in each health."""
    if not any(counts.values()):
        return None
    counted = sum(counts.get(h, 0) for h in (Health.UP, Health.DEGRADED, Health.DOWN))
    if counted == 0:
        return Health.MAINTENANCE if counts.get(Health.MAINTENANCE) else Health.UNKNOWN
    if counts.get(Health.DOWN, 0) == counted:
        return Health.DOWN
    if counts.get(Health.DOWN) or counts.get(Health.DEGRADED):
        return Health.DEGRADED
    return Health.UP
