"""The OpenAPI 3.1 document of the API, at ``GET /api/v1/openapi.json`` (staff only).

Built from the app's own url_map, so it lists the routes that exist, with a
small table (``DOCS``) saying what each one is for: its query parameters,
its success answer and which refusals it can give. Request bodies are the
JSON schemas of the pydantic models the routes parse (``web.bodies``), so
the document cannot drift from what the API accepts. A route with no entry
in the table is left out of the document, and ``tests/test_web_openapi.py``
fails on it: a new route needs its line here.

schemathesis runs against this document in the tests (see docs/api.md).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from monitor.health import HEALTH_ORDER, Health
from monitor.store.models import INCIDENT_STATES
from monitor.store.queries import MAX_PER_PAGE
from probes import PROBES
from web import api_incidents, api_paging, api_runbooks, params, push
from web.bodies import MAX_ID, Body
from web.i18n import LANGUAGES
from web.views import current_services, json_error

bp = Blueprint("api_docs", __name__, url_prefix="/api/v1")

OPENAPI_VERSION = "3.1.0"
JSON = "application/json"

# -- schemas of what the API answers ---------------------------------------------------
_TIME = {"type": "string", "format": "date-time", "description": "ISO 8601, UTC"}
_TIME_OR_NULL = {"anyOf": [_TIME, {"type": "null"}]}
_TEXT_OR_NULL = {"anyOf": [{"type": "string"}, {"type": "null"}]}
_INT_OR_NULL = {"anyOf": [{"type": "integer"}, {"type": "null"}]}


def _object(required: Mapping[str, Any], description: str = "") -> dict[str, Any]:
    # Extra properties allowed: a client must take a field it does not know yet.
    out: dict[str, Any] = {
        "type": "object",
        "required": list(required),
        "properties": dict(required),
    }
    if description:
        out["description"] = description
    return out


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page_of(item: str) -> dict[str, Any]:
    return _object(
        {
            "items": {"type": "array", "items": _ref(item)},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": "integer", "description": "how many match (all pages)"},
        }
    )


RESPONSE_SCHEMAS: dict[str, dict[str, Any]] = {
    "PushKey": _object(
        {
            "public_key": {
                "type": "string",
                "description": "uncompressed P-256 point, URL-safe base64 without padding",
            }
        },
        "The applicationServerKey browsers subscribe with.",
    ),
    "PushSubscriptionCreated": _object(
        {
            "subscription": _object(
                {
                    "id": {"type": "integer"},
                    "service": {
                        "type": "string",
                        "description": "the push service host and a digest of the endpoint",
                    },
                    "created_at": _TIME,
                    "last_success_at": _TIME_OR_NULL,
                    "user_agent": {"type": "string"},
                }
            )
        }
    ),
    "PushSubscriptionRemoved": _object({"removed": {"type": "integer", "minimum": 1}}),
    "Error": _object(
        {"error": {"type": "string", "description": "the reason, naming the field at fault"}},
        "Every refusal: a 4xx (or 501) with the reason.",
    ),
    "Incident": _object(
        {
            "id": {"type": "integer"},
            "state": {"enum": list(INCIDENT_STATES)},
            "title": {"type": "string"},
            "severity": {"enum": ["down", "degraded"]},
            "targets": {"type": "array", "items": {"type": "string"}},
            "root_target": {"type": "string"},
            "opened_at": _TIME,
            "resolved_at": _TIME_OR_NULL,
            "cause": _TEXT_OR_NULL,
            "eta": _TIME_OR_NULL,
            "summary": {"type": "object", "additionalProperties": {"type": "string"}},
            "acknowledged_at": _TIME_OR_NULL,
            "acknowledged_by": _TEXT_OR_NULL,
        }
    ),
    "IncidentPage": _page_of("Incident"),
    "IncidentDetail": {
        "allOf": [
            _ref("Incident"),
            _object(
                {
                    "members": {
                        "type": "array",
                        "items": _object(
                            {
                                "target_id": {"type": "string"},
                                "role": {"enum": ["root", "affected"]},
                                "joined_at": _TIME,
                                "recovered_at": _TIME_OR_NULL,
                            }
                        ),
                    },
                    "timeline": {
                        "type": "array",
                        "items": _object(
                            {
                                "at": _TIME,
                                "kind": {"type": "string"},
                                "target_id": _TEXT_OR_NULL,
                                "text": {"type": "string"},
                            }
                        ),
                    },
                    "customer_updates": {
                        "type": "array",
                        "items": _object(
                            {
                                "id": {"type": "integer"},
                                "published_at": _TIME,
                                "text": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                            }
                        ),
                    },
                }
            ),
        ]
    },
    "Note": _object(
        {
            "note": _object({"at": _TIME, "by": {"type": "string"}, "text": {"type": "string"}}),
            "incident": _ref("Incident"),
        }
    ),
    "PublishedUpdate": _object(
        {
            "customer_update": _object(
                {
                    "id": {"type": "integer"},
                    "published_at": _TIME,
                    "published_by": {"type": "string"},
                    "text": {"type": "object", "additionalProperties": {"type": "string"}},
                }
            ),
            "incident": _ref("Incident"),
        }
    ),
    "Silence": _object(
        {
            "id": {"type": "integer"},
            "target_id": _TEXT_OR_NULL,
            "component_id": _TEXT_OR_NULL,
            "incident_id": _INT_OR_NULL,
            "starts_at": _TIME,
            "ends_at": _TIME,
            "created_by": {"type": "string"},
            "reason": {"type": "string"},
            "lifted_at": _TIME_OR_NULL,
            "lifted_by": _TEXT_OR_NULL,
            "active": {"type": "boolean"},
        }
    ),
    "SilencePage": _page_of("Silence"),
    "MaintenanceWindow": _object(
        {
            "id": {"type": "integer"},
            "target_id": {"type": "string"},
            "starts_at": _TIME,
            "ends_at": _TIME_OR_NULL,
            "created_by": {"type": "string"},
            "reason": {"type": "string"},
            "ended_at": _TIME_OR_NULL,
            "ended_by": _TEXT_OR_NULL,
            "active": {"type": "boolean"},
        }
    ),
    "MaintenancePage": _page_of("MaintenanceWindow"),
    "MaintenanceWindows": _object({"items": {"type": "array", "items": _ref("MaintenanceWindow")}}),
    "Target": _object(
        {
            "id": {"type": "string"},
            "kind": {"type": "string"},
            "name": {"type": "string"},
            "health": {"enum": list(h.value for h in HEALTH_ORDER)},
            "since": _TIME,
            "flapping": {"type": "boolean"},
            "affected_by": _TEXT_OR_NULL,
            "last_observation": {"anyOf": [{"type": "object"}, {"type": "null"}]},
        }
    ),
    "TargetPage": _object(
        {
            "items": {"type": "array", "items": _ref("Target")},
            "page": {"type": "integer"},
            "per_page": {"type": "integer"},
            "total": {"type": "integer"},
            "totals": {"type": "object", "additionalProperties": {"type": "integer"}},
        }
    ),
    "TargetDetail": {
        "allOf": [
            _ref("Target"),
            _object(
                {
                    "configured": {"type": "boolean"},
                    "transitions": {"type": "array", "items": {"type": "object"}},
                    "incidents": {"type": "array", "items": _ref("Incident")},
                }
            ),
        ]
    },
    "Components": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "string"},
                        "name": {"type": "object"},
                        "description": {"type": "object"},
                        "state": {"type": "string"},
                        "targets": {"type": "array", "items": {"type": "string"}},
                        "counts": {"type": "object"},
                    }
                ),
            }
        }
    ),
    "AuditEntry": _object(
        {
            "id": {"type": "integer"},
            "at": _TIME,
            "actor": {"type": "string", "description": "user:NAME, token:ID, cli:USER, system…"},
            "address": {"type": "string", "description": "the client address, where there is one"},
            "action": {"type": "string"},
            "object": {"type": "string"},
            "result": {"enum": ["ok", "denied", "failed", "error"]},
            "count": {"type": "integer", "description": "merged exception entries: how many"},
        },
        "`before`, `after` (objects) and `detail` (text) are present where the entry has them.",
    ),
    "AuditPage": _page_of("AuditEntry"),
    "OnCall": _object(
        {
            "at": _TIME,
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "schedule": {"type": "string"},
                        "name": {"type": "string"},
                        "timezone": {"type": "string"},
                        "now": {"type": ["object", "null"], "description": "person, from, until"},
                        "next": {"type": ["object", "null"], "description": "person, from, until"},
                    }
                ),
            },
        }
    ),
    "OncallOverride": _object(
        {
            "id": {"type": "integer"},
            "schedule": {"type": "string"},
            "person": {"type": "string"},
            "from": _TIME,
            "to": _TIME,
            "created_by": {"type": "string"},
            "created_at": _TIME,
            "reason": {"type": "string"},
            "active": {"type": "boolean", "description": "in force now"},
        }
    ),
    "OncallOverrides": _object({"items": {"type": "array", "items": _ref("OncallOverride")}}),
    "OncallOverrideRemoved": _object({"removed": _ref("OncallOverride")}),
    "Runbooks": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "string"},
                        "name": {"type": "object", "description": "per language"},
                        "description": {"type": "string"},
                        "emergency_plan": {"type": "object", "description": "per language"},
                        "parameters": {"type": "object"},
                        "steps": {"type": "array", "items": {"type": "object"}},
                        "rollback": {"type": "array", "items": {"type": "object"}},
                        "cooldown": {"type": "number", "description": "seconds"},
                    }
                ),
            }
        }
    ),
    "Run": _object(
        {
            "id": {"type": "integer"},
            "runbook": {"type": "string"},
            "target": {"type": ["string", "null"]},
            "incident": {"type": ["integer", "null"]},
            "rule": {"type": ["string", "null"]},
            "started_by": {"type": "string"},
            "state": {"enum": list(api_runbooks.RUN_STATES)},
            "params": {"type": "object"},
            "phase": {"enum": ["main", "rollback"]},
            "position": {"type": "integer", "description": "the step to run next (0-based)"},
            "created_at": _TIME,
            "started_at": _TIME_OR_NULL,
            "ended_at": _TIME_OR_NULL,
            "requested": {"type": ["string", "null"]},
            "error": {"type": ["string", "null"], "description": "why it ended as it did"},
            "decided_by": {"type": ["string", "null"]},
        }
    ),
    "Runs": _object({"items": {"type": "array", "items": _ref("Run")}}),
    "RunDetail": {
        "allOf": [
            _ref("Run"),
            _object(
                {
                    "steps": {
                        "type": "array",
                        "items": {"type": "object"},
                        "description": "every attempt of every step, in order",
                    }
                }
            ),
        ]
    },
    "RunPlan": _object(
        {
            "runbook": {"type": "string"},
            "dry_run": {"const": True},
            "plan": {
                "type": "array",
                "items": {"type": "object"},
                "description": "each step with `does` (its values resolved) or `error`",
            },
        }
    ),
    "Subscriber": _object(
        {
            "id": {"type": "integer"},
            "channel": {"enum": ["email", "sms", "webpush"]},
            "address": {"type": "string", "description": "masked: z***@example.cn"},
            "language": {"type": "string"},
            "components": {"type": "array", "items": {"type": "string"}},
            "state": {"enum": ["pending", "active", "unsubscribed", "retired"]},
            "created_at": _TIME,
            "confirmed_at": _TIME_OR_NULL,
            "ended_at": _TIME_OR_NULL,
            "reason": {"type": ["string", "null"]},
            "failures": {"type": "integer"},
        }
    ),
    "Subscribers": _object({"items": {"type": "array", "items": _ref("Subscriber")}}),
    "SubscriberExport": _object(
        {
            "id": {"type": "integer"},
            "channel": {"type": "string"},
            "address": {"type": "string", "description": "the address, opened"},
            "language": {"type": "string"},
            "components": {"type": "array", "items": {"type": "string"}},
            "state": {"type": "string"},
            "created_at": _TIME,
            "confirmed_at": _TIME_OR_NULL,
            "ended_at": _TIME_OR_NULL,
            "reason": {"type": "string"},
        }
    ),
    "SubscriberErased": _object({"erased": {"type": "integer"}}),
    "FailoverMember": _object(
        {
            "target": {"type": "string"},
            "destination": {"type": "string", "description": "the SIP URI in the proxy"},
            "health": {"enum": [h.value for h in Health]},
            "wanted": {
                "enum": ["active", "inactive"],
                "description": "what Dialwatch wants in the proxy",
            },
            "changed_at": _TIME_OR_NULL,
            "reason": {"type": ["string", "null"]},
            "approved_by": {"type": ["string", "null"]},
            "approved_at": _TIME_OR_NULL,
        }
    ),
    "FailoverGroups": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "string"},
                        "name": {"type": "string"},
                        "proxy": _object(
                            {
                                "kind": {"enum": ["kamailio"]},
                                "via": {"enum": ["ctl", "rpc"]},
                                "set": {"type": "integer"},
                            }
                        ),
                        "failback": {"enum": ["auto", "approve"]},
                        "failback_after": {"type": "number", "description": "seconds"},
                        "min_active": {"type": "integer"},
                        "members": {"type": "array", "items": _ref("FailoverMember")},
                    }
                ),
            }
        }
    ),
    "Deliveries": _object(
        {
            "items": {
                "type": "array",
                "items": _object(
                    {
                        "id": {"type": "integer"},
                        "person": {"type": "string"},
                        "kind": {"type": "string"},
                        "state": {"enum": ["pending", "sending", "sent", "failed", "cancelled"]},
                        "channels": {"type": "array", "items": {"type": "string"}},
                        "notices": {"type": "array", "items": {"type": "object"}},
                        "attempts": {
                            "type": "array",
                            "items": _object(
                                {
                                    "channel": {"type": "string"},
                                    "outcome": {
                                        "enum": ["in_flight", "sent", "failed", "interrupted"]
                                    },
                                    "reason": {"type": "string"},
                                    "answer": {"type": "string"},
                                }
                            ),
                        },
                    }
                ),
            }
        }
    ),
    "Channels": _object({"items": {"type": "array", "items": {"type": "object"}}}),
    "ChannelTest": _object(
        {
            "channel": {"type": "string"},
            "person": {"type": ["string", "null"]},
            "sent": {"type": "boolean"},
            "answer": {"type": "string"},
            "reason": {"type": "string"},
        }
    ),
    "Status": _object({"status": {"type": "string"}}),
    "OpenAPI": _object({"openapi": {"type": "string"}, "paths": {"type": "object"}}),
}


# -- what each route is -----------------------------------------------------------------
def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema,
        "description": description,
    }


def _list(values: list[str], description: str, name: str) -> dict[str, Any]:
    # Repeat the parameter (?health=down&health=up) or separate values by commas.
    param = _query(name, {"type": "array", "items": {"enum": values}}, description)
    param.update(style="form", explode=True)
    return param


_PAGE = [
    _query(
        "page",
        {"type": "integer", "minimum": 1, "maximum": 1_000_000, "default": 1},
        "page, from 1",
    ),
    _query(
        "per_page",
        {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 100},
        f"rows per page (at most {MAX_PER_PAGE})",
    ),
]


@dataclass(frozen=True)
class Doc:
    """One route's line in the document."""

    summary: str
    answer: str
    """The schema name of the success answer."""
    status: int = 200
    tag: str = "incidents"
    query: tuple[dict[str, Any], ...] = ()
    refusals: tuple[int, ...] = ()
    """Refusals beside those every staff route can give (400, 401, 403)."""
    public: bool = False
    description: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


_ACTION = (404, 409, 413, 415)
# Not format: date-time: a date alone (2026-12-02) and a time without an offset are
# taken too, which a strict date-time would call invalid input.
_INSTANT = {"type": "string", "pattern": params.INSTANT_PATTERN, "maxLength": 40}
_INSTANT_TEXT = (
    "ISO 8601, a date (2026-12-02) or a date and time (2026-12-02T10:00:00Z, "
    "2026-12-02T18:00:00+08:00); without an offset it is in the site timezone; a date "
    "alone as `to` takes that whole day"
)
DOCS: dict[str, Doc] = {
    "status.healthz": Doc("Is the web app up (public)", "Status", tag="meta", public=True),
    "api_docs.document": Doc("This document", "OpenAPI", tag="meta"),
    "api.targets": Doc(
        "Targets with their health and last observation, filtered and paged",
        "TargetPage",
        tag="targets",
        query=(
            _list([h.value for h in HEALTH_ORDER], "only these healths", "health"),
            _list(sorted(PROBES), "only these probe kinds", "kind"),
            _query("q", {"type": "string", "maxLength": 200}, "text in the id or name"),
            _query(
                "lang",
                {"type": "string", "enum": list(LANGUAGES)},
                "also give each observation's detail as the pages show it in this"
                " language (`detail_shown`); `detail` stays the probe's own text",
            ),
            *_PAGE,
        ),
    ),
    "api.target": Doc(
        "One target: config facts, last 50 transitions, latest incidents",
        "TargetDetail",
        tag="targets",
        refusals=(404,),
    ),
    "api.incidents": Doc(
        "Incidents, open first, then newest first",
        "IncidentPage",
        query=(
            _list(list(INCIDENT_STATES), "only these states", "state"),
            _list(["down", "degraded"], "only these severities", "severity"),
            _query(
                "target",
                {"type": "string", "minLength": 1, "maxLength": 64},
                "has this target as a member",
            ),
            _query(
                "component",
                {"type": "string", "minLength": 1, "maxLength": 64},
                "has a member of this configured component",
            ),
            _query(
                "from",
                {"type": "string", "pattern": params.INSTANT_PATTERN},
                "overlaps from here: still open, or resolved at or after it (a date or a "
                "time; without a zone in site.timezone)",
            ),
            _query(
                "to",
                {"type": "string", "pattern": params.INSTANT_PATTERN},
                "overlaps until here: opened before it (a date alone: the end of that day)",
            ),
            *_PAGE,
        ),
    ),
    "api.components": Doc(
        "Status page components and their members' health", "Components", tag="components"
    ),
    "api.reload": Doc(
        "Reload the config (admins)",
        "Status",
        tag="meta",
        refusals=(422, 501),
        description="422 with `errors` when the new config has errors (the running one stays).",
    ),
    "api_audit.audit": Doc(
        "The audit log, newest first, filtered and paged (admins)",
        "AuditPage",
        tag="audit",
        query=(
            _query(
                "actor", {"type": "string", "maxLength": 200}, "exactly this actor (user:alice)"
            ),
            _query(
                "action",
                {"type": "string", "maxLength": 64},
                "this action, or every action under a prefix ending in a dot (user.)",
            ),
            _query("object", {"type": "string", "maxLength": 200}, "text anywhere in the object"),
            _query("from", _INSTANT, "entries at or after this time: " + _INSTANT_TEXT),
            _query("to", _INSTANT, "entries before this time: " + _INSTANT_TEXT),
            _PAGE[0],
            _query(
                "per_page",
                {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE, "default": 50},
                f"rows per page (at most {MAX_PER_PAGE})",
            ),
        ),
    ),
    "api_paging.oncall": Doc(
        "Who is on call now and next, per schedule (overrides included)",
        "OnCall",
        tag="paging",
    ),
    "api_paging.overrides": Doc(
        "On-call overrides in force now and to come, soonest first",
        "OncallOverrides",
        tag="paging",
    ),
    "api_paging.add_override": Doc(
        "Put a person on call for a schedule for a while (operators)",
        "OncallOverride",
        201,
        tag="paging",
        refusals=(413, 415),
        description="`from` and `to` are ISO 8601 (" + _INSTANT_TEXT + "). 400 with the "
        "reason when the end is not after the start, the start is past, it lasts more "
        "than 90 days, or the schedule or person is not in the config.",
    ),
    "api_paging.remove_override": Doc(
        "Remove an on-call override (operators)",
        "OncallOverrideRemoved",
        tag="paging",
        refusals=(404, 409),
        description="409 when it was removed already or is over.",
    ),
    "api_paging.deliveries": Doc(
        "Every delivery about an incident (or the newest), each with its attempts",
        "Deliveries",
        tag="paging",
        query=(
            _query("incident", {"type": "integer", "minimum": 1}, "only this incident's"),
            _query(
                "limit", {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}, "rows"
            ),
        ),
    ),
    "api_paging.channels": Doc(
        "Channels with their health from their last attempts",
        "Channels",
        tag="paging",
    ),
    "api_paging.channel_test": Doc(
        "Send a test message over one channel (operators)",
        "ChannelTest",
        tag="paging",
        refusals=(404, 409),
        description='Body `{}` (the channel alone) or `{"person": "zhang"}`. '
        "`sent: false` with the provider's `reason` when it was refused.",
    ),
    "api_runbooks.list_runbooks": Doc(
        "Runbooks: names, parameters, steps, rollback steps, the emergency plan",
        "Runbooks",
        tag="runbooks",
    ),
    "api_runbooks.start": Doc(
        "Start a runbook by hand, or see its plan with dry_run (operators)",
        "Run",
        201,
        tag="runbooks",
        refusals=(404, 409, 413, 415),
        description="With `dry_run: true` the answer is 200 with the plan (every value "
        "resolved, nothing executed or stored). 409 when a run of this runbook for this "
        "target is active already.",
    ),
    "api_runbooks.list_runs": Doc(
        "Runs, newest first",
        "Runs",
        tag="runbooks",
        query=(
            {"name": "state", "in": "query", "schema": {"enum": list(api_runbooks.RUN_STATES)}},
            {"name": "incident", "in": "query", "schema": {"type": "integer", "minimum": 1}},
            {"name": "runbook", "in": "query", "schema": {"type": "string"}},
        ),
    ),
    "api_runbooks.get_run": Doc(
        "One run with every attempt of every step (secrets masked)",
        "RunDetail",
        tag="runbooks",
        refusals=(404,),
    ),
    "api_runbooks.decide": Doc(
        "Answer a run that waits for a person (operators)",
        "Run",
        tag="runbooks",
        refusals=(404, 409, 413, 415),
        description="`approved` / `rejected` for a start in `mode: approve` or an approve "
        "step (never by the person who started the run), `done` for a manual step. 409 "
        "when nothing waits, it was answered already, or the step needs the admin role.",
    ),
    "api_runbooks.abort": Doc(
        "Abort a run (operators): at once, or its running step is stopped",
        "Run",
        tag="runbooks",
        refusals=(404, 409),
    ),
    "api_runbooks.resume": Doc(
        "Resume an interrupted run at the step it stopped at (operators)",
        "Run",
        tag="runbooks",
        refusals=(404, 409),
    ),
    "api_runbooks.rollback": Doc(
        "Roll back an interrupted or failed run: its rollback steps run (operators)",
        "Run",
        tag="runbooks",
        refusals=(404, 409),
    ),
    "api_subscribers.list_subscribers": Doc(
        "Status page subscribers, addresses masked (admins)",
        "Subscribers",
        tag="customers",
    ),
    "api_subscribers.export": Doc(
        "Everything kept about one subscriber, the address opened (admins, audited)",
        "SubscriberExport",
        tag="customers",
        refusals=(404, 409),
    ),
    "api_subscribers.erase": Doc(
        "Erase a subscriber and their address for good (admins, audited)",
        "SubscriberErased",
        tag="customers",
        refusals=(404, 409),
    ),
    "api_failover.failover": Doc(
        "Trunk failover groups: each member's health and what Dialwatch wants in the proxy",
        "FailoverGroups",
        tag="failover",
    ),
    "api_failover.approve_route": Doc(
        "Approve putting a member taken out back into the proxy (operators)",
        "FailoverMember",
        tag="failover",
        refusals=(404, 409),
        description="For groups with `failback: approve`: the member goes back once it has "
        "been up for `failback_after` (an approval never puts back a failing trunk). 409 "
        "when the group puts members back by itself, the member is in the proxy, or it "
        "was approved already.",
    ),
    "api_incidents.incident": Doc(
        "One incident: members, timeline (oldest first), customer updates (newest first)",
        "IncidentDetail",
        refusals=(404,),
        description="The timeline holds internal notes: staff only, like every route here.",
    ),
    "api_incidents.acknowledge": Doc(
        "Acknowledge an open incident",
        "Incident",
        refusals=_ACTION,
        description="409 when acknowledged already, naming who acknowledged it first "
        "(`acknowledged_by`, `acknowledged_at`).",
    ),
    "api_incidents.add_note": Doc(
        "Add an internal note (never shown to customers)", "Note", 201, refusals=_ACTION
    ),
    "api_incidents.publish_update": Doc(
        "Publish a customer update (shown on the status page, per language)",
        "PublishedUpdate",
        201,
        refusals=_ACTION,
    ),
    "api_incidents.resolve": Doc("Resolve an open incident by hand", "Incident", refusals=_ACTION),
    "api_incidents.edit": Doc(
        "Set cause, ETA, customer summary or severity",
        "Incident",
        refusals=_ACTION,
        description="Only the fields given change; null clears cause, eta or summary. "
        "An ETA in the past is a 400 with the reason.",
    ),
    "api_incidents.declare": Doc(
        "Declare an incident by hand for targets and/or components",
        "Incident",
        201,
        refusals=_ACTION,
        description="Components expand to their member targets; a target already in an "
        "open incident is a 409.",
    ),
    "api_incidents.silences": Doc(
        "Silences in force now, soonest end first",
        "SilencePage",
        tag="silences",
        query=tuple(_PAGE),
    ),
    "api_incidents.add_silence": Doc(
        "Silence notifications about a target, a component or an open incident",
        "Silence",
        201,
        tag="silences",
        refusals=_ACTION,
    ),
    "api_incidents.lift_silence": Doc(
        "Lift a silence before its end", "Silence", tag="silences", refusals=_ACTION
    ),
    "api_incidents.maintenance": Doc(
        "Maintenance windows started by hand that are open now",
        "MaintenancePage",
        tag="maintenance",
        query=tuple(_PAGE),
        description="Windows from the config (`maintenance:` of a target) are not listed.",
    ),
    "api_incidents.start_maintenance": Doc(
        "Start maintenance now for a target or every target of a component",
        "MaintenanceWindows",
        201,
        tag="maintenance",
        refusals=_ACTION,
        description="A component starts one window per member target, all or none.",
    ),
    "api_incidents.end_maintenance": Doc(
        "End a maintenance window started by hand",
        "MaintenanceWindow",
        tag="maintenance",
        refusals=_ACTION,
    ),
    "push.public_key": Doc(
        "The appliance's VAPID public key, for PushManager.subscribe",
        "PushKey",
        tag="push",
        refusals=(404,),
        description="404 when this appliance has no VAPID key (web push not set up).",
    ),
    "push.subscribe": Doc(
        "Subscribe a browser to web push for the person asking",
        "PushSubscriptionCreated",
        201,
        tag="push",
        refusals=(404, 413, 415),
        description="The body is the browser's PushSubscription.toJSON(). The endpoint's host "
        "must be a push service on the webpush channel's allowed_hosts (400 naming the list "
        "otherwise). Any logged-in user may subscribe their own browsers; the same endpoint "
        "again replaces its row.",
    ),
    "push.unsubscribe": Doc(
        "Unsubscribe a browser of the person asking",
        "PushSubscriptionRemoved",
        tag="push",
        refusals=(404, 413, 415),
        description="404 when the person asking has no subscription at that endpoint.",
    ),
}
"""Every documented route by endpoint."""

_REASONS = {
    200: "done",
    201: "created",
    400: "bad input: the reason names the parameter or field",
    401: "no (valid) session or API token",
    403: "a role too low (the reason names the role needed), a cross-site request, or a "
    "second factor still to set up",
    404: "no such incident, silence, window, target, component, override or push subscription",
    409: "does not fit the current state (resolved already, acknowledged already, over already)",
    413: "the body is too large",
    415: "the body is not application/json",
    422: "the new config has errors",
    501: "not available in this process",
}
_RULE_ARG = re.compile(r"<(?:(?P<conv>[a-z]+)(?:\([^)]*\))?:)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)>")


def _path_of(rule: str) -> tuple[str, list[dict[str, Any]]]:
    """``/incidents/<id:incident_id>`` → ``/incidents/{incident_id}`` and its parameters."""
    parameters = []
    for m in _RULE_ARG.finditer(rule):
        if m.group("conv") == "id":
            schema: dict[str, Any] = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
        else:
            schema = {"type": "string", "minLength": 1}
        parameters.append(
            {"name": m.group("name"), "in": "path", "required": True, "schema": schema}
        )
    return _RULE_ARG.sub(lambda m: "{" + m.group("name") + "}", rule), parameters


def _body_schema(model: type[Body], schemas: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    return _ref(model.__name__)


def _operation(endpoint: str, method: str, doc: Doc, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_") + ("" if method == "get" else f"_{method}"),
        "summary": doc.summary,
        "tags": [doc.tag],
        "responses": {
            str(doc.status): {
                "description": _REASONS[doc.status],
                "content": {JSON: {"schema": _ref(doc.answer)}},
            }
        },
    }
    if doc.description:
        op["description"] = doc.description
    if doc.query:
        op["parameters"] = list(doc.query)
    model = (
        api_incidents.ROUTE_BODIES.get(endpoint)
        or push.ROUTE_BODIES.get(endpoint)
        or api_paging.ROUTE_BODIES.get(endpoint)
        or api_runbooks.ROUTE_BODIES.get(endpoint)
    )
    if model is not None:
        op["requestBody"] = {
            "required": endpoint not in api_incidents.OPTIONAL_BODY,
            "content": {JSON: {"schema": _body_schema(model, schemas)}},
        }
    refusals = () if doc.public else (400, 401, 403)
    for code in sorted({*refusals, *doc.refusals}):
        op["responses"][str(code)] = {"$ref": f"#/components/responses/Refused{code}"}
    if doc.public:
        op["security"] = []
    return op


def document(app: Flask, version: str) -> dict[str, Any]:
    """The OpenAPI document of every documented API route of ``app``."""
    schemas: dict[str, Any] = {name: dict(s) for name, s in RESPONSE_SCHEMAS.items()}
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        doc = DOCS.get(rule.endpoint)
        if doc is None or not (rule.rule.startswith("/api/") or rule.rule == "/healthz"):
            continue
        path, parameters = _path_of(rule.rule)
        item = paths.setdefault(path, {})
        if parameters:
            item["parameters"] = parameters
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            item[method.lower()] = _operation(rule.endpoint, method.lower(), doc, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Dialwatch API",
            "version": version,
            "description": "The appliance's JSON API. Every route but /healthz needs an API "
            "token (`Authorization: Bearer …`, made with `dialwatch token create`) or a login "
            "session; changes need the operator role (reload: admin). See docs/api.md.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                f"Refused{code}": {
                    "description": reason,
                    "content": {JSON: {"schema": _ref("Error")}},
                }
                for code, reason in _REASONS.items()
                if code >= 400
            },
            "securitySchemes": {
                "token": {"type": "http", "scheme": "bearer", "description": "an API token"}
            },
        },
        "security": [{"token": []}],
    }


@bp.get("/openapi.json", endpoint="document")
def document_route() -> tuple[Response, int] | Response:
    try:
        params.reject_unknown(request.args.to_dict(flat=False), ())
    except params.ParamError as exc:
        return json_error(str(exc), 400)
    return jsonify(document(current_app, current_services().version))  # type: ignore[arg-type]
