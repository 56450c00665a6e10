"""The wall screen (大屏): what the NOC's big screen shows, as one JSON-ready snapshot.

``snapshot`` builds it from what the read model returned (no I/O here): the
totals per health, a tile per component (or, on a site with no components, a
tile per probe kind), and the open incidents, in the page's language. The page
(``/wall``) draws its first paint from it and ``static/wall.js`` polls
``/wall/data`` for the next ones, flashing and beeping when an incident id it
has not seen appears.

Nothing here decides who may look: the dashboard blueprint's guard does, as for
every staff page, so a viewer token can be wired in there later.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import chain, repeat

from flask_babel import gettext as _

from monitor.config.schema import Config
from monitor.health import HEALTH_ORDER, Health
from monitor.store.queries import IncidentPage, IncidentRow
from web import components as comp
from web.i18n import HEALTH_LABELS, iso

TILE_COMPONENT = "component"
TILE_KIND = "kind"


def _counts(healths: Iterable[Health]) -> dict[str, int]:
    counts = dict.fromkeys((h.value for h in HEALTH_ORDER), 0)
    for h in healths:
        counts[h.value] += 1
    return counts


def _tile(tile_id: str, name: str, counts: Mapping[str, int]) -> dict[str, object]:
    members = chain.from_iterable(repeat(Health(h), n) for h, n in counts.items())
    state = comp.component_state(members)
    return {
        "id": tile_id,
        "name": name,
        "state": state.value,
        "state_label": str(comp.STATE_LABELS[state]),
        "counts": dict(counts),
        "total": sum(counts.values()),
    }


def component_tiles(
    config: Config, members: Mapping[str, Sequence[str]], health: Mapping[str, Health], lang: str
) -> list[dict[str, object]]:
    """A tile per configured component, in config order; a member without a row is unknown."""
    return [
        _tile(
            c.id,
            comp.localized(c.name, lang, c.id),
            _counts(health.get(i, Health.UNKNOWN) for i in members[c.id]),
        )
        for c in config.components
    ]


def kind_tiles(by_kind: Mapping[str, Mapping[Health, int]]) -> list[dict[str, object]]:
    """A tile per probe kind, for a site that groups nothing into components yet."""
    return [
        _tile(kind, kind, {h.value: counts.get(h, 0) for h in HEALTH_ORDER})
        for kind, counts in by_kind.items()
    ]


def incident_item(row: IncidentRow) -> dict[str, object]:
    """An open incident as the wall lists it; the title in the reader's language."""
    return {
        "id": row.id,
        "title": _(
            "%(target)s is %(health)s",
            target=row.root_target_id,
            health=HEALTH_LABELS[row.severity],
        ),
        "severity": row.severity.value,
        "targets": list(row.member_ids),
        "opened_at": iso(row.opened_at),
        "eta": iso(row.eta),
        "acknowledged_by": row.acknowledged_by,
    }


def snapshot(
    *,
    totals: Mapping[Health, int],
    tiles: list[dict[str, object]],
    tile_kind: str,
    incidents: IncidentPage,
    now: float,
) -> dict[str, object]:
    """Everything one paint of the wall needs, JSON-ready."""
    return {
        "at": iso(now),
        "totals": {h.value: int(totals.get(h, 0)) for h in HEALTH_ORDER},
        "tile_kind": tile_kind,
        "tiles": tiles,
        "incidents": {
            "total": incidents.total,
            "items": [incident_item(i) for i in incidents.items],
        },
    }
