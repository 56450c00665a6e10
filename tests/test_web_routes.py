"""Every route of the app, from Flask's url_map: anonymous callers get nothing but the
public pages, and viewers change nothing.

A new route someone forgets to guard fails here, not in production.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from tests.test_web_support import make_world

PUBLIC = {
    "static",
    "status.status_page",
    "status.healthz",
    # The status page's history (issue 13): the page's own read model and redaction,
    # read-only; 404 like the page when web.public_status is off and nobody is logged in.
    "status.status_json",  # the page as JSON for customers' dashboards (a snapshot)
    "status_history.incident_list",  # resolved incidents of the shown components, paged
    "status_history.incident_page",  # one of them: published customer updates only
    "status_history.feed",  # the Atom feed of those incidents (a snapshot)
    "login.login_page",
    "login.login_submit",
    "login.code_page",
    "login.code_submit",
    "login.logout",
    "login.setup_page",
    "login.setup_submit",
    "login.wall_open",
    "ack.ack_page",  # the signed, expiring acknowledge link of a page (notify.ack_links)
    "ack.ack_submit",  # its confirm form: the signed link and CSRF
    "push.service_worker",
    # Subscribing on the status page (web.status_subscribe): customers have no account.
    "status_subscribe.subscribe_page",  # the form: CSRF token, no data shown
    "status_subscribe.subscribe_submit",  # CSRF and Origin, rate limited per address and
    # network, the same answer whether the address is subscribed or not (no enumeration)
    "status_subscribe.confirm_page",  # the signed, expiring confirm link; shows a button only
    "status_subscribe.confirm_submit",  # that button: the signed link and CSRF
    "status_subscribe.manage_page",  # the signed manage link, mailed only to the address
    "status_subscribe.manage_submit",  # its forms: the signed link and CSRF
    "status_subscribe.unsubscribe_page",  # the signed unsubscribe link; shows a button only
    "status_subscribe.unsubscribe_submit",  # RFC 8058 one-click: the signed link is the only
    # credential (no CSRF, no Origin: guard.signed_link), and all it can do is stop mail
    "status_subscribe_sms.subscribe_page",  # the text-message form: CSRF token, no data
    "status_subscribe_sms.subscribe_submit",  # CSRF and Origin, hourly limits as above and
    # verification texts capped per number, per network and in total a day; same answer
    "status_subscribe_sms.verify",  # CSRF, the form's signed token and the texted code
    "status_subscribe_push.service_worker",  # the status page's worker: one file for all
    "status_subscribe_push.subscribe",  # CSRF and Origin, hourly limits per endpoint and
    # network; the endpoint's host on the push channel's allow-list before anything is kept
    "status_subscribe_push.lookup",  # CSRF; the endpoint (a browser's secret) is the key
    "status_subscribe_push.unsubscribe",  # CSRF; the endpoint again; the same answer always
    "sms_inbound.reply",  # an SMS provider's reply callback: its signature (Twilio's
    # X-Twilio-Signature, a gateway's HMAC) is checked before anything is read
}
"""Endpoints anyone may call (each guards itself: CSRF, the setup code, a token)."""
SELF_SERVICE = {
    "account.change_password",
    "account.confirm_second_factor",
    "account.second_factor_off",
    "push.subscribe",
    "push.unsubscribe",
}
"""State changes anyone logged in makes to their own account (each asks for the password
or a code, or changes only what reaches that person: their own web push subscriptions)."""
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def routes(app: Flask) -> list[tuple[str, str, str]]:
    """(endpoint, method, a URL for it) for every rule and method."""
    found = []
    for rule in app.url_map.iter_rules():
        values = {arg: "1" for arg in rule.arguments}
        with app.test_request_context():
            from flask import url_for

            url = url_for(rule.endpoint, **values)
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            found.append((rule.endpoint, method, url))
    return found


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    return make_world(Path(tmp_path_factory.mktemp("routes")), reload=lambda *_: [])


def test_the_route_list_is_not_empty_and_names_the_public_ones(world) -> None:  # noqa: ANN001
    endpoints = {e for e, _m, _u in routes(world.app)}
    assert endpoints >= PUBLIC, PUBLIC - endpoints
    assert len(endpoints - PUBLIC) >= 8


def test_only_the_one_click_unsubscribe_and_the_sms_reply_hook_skip_csrf_and_origin(world) -> None:  # noqa: ANN001
    from web.guard import _SIGNED_LINK

    exempt = {e for e, view in world.app.view_functions.items() if getattr(view, _SIGNED_LINK, 0)}
    # Each authenticates otherwise: the signed link; the SMS provider's signature.
    assert exempt == {"status_subscribe.unsubscribe_submit", "sms_inbound.reply"}


def test_every_staff_route_refuses_an_anonymous_caller(world) -> None:  # noqa: ANN001
    anon = world.anonymous()
    let_through = []
    for endpoint, method, url in routes(world.app):
        if endpoint in PUBLIC:
            continue
        r = anon.open(url, method=method)
        refused = r.status_code == 401 or (
            r.status_code == 302 and r.headers["Location"].startswith("/login")
        )
        if not refused:
            let_through.append((endpoint, method, url, r.status_code))
    assert let_through == []


def test_every_state_changing_route_refuses_a_viewer(world) -> None:  # noqa: ANN001
    viewer = world.client("viewer")
    let_through = []
    for endpoint, method, url in routes(world.app):
        if endpoint in PUBLIC | SELF_SERVICE or method not in STATE_CHANGING:
            continue
        r = viewer.open(url, method=method, json={})
        if r.status_code != 403:
            let_through.append((endpoint, method, url, r.status_code))
    assert let_through == []


def test_every_console_page_has_one_plain_text_title(world) -> None:  # noqa: ANN001
    """A block left open in a template swallows the page into <title> (it happened to
    /oncall): the tests that look for strings in the body still pass, the tab does not."""
    import re

    from tests.test_web_access import login
    from tests.test_web_support import STAFF

    client = world.anonymous()
    assert login(client, STAFF["admin"]).status_code == 302
    pages, bad = 0, []
    for endpoint, method, url in routes(world.app):
        if method != "GET" or url.startswith("/api/") or endpoint == "login.logout":
            continue
        r = client.get(url)
        if r.status_code != 200 or r.mimetype != "text/html":
            continue
        pages += 1
        titles = re.findall(r"<title>(.*?)</title>", r.get_data(as_text=True), re.S)
        if len(titles) != 1 or "<" in titles[0] or not titles[0].strip():
            bad.append((endpoint, titles))
    assert pages >= 10
    assert bad == []
