"""web.actions.perform: a monitor action as the person asking, audited either way."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from monitor import incident_actions
from monitor.store.models import AuditEntry
from tests.test_web_support import STAFF, add_incident, add_targets, make_world, standard_rows
from web import guard
from web.actions import ActionRefused, perform


def audit_rows(world) -> list[tuple[str, str, str, str, str]]:  # noqa: ANN001
    with world.db.connect() as conn:
        rows = conn.execute(
            select(AuditEntry).where(AuditEntry.actor != "test").order_by(AuditEntry.id)
        ).all()
    return [(r.actor, r.action, r.object, r.result, r.detail) for r in rows]


@pytest.mark.parametrize(("second", "status"), [(True, 409), (False, 404)])
def test_an_action_is_audited_when_done_and_when_refused(
    tmp_path, second: bool, status: int
) -> None:
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    incident = add_incident(w.db, ["trunk-a"])
    target = incident if second else incident + 100
    headers = {"Authorization": f"Bearer {w.tokens['operator']}"}
    with w.app.test_request_context(
        "/api/v1/targets", headers=headers, environ_overrides={"REMOTE_ADDR": "192.0.2.5"}
    ):
        assert guard.guard_request() is None  # let through: an operator may read
        current = guard.who()
        assert current is not None and current.user == STAFF["operator"]
        if second:
            perform("incident.ack", f"incident:{incident}", incident_actions.acknowledge, incident)
        with pytest.raises(ActionRefused) as refused:
            perform("incident.ack", f"incident:{target}", incident_actions.acknowledge, target)
    assert refused.value.status == status
    rows = audit_rows(w)
    assert rows[-1][1:4] == ("incident.ack", f"incident:{target}", "failed")
    assert refused.value.reason in rows[-1][4]
    if second:
        assert rows[0][:4] == (current.actor, "incident.ack", f"incident:{incident}", "ok")
        assert "acknowledged already by" in refused.value.reason
