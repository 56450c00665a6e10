"""Subscribing a browser on the public status page (web push), against the real app, the
appliance's notifications service over the state DB and the push service stand-in
(tests/peers/push.py: a local HTTP server that verifies the VAPID JWT and decrypts each
push with ``http_ece`` using the browser side the test made; no real push service can
run here, and tests must never reach one).

The browser's subscription → active at once → an outage of its component → the notice
decrypted at the receiver, with cause and ETA, no target id; a 410 retires the
subscriber; an endpoint off the allow-list is refused before anything is stored or any
connection is made; lookup and unsubscribe by endpoint; CSRF, Origin and rate limits.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import insert, select, update

from core.clock import ManualClock
from core.secret_box import SecretBox
from dialwatch.schema import Config as ApplianceConfig
from monitor import incident_actions as actions
from monitor.events import EventKind, NewEvent, record
from monitor.store.models import Subscriber, TargetState
from monitor.store.repository import StateRepository
from notify import subscribers, vapid
from notify.service import Notifications
from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.peers.push import Answer, PushClient, PushServer, push_service
from tests.test_web_access import CSRF
from tests.test_web_support import BASE_CONFIG, World, make_world

T0 = 1_800_000_000.0

_connects: list[Any] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event in ("socket.connect", "socket.getaddrinfo") and _connects is not None:
        _connects.append((event, args[1] if event == "socket.connect" else args[0]))


sys.addaudithook(_audit)


@dataclasses.dataclass
class Site:
    world: World
    notes: Notifications
    push: PushServer
    now: list[float]

    def send(self) -> None:
        async def go() -> None:
            self.notes.sender.clock = ManualClock(self.now[0])
            await self.notes.sender.round()
            await self.notes.sender.settle()

        asyncio.run(go())

    def rows(self) -> list[subscribers.SubscriberRow]:
        with self.notes.repo.reading() as conn:
            return subscribers.listed(conn)

    def health(self, health: str, at: float) -> None:
        repo = self.notes.repo
        with repo.transaction() as conn:
            conn.execute(update(TargetState).where(TargetState.target_id == "trunk-a")
                         .values(health=health, since=at))  # fmt: skip
            event = record(repo, NewEvent(EventKind.TRANSITION, at, target_id="trunk-a",
                                          payload={"to": health}))  # fmt: skip
            self.notes.customers.handle(repo, event)


def make_site(
    tmp_path: Path, push: PushServer, *, push_channel: bool = True, **limits: int
) -> Site:
    key = vapid.load_or_create(vapid.key_path(tmp_path / "data"))
    push.vapid_public_key = key.public_key
    config = ApplianceConfig.model_validate(
        {
            **BASE_CONFIG,
            "web": {"base_url": "https://status.example.cn"},
            "channels": [
                {"id": "mail", "kind": "email", "from": "Status <s@example.cn>",
                 "smtp": {"host": "127.0.0.1", "port": 9, "tls": "none"}},
                {"id": "push", "kind": "webpush", "timeout": "3s",
                 "allowed_hosts": ["fcm.googleapis.com", "127.0.0.1"]},
            ],
            "customers": {"email_channel": "mail", "limits": limits,
                          **({"push_channel": "push"} if push_channel else {})},
        }
    )  # fmt: skip
    now = [T0]
    w = make_world(tmp_path, config=config, clock=lambda: now[0], with_staff=False,
                   vapid_key=key)  # fmt: skip
    notes = Notifications(
        StateRepository(w.db), SecretBox.from_file(tmp_path / "keys" / "appliance.key"),
        lambda: config, clock=ManualClock(T0), faults=w.app.extensions["dialwatch"].faults,
        listen=("127.0.0.1", 8080), data_dir=tmp_path / "data",
    )  # fmt: skip
    w.app.extensions["dialwatch"] = dataclasses.replace(
        w.app.extensions["dialwatch"], notifications=notes
    )
    with notes.repo.transaction() as conn:
        conn.execute(insert(TargetState).values(target_id="trunk-a", kind="sip", health="up",
                                                since=T0 - 3600))  # fmt: skip
    return Site(w, notes, push, now)


@pytest.fixture
def push() -> Iterator[PushServer]:
    with push_service() as server:
        server.clock = lambda: T0 + 60
        yield server


@pytest.fixture
def site(tmp_path: Path, push: PushServer) -> Site:
    return make_site(tmp_path, push)


def page_csrf(client: FlaskClient, lang: str = "en") -> str:
    page = client.get(f"/status/subscribe?lang={lang}")
    assert page.status_code == 200
    found = CSRF.search(page.get_data(as_text=True))
    assert found
    return found.group(1)


def subscribe(
    client: FlaskClient,
    endpoint: str,
    browser: PushClient | None = None,
    components: list[str] | None = None,
    lang: str = "en",
    csrf: str | None = None,
    **extra: Any,
) -> Any:
    browser = browser or PushClient()
    token = csrf if csrf is not None else page_csrf(client, lang)
    body = {
        "subscription": {"endpoint": endpoint, "expirationTime": None, "keys": browser.keys()},
        "components": components if components is not None else ["outbound"],
    }
    return client.post(f"/status/subscribe/push?lang={lang}", json=body,
                       headers={"X-CSRFToken": token, **extra})  # fmt: skip


def test_the_subscribe_page_offers_this_browser_when_a_push_channel_is_set(site: Site) -> None:
    page = site.world.anonymous().get("/status/subscribe?lang=zh-CN").get_data(as_text=True)
    assert 'id="dw-status-push" hidden' in page  # shown by the script only: no JS, no button
    assert 'id="dw-status-push-config"' in page and "status_push.js" in page
    assert site.world.app.extensions["dialwatch"].vapid_key.public_key in page
    assert "通知此浏览器" in page
    worker = site.world.anonymous().get("/status/sw.js")
    assert worker.status_code == 200 and worker.mimetype == "text/javascript"
    assert worker.headers["Cache-Control"] == "no-cache"
    assert "showNotification" in worker.get_data(as_text=True)


def test_without_a_push_channel_there_is_no_button_and_the_route_says_so(
    tmp_path: Path, push: PushServer
) -> None:
    site = make_site(tmp_path, push, push_channel=False)
    client = site.world.anonymous()
    page = client.get("/status/subscribe?lang=en").get_data(as_text=True)
    assert "dw-status-push" not in page and "status_push.js" not in page
    endpoint, browser = push.subscribe("a")
    answer = subscribe(client, endpoint, browser)
    assert answer.status_code == 503
    assert answer.get_json() == {"error": "Notifications in the browser are not available here."}


def test_a_browser_subscribes_and_hears_the_outage_decrypted_with_cause_and_eta(
    site: Site, push: PushServer
) -> None:
    client = site.world.anonymous()
    endpoint, browser = push.subscribe("li-laptop")
    answer = subscribe(client, endpoint, browser, lang="zh-CN")
    assert answer.status_code == 201
    assert answer.get_json() == {"subscribed": True, "components": ["outbound"]}
    [row] = site.rows()
    assert (row.channel, row.state, row.language) == ("webpush", "active", "zh-CN")
    assert row.masked == "push via 127.0.0.1"
    with site.notes.repo.reading() as conn:
        stored = conn.execute(select(Subscriber.address_sealed)).scalar_one()
    assert "li-laptop" not in stored and browser.auth not in stored  # sealed

    repo = site.notes.repo
    site.health("down", T0)
    incident = repo.open_incident("trunk-a", "down", "trunk-a down (sip:10.9.8.7)", T0)
    actions.update(repo, "user:zhang", incident, cause="运营商 sip:10.9.8.7 无应答",
                   eta=T0 + 3600, at=T0 + 20)  # fmt: skip
    assert site.notes.customers.tick(repo, T0 + 300) == 1
    site.now[0] = T0 + 301
    site.send()
    assert push.refused == []
    [got] = push.received
    assert got.path == "/push/li-laptop"
    notice = got.json()
    assert notice["title"] == "外呼线路：服务异常，我们正在处理。"
    assert notice["url"] == "/status"  # a click opens the status page, not the console
    assert "运营商 [redacted] 无应答" in notice["body"]
    assert "2027-01-15 17:00" in notice["body"]
    for secret in ("10.9.8.7", "trunk-a", "/incidents/"):
        assert secret not in got.plaintext.decode()
    assert got.claims["aud"] == push.origin


def test_a_gone_endpoint_retires_the_subscriber_and_counts_it(site: Site, push: PushServer) -> None:
    endpoint, browser = push.subscribe("old")
    assert subscribe(site.world.anonymous(), endpoint, browser).status_code == 201
    push.answers["/push/old"] = Answer(410, body=b"push subscription has unsubscribed or expired")
    [row] = site.rows()
    site.notes.to_subscriber(row.id, "Outbound calling: resolved.", "All is well.", at=T0)
    site.send()
    [row] = site.rows()
    assert (row.state, row.failures) == ("retired", 1)
    assert "410" in row.reason and "old" not in row.reason  # the endpoint is never written


def test_an_endpoint_off_the_allow_list_is_refused_before_anything_is_stored_or_connected(
    site: Site,
) -> None:
    global _connects
    client = site.world.anonymous()
    csrf = page_csrf(client)
    for endpoint in (
        "https://internal.example.test/push/x",
        "https://10.0.0.5/push/x",
        "http://fcm.googleapis.com/fcm/send/x",  # plain http to a real service
        "https://user:pw@fcm.googleapis.com/fcm/send/x",
    ):
        _connects = []
        try:
            answer = subscribe(client, endpoint, csrf=csrf)
        finally:
            seen, _connects = _connects, None
        assert answer.status_code == 400, endpoint
        assert answer.get_json()["error"] in (
            "This browser's push service is not accepted here.",
            "This browser sent a subscription that does not work.",
        )
        assert seen == [], endpoint
    assert site.rows() == []


def test_bad_keys_and_bad_bodies_are_400s_with_reasons(site: Site, push: PushServer) -> None:
    client = site.world.anonymous()
    csrf = page_csrf(client, "zh-CN")
    endpoint, _browser = push.subscribe("x")
    bad = client.post("/status/subscribe/push?lang=zh-CN", headers={"X-CSRFToken": csrf}, json={
        "subscription": {"endpoint": endpoint, "keys": {"p256dh": "AAAA", "auth": "BBBB"}},
        "components": ["outbound"],
    })  # fmt: skip
    assert bad.status_code == 400 and bad.get_json()["error"] == "此浏览器的订阅信息无效。"
    junk = client.post("/status/subscribe/push", headers={"X-CSRFToken": csrf},
                       json={"subscription": "x", "components": ["outbound"]})  # fmt: skip
    assert junk.status_code == 400 and "subscription" in junk.get_json()["error"]
    none = subscribe(client, endpoint, components=[], csrf=csrf, lang="zh-CN")
    assert none.status_code == 400 and none.get_json()["error"] == "请至少选择一项服务。"
    unknown = subscribe(client, endpoint, components=["nope"], csrf=csrf)
    assert unknown.status_code == 400
    assert site.rows() == []


def test_csrf_and_origin_are_checked(site: Site, push: PushServer) -> None:
    client = site.world.anonymous()
    endpoint, browser = push.subscribe("x")
    assert subscribe(client, endpoint, browser, csrf="forged").status_code == 400
    crossed = subscribe(client, endpoint, browser, Origin="https://evil.example")
    assert crossed.status_code == 403
    assert site.rows() == []


def test_the_same_browser_again_changes_its_components_and_lookup_and_unsubscribe_work(
    site: Site, push: PushServer
) -> None:
    client = site.world.anonymous()
    csrf = page_csrf(client)
    endpoint, browser = push.subscribe("phone")
    assert subscribe(client, endpoint, browser, csrf=csrf).status_code == 201
    assert subscribe(client, endpoint, browser, ["outbound", "crm"], csrf=csrf).status_code == 201
    [row] = site.rows()
    assert row.components == ("outbound", "crm")

    def post(path: str, endpoint: str) -> Any:
        return client.post(path, json={"endpoint": endpoint}, headers={"X-CSRFToken": csrf})

    found = post("/status/subscribe/push/lookup", endpoint)
    assert found.get_json() == {"subscribed": True, "components": ["outbound", "crm"]}
    other = post("/status/subscribe/push/lookup", push.endpoint("someone-else"))
    assert other.get_json() == {"subscribed": False, "components": []}
    assert post("/status/subscribe/push/unsubscribe", endpoint).get_json() == {"subscribed": False}
    assert site.rows()[0].state == "unsubscribed"
    assert post("/status/subscribe/push/lookup", endpoint).get_json()["subscribed"] is False
    # An endpoint never seen answers the same: nobody learns who is subscribed.
    assert post("/status/subscribe/push/unsubscribe", push.endpoint("never")).status_code == 200
    site.notes.to_subscriber(row.id, "x", "y", at=T0)
    site.send()
    assert push.received == []  # the unsubscribed browser hears nothing
    # Subscribing again starts it again.
    assert subscribe(client, endpoint, browser, csrf=csrf).status_code == 201
    assert site.rows()[0].state == "active"


def test_subscribing_is_rate_limited_per_network(tmp_path: Path, push: PushServer) -> None:
    site = make_site(tmp_path, push, per_network_per_hour=2)
    client = site.world.anonymous()
    csrf = page_csrf(client)
    answers = [subscribe(client, push.subscribe(f"b{n}")[0], csrf=csrf) for n in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429]
    assert int(answers[2].headers["Retry-After"]) > 0
    assert len(site.rows()) == 2
    site.now[0] += 3601
    assert subscribe(client, push.subscribe("later")[0], csrf=csrf).status_code == 201


# -- in a real browser (headless Chromium) ------------------------------------------------
_NO_SUBSCRIBE = """
window.__subscribeCalls = 0;
if (window.PushManager) {
  PushManager.prototype.subscribe = function () {
    window.__subscribeCalls += 1;
    return Promise.reject(new Error("tests never contact a real push service"));
  };
}
"""


@pytest.mark.peer
def test_the_page_registers_its_own_worker_at_status_scope_in_chromium(
    tmp_path: Path,
    push: PushServer,
    chromium,  # noqa: ANN001, F811 - the fixture imported above
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_web_browser import _console_errors
    from web.server import serve

    site = make_site(tmp_path, push)
    chromium.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _NO_SUBSCRIBE})
    handle = serve(site.world.app, "127.0.0.1", 0)
    try:
        chromium.get(f"{handle.url}/status/subscribe?lang=en&component=outbound")
        wait = WebDriverWait(chromium, 10)
        wait.until(lambda d: d.find_element(By.ID, "dw-status-push").is_displayed())
        state = chromium.find_element(By.ID, "dw-status-push-state")
        wait.until(lambda d: "does not get notifications" in state.text)
        button = chromium.find_element(By.ID, "dw-status-push-button")
        assert button.text == "Notify this browser" and button.is_enabled()
        assert not chromium.find_element(By.ID, "dw-status-push-stop").is_displayed()
        scope = chromium.execute_async_script(
            "var done = arguments[0];"
            "navigator.serviceWorker.getRegistration('/status/').then(r => done(r ? r.scope : null));"
        )
        assert scope == f"{handle.url}/status/"
        assert chromium.execute_script("return window.__subscribeCalls") == 0
        assert _console_errors(chromium) == []
    finally:
        handle.close()
