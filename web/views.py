"""Shared read-side helpers for the blueprints: names, access checks, JSON shapes."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response, current_app, jsonify

from monitor import components
from monitor.config.schema import Config
from monitor.health import Health
from monitor.store import queries
from probes import PROBES
from web.i18n import iso
from web.services import WebServices


def current_services() -> WebServices:
    """The WebServices of the app handling the current request."""
    return current_app.extensions["dialwatch"]


def target_names(config: Config) -> Mapping[str, str]:
    """Display names by target id (built once per config)."""
    return config.target_names()


def name_matches(config: Config, q: str) -> list[str]:
    """Ids of configured targets whose display name contains ``q`` (case-insensitive)."""
    needle = q.casefold()
    return [t.id for t in config.targets if t.name and needle in t.name.casefold()]


def known_kinds(services: WebServices) -> list[str]:
    """Kinds a filter may name: every registered probe kind plus any kind found in the DB."""
    return sorted(set(PROBES) | set(queries.kinds_present(services.db)))


def component_members(
    services: WebServices, config: Config
) -> tuple[dict[str, list[str]], dict[str, Health]]:
    """Each component's member ids, and the stored health of every member.

    The health of all components' members is read at once: one query per
    request, not one per component.
    """
    members = {c.id: components.members(c, config.targets) for c in config.components}
    health = queries.health_of(services.db, (i for ids in members.values() for i in ids))
    return members, health


def json_error(message: str, code: int, **extra: object) -> tuple[Response, int]:
    return jsonify(error=message, **extra), code


def target_json(row: queries.TargetRow, names: Mapping[str, str]) -> dict[str, object]:
    last = None
    if row.last_observed_at is not None:
        last = {
            "status": row.last_status,
            "detail": row.last_detail or "",
            "latency": row.last_latency,
            "at": iso(row.last_observed_at),
            "metrics": dict(row.last_metrics),
        }
    return {
        "id": row.id,
        "kind": row.kind,
        "name": names.get(row.id, row.id),
        "health": row.health.value,
        "since": iso(row.since),
        "flapping": row.flapping,
        "affected_by": row.affected_by,
        "last_observation": last,
    }


def incident_json(row: queries.IncidentRow) -> dict[str, object]:
    return {
        "id": row.id,
        "state": row.state,
        "title": row.title,
        "severity": row.severity.value,
        "targets": list(row.member_ids),
        "root_target": row.root_target_id,
        "opened_at": iso(row.opened_at),
        "resolved_at": iso(row.resolved_at),
        "cause": row.cause,
        "eta": iso(row.eta),
        "summary": dict(row.summary),
        "acknowledged_at": iso(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
    }
