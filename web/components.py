"""Status-page components: the state one shows (its members come from ``monitor.components``).

The rule (also in docs/web.md), from the current health of the members:

1. ``unknown`` members (no data yet) do not count.
2. If every member that counts is in ``maintenance`` → **maintenance**.
   Otherwise members in maintenance do not count either.
3. Of the rest: all ``down`` → **major outage**; some ``down`` → **partial
   outage**; any ``degraded`` → **degraded**; else **operational**.
4. A component with nothing left to count (no members, or none observed yet)
   is **operational**: nothing is known to be wrong.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from flask_babel import lazy_gettext as _l

from monitor.health import Health


class ComponentState(StrEnum):
    OPERATIONAL = "operational"
    MAINTENANCE = "maintenance"
    DEGRADED = "degraded"
    PARTIAL_OUTAGE = "partial_outage"
    MAJOR_OUTAGE = "major_outage"


# Worst last: the overall banner shows the worst component state.
_SEVERITY = list(ComponentState)

STATE_LABELS = {
    ComponentState.OPERATIONAL: _l("Operational"),
    ComponentState.MAINTENANCE: _l("Under maintenance"),
    ComponentState.DEGRADED: _l("Degraded performance"),
    ComponentState.PARTIAL_OUTAGE: _l("Partial outage"),
    ComponentState.MAJOR_OUTAGE: _l("Major outage"),
}

OVERALL_LABELS = {
    ComponentState.OPERATIONAL: _l("All systems operational"),
    ComponentState.MAINTENANCE: _l("Scheduled maintenance in progress"),
    ComponentState.DEGRADED: _l("Some systems are degraded"),
    ComponentState.PARTIAL_OUTAGE: _l("Partial outage"),
    ComponentState.MAJOR_OUTAGE: _l("Major outage"),
}


def component_state(healths: Iterable[Health]) -> ComponentState:
    """The state of one component from its members' health (see the module docstring)."""
    known = [h for h in healths if h is not Health.UNKNOWN]
    if known and all(h is Health.MAINTENANCE for h in known):
        return ComponentState.MAINTENANCE
    counted = [h for h in known if h is not Health.MAINTENANCE]
    down = sum(1 for h in counted if h is Health.DOWN)
    if counted and down == len(counted):
        return ComponentState.MAJOR_OUTAGE
    if down:
        return ComponentState.PARTIAL_OUTAGE
    if any(h is Health.DEGRADED for h in counted):
        return ComponentState.DEGRADED
    return ComponentState.OPERATIONAL


def overall_state(states: Iterable[ComponentState]) -> ComponentState:
    return max(states, key=_SEVERITY.index, default=ComponentState.OPERATIONAL)


def localized(texts: Mapping[str, str], lang: str, fallback: str = "") -> str:
    """Pick ``texts[lang]``, else the other shipped language, else any, else ``fallback``."""
    for key in (lang, "zh-CN" if lang == "en" else "en"):
        if texts.get(key):
            return texts[key]
    return next((v for v in texts.values() if v), fallback)
