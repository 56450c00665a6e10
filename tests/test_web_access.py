"""Who may use the dashboard and the API: loopback without a token, elsewhere only with one."""

from __future__ import annotations

import pytest

from tests.test_web_support import TOKEN, add_targets, make_config, make_world, standard_rows
from web import access


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("192.168.1.10", False),
        ("example.com", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_addresses_are_recognised(host: str, loopback: bool) -> None:
    assert access.is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("given", "expected", "equal"),
    [
        ("abc", "abc", True),
        ("abc", "abd", False),
        ("abc", "abcd", False),
        ("", "", False),
        (None, "abc", False),
        ("abc", None, False),
        ("令牌", "令牌", True),
    ],
)
def test_tokens_compare_equal_only_when_both_present_and_identical(
    given: str | None, expected: str | None, equal: bool
) -> None:
    assert access.tokens_equal(given, expected) is equal


@pytest.mark.parametrize(
    ("listen_host", "headers", "status"),
    [
        ("127.0.0.1", {}, 200),
        ("::1", {}, 200),
        ("localhost", {}, 200),
        ("0.0.0.0", {}, 401),
        ("0.0.0.0", {"Authorization": f"Bearer {TOKEN}"}, 200),
        ("0.0.0.0", {"Authorization": f"bearer {TOKEN}"}, 200),
        ("0.0.0.0", {"Authorization": "Bearer wrong"}, 401),
        ("0.0.0.0", {"Authorization": f"Basic {TOKEN}"}, 401),
        ("10.0.0.5", {"Authorization": f"Bearer {TOKEN}x"}, 401),
    ],
)
def test_api_needs_the_bearer_token_only_off_loopback(
    tmp_path, listen_host: str, headers: dict[str, str], status: int
) -> None:
    w = make_world(tmp_path, listen_host=listen_host)
    r = w.client().get("/api/v1/targets", headers=headers)
    assert r.status_code == status
    if status == 401:
        assert r.mimetype == "application/json"
        assert "token" in r.get_json()["error"]
        assert r.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "a token is required: send Authorization: Bearer <token>"),
        ({"Authorization": "Bearer nope"}, "the bearer token is wrong"),
    ],
)
def test_api_401_says_why(tmp_path, headers: dict[str, str], reason: str) -> None:
    w = make_world(tmp_path, listen_host="0.0.0.0")
    assert (
        w.client().get("/api/v1/incidents", headers=headers).get_json()["error"].startswith(reason)
    )


def test_without_a_configured_token_a_public_listener_refuses_everyone(tmp_path) -> None:
    cfg = make_config(web={"token": None})
    w = make_world(tmp_path, config=cfg, listen_host="0.0.0.0")
    r = w.client().get("/api/v1/targets", headers={"Authorization": "Bearer "})
    assert r.status_code == 401
    assert "web.token is not set" in r.get_json()["error"]
    assert w.client().get("/").status_code == 401


def test_reload_needs_the_token_too(tmp_path) -> None:
    calls: list[int] = []
    w = make_world(tmp_path, listen_host="0.0.0.0", reload=lambda: calls.append(1) or [])
    assert w.client().post("/api/v1/reload").status_code == 401
    assert calls == []
    ok = w.client().post("/api/v1/reload", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and calls == [1]


def test_dashboard_token_in_the_url_becomes_a_cookie_and_leaves_the_url(tmp_path) -> None:
    w = make_world(tmp_path, listen_host="0.0.0.0")
    add_targets(w.db, standard_rows())
    c = w.client()
    assert c.get("/").status_code == 401
    r = c.get(f"/?token={TOKEN}&kind=sip")
    assert r.status_code == 302
    assert r.headers["Location"] == "/?kind=sip"
    cookie = c.get_cookie(access.COOKIE)
    assert cookie is not None and cookie.http_only and cookie.same_site == "Strict"
    assert TOKEN not in cookie.value
    page = c.get("/?kind=sip")
    assert page.status_code == 200 and "Carrier A trunk" in page.get_data(as_text=True)
    # the dashboard's own polling uses the same cookie
    assert c.get("/api/v1/targets").status_code == 200
    assert c.get("/targets/trunk-a").status_code == 200


def test_dashboard_with_a_wrong_url_token_is_401_and_sets_no_cookie(tmp_path) -> None:
    w = make_world(tmp_path, listen_host="0.0.0.0")
    c = w.client()
    r = c.get("/?token=wrong")
    assert r.status_code == 401
    assert c.get_cookie(access.COOKIE) is None


def test_a_cookie_from_an_old_token_stops_working_after_the_token_changes(tmp_path) -> None:
    w = make_world(tmp_path, listen_host="0.0.0.0")
    c = w.client()
    c.set_cookie(access.COOKIE, access.cookie_value("the-previous-token"))
    r = c.get("/api/v1/targets")
    assert r.status_code == 401 and "no longer valid" in r.get_json()["error"]


@pytest.mark.parametrize("path", ["/status", "/healthz", "/static/app.css", "/static/dashboard.js"])
def test_public_paths_need_no_token_even_off_loopback(tmp_path, path: str) -> None:
    w = make_world(tmp_path, listen_host="0.0.0.0")
    assert w.client().get(path).status_code == 200


def test_a_non_public_status_page_needs_the_token_off_loopback(tmp_path) -> None:
    cfg = make_config(web={"token": TOKEN, "public_status": False})
    w = make_world(tmp_path, config=cfg, listen_host="0.0.0.0")
    assert w.client().get("/status").status_code == 404
    ok = w.client().get("/status", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_pages_send_security_headers(tmp_path) -> None:
    w = make_world(tmp_path)
    r = w.client().get("/")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"
