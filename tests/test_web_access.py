"""Who may use the console and the API: a login session or an API token, on any listener.

Login, logout, the second factor, the setup page, CSRF, the Host check,
trusted proxies, the login back-off and the audit entries of it all.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import pyotp
import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from core.net.address import is_loopback
from core.secret_box import SecretBox
from monitor import audit
from monitor.staff import second_factor, sessions
from monitor.staff.setup_code import SetupCode
from monitor.store.models import AuditEntry, StaffSession
from monitor.store.repository import StateRepository
from tests.test_web_support import STAFF, STAFF_PASSWORD, World, make_config, make_world
from web import guard, hosts, proxies
from web.guard import SESSION_COOKIE
from web.i18n import LANG_COOKIE
from web.login import safe_next

T0 = 1_790_000_000.0
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    found = CSRF.search(client.get(path).get_data(as_text=True))
    assert found, f"no CSRF field on {path}"
    return found.group(1)


def login(client: FlaskClient, user: str, password: str = STAFF_PASSWORD, **extra: str):  # noqa: ANN201
    token = csrf_of(client)
    return client.post(
        "/login", data={"username": user, "password": password, "csrf_token": token, **extra}
    )


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie(SESSION_COOKIE)
    return cookie.value if cookie is not None else None


def audit_rows(world: World) -> list[tuple[str, str, str, str]]:
    with world.db.connect() as conn:
        rows = conn.execute(
            select(AuditEntry).where(AuditEntry.actor != "test").order_by(AuditEntry.id)
        ).all()
    return [(r.actor, r.action, r.result, r.address) for r in rows]


class Clock:
    """Wall time that moves only when the test moves it (the web reads it synchronously)."""

    def __init__(self, start: float) -> None:
        self.now = start

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def world(tmp_path: Path, clock: Clock) -> World:
    return make_world(
        tmp_path,
        clock=clock.time,
        secret_box=SecretBox.from_file(tmp_path / "keys" / "appliance.key"),
        reload=lambda *_: [],
    )


# -- pure pieces ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.5", False),
        ("localhost.example.com", False),
    ],
)
def test_loopback_addresses_are_recognised(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("127.0.0.1:8080", True),
        ("localhost:8080", True),
        ("[::1]:8080", True),
        ("LOCALHOST:8080", True),
        ("localhost:9999", False),
        ("evil.example:8080", False),
        ("noc.example.cn", True),
        ("noc.example.cn:443", True),
        ("ops.example.cn:8443", True),
        ("ops.example.cn", True),
        ("", False),
    ],
)
def test_allowed_hosts(host: str, ok: bool) -> None:
    allowed = hosts.allowed_hosts("https://noc.example.cn", ["ops.example.cn"], "127.0.0.1", 8080)
    assert hosts.host_allowed(host, allowed) is ok


NETS = [ipaddress.ip_network("10.0.0.0/8")]


@pytest.mark.parametrize(
    ("peer", "xff", "proto", "expected"),
    [
        ("203.0.113.9", "1.2.3.4", "https", proxies.Client("203.0.113.9", False)),
        ("10.0.0.2", "198.51.100.7", "https", proxies.Client("198.51.100.7", True)),
        ("10.0.0.2", "6.6.6.6, 198.51.100.7", None, proxies.Client("198.51.100.7", False)),
        ("10.0.0.2", "198.51.100.7, 10.0.0.3", "http", proxies.Client("198.51.100.7", False)),
        ("10.0.0.2", "junk", None, proxies.Client("10.0.0.2", False)),
        ("10.0.0.2", None, None, proxies.Client("10.0.0.2", False)),
    ],
)
def test_forwarded_headers_are_believed_only_from_trusted_proxies(
    peer: str, xff: str | None, proto: str | None, expected: proxies.Client
) -> None:
    assert proxies.client(peer, xff, proto, False, NETS) == expected


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("/targets/trunk-a?lang=en", "/targets/trunk-a?lang=en"),
        ("//evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
        ("/x\r\nSet-Cookie: a=b", "/"),
        (None, "/"),
    ],
)
def test_next_goes_only_to_local_paths(given: str | None, expected: str) -> None:
    assert safe_next(given) == expected


# -- anonymous and roles ----------------------------------------------------------------
def test_anonymous_pages_redirect_to_login_and_api_calls_get_401(world: World) -> None:
    anon = world.anonymous()
    page = anon.get("/targets/trunk-a?lang=en")
    assert page.status_code == 302
    assert page.headers["Location"].startswith("/login?next=/targets/trunk-a")
    api = anon.get("/api/v1/targets")
    assert api.status_code == 401 and "Bearer" in api.headers["WWW-Authenticate"]
    assert "dialwatch token create" in api.get_json()["error"]


def test_a_wrong_token_is_401_with_the_reason(world: World) -> None:
    anon = world.anonymous()
    r = anon.get("/api/v1/targets", headers={"Authorization": "Bearer dw_not-a-token"})
    assert r.status_code == 401 and "unknown, revoked or expired" in r.get_json()["error"]


def test_a_role_too_low_is_403_naming_the_role(world: World) -> None:
    r = world.client("viewer").post("/api/v1/reload")
    assert r.status_code == 403 and "admin" in r.get_json()["error"]
    assert world.client("admin").post("/api/v1/reload").status_code == 200


@pytest.mark.parametrize("path", ["/status", "/healthz", "/static/app.css", "/login"])
def test_public_paths_need_nothing(world: World, path: str) -> None:
    assert world.anonymous().get(path).status_code == 200


def test_no_version_and_no_route_list_for_anonymous_callers(world: World) -> None:
    anon = world.anonymous()
    assert "9.9.9-test" not in anon.get("/login").get_data(as_text=True)
    missing = anon.get("/api/v1/nope").get_json()["error"]
    assert "routes" not in missing and "/api/v1/targets" not in missing
    staff = world.client("viewer")
    assert "9.9.9-test" in staff.get("/").get_data(as_text=True)
    listed = staff.get("/api/v1/nope").get_json()["error"]
    assert "GET /api/v1/targets" in listed and "POST /api/v1/reload" in listed


def test_a_forged_host_with_a_matching_origin_is_refused(world: World) -> None:
    # The DNS-rebinding shape: the browser names the attacker's host in both.
    r = world.client().post(
        "/api/v1/reload",
        headers={"Host": "rebind.evil.example", "Origin": "http://rebind.evil.example"},
    )
    assert r.status_code == 400 and "does not answer to the host name" in r.get_json()["error"]
    # The public status page still answers whatever name it is reached by.
    assert world.anonymous().get("/status", headers={"Host": "status.example"}).status_code == 200


def test_a_request_body_over_the_limit_is_413(world: World) -> None:
    r = world.client().post("/api/v1/reload", data=b"x" * (1024 * 1024 + 1))
    assert r.status_code == 413


# -- logging in and out --------------------------------------------------------------------
def test_login_sets_a_new_httponly_lax_session_and_logout_ends_it(world: World) -> None:
    c = world.anonymous()
    c.set_cookie(SESSION_COOKIE, "planted-by-an-attacker")
    r = login(c, STAFF["operator"], next="/targets/trunk-a")
    assert r.status_code == 302 and r.headers["Location"] == "/targets/trunk-a"
    header = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith(SESSION_COOKIE))
    assert "HttpOnly" in header and "SameSite=Lax" in header and "Secure" not in header
    cookie = session_cookie(c)
    assert cookie and cookie != "planted-by-an-attacker"
    assert c.get("/").status_code == 200
    # Logging out needs the CSRF token too, then the cookie is worthless.
    assert c.post("/logout").status_code == 400
    assert c.post("/logout", data={"csrf_token": csrf_of(c, "/")}).status_code == 302
    other = world.anonymous()
    other.set_cookie(SESSION_COOKIE, cookie)
    assert other.get("/").status_code == 302
    assert [a for _who, a, _r, _addr in audit_rows(world)] == ["login", "logout"]


def test_login_without_the_csrf_token_is_refused(world: World) -> None:
    r = world.anonymous().post(
        "/login", data={"username": STAFF["admin"], "password": STAFF_PASSWORD}
    )
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)


def test_a_cookie_session_needs_the_csrf_token_for_state_changes(world: World) -> None:
    c = world.anonymous()
    login(c, STAFF["admin"])
    assert c.post("/api/v1/reload").status_code == 400
    token = csrf_of(c, "/")
    assert c.post("/api/v1/reload", headers={"X-CSRFToken": token}).status_code == 200
    evil = c.post(
        "/api/v1/reload", headers={"X-CSRFToken": token, "Origin": "https://evil.example"}
    )
    assert evil.status_code == 403


def test_unknown_user_and_wrong_password_get_the_same_answer(world: World) -> None:
    wrong = login(world.anonymous(), STAFF["admin"], "not the password at all")
    unknown = login(world.anonymous(), "nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    strip = re.compile(r'value="[^"]*"')
    assert strip.sub("", wrong.get_data(as_text=True)) == strip.sub(
        "", unknown.get_data(as_text=True)
    ).replace("nobody-here", STAFF["admin"])
    assert [(r[1], r[2]) for r in audit_rows(world)] == [("login", "failed")] * 2


def test_repeated_failures_back_off_and_are_audited(world: World, clock: Clock) -> None:
    c = world.anonymous()
    c.set_cookie(LANG_COOKIE, "en")
    for _ in range(5):
        assert login(c, STAFF["admin"], "wrong wrong wrong").status_code == 401
    # Five failures earn a wait: even the right password waits it out...
    blocked = login(c, STAFF["admin"])
    assert blocked.status_code == 429 and "Try again in" in blocked.get_data(as_text=True)
    clock.advance(2)
    # ...and each further failure doubles it.
    assert login(c, STAFF["admin"], "wrong wrong wrong").status_code == 401
    clock.advance(3)
    assert login(c, STAFF["admin"]).status_code == 429
    clock.advance(1)
    assert login(c, STAFF["admin"]).status_code == 302
    results = [r[2] for r in audit_rows(world) if r[1] == "login"]
    assert results == ["failed"] * 5 + ["denied", "failed", "denied", "ok"]


def test_forwarded_for_from_an_untrusted_peer_is_ignored_in_the_audit(tmp_path: Path) -> None:
    w = make_world(tmp_path / "a")
    c = w.anonymous()
    token = csrf_of(c)
    c.post(
        "/login",
        data={"username": STAFF["viewer"], "password": STAFF_PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-For": "6.6.6.6"},
        environ_overrides={"REMOTE_ADDR": "192.0.2.10"},
    )
    assert audit_rows(w)[-1][3] == "192.0.2.10"
    trusted = make_world(
        tmp_path / "b", config=make_config(web={"trusted_proxies": ["192.0.2.0/24"]})
    )
    c = trusted.anonymous()
    token = csrf_of(c)
    r = c.post(
        "/login",
        data={"username": STAFF["viewer"], "password": STAFF_PASSWORD, "csrf_token": token},
        headers={"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"},
        environ_overrides={"REMOTE_ADDR": "192.0.2.10"},
    )
    assert audit_rows(trusted)[-1][3] == "198.51.100.7"
    header = next(h for h in r.headers.getlist("Set-Cookie") if h.startswith(SESSION_COOKIE))
    assert "Secure" in header  # HTTPS at the proxy: the cookie says so


# -- the second factor --------------------------------------------------------------------
def enable_totp(world: World, user: str, clock: Clock, box: SecretBox) -> str:
    repo = StateRepository(world.db)
    uri, _qr = second_factor.begin(repo, box, "test", user, issuer="T", at=clock.time())
    seed = pyotp.parse_uri(uri).secret
    second_factor.confirm(
        repo, box, "test", user, pyotp.TOTP(seed).at(clock.time()), at=clock.time()
    )
    return seed


def test_a_second_factor_login_takes_two_steps_and_two_session_ids(
    world: World, clock: Clock
) -> None:
    box = world.app.extensions["dialwatch"].secret_box
    seed = enable_totp(world, STAFF["admin"], clock, box)
    clock.advance(30)
    c = world.anonymous()
    r = login(c, STAFF["admin"], next="/targets/trunk-a")
    assert r.status_code == 302 and r.headers["Location"].startswith("/login/code")
    half = session_cookie(c)
    assert c.get("/").status_code == 302  # a half login opens nothing
    token = csrf_of(c, "/login/code?next=/targets/trunk-a")
    bad = c.post("/login/code", data={"code": "000000", "csrf_token": token})
    assert bad.status_code == 401
    good = c.post(
        "/login/code",
        data={
            "code": pyotp.TOTP(seed).at(clock.time()),
            "csrf_token": token,
            "next": "/targets/trunk-a",
        },
    )
    assert good.status_code == 302 and good.headers["Location"] == "/targets/trunk-a"
    full = session_cookie(c)
    assert full and full != half
    assert c.get("/").status_code == 200
    with world.db.connect() as conn:
        ended = conn.execute(
            select(StaffSession.ended_at).where(StaffSession.id == sessions.session_key(half or ""))
        ).scalar_one()
    assert ended is not None


def test_require_2fa_sends_an_admin_without_one_to_set_it_up(tmp_path: Path) -> None:
    w = make_world(
        tmp_path,
        config=make_config(web={"require_2fa_for": ["admin"]}),
        secret_box=SecretBox.from_file(tmp_path / "k"),
    )
    c = w.anonymous()
    login(c, STAFF["admin"])
    r = c.get("/")
    assert r.status_code == 302 and r.headers["Location"] == "/account/2fa"
    page = c.get("/account/2fa").get_data(as_text=True)
    assert "data:image/svg+xml" in page
    op = w.anonymous()
    login(op, STAFF["operator"])
    assert op.get("/").status_code == 200  # operators are not asked


# -- first start ----------------------------------------------------------------------------
def test_setup_needs_the_code_and_creates_the_first_admin(tmp_path: Path) -> None:
    setup = SetupCode(tmp_path / "setup-code")
    code = setup.ensure()
    w = make_world(tmp_path / "w", with_staff=False, setup=setup)
    c = w.anonymous()
    assert c.get("/login").headers["Location"] == "/setup"
    token = csrf_of(c, "/setup")
    form = {
        "username": "noc-admin",
        "password": "a good long passphrase",
        "password2": "a good long passphrase",
        "csrf_token": token,
    }
    wrong = c.post("/setup", data={**form, "setup_code": "AAAA-BBBB-CCCC-DDDD"})
    assert wrong.status_code == 403
    r = c.post("/setup", data={**form, "setup_code": code.lower()})
    assert r.status_code == 302 and c.get("/").status_code == 200
    assert setup.current() is None  # used up
    assert c.get("/setup").status_code == 302
    with w.db.connect() as conn:
        assert audit.verify(conn).broken_at is None
    assert ("setup", "user.add", "ok") in [(a, b, r_) for a, b, r_, _addr in audit_rows(w)]


def test_a_wall_screen_opens_with_a_viewer_token_only(world: World, clock: Clock) -> None:
    c = world.anonymous()
    r = c.get(f"/wall/open?token={world.tokens['admin']}")
    assert r.status_code == 401
    r = c.get(f"/wall/open?token={world.tokens['viewer']}")
    assert r.status_code == 302
    clock.advance(20 * 3600)  # past the idle limit of an ordinary session
    assert c.get("/").status_code == 200
    assert c.post("/api/v1/reload").status_code in (400, 403)


def test_pages_send_security_headers(world: World) -> None:
    r = world.client().get("/")
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]
    assert r.headers["X-Frame-Options"] == "DENY"


class _Faults:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str, str]] = []

    def report(self, source, error, *, object="", error_class=None) -> None:  # noqa: A002
        self.reports.append((source, type(error).__name__, object))


def test_an_unhandled_error_in_a_view_is_a_plain_500_and_an_engine_fault(tmp_path) -> None:
    faults = _Faults()
    w = make_world(tmp_path, faults=faults)

    @guard.require("viewer")
    def broken() -> str:
        return str(1 / 0)

    w.app.add_url_rule("/broken", "broken", broken)
    w.app.testing = False  # as served: Flask turns the exception into a 500, not a raise
    page = w.client("viewer").get("/broken")
    assert page.status_code == 500
    assert "ZeroDivisionError" not in page.get_data(as_text=True)  # no traceback shown
    assert faults.reports == [("web:broken", "ZeroDivisionError", "/broken")]
