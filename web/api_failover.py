"""The failover API: each trunk failover group's members, and the approval of a failback.

- ``GET /api/v1/failover``: per group (``failover:`` in the config), its proxy
  (kind, set; never credentials), its rules, and each member: the target,
  its destination, its health, what Dialwatch wants in the proxy (``active``
  / ``inactive``), since when and why, and an approval waiting to apply.
- ``POST /api/v1/failover/<group>/<target>/approve`` (operators): approve
  putting a member that was taken out back into the proxy
  (``failback: approve``); it goes back once it has been up for
  ``failback_after``. Audited as ``failover.approve``; 409 when the group
  puts members back by itself, the member is in the proxy, or it was
  approved already; 404 for an unknown group or member.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from monitor.store import queries
from runbooks.failover.approvals import MemberState, approve_failback, find_group, member_states
from runbooks.failover.config import FailoverGroupConfig
from web import guard, params
from web.actions import ActionRefused, perform
from web.i18n import iso
from web.views import current_services, json_error

bp = Blueprint("api_failover", __name__, url_prefix="/api/v1")


@bp.errorhandler(params.ParamError)
def _bad_param(exc: params.ParamError) -> tuple[Response, int]:
    return json_error(str(exc), 400)


@bp.errorhandler(ActionRefused)
def _refused(exc: ActionRefused) -> tuple[Response, int]:
    return json_error(exc.reason, exc.status)


def groups() -> list[FailoverGroupConfig]:
    return list(getattr(current_services().config(), "failover", []))


def _member(state: MemberState, health: str) -> dict[str, Any]:
    return {
        "target": state.target,
        "destination": state.destination,
        "health": health,
        "wanted": state.wanted,
        "changed_at": iso(state.changed_at) if state.changed_at is not None else None,
        "reason": state.reason or None,
        "approved_by": state.approved_by,
        "approved_at": iso(state.approved_at) if state.approved_at is not None else None,
    }


def group_json(conn: Any, group: FailoverGroupConfig) -> dict[str, Any]:
    states = member_states(conn, group)
    health = queries.health_of(conn, [s.target for s in states])
    return {
        "id": group.id,
        "name": group.name or group.id,
        "proxy": {
            "kind": group.proxy.kind,
            "via": "ctl" if group.proxy.ctl is not None else "rpc",
            "set": group.proxy.set,
        },
        "failback": group.failback,
        "failback_after": group.failback_after,
        "min_active": group.min_active,
        "members": [
            _member(s, health[s.target].value if s.target in health else "unknown") for s in states
        ],
    }


@bp.get("/failover")
def failover() -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    with current_services().db.connect() as conn:
        return jsonify(items=[group_json(conn, g) for g in groups()])


def approve(group_id: str, target_id: str) -> MemberState:
    """The audited approval (the API and the console page call this); an unknown group
    is a refusal in the audit log too."""

    def approve_in(repo: Any, actor: str, *, at: float) -> MemberState:
        return approve_failback(repo, actor, find_group(groups(), group_id), target_id, at=at)

    return perform("failover.approve", f"failover:{group_id}/{target_id}", approve_in)


@bp.post("/failover/<group_id>/<target_id>/approve")
@guard.require("operator")
def approve_route(group_id: str, target_id: str) -> Response:
    params.reject_unknown(request.args.to_dict(flat=False), ())
    state = approve(group_id, target_id)
    with current_services().db.connect() as conn:
        health = queries.health_of(conn, [target_id])
    return jsonify(_member(state, health[target_id].value if target_id in health else "unknown"))
