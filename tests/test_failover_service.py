"""The failover service against a real Kamailio dispatcher: health in (injected, with an
injected clock), the proxy's state out, read back, restored, audited and on the timeline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.clock import ManualClock
from dialwatch.schema import Config
from monitor.health import Health, HealthState
from monitor.incident_actions import Conflict
from monitor.store import queries
from monitor.store.db import open_database
from monitor.store.models import AuditEntry
from monitor.store.repository import NotFound, StateRepository
from runbooks.failover.approvals import approve_failback, member_states
from runbooks.failover.config import FailoverGroupConfig
from runbooks.failover.service import FailoverService
from runbooks.kamailio import CtlDispatcher, KamailioError
from tests.peers.kamailio import Kamailio, kamailio_dispatcher

T0 = 1_800_000_000.0
CT, CU = "sip:127.0.0.1:5081", "sip:127.0.0.1:5082"


class Faults:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str]] = []

    def report(self, source: str, error: Any, **_: Any) -> None:
        self.reports.append((source, str(error)))


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[Kamailio]:
    with kamailio_dispatcher(tmp_path, [(CT, 10), (CU, 5)]) as instance:
        yield instance


def config(proxy: Kamailio, **group: Any) -> Any:
    return Config.model_validate(
        {
            "runbooks": [
                {
                    "id": "pause",
                    "steps": [{"kind": "wait_for", "health": ["up"], "target": "trunk-ct"}],
                },
                {
                    "id": "resume",
                    "steps": [{"kind": "wait_for", "health": ["up"], "target": "trunk-ct"}],
                },
            ],
            "targets": [
                {"id": "trunk-ct", "kind": "tcp", "address": "192.0.2.1:5060"},
                {"id": "trunk-cu", "kind": "tcp", "address": "192.0.2.2:5060"},
            ],
            "failover": [
                {
                    "id": "carriers",
                    "proxy": {"kind": "kamailio", "ctl": f"unix:{proxy.ctl}", "set": 1},
                    "members": [
                        {"target": "trunk-ct", "destination": CT},
                        {"target": "trunk-cu", "destination": CU},
                    ],
                    "failback_after": "5m",
                    **group,
                }
            ],
        }
    )


class World:
    def __init__(self, tmp_path: Path, proxy: Kamailio, **group: Any) -> None:
        self.repo = StateRepository(open_database(None, tmp_path))
        self.clock = ManualClock(T0)
        self.health: dict[str, HealthState] = {}
        self.faults = Faults()
        self.proxy = CtlDispatcher(str(proxy.ctl))
        self.config = config(proxy, **group)
        self.service = FailoverService(
            self.repo, lambda: self.config, self.health.get, clock=self.clock, faults=self.faults
        )

    def set(self, target: str, health: Health, parent: str | None = None) -> None:
        self.health[target] = HealthState(target, health, self.clock.time(), affected_by=parent)

    def advance(self, seconds: float) -> None:
        asyncio.run(self.clock.advance(seconds))

    def round(self) -> None:
        asyncio.run(self.service.round())

    def active(self) -> dict[str, bool]:
        return {d.uri: d.active for d in self.proxy.list()}

    def timeline(self, incident: int) -> list[str]:
        with self.repo.reading() as conn:
            return [e.text for e in queries.incident_events(conn, incident) if e.kind == "failover"]

    def audit(self) -> list[tuple[str, str]]:
        with self.repo.reading() as conn:
            rows = conn.execute(select(AuditEntry.action, AuditEntry.result)).all()
        return [(a, r) for a, r in rows if a.startswith("failover.")]


@pytest.mark.peer
def test_a_dead_primary_is_taken_out_and_put_back_after_stable_recovery(
    tmp_path: Path, proxy: Kamailio
) -> None:
    w = World(tmp_path, proxy)
    w.set("trunk-ct", Health.UP)
    w.set("trunk-cu", Health.UP)
    incident = w.repo.open_incident("trunk-ct", "down", "trunk-ct down", T0)
    w.round()
    assert w.active() == {CT: True, CU: True}

    w.set("trunk-ct", Health.DOWN)
    w.round()
    assert w.active() == {CT: False, CU: True}
    assert [d.flags for d in w.proxy.list()] == ["IX", "AX"]  # no "p": Kamailio cannot undo it
    timeline = w.timeline(incident)
    assert timeline and "trunk-ct taken out of the proxy" in timeline[0]
    assert "calls move to the others" in timeline[0]

    w.advance(60)
    w.set("trunk-ct", Health.UP)
    w.advance(299)
    w.round()
    assert w.active()[CT] is False  # up 299 s: not stable long enough
    w.advance(1)
    w.round()
    assert w.active() == {CT: True, CU: True}
    assert w.audit() == [("failover.disable", "ok"), ("failover.enable", "ok")]


@pytest.mark.peer
def test_a_restart_remembers_what_it_took_out(tmp_path: Path, proxy: Kamailio) -> None:
    w = World(tmp_path, proxy)
    w.set("trunk-ct", Health.DOWN)
    w.set("trunk-cu", Health.UP)
    w.round()
    assert w.active()[CT] is False
    # A new service over the same DB (the appliance restarted); the trunk is back up.
    again = FailoverService(w.repo, lambda: w.config, w.health.get, clock=w.clock)
    w.set("trunk-ct", Health.UP)
    asyncio.run(again.round())
    assert w.active()[CT] is False  # failback still waits for stable recovery
    w.advance(300)
    asyncio.run(again.round())
    assert w.active()[CT] is True


@pytest.mark.peer
@pytest.mark.parametrize(
    ("ct", "cu", "parent", "note"),
    [
        (Health.DOWN, Health.DOWN, None, "every member is down"),
        (Health.DOWN, Health.UP, "uplink", "trunk-ct is down because uplink is"),
    ],
    ids=["every-member-down", "parent-down"],
)
def test_nothing_is_taken_out_when_it_must_not_be(
    tmp_path: Path, proxy: Kamailio, ct: Health, cu: Health, parent: str | None, note: str
) -> None:
    w = World(tmp_path, proxy)
    w.set("trunk-ct", ct, parent)
    w.set("trunk-cu", cu)
    incident = w.repo.open_incident("trunk-ct", "down", "trunk-ct down", T0)
    w.round()
    w.round()
    assert w.active() == {CT: True, CU: True}
    lines = w.timeline(incident)
    assert len([line for line in lines if note in line]) == 1  # said once, not every round
    assert w.audit() == []


@pytest.mark.peer
def test_failback_waits_for_approval_when_the_group_asks(tmp_path: Path, proxy: Kamailio) -> None:
    w = World(tmp_path, proxy, failback="approve")
    w.set("trunk-ct", Health.DOWN)
    w.set("trunk-cu", Health.UP)
    incident = w.repo.open_incident("trunk-ct", "down", "trunk-ct down", T0)
    w.round()
    [group] = w.config.failover
    # Approved while still down: the approval waits for stable recovery, it does not force.
    approve_failback(w.repo, "li", group, "trunk-ct", at=w.clock.time())
    w.round()
    assert w.active()[CT] is False
    with pytest.raises(Conflict, match="approved already by li"):
        approve_failback(w.repo, "zhang", group, "trunk-ct", at=w.clock.time())
    w.set("trunk-ct", Health.UP)
    w.advance(299)
    w.round()
    assert w.active()[CT] is False
    w.advance(1)
    w.round()
    assert w.active()[CT] is True
    lines = w.timeline(incident)
    assert any("li approved putting trunk-ct back" in line for line in lines)
    with pytest.raises(Conflict, match="in the proxy already"):
        approve_failback(w.repo, "li", group, "trunk-ct", at=w.clock.time())


@pytest.mark.peer
def test_without_approval_a_stable_member_waits_and_the_timeline_says_so(
    tmp_path: Path, proxy: Kamailio
) -> None:
    w = World(tmp_path, proxy, failback="approve")
    w.set("trunk-ct", Health.DOWN)
    w.set("trunk-cu", Health.UP)
    incident = w.repo.open_incident("trunk-ct", "down", "trunk-ct down", T0)
    w.round()
    w.set("trunk-ct", Health.UP)
    w.advance(3600)
    w.round()
    w.round()
    assert w.active()[CT] is False
    waiting = [line for line in w.timeline(incident) if "waits for a person to approve" in line]
    assert len(waiting) == 1
    [state] = [
        s for s in member_states(w.repo.engine, w.config.failover[0]) if s.wanted != "active"
    ]
    assert state.target == "trunk-ct" and state.approved_by is None


def test_approval_is_refused_where_it_has_no_meaning(tmp_path: Path) -> None:
    repo = StateRepository(open_database(None, tmp_path))
    auto = FailoverGroupConfig.model_validate(
        {"id": "g", "proxy": {"kind": "kamailio", "ctl": "unix:/run/k.sock", "set": 1},
         "members": [{"target": "a", "destination": "sip:192.0.2.1"},
                     {"target": "b", "destination": "sip:192.0.2.2"}]}
    )  # fmt: skip
    with pytest.raises(Conflict, match="puts members back by itself"):
        approve_failback(repo, "li", auto, "a", at=T0)
    with pytest.raises(NotFound, match="'c' is not a member"):
        approve_failback(repo, "li", auto, "c", at=T0)
    manual = auto.model_copy(update={"failback": "approve"})
    with pytest.raises(Conflict, match="in the proxy already"):
        approve_failback(repo, "li", manual, "a", at=T0)


@pytest.mark.peer
def test_a_proxy_that_forgot_the_state_gets_it_again(tmp_path: Path, proxy: Kamailio) -> None:
    w = World(tmp_path, proxy, verify_every="2m")
    w.set("trunk-ct", Health.DOWN)
    w.set("trunk-cu", Health.UP)
    w.round()
    w.proxy.set_state("a", 1, CT)  # as a Kamailio restart would: the state is gone
    w.advance(30)
    w.round()
    assert w.active()[CT] is True  # not yet verified again
    w.advance(120)
    w.round()
    assert w.active()[CT] is False
    assert ("failover.restore", "ok") in w.audit()


@pytest.mark.peer
def test_an_unreachable_proxy_is_a_failed_attempt_and_the_round_goes_on(
    tmp_path: Path, proxy: Kamailio
) -> None:
    w = World(tmp_path, proxy)
    w.config = config(proxy)
    broken = w.config.failover[0].proxy.model_copy(update={"ctl": f"unix:{tmp_path}/gone.ctl"})
    w.service.dispatcher_for = lambda _p: CtlDispatcher(broken.ctl or "", timeout=2)
    w.set("trunk-ct", Health.DOWN)
    w.set("trunk-cu", Health.UP)
    w.round()
    assert w.audit() == [("failover.disable", "failed")]
    assert any("could not take out trunk-ct" in e for _s, e in w.faults.reports)
    with pytest.raises(KamailioError):
        CtlDispatcher(broken.ctl or "", timeout=2).list()


def test_the_docs_example_loads(tmp_path: Path) -> None:
    from monitor.config import load_config
    from tests.test_config_reference import yaml_blocks

    docs = Path(__file__).resolve().parent.parent / "docs" / "failover.md"
    [block] = yaml_blocks(docs.read_text(encoding="utf-8"))
    path = tmp_path / "dialwatch.yaml"
    path.write_text(block, encoding="utf-8")
    [group] = load_config(path, env={}, schema=Config).config.failover  # type: ignore[attr-defined]
    assert (group.id, group.failback_after, group.min_active) == ("carriers-sz", 300.0, 1)


@pytest.mark.peer
def test_every_member_down_pauses_the_campaigns_and_one_back_resumes_them(
    tmp_path: Path, proxy: Kamailio
) -> None:
    from runbooks import runs

    w = World(tmp_path, proxy, when_all_down="pause", when_back={"runbook": "resume"})
    woken: list[int] = []
    w.service.wake_runbooks = lambda: woken.append(1)
    incident = w.repo.open_incident("trunk-ct", "down", "trunk-ct down", T0)
    w.set("trunk-ct", Health.DOWN)
    w.set("trunk-cu", Health.UP)
    w.round()
    w.set("trunk-cu", Health.DOWN)
    w.round()
    w.round()  # still every member down: started once

    def started() -> list[tuple[str, str, int | None]]:
        with w.repo.reading() as conn:
            return [(r.runbook_id, r.started_by, r.incident_id)
                    for r in sorted(runs.runs(conn), key=lambda r: r.id)]  # fmt: skip

    assert started() == [("pause", "failover:carriers", incident)]
    w.set("trunk-cu", Health.UP)
    w.round()
    assert started() == [("pause", "failover:carriers", incident),
                         ("resume", "failover:carriers", incident)]  # fmt: skip
    assert len(woken) == 2
    assert any("every member is down: started pause" in line for line in w.timeline(incident))
