"""Paging: incident events and the clock in, pages and deliveries in the outbox out.

A real state DB (SQLite and PostgreSQL), the monitor's own incident
functions for acknowledge and resolve, a config loaded through the
appliance's schema; time is passed in (no clock is read).
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from dialwatch.schema import Config as ApplianceConfig
from monitor import incident_actions
from monitor.config import load_config
from monitor.events import Event, EventKind, NewEvent, record
from monitor.store.models import Delivery, Page, TargetState
from monitor.store.repository import StateRepository
from notify.paging import Paging
from notify.roster import roster_of
from notify.schedules import on_call_at

T0 = 1_800_000_000.0
CONFIG = """\
targets:
  - {id: trunk-a, kind: tcp, address: "192.0.2.1:5060", tags: {role: trunk}}
  - {id: web, kind: tcp, address: "192.0.2.2:80"}
channels:
  - {id: hook, kind: webhook, url: "https://hooks.example.cn/x", secret: "0123456789abcdef0123"}
  - {id: hook2, kind: webhook, url: "https://hooks2.example.cn/x", secret: "0123456789abcdef0123"}
people:
  - {id: zhang, user: zhang, name: 张伟, contact: [hook, hook2]}
  - {id: li, user: li, name: 李娜, contact: [hook]}
  - {id: chen, user: chen, name: 陈刚, contact: [hook2]}
schedules:
  - {id: noc, timezone: Asia/Shanghai, rotation: {every: 1w, handoff: "mon 09:00", members: [zhang, li]}}
escalations:
  - id: trunks
    levels:
      - {notify: [schedule:noc]}
      - {after: 5m, notify: [person:chen]}
rules:
  - {id: trunk-down, when: {event: opened, tags: {role: trunk}, for: 30s}, escalate: trunks}
"""


@pytest.fixture
def world(db: Engine, tmp_path: Path) -> Any:
    path = tmp_path / "dialwatch.yaml"
    path.write_text(textwrap.dedent(CONFIG), encoding="utf-8")
    config = load_config(path, env={}, schema=ApplianceConfig).config
    roster = roster_of(config)
    woken: list[int] = []
    repo = StateRepository(db)
    paging = Paging(lambda: roster, on_delivery=lambda: woken.append(1))
    on_call = on_call_at(roster.schedules["noc"], T0 + 30)
    return repo, paging, woken, on_call


def down(repo: StateRepository, target: str, since: float) -> None:
    with repo.transaction() as conn:
        row = conn.execute(select(TargetState).where(TargetState.target_id == target)).first()
        if row is None:
            conn.execute(
                insert(TargetState).values(target_id=target, kind="tcp", health="down", since=since)
            )
        else:
            conn.execute(
                update(TargetState)
                .where(TargetState.target_id == target)
                .values(health="down", since=since)
            )


def up(repo: StateRepository, target: str, since: float) -> None:
    with repo.transaction() as conn:
        conn.execute(
            update(TargetState)
            .where(TargetState.target_id == target)
            .values(health="up", since=since)
        )


def opened(repo: StateRepository, target: str, at: float) -> Event:
    down(repo, target, at)
    with repo.transaction():
        incident_id = repo.open_incident(target, "down", f"{target} down", at)
        return record(
            repo, NewEvent(EventKind.OPENED, at, target_id=target, incident_id=incident_id)
        )


def deliveries(repo: StateRepository) -> list[tuple[str, str, list[Any]]]:
    with repo.reading() as conn:
        rows = conn.execute(select(Delivery).order_by(Delivery.id))
        return [(r.person_id, r.kind, [n["kind"] for n in r.notices]) for r in rows]


def pages(repo: StateRepository) -> list[str]:
    with repo.reading() as conn:
        return [r.state for r in conn.execute(select(Page).order_by(Page.id))]


def test_a_page_waits_out_for_then_escalates_until_acknowledged_then_tells_everyone(
    world: Any,
) -> None:
    repo, paging, woken, on_call = world
    event = opened(repo, "trunk-a", T0)
    paging.handle(repo, event)
    assert pages(repo) == ["armed"] and deliveries(repo) == []
    assert paging.tick(repo, T0 + 29) == 0
    assert paging.tick(repo, T0 + 30) == 1
    assert deliveries(repo) == [(on_call, "opened", ["opened"])]
    assert woken  # the tick commits itself, then wakes the sender
    assert paging.tick(repo, T0 + 30 + 299) == 0
    assert paging.tick(repo, T0 + 30 + 300) == 1
    assert deliveries(repo)[1] == ("chen", "escalated", ["escalated"])
    ack = incident_actions.acknowledge(repo, "user:chen", event.incident_id, at=T0 + 400)
    paging.handle(repo, ack)
    assert pages(repo) == ["acknowledged"]
    # chen acknowledged: only the other person paged hears of it (grouped into nothing older:
    # the earlier deliveries are unsent but grouping joins only untried ones of the same person).
    told = [d for d in deliveries(repo) if "acknowledged" in d[2]]
    assert [d[0] for d in told] == [on_call]
    assert paging.tick(repo, T0 + 10_000) == 0  # an acknowledged page escalates no further
    done = incident_actions.resolve(repo, "user:chen", event.incident_id, at=T0 + 500)
    paging.handle(repo, done)
    assert pages(repo) == ["ended"]
    resolved = {d[0] for d in deliveries(repo) if "resolved" in d[2]}
    assert resolved == {on_call, "chen"}


def test_a_blip_shorter_than_for_pages_nobody(world: Any) -> None:
    repo, paging, _, _ = world
    paging.handle(repo, opened(repo, "trunk-a", T0))
    up(repo, "trunk-a", T0 + 10)
    down(repo, "trunk-a", T0 + 20)  # down again: a new hold, not the one that was armed
    assert paging.tick(repo, T0 + 30) == 0
    assert pages(repo) == ["ended"] and deliveries(repo) == []


def test_a_target_no_rule_selects_pages_nobody(world: Any) -> None:
    repo, paging, _, _ = world
    paging.handle(repo, opened(repo, "web", T0))
    assert paging.tick(repo, T0 + 3600) == 0
    assert pages(repo) == [] and deliveries(repo) == []


def test_a_silence_holds_paging_back_until_it_ends(world: Any) -> None:
    repo, paging, _, on_call = world
    event = opened(repo, "trunk-a", T0)
    incident_actions.silence(repo, "user:li", target_id="trunk-a", duration=600, at=T0)
    paging.handle(repo, event)
    assert paging.tick(repo, T0 + 30) == 0
    assert pages(repo) == ["paging"] and deliveries(repo) == []
    assert paging.tick(repo, T0 + 599) == 0
    # The silence is over: the first level goes out, and the second comes 5 minutes after
    # paging began (its clock ran during the silence).
    assert paging.tick(repo, T0 + 600) == 2
    assert [d[0] for d in deliveries(repo)] == [on_call, "chen"]


def test_a_merged_incident_ends_its_pages_without_an_all_clear(world: Any) -> None:
    repo, paging, _, _ = world
    event = opened(repo, "trunk-a", T0)
    paging.handle(repo, event)
    paging.tick(repo, T0 + 30)
    with repo.transaction():
        merged = record(
            repo,
            NewEvent(
                EventKind.MERGED, T0 + 40, incident_id=event.incident_id, payload={"into": 99}
            ),
        )
    paging.handle(repo, merged)
    assert pages(repo) == ["ended"]
    assert not [d for d in deliveries(repo) if "resolved" in d[2]]
