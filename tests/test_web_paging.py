"""The paging API and the acknowledge-link pages against the real app and a real outbox.

The web app runs with the paging service of the appliance (``notify.service``)
over its state DB, a config of the appliance's schema with a webhook channel
pointing at a local receiver, and people; time comes from the services' clock.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core.clock import ManualClock
from core.secret_box import SecretBox
from dialwatch.schema import Config as ApplianceConfig
from monitor.store import queries
from monitor.store.models import AuditEntry, OncallOverride
from monitor.store.repository import StateRepository
from notify import ack_links, outbox
from notify.outbox import Notice
from notify.service import Notifications
from tests.peers.webhook import Receiver, webhook_receiver
from tests.test_web_access import csrf_of
from tests.test_web_support import BASE_CONFIG, World, add_incident, make_world

SECRET = "0123456789abcdef0123456789"
NOW = 1_800_000_000.0


@pytest.fixture
def hook() -> Any:
    with webhook_receiver(SECRET) as receiver:
        yield receiver


@pytest.fixture
def world(tmp_path: Path, hook: Receiver) -> tuple[World, Notifications]:
    config = ApplianceConfig.model_validate(
        {
            **BASE_CONFIG,
            "channels": [
                {"id": "hook", "kind": "webhook", "url": hook.url(), "secret": SECRET,
                 "allow_private": True},
                {"id": "dead", "kind": "webhook", "url": hook.url("/status/503"),
                 "secret": SECRET, "allow_private": True},
            ],
            "people": [{"id": "zhang", "user": "zhang", "name": "张伟", "contact": ["hook"]}],
            "schedules": [
                {"id": "noc", "timezone": "Asia/Shanghai",
                 "rotation": {"every": "1d", "handoff": "09:00", "members": ["zhang"]}},
            ],
        }
    )  # fmt: skip
    w = make_world(tmp_path, config=config, clock=lambda: NOW)
    box = SecretBox.from_file(tmp_path / "keys" / "appliance.key")
    service = Notifications(
        StateRepository(w.db),
        box,
        lambda: config,
        clock=ManualClock(NOW),
        faults=w.app.extensions["dialwatch"].faults,
        listen=("127.0.0.1", 8080),
    )
    w.app.extensions["dialwatch"] = dataclasses.replace(
        w.app.extensions["dialwatch"], notifications=service
    )
    return w, service


def test_on_call_now_and_next_with_an_override(world: tuple[World, Notifications]) -> None:
    w, _ = world
    with w.db.begin() as conn:
        conn.execute(
            OncallOverride.__table__.insert().values(
                schedule_id="noc", person_id="li", starts_at=NOW - 60, ends_at=NOW + 3600,
                created_by="user:root-admin", created_at=NOW - 60, reason="",
            )
        )  # fmt: skip
    r = w.client("viewer").get("/api/v1/oncall")
    assert r.status_code == 200
    [noc] = r.get_json()["items"]
    assert noc["schedule"] == "noc"
    assert noc["now"]["person"] == "li"  # the override covers now
    assert noc["next"]["person"] == "zhang"
    assert w.client("viewer").get("/api/v1/oncall?x=1").status_code == 400


def test_deliveries_of_an_incident_with_every_attempt(world: tuple[World, Notifications]) -> None:
    w, service = world
    incident = add_incident(w.db, ["trunk-a"], title="Carrier A down")
    with service.repo.transaction() as conn:
        did = outbox.add(
            conn, "zhang", [Notice("opened", incident, level=1)], ["dead", "hook"], NOW
        )
        [row] = outbox.due(conn, NOW, 5)
        attempt = outbox.begin_attempt(conn, row, NOW, ("s", "t", None, "zh-CN"))
        outbox.attempt_failed(
            conn, did, attempt, NOW + 1, reason="HTTP 503", permanent=False, error_class="response",
            answer="", then=("pending", 1, 0, NOW + 1),
        )  # fmt: skip
    r = w.client("viewer").get(f"/api/v1/deliveries?incident={incident}")
    assert r.status_code == 200
    [d] = r.get_json()["items"]
    assert (d["person"], d["state"], d["channel"]) == ("zhang", "pending", "hook")
    assert [(a["channel"], a["outcome"], a["reason"]) for a in d["attempts"]] == [
        ("dead", "failed", "HTTP 503")
    ]
    assert w.client("viewer").get("/api/v1/deliveries?incident=x").status_code == 400
    assert w.client("viewer").get("/api/v1/deliveries?incident=999").get_json() == {"items": []}


def test_a_test_message_is_sent_by_an_operator_answered_and_audited(
    world: tuple[World, Notifications], hook: Receiver
) -> None:
    w, _ = world
    r = w.client("operator").post("/api/v1/channels/hook/test", json={"person": "zhang"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["sent"] is True
    [got] = hook.requests
    assert got.signed and "测试通知" in got.body.decode()
    bad = w.client("operator").post("/api/v1/channels/dead/test", json={})
    assert bad.status_code == 200 and bad.get_json()["sent"] is False
    assert "503" in bad.get_json()["reason"]
    assert w.client("operator").post("/api/v1/channels/nope/test", json={}).status_code == 404
    assert (
        w.client("operator").post("/api/v1/channels/hook/test", json={"person": "x"}).status_code
        == 404
    )
    assert w.client("operator").post("/api/v1/channels/hook/test", json=[1]).status_code == 400
    assert w.client("viewer").post("/api/v1/channels/hook/test", json={}).status_code == 403
    with w.db.connect() as conn:
        entries = list(conn.execute(select(AuditEntry).where(AuditEntry.action == "channel.test")))
    assert [(e.object, e.result) for e in entries] == [
        ("channel:hook", "ok"),
        ("channel:dead", "failed"),
    ]


def test_channel_health(world: tuple[World, Notifications]) -> None:
    w, _ = world
    items = {c["id"]: c for c in w.client("viewer").get("/api/v1/channels").get_json()["items"]}
    assert items["hook"]["health"] == "unknown" and items["hook"]["kind"] == "webhook"


def link(service: Notifications, incident: int, person: str = "zhang", at: float = NOW) -> str:
    return "/ack/" + ack_links.sign(service.ack_key, incident, person, at)


def test_the_link_shows_a_confirm_page_and_only_the_post_acknowledges(
    world: tuple[World, Notifications],
) -> None:
    w, service = world
    incident = add_incident(w.db, ["trunk-a"], title="Carrier A <b>down</b>")
    path = link(service, incident)
    client: FlaskClient = w.anonymous()
    page = client.get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Carrier A &lt;b&gt;down&lt;/b&gt;" in html  # escaped
    assert queries.incident(w.db, incident).acknowledged_at is None  # type: ignore[union-attr]
    # A POST without the page's CSRF token is refused.
    assert client.post(path).status_code in (400, 403)
    done = client.post(path, data={"csrf_token": csrf_of(client, path)})
    assert done.status_code == 200
    row = queries.incident(w.db, incident)
    assert row is not None and row.acknowledged_by == "user:zhang"
    # Acknowledged: the page offers no form any more; a replayed POST is a 409.
    assert "csrf_token" not in client.get(path).get_data(as_text=True)
    again = client.post(path, data={"csrf_token": csrf_of(client, "/login")})
    assert again.status_code == 409
    with w.db.connect() as conn:
        [entry] = list(
            conn.execute(select(AuditEntry).where(AuditEntry.action == "incident.acknowledge"))
        )
    assert entry.actor == "user:zhang" and "acknowledge link" in entry.detail


@pytest.mark.parametrize(
    ("mangle", "words"),
    [
        pytest.param(lambda p: p.replace("/ack/", "/ack/9"), "altered", id="moved"),
        pytest.param(lambda p: "/ack/not-a-token", "not an acknowledge link", id="garbage"),
    ],
)
def test_a_bad_link_is_a_400_with_a_reason(
    world: tuple[World, Notifications], mangle: Any, words: str
) -> None:
    w, service = world
    incident = add_incident(w.db, ["trunk-a"], title="x")
    r = w.anonymous().get(mangle(link(service, incident)) + "?lang=en")
    assert r.status_code == 400
    assert words in r.get_data(as_text=True)


def test_an_expired_link_says_so(world: tuple[World, Notifications]) -> None:
    w, service = world
    incident = add_incident(w.db, ["trunk-a"], title="x")
    r = w.anonymous().get(link(service, incident, at=NOW - 2 * 86400) + "?lang=en")
    assert r.status_code == 400 and "expired" in r.get_data(as_text=True)
    assert re.search(r"csrf_token", r.get_data(as_text=True)) is None  # no form to submit


def test_the_incident_page_lists_its_notifications_with_each_attempt(
    world: tuple[World, Notifications],
) -> None:
    w, service = world
    incident = add_incident(w.db, ["trunk-a"], title="x")
    with service.repo.transaction() as conn:
        did = outbox.add(
            conn, "zhang", [Notice("opened", incident, level=1)], ["dead", "hook"], NOW
        )
        [row] = outbox.due(conn, NOW, 5)
        attempt = outbox.begin_attempt(conn, row, NOW, ("s", "t", None, "zh-CN"))
        outbox.attempt_failed(
            conn, did, attempt, NOW + 1, reason="HTTP 503 <script>", permanent=False,
            error_class="response", answer="", then=("pending", 1, 0, NOW + 1),
        )  # fmt: skip
    html = w.client("viewer").get(f"/incidents/{incident}?lang=en").get_data(as_text=True)
    section = html[html.index('id="deliveries"') :]
    assert "zhang" in section and "Waiting" in section
    assert "dead</span> Failed: HTTP 503 &lt;script&gt;" in section
    empty = add_incident(w.db, ["trunk-a"], title="y")
    page = w.client("viewer").get(f"/incidents/{empty}?lang=en").get_data(as_text=True)
    assert "Nobody has been paged about this incident." in page


def test_the_oncall_page_lists_channels_and_an_operator_sends_a_test_from_it(
    world: tuple[World, Notifications], hook: Receiver
) -> None:
    from tests.test_web_access import login
    from tests.test_web_support import STAFF

    w, _ = world
    viewer = w.anonymous()
    assert login(viewer, STAFF["viewer"]).status_code == 302
    page = viewer.get("/oncall?lang=en").get_data(as_text=True)
    assert 'id="channel-rows"' in page and "Not used yet" in page
    assert "Send test" not in page  # viewers see the channels, not the button
    operator = w.anonymous()
    assert login(operator, STAFF["operator"]).status_code == 302
    token = csrf_of(operator, "/oncall")
    r = operator.post(
        "/oncall/channels/hook/test?lang=en", data={"csrf_token": token, "person": "zhang"}
    )
    assert r.status_code == 200
    assert "Test message on hook accepted" in r.get_data(as_text=True)
    assert len(hook.requests) == 1
    r = operator.post("/oncall/channels/dead/test?lang=en", data={"csrf_token": token})
    assert "Test message on dead failed: webhook" in r.get_data(as_text=True)
    r = operator.post("/oncall/channels/nope/test?lang=en", data={"csrf_token": token})
    assert r.status_code == 404 and "no channel &#39;nope&#39;" in r.get_data(as_text=True)
    assert viewer.post("/oncall/channels/hook/test", data={"csrf_token": token}).status_code == 403


def test_a_channel_entry_that_does_not_load_is_off_and_its_people_fall_back(
    tmp_path: Path, hook: Receiver
) -> None:
    """One bad ``channels:`` entry: the config loads, the channel shows disabled with the
    error, an appliance fault names it, and a page to a person who lists it first
    falls back to their next channel at once."""
    import asyncio

    import yaml

    from monitor.config import load_config

    path = tmp_path / "dialwatch.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                **BASE_CONFIG,
                "channels": [
                    {"id": "ding", "kind": "dingtalk", "webhook": "oapi.dingtalk.com/robot"},
                    {
                        "id": "hook",
                        "kind": "webhook",
                        "url": hook.url(),
                        "secret": SECRET,
                        "allow_private": True,
                    },
                ],
                "people": [
                    {"id": "zhang", "user": "zhang", "name": "张伟", "contact": ["ding", "hook"]}
                ],
            }
        ),  # fmt: skip
        encoding="utf-8",
    )
    loaded = load_config(path, env={}, schema=ApplianceConfig)
    [error] = loaded.disabled
    assert "channels[0].webhook: must be an http:// or https:// URL" in error
    w = make_world(tmp_path, config=loaded.config, clock=lambda: NOW)
    faults = w.app.extensions["dialwatch"].faults
    reported: list[tuple[str, str]] = []
    real_report = faults.report

    def report(source: str, error: Any, *args: Any, **kwargs: Any) -> None:
        reported.append((source, str(error)))
        real_report(source, error, *args, **kwargs)

    faults.report = report  # type: ignore[method-assign]
    service = Notifications(
        StateRepository(w.db),
        SecretBox.from_file(tmp_path / "keys" / "appliance.key"),
        lambda: loaded.config,
        clock=ManualClock(NOW),
        faults=faults,
        listen=("127.0.0.1", 8080),
    )
    w.app.extensions["dialwatch"] = dataclasses.replace(
        w.app.extensions["dialwatch"], notifications=service
    )
    assert [s for s, e in reported if "its config does not load" in e] == ["channel:ding"]
    # The appliance's own check warns about it (the engine reads this alert source).
    assert list(service.alerts()) == ["channel:ding"]
    assert service.alerts()["channel:ding"].startswith("channel ding is disabled: its config")
    items = {c["id"]: c for c in w.client("viewer").get("/api/v1/channels").get_json()["items"]}
    assert items["ding"]["health"] == "disabled"
    assert "must be an http:// or https:// URL" in items["ding"]["disabled"]
    assert items["hook"]["health"] != "disabled"

    incident = add_incident(w.db, ["trunk-a"], title="Carrier A down")
    with service.repo.transaction() as conn:
        outbox.add(conn, "zhang", [Notice("opened", incident, level=1)], ["ding", "hook"], NOW)

    async def send_all() -> None:
        for _ in range(3):  # the first attempt fails at once; the fallback is due at once
            await service.sender.round()
            await service.sender.settle()

    asyncio.run(send_all())
    assert [r.path for r in hook.requests] == ["/hook"]  # delivered on the second channel
    r = w.client("viewer").get(f"/api/v1/deliveries?incident={incident}").get_json()
    [delivery] = r["items"]
    assert delivery["state"] == "sent"
    assert [a["channel"] for a in delivery["attempts"]] == ["ding", "hook"]
