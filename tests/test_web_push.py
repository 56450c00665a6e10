"""Web push in the console: the service worker at the root, the VAPID key, one's own
subscriptions through the API (guarded, CSRF-checked, audited), the account page's button —
and a subscription made through the API receiving a page from the webpush channel.

No test here calls ``PushManager.subscribe`` (it would contact a real push service): the
browser side of a subscription is made by the test (tests/peers/push.py) and posted."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from dialwatch.schema import Config as ApplianceConfig
from monitor.store.models import AuditEntry, PushSubscription
from monitor.store.repository import StateRepository
from notify import vapid
from notify.channels import ChannelContext, Message, build_channel
from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.peers.push import PushClient, PushServer, push_service
from tests.test_web_access import login
from tests.test_web_support import BASE_CONFIG, STAFF, World, make_world
from web.i18n import LANG_COOKIE

FCM = "https://fcm.googleapis.com/fcm/send/abc123"
CHANNELS = [
    {
        "id": "push",
        "kind": "webpush",
        "allowed_hosts": ["fcm.googleapis.com", "*.notify.windows.com", "127.0.0.1"],
    }
]


@pytest.fixture
def world(tmp_path: Path) -> World:
    key = vapid.load_or_create(vapid.key_path(tmp_path / "data"))
    config = ApplianceConfig.model_validate({**BASE_CONFIG, "channels": CHANNELS})
    return make_world(tmp_path, config=config, vapid_key=key)  # type: ignore[arg-type]


@pytest.fixture
def service() -> Iterator[PushServer]:
    with push_service() as server:
        yield server


def body(endpoint: str = FCM, client: PushClient | None = None) -> dict[str, Any]:
    client = client or PushClient()
    return {"endpoint": endpoint, "expirationTime": None, "keys": client.keys()}


def rows(world: World) -> list[tuple[int, str]]:
    with world.db.connect() as conn:
        return [(r.user_id, r.endpoint) for r in conn.execute(select(PushSubscription))]


def audit(world: World) -> list[tuple[str, str, str]]:
    with world.db.connect() as conn:
        found = conn.execute(
            select(AuditEntry).where(AuditEntry.action.like("push.%")).order_by(AuditEntry.id)
        )
        return [(r.actor, r.action, r.result) for r in found]


def test_the_service_worker_is_served_from_the_root_to_anyone(world: World) -> None:
    r = world.anonymous().get("/sw.js")
    assert r.status_code == 200
    assert r.mimetype == "text/javascript"
    assert r.headers["Cache-Control"] == "no-cache"
    text = r.get_data(as_text=True)
    assert "showNotification" in text and "notificationclick" in text and "openWindow" in text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/push/key"),
        ("POST", "/api/v1/push/subscriptions"),
        ("DELETE", "/api/v1/push/subscriptions"),
    ],
)
def test_anonymous_callers_are_refused(world: World, method: str, path: str) -> None:
    r = world.anonymous().open(path, method=method, json=body())
    assert r.status_code == 401
    assert rows(world) == []


def test_the_public_key_is_the_appliances(world: World, tmp_path: Path) -> None:
    r = world.client("viewer").get("/api/v1/push/key")
    assert r.status_code == 200
    expected = vapid.load_or_create(vapid.key_path(tmp_path / "data")).public_key
    assert r.get_json() == {"public_key": expected}


def test_no_key_is_a_404_saying_so(tmp_path: Path) -> None:
    r = make_world(tmp_path).client("viewer").get("/api/v1/push/key")
    assert r.status_code == 404 and "no VAPID key" in r.get_json()["error"]


def test_a_viewer_subscribes_and_unsubscribes_their_own_browser(world: World) -> None:
    client = world.client("viewer")
    r = client.post("/api/v1/push/subscriptions", json=body())
    assert r.status_code == 201, r.get_json()
    created = r.get_json()["subscription"]
    assert created["service"].startswith("fcm.googleapis.com #")
    assert "endpoint" not in created  # a capability: never echoed into lists or logs
    assert [e for _u, e in rows(world)] == [FCM]
    r = client.delete("/api/v1/push/subscriptions", json={"endpoint": FCM})
    assert r.status_code == 200 and r.get_json() == {"removed": 1}
    assert rows(world) == []
    r = client.delete("/api/v1/push/subscriptions", json={"endpoint": FCM})
    assert r.status_code == 404 and "has no push subscription" in r.get_json()["error"]
    viewer = f"token:{_token_id(world, 'viewer')}"
    assert audit(world) == [
        (viewer, "push.subscribe", "ok"),
        (viewer, "push.unsubscribe", "ok"),
        (viewer, "push.unsubscribe", "failed"),
    ]


def _token_id(world: World, role: str) -> int:
    from monitor.staff import tokens

    with world.db.connect() as conn:
        return next(t.id for t in tokens.list_tokens(conn) if t.user == STAFF[role])


def test_one_user_cannot_remove_anothers_subscription(world: World) -> None:
    assert world.client("viewer").post("/api/v1/push/subscriptions", json=body()).status_code == 201
    r = world.client("operator").delete("/api/v1/push/subscriptions", json={"endpoint": FCM})
    assert r.status_code == 404
    assert len(rows(world)) == 1


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("https://10.0.0.5/push", "10.0.0.5 is not an allowed push service"),
        ("https://metadata.google.internal/x", "is not an allowed push service"),
        ("https://fcm.googleapis.com.evil.example/x", "is not an allowed push service"),
        ("http://fcm.googleapis.com/x", "https:// only"),
        ("file:///etc/passwd", "endpoint must be an https:// URL"),
        ("https://user:pw@fcm.googleapis.com/x", "endpoint must be an https:// URL"),
    ],
)
def test_an_endpoint_off_the_allow_list_is_refused(
    world: World, endpoint: str, reason: str
) -> None:
    r = world.client("viewer").post("/api/v1/push/subscriptions", json=body(endpoint))
    assert r.status_code == 400
    assert reason in r.get_json()["error"]
    assert rows(world) == []


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ({"endpoint": FCM}, "keys"),
        ({"endpoint": FCM, "keys": {"p256dh": "abc", "auth": "A" * 22}}, "keys.p256dh must be"),
        ({"endpoint": FCM, "keys": {"p256dh": "B" + "A" * 86, "auth": "AA"}}, "keys.auth must be"),
        ({"endpoint": FCM, "keys": {"p256dh": 5, "auth": "A"}}, "p256dh"),
        ({**body(), "extra": 1}, "extra"),
    ],
)
def test_a_bad_body_is_a_400_naming_the_field(
    world: World, payload: dict[str, Any], reason: str
) -> None:
    r = world.client("viewer").post("/api/v1/push/subscriptions", json=payload)
    assert r.status_code == 400
    assert reason in r.get_json()["error"]


def english(client: FlaskClient) -> FlaskClient:
    client.set_cookie(LANG_COOKIE, "en")
    return client


def test_the_account_page_has_the_button_and_a_session_posts_with_the_csrf_token(
    world: World,
) -> None:
    client = english(world.anonymous())
    assert login(client, STAFF["viewer"]).status_code == 302
    page = client.get("/account").get_data(as_text=True)
    assert 'id="dw-push-button"' in page and "push.js" in page
    config = re.search(r'<script id="dw-push-config" type="application/json">(.*?)</script>', page)
    assert config is not None
    import json

    cfg = json.loads(config.group(1))
    assert cfg["worker"] == "/sw.js" and cfg["key"] == "/api/v1/push/key"
    assert cfg["text"]["subscribe"] == "Subscribe"
    # Without the token a cookie session changes nothing.
    r = client.post("/api/v1/push/subscriptions", json=body())
    assert r.status_code in (400, 403) and rows(world) == []
    r = client.post("/api/v1/push/subscriptions", json=body(), headers={"X-CSRFToken": cfg["csrf"]})
    assert r.status_code == 201, r.get_json()
    page = client.get("/account").get_data(as_text=True)
    assert "fcm.googleapis.com #" in page and "never" in page


def test_the_account_page_speaks_chinese(world: World) -> None:
    client = world.anonymous()
    client.set_cookie(LANG_COOKIE, "zh-CN")
    assert login(client, STAFF["viewer"]).status_code == 302
    page = client.get("/account").get_data(as_text=True)
    assert "浏览器通知" in page and "订阅" in page


def test_a_browser_subscribed_through_the_api_gets_the_page(
    world: World, service: PushServer, tmp_path: Path
) -> None:
    endpoint, browser = service.subscribe("vera-laptop")
    r = world.client("viewer").post("/api/v1/push/subscriptions", json=body(endpoint, browser))
    assert r.status_code == 201, r.get_json()
    config = ApplianceConfig.model_validate({**BASE_CONFIG, "channels": CHANNELS}).channels[0]
    push = build_channel(
        config, ChannelContext(state=StateRepository(world.db), data_dir=tmp_path / "data")
    )
    service.vapid_public_key = (
        world.client("viewer").get("/api/v1/push/key").get_json()["public_key"]
    )
    push.send(
        Message(
            delivery_id="d-1",
            subject="trunk-a 中断",
            text="已中断 2 分钟",
            user=STAFF["viewer"],
            data={"url": "/incidents/3"},
        )
    )
    assert service.refused == []
    assert service.received[0].json() == {
        "title": "trunk-a 中断",
        "body": "已中断 2 分钟",
        "url": "/incidents/3",
        "delivery_id": "d-1",
    }


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
def test_the_account_page_registers_the_worker_and_shows_the_button_in_chromium(
    tmp_path: Path,
    chromium,  # noqa: ANN001, F811 - the fixture imported below
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.test_web_browser import _console_errors, browser_login
    from web.server import serve

    key = vapid.load_or_create(vapid.key_path(tmp_path / "data"))
    config = ApplianceConfig.model_validate(
        {**BASE_CONFIG, "channels": CHANNELS, "web": {"allowed_hosts": ["127.0.0.1"]}}
    )
    w = make_world(tmp_path, config=config, vapid_key=key)  # type: ignore[arg-type]
    # Before any page script: PushManager.subscribe would reach Google's or Mozilla's
    # push service, so it is replaced by one that only counts (and the test never clicks).
    chromium.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": _NO_SUBSCRIBE})
    handle = serve(w.app, "127.0.0.1", 0)
    try:
        browser_login(chromium, handle.url)
        chromium.get(f"{handle.url}/account?lang=en")
        wait = WebDriverWait(chromium, 10)
        wait.until(lambda d: d.find_element(By.ID, "dw-push").is_displayed())
        button = chromium.find_element(By.ID, "dw-push-button")
        wait.until(lambda d: button.get_attribute("data-subscribed") == "0")
        assert button.text == "Subscribe" and button.is_enabled()
        assert "does not get notifications" in chromium.find_element(By.ID, "dw-push-state").text
        scope = chromium.execute_async_script(
            "var done = arguments[0];"
            "navigator.serviceWorker.getRegistration('/').then(r => done(r ? r.scope : null));"
        )
        assert scope == f"{handle.url}/"
        assert chromium.execute_script("return window.__subscribeCalls") == 0
        assert _console_errors(chromium) == []
    finally:
        handle.close()
