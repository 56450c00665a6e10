"""What a person sees and says about a failover group: its members' wanted state, and
the approval that lets a member taken out take calls again (``failback: approve``).

The web calls these through ``web.actions.perform`` (audited as the person
asking, refusals too); the ``FailoverService`` reads the approval at its next
round and puts the member back once it is up and has been for ``failback_after``
— an approval never puts back a trunk that is still failing. The approval is
kept on the member's row until it is back, so a restart keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update

from monitor.incident_actions import Conflict
from monitor.store import queries
from monitor.store.models import FailoverMember
from monitor.store.repository import NotFound, StateRepository
from runbooks.failover.config import FailoverGroupConfig

_MEMBER = FailoverMember.__table__


@dataclass(frozen=True)
class MemberState:
    """One member as configured and as Dialwatch wants it in the proxy."""

    target: str
    destination: str
    wanted: str
    """``active`` or ``inactive``."""
    changed_at: float | None
    reason: str
    approved_by: str | None
    approved_at: float | None


def member_states(db: queries.StateDB, group: FailoverGroupConfig) -> list[MemberState]:
    """Each member of ``group`` in config order; no row means active as configured."""
    rows = queries.failover_members(db, group.id)
    states = []
    for member in group.members:
        row = rows.get((group.id, member.target))
        states.append(
            MemberState(
                member.target,
                member.destination,
                row.wanted if row is not None else "active",
                row.changed_at if row is not None else None,
                row.reason if row is not None else "",
                row.approved_by if row is not None else None,
                row.approved_at if row is not None else None,
            )
        )
    return states


def find_group(groups: list[FailoverGroupConfig], group_id: str) -> FailoverGroupConfig:
    for group in groups:
        if group.id == group_id:
            return group
    raise NotFound(f"no failover group {group_id!r} in the config")


def approve_failback(
    repo: StateRepository, actor: str, group: FailoverGroupConfig, target: str, *, at: float
) -> MemberState:
    """Approve putting ``target`` back into ``group``'s proxy once it is up and stable.

    Refused (``Conflict``, a 409) when the group puts members back by itself, when
    the member is not taken out, or when it is approved already; ``NotFound`` when
    the target is not a member.
    """
    if not any(m.target == target for m in group.members):
        raise NotFound(f"{target!r} is not a member of failover group {group.id!r}")
    if group.failback != "approve":
        raise Conflict(
            f"failover group {group.id!r} puts members back by itself (failback: "
            f"{group.failback}); there is nothing to approve"
        )
    with repo.transaction() as conn:
        [state] = [s for s in member_states(conn, group) if s.target == target]
        if state.wanted != "inactive":
            raise Conflict(f"{target} is in the proxy already: there is nothing to approve")
        if state.approved_at is not None:
            raise Conflict(f"putting {target} back was approved already by {state.approved_by}")
        conn.execute(
            update(_MEMBER)
            .where((_MEMBER.c.group_id == group.id) & (_MEMBER.c.target_id == target))
            .values(approved_by=actor, approved_at=at)
        )
        line = (
            f"failover {group.id}: {actor} approved putting {target} back into the proxy "
            f"once it has been up for failback_after"
        )
        for incident in queries.open_incidents(conn):
            if target in incident.member_ids:
                repo.add_incident_event(incident.id, "failover", at, target, line)
    return MemberState(
        state.target, state.destination, state.wanted, state.changed_at, state.reason, actor, at
    )
