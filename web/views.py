"""Shared read-side helpers for the blueprints: names, access checks, JSON shapes."""

from __future__ import annotations

from flask import Response, current_app, jsonify, request

from monitor.config.schema import Config
from probes import PROBES
from web import access, queries
from web.i18n import iso
from web.services import WebServices


def current_services() -> WebServices:
    """The WebServices of the app handling the current request."""
    return current_app.extensions["dialwatch"]


def target_names(config: Config) -> dict[str, str]:
    return {t.id: t.display_name for t in config.targets}


def name_matches(config: Config, q: str) -> list[str]:
    """Ids of configured targets whose display name contains ``q`` (case-insensitive)."""
    needle = q.casefold()
    return [t.id for t in config.targets if t.name and needle in t.name.casefold()]


def known_kinds(services: WebServices) -> list[str]:
    """Kinds a filter may name: every registered probe kind plus any kind found in the DB."""
    return sorted(set(PROBES) | set(queries.kinds_present(services.db)))


def access_denial(services: WebServices) -> str | None:
    return access.denial(
        services.listen_host,
        services.config().web.token,
        access.bearer(request.headers),
        request.cookies.get(access.COOKIE),
    )


def json_error(message: str, code: int, **extra: object) -> tuple[Response, int]:
    return jsonify(error=message, **extra), code


def target_json(row: queries.TargetRow, names: dict[str, str]) -> dict[str, object]:
    last = None
    if row.last_observed_at is not None:
        last = {
            "status": row.last_status,
            "detail": row.last_detail or "",
            "latency": row.last_latency,
            "at": iso(row.last_observed_at),
            "metrics": row.last_metrics,
        }
    return {
        "id": row.id,
        "kind": row.kind,
        "name": names.get(row.id, row.id),
        "health": row.health,
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
        "severity": row.severity,
        "targets": row.targets,
        "root_target": row.root_target_id,
        "opened_at": iso(row.opened_at),
        "resolved_at": iso(row.resolved_at),
        "cause": row.cause,
        "eta": iso(row.eta),
        "summary": row.summary,
        "acknowledged_at": iso(row.acknowledged_at),
        "acknowledged_by": row.acknowledged_by,
    }
