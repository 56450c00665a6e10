"""On-call overrides as the web makes them: shared by the API and the ``/oncall`` page.

``add_override`` reads the body (times in ISO 8601 by ``web.params.instant``,
without an offset in the site timezone), checks the schedule and person
against the running config and runs ``notify.overrides.add_override``
through ``web.actions.perform``: as the person asking, on the appliance's
clock, audited when done and when refused. ``remove_override`` the same.
"""

from __future__ import annotations

from typing import Annotated, Any
from zoneinfo import ZoneInfo

from pydantic import Field, StringConstraints

from core.config import TargetId
from monitor.store.repository import StateRepository
from notify import overrides
from notify.roster import roster_of
from web import params
from web.actions import perform
from web.bodies import PLAIN, Body, BodyError
from web.i18n import iso, valid_timezone
from web.views import current_services

_INSTANT = Annotated[
    str,
    StringConstraints(max_length=params.MAX_INSTANT),
    Field(json_schema_extra={"pattern": params.INSTANT_PATTERN}),
]


class OverrideBody(Body):
    """Put a person on call for a schedule for a while ("Li covers Zhang on Friday")."""

    schedule: TargetId
    person: TargetId
    from_: _INSTANT = Field(alias="from")
    """ISO 8601; without an offset in the site timezone."""
    to: _INSTANT
    reason: Annotated[str, StringConstraints(max_length=overrides.MAX_REASON), *PLAIN] = ""


def _when(value: str, name: str) -> float:
    tz = ZoneInfo(valid_timezone(current_services().config().site.timezone))
    try:
        found = params.instant({name: [value]}, name, tz)
    except params.ParamError as exc:
        raise BodyError(str(exc)) from None
    assert found is not None
    return found


def override_json(row: overrides.OverrideRow, now: float) -> dict[str, Any]:
    return {
        "id": row.id,
        "schedule": row.schedule_id,
        "person": row.person_id,
        "from": iso(row.starts_at),
        "to": iso(row.ends_at),
        "created_by": row.created_by,
        "created_at": iso(row.created_at),
        "reason": row.reason,
        "active": row.active(now),
    }


def add_override(body: OverrideBody) -> overrides.OverrideRow:
    """Make the override; ``ActionRefused`` (audited) or ``BodyError`` when refused."""
    starts, ends = _when(body.from_, "from"), _when(body.to, "to")
    roster = roster_of(current_services().config())

    def add(repo: StateRepository, actor: str, *, at: float) -> overrides.OverrideRow:
        return overrides.add_override(
            repo,
            actor,
            body.schedule,
            body.person,
            starts,
            ends,
            body.reason,
            schedules=roster.schedules.keys(),
            people=roster.people.keys(),
            at=at,
        )

    after = {
        "schedule": body.schedule,
        "person": body.person,
        "from": iso(starts),
        "to": iso(ends),
        "reason": body.reason,
    }
    return perform("oncall.override.add", f"schedule:{body.schedule}", add, after=after)


def remove_override(override_id: int) -> overrides.OverrideRow:
    return perform(
        "oncall.override.remove",
        f"override:{override_id}",
        overrides.remove_override,
        override_id,
    )


def listed(now: float) -> list[overrides.OverrideRow]:
    with current_services().db.connect() as conn:
        return overrides.current_and_future(conn, now)
