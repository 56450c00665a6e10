"""The admin pages: users, API tokens and the audit log — for admins only, every change
through the staff functions the CLI calls, every change (and refusal) audited with who
asked and from where."""

from __future__ import annotations

import csv
import io
import re
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from sqlalchemy import select

from monitor import audit
from monitor.staff import sessions, tokens, users
from monitor.store.models import AuditEntry
from monitor.store.repository import StateRepository
from tests.test_web_access import csrf_of, login, session_cookie
from tests.test_web_support import STAFF, World, make_world

PAGES = ("/admin/users", "/admin/tokens", "/admin/audit", "/admin/audit.csv")
NEW_PASSWORD = "another long passphrase"
SITE_TZ = ZoneInfo("Asia/Shanghai")  # BASE_CONFIG's site timezone


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def english(client: FlaskClient) -> FlaskClient:
    """The site speaks zh-CN; these tests read the English pages."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"
    return client


def as_role(world: World, role: str = "admin") -> FlaskClient:
    """A client with ``role``'s API token, reading English."""
    return english(world.client(role))


def entries(world: World, action: str | None = None) -> list[AuditEntry]:
    """Audit entries the test setup did not write, oldest first."""
    with world.db.connect() as conn:
        query = select(AuditEntry).where(AuditEntry.actor != "test").order_by(AuditEntry.id)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        return list(conn.execute(query).all())


def member(world: World, name: str) -> users.StaffMember | None:
    with world.db.connect() as conn:
        row = users.find_user(conn, name)
    return users.member(row) if row is not None else None


def logged_in(world: World, role: str = "admin") -> FlaskClient:
    client = english(world.anonymous())
    assert login(client, STAFF[role]).status_code == 302
    return client


def add_form(name: str = "carol", role: str = "operator", password: str = NEW_PASSWORD) -> dict:
    return {"name": name, "role": role, "password": password, "password2": password}


# -- who may ------------------------------------------------------------------------------
@pytest.mark.parametrize("path", PAGES)
def test_each_admin_page_works_for_an_admin(world: World, path: str) -> None:
    r = as_role(world, "admin").get(path)
    assert r.status_code == 200, r.get_data(as_text=True)[:500]


@pytest.mark.parametrize("role", ["operator", "viewer"])
@pytest.mark.parametrize("path", PAGES)
def test_each_admin_page_refuses_operators_and_viewers_naming_the_role(
    world: World, path: str, role: str
) -> None:
    r = as_role(world, role).get(path)
    assert r.status_code == 403
    assert f"admin role; you have {role}" in r.get_data(as_text=True)


@pytest.mark.parametrize("path", PAGES)
def test_each_admin_page_sends_an_anonymous_caller_to_the_login(world: World, path: str) -> None:
    r = world.anonymous().get(path)
    assert r.status_code == 302 and r.headers["Location"].startswith("/login")


def test_the_admin_links_show_for_admins_only(world: World) -> None:
    admin_page = as_role(world, "admin").get("/").get_data(as_text=True)
    operator_page = as_role(world, "operator").get("/").get_data(as_text=True)
    for link in PAGES[:3]:
        assert f'href="{link}"' in admin_page
        assert f'href="{link}"' not in operator_page


def test_a_form_post_without_the_csrf_token_is_400_and_changes_nothing(world: World) -> None:
    client = logged_in(world)
    r = client.post("/admin/users", data=add_form())
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    assert member(world, "carol") is None
    ok = client.post(
        "/admin/users", data={**add_form(), "csrf_token": csrf_of(client, "/admin/users")}
    )
    assert ok.status_code == 302 and member(world, "carol") is not None
    (entry,) = entries(world, "user.add")  # a login session signs as the user
    assert (entry.actor, entry.address, entry.result) == ("user:root-admin", "127.0.0.1", "ok")


# -- users ----------------------------------------------------------------------------------
def test_the_users_page_lists_role_state_second_factor_last_login_and_live_sessions(
    world: World,
) -> None:
    logged_in(world, "operator")
    logged_in(world, "operator")
    page = as_role(world, "admin").get("/admin/users").get_data(as_text=True)
    row = re.search(r'<tr data-user="opal">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    assert "operator" in cells[1] and "enabled" in cells[2] and "off" in cells[3]
    assert "never" not in cells[4]  # logged in just now
    assert cells[5].strip() == "2"
    vera = re.search(r'<tr data-user="vera">(.*?)</tr>', page, re.S)
    assert vera is not None and "never" in vera.group(1)


def test_adding_a_user_calls_the_staff_function_and_is_audited_with_actor_and_address(
    world: World,
) -> None:
    r = as_role(world, "admin").post("/admin/users", data={**add_form(), "display_name": "Carol"})
    assert r.status_code == 302 and r.headers["Location"] == "/admin/users"
    carol = member(world, "carol")
    assert carol is not None and (carol.role, carol.display_name) == ("operator", "Carol")
    (entry,) = entries(world, "user.add")
    assert (entry.actor, entry.address, entry.object, entry.result) == (
        "token:1",
        "127.0.0.1",
        "user:carol",
        "ok",
    )
    assert users.check_login(StateRepository(world.db), "carol", NEW_PASSWORD) is not None


@pytest.mark.parametrize(
    ("form", "reason"),
    [
        (add_form(password="short"), "at least 12 characters"),
        (add_form(password="carol-is-my-name"), "must not contain the user name"),
        (add_form(name=STAFF["viewer"]), "exists already"),
        (add_form(role="root"), "role must be one of"),
        (add_form(name="Bad Name!"), "user name"),
        ({**add_form(), "password2": "something else entirely"}, "The two passwords differ"),
    ],
    ids=[
        "short-password",
        "name-in-password",
        "duplicate-name",
        "bad-role",
        "bad-name",
        "mismatch",
    ],
)
def test_a_refused_user_is_a_form_error_with_the_reason_never_a_500(
    world: World, form: dict, reason: str
) -> None:
    before = len(entries(world, "user.add"))
    r = as_role(world, "admin").post("/admin/users", data=form)
    body = r.get_data(as_text=True)
    assert r.status_code == 400 and reason in body
    assert 'role="alert"' in body and NEW_PASSWORD not in body
    if reason != "The two passwords differ":  # the monitor said no: its refusal is audited
        failed = entries(world, "user.add")[before:]
        assert [(e.result, e.actor, e.address) for e in failed] == [
            ("failed", "token:1", "127.0.0.1")
        ]
        assert reason in failed[0].detail


def test_the_last_admin_can_be_neither_demoted_nor_disabled(world: World) -> None:
    admin = as_role(world, "admin")
    for path, data in (
        (f"/admin/users/{STAFF['admin']}/role", {"role": "operator"}),
        (f"/admin/users/{STAFF['admin']}/disable", {}),
    ):
        r = admin.post(path, data=data)
        assert r.status_code == 400 and "is the last admin" in r.get_data(as_text=True)
    assert member(world, STAFF["admin"]).role == "admin"  # type: ignore[union-attr]
    assert [e.result for e in entries(world) if e.action in ("user.role", "user.disable")] == [
        "failed",
        "failed",
    ]


def test_role_password_disable_enable_and_end_sessions_each_change_and_are_audited(
    world: World,
) -> None:
    admin = as_role(world, "admin")
    opal = STAFF["operator"]
    session = logged_in(world, "operator")
    assert session.get("/").status_code == 200

    assert admin.post(f"/admin/users/{opal}/role", data={"role": "viewer"}).status_code == 302
    assert member(world, opal).role == "viewer"  # type: ignore[union-attr]
    r = admin.post(
        f"/admin/users/{opal}/password", data={"password": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert r.status_code == 302
    assert session.get("/").status_code == 302  # a new password ends the user's sessions
    assert users.check_login(StateRepository(world.db), opal, NEW_PASSWORD) is not None
    session = world.anonymous()
    assert login(session, opal, NEW_PASSWORD).status_code == 302
    assert admin.post(f"/admin/users/{opal}/sessions/end").status_code == 302
    assert session.get("/").status_code == 302
    assert admin.post(f"/admin/users/{opal}/disable").status_code == 302
    assert member(world, opal).disabled  # type: ignore[union-attr]
    assert admin.post(f"/admin/users/{opal}/enable").status_code == 302
    assert not member(world, opal).disabled  # type: ignore[union-attr]

    done = [
        (e.action, e.result, e.actor, e.address, e.object)
        for e in entries(world)
        if e.action.startswith("user.")
    ]
    assert done == [
        (action, "ok", "token:1", "127.0.0.1", f"user:{opal}")
        for action in (
            "user.role",
            "user.password",
            "user.sessions.end",
            "user.disable",
            "user.enable",
        )
    ]
    role_entry = entries(world, "user.role")[0]
    assert (role_entry.before, role_entry.after) == ({"role": "operator"}, {"role": "viewer"})


def test_an_unknown_user_is_404_and_a_second_disable_is_400(world: World) -> None:
    admin = as_role(world, "admin")
    r = admin.post("/admin/users/nobody/disable")
    assert r.status_code == 404 and "no user named" in r.get_data(as_text=True)
    assert admin.post(f"/admin/users/{STAFF['viewer']}/disable").status_code == 302
    again = admin.post(f"/admin/users/{STAFF['viewer']}/disable")
    assert again.status_code == 400 and "disabled already" in again.get_data(as_text=True)


def test_a_done_notice_follows_the_redirect(world: World) -> None:
    client = logged_in(world)
    token = csrf_of(client, "/admin/users")
    r = client.post(
        f"/admin/users/{STAFF['viewer']}/sessions/end",
        data={"csrf_token": token},
        follow_redirects=True,
    )
    assert r.status_code == 200 and f"session(s) of {STAFF['viewer']} ended" in r.get_data(
        as_text=True
    )


# -- tokens ---------------------------------------------------------------------------------
def test_a_new_token_is_shown_exactly_once_and_works(world: World) -> None:
    admin = as_role(world, "admin")
    r = admin.post(
        "/admin/tokens",
        data={"user": STAFF["operator"], "role": "viewer", "name": "grafana", "expires": "30d"},
    )
    body = r.get_data(as_text=True)
    assert r.status_code == 201 and r.headers["Cache-Control"] == "no-store"
    value = re.search(r'<code id="new-token">(dw_[^<]+)</code>', body).group(1)  # type: ignore[union-attr]
    listed = admin.get("/admin/tokens").get_data(as_text=True)
    assert value not in listed and value[:9] in listed  # the prefix only, from now on
    with world.db.connect() as conn:
        (info,) = [t for t in tokens.list_tokens(conn) if t.name == "grafana"]
    assert (info.user, info.role) == (STAFF["operator"], "viewer")
    assert info.expires_at is not None and info.expires_at - info.created_at > 29.9 * 86400
    script = world.anonymous()
    script.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {value}"
    assert script.get("/api/v1/targets").status_code == 200
    (entry,) = entries(world, "token.create")
    assert (entry.actor, entry.address, entry.result) == ("token:1", "127.0.0.1", "ok")
    assert value not in str(entry.after) + entry.detail


@pytest.mark.parametrize(
    ("form", "status", "reason"),
    [
        ({"user": "vera", "role": "admin"}, 400, "more than its owner&#39;s role"),
        ({"user": "nobody"}, 404, "no user named"),
        ({"user": "vera", "expires": "soon"}, 400, "like 30d"),
        ({"user": "vera", "expires": "99999d"}, 400, "at most 3650d"),
    ],
    ids=["role-above-owner", "unknown-owner", "bad-expiry", "too-long"],
)
def test_a_refused_token_is_a_form_error(
    world: World, form: dict, status: int, reason: str
) -> None:
    r = as_role(world, "admin").post("/admin/tokens", data=form)
    assert r.status_code == status and reason in r.get_data(as_text=True)
    assert "new-token" not in r.get_data(as_text=True)


def test_revoking_a_token_stops_it_and_is_audited(world: World) -> None:
    admin = as_role(world, "admin")
    viewer = as_role(world, "viewer")
    assert viewer.get("/api/v1/targets").status_code == 200
    assert admin.post("/admin/tokens/3/revoke").status_code == 302
    assert viewer.get("/api/v1/targets").status_code == 401
    page = admin.get("/admin/tokens").get_data(as_text=True)
    assert 'data-token="3" data-state="revoked"' in page
    again = admin.post("/admin/tokens/3/revoke")
    assert again.status_code == 400 and "revoked already" in again.get_data(as_text=True)
    assert admin.post("/admin/tokens/99/revoke").status_code == 404
    assert [(e.result, e.object) for e in entries(world, "token.revoke")] == [
        ("ok", "token:3"),
        ("failed", "token:3"),
        ("failed", "token:99"),
    ]


# -- the audit log ----------------------------------------------------------------------------
def local(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=SITE_TZ).timestamp()


def write(world: World, at: float, actor: str, action: str, obj: str, **fields: object) -> None:
    with StateRepository(world.db).transaction() as conn:
        audit.record(conn, at=at, actor=actor, action=action, object=obj, **fields)  # type: ignore[arg-type]


@pytest.fixture
def logged(world: World) -> World:
    """Five entries on 2026-11-30 .. 2026-12-02 (site time), one with a formula as object."""
    write(world, local("2026-11-30T09:00"), "user:alice", "incident.ack", "incident:1")
    write(world, local("2026-12-01T09:00"), "user:alice", "user.add", "user:bob")
    write(world, local("2026-12-01T10:00"), "user:bob", "incident.note", "=cmd|' /C calc'!A0")
    write(world, local("2026-12-01T23:30"), "user:alice", "user.role", "user:bob")
    write(world, local("2026-12-02T08:00"), "system", "config.reload", "config:/etc/dw.yaml")
    return world


def shown_ids(body: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-id="(\d+)"', body)]


def test_the_audit_page_filters_by_site_time_range_actor_action_and_object(logged: World) -> None:
    admin = as_role(logged, "admin")
    everything = shown_ids(admin.get("/admin/audit").get_data(as_text=True))
    with logged.db.connect() as conn:
        newest_first = conn.execute(
            select(AuditEntry.id).order_by(AuditEntry.at.desc(), AuditEntry.id.desc())
        ).scalars()
        assert everything == list(newest_first)
    day = admin.get("/admin/audit?from=2026-12-01T00:00&to=2026-12-02T00:00").get_data(as_text=True)
    assert len(shown_ids(day)) == 3  # the 1st of December in Asia/Shanghai, not in UTC
    utc_day = admin.get("/admin/audit?from=2026-11-30T16:00:00Z").get_data(as_text=True)
    assert 'name="from" value="2026-12-01T00:00:00"' in utc_day  # shown in site time
    alice = admin.get("/admin/audit?actor=user:alice&action=user.").get_data(as_text=True)
    assert len(shown_ids(alice)) == 2 and "incident.ack" not in alice
    obj = admin.get("/admin/audit?object=CALC&from=&to=&actor=").get_data(as_text=True)
    assert len(shown_ids(obj)) == 1 and "=cmd|" in obj


def test_the_audit_page_pages_newest_first(logged: World) -> None:
    write(logged, local("2026-12-02T09:00"), "system", "filler", "")
    for n in range(60):
        write(logged, local("2026-12-02T10:00") + n, "system", "filler", f"n{n}")
    admin = as_role(logged, "admin")
    first = admin.get("/admin/audit?action=filler").get_data(as_text=True)
    second = admin.get("/admin/audit?action=filler&page=2").get_data(as_text=True)
    assert len(shown_ids(first)) == 50 and len(shown_ids(second)) == 11
    assert min(shown_ids(first)) > max(shown_ids(second))
    assert "Page 1 of 2" in first and "action=filler&amp;page=2" in first


@pytest.mark.parametrize(
    "query",
    ["from=yesterday", "page=%C2%B2", "actor=a%00b", "colour=red", "from=2026-12-02&to=2026-12-01"],
)
def test_a_bad_audit_filter_is_a_400_with_the_reason(logged: World, query: str) -> None:
    r = as_role(logged, "admin").get(f"/admin/audit?{query}")
    assert r.status_code == 400 and 'role="alert"' in r.get_data(as_text=True)
    if not query.startswith("page="):  # the export is the whole filtered range: no pages
        assert as_role(logged, "admin").get(f"/admin/audit.csv?{query}").status_code == 400


def test_the_csv_export_has_the_filtered_rows_and_neutralises_formulas(logged: World) -> None:
    r = as_role(logged, "admin").get("/admin/audit.csv?from=2026-12-01T00:00&to=2026-12-02T00:00")
    assert r.status_code == 200 and r.mimetype == "text/csv"
    assert "attachment" in r.headers["Content-Disposition"]
    assert r.is_streamed
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True))))
    assert rows[0][:7] == ["id", "at", "actor", "address", "action", "object", "result"]
    body = rows[1:]
    assert [row[4] for row in body] == ["user.role", "incident.note", "user.add"]
    assert body[0][1] == "2026-12-01T23:30:00+08:00"  # site time
    assert body[1][5] == "'=cmd|' /C calc'!A0"
    only_bob = (
        as_role(logged, "admin").get("/admin/audit.csv?actor=user:bob").get_data(as_text=True)
    )
    assert len(list(csv.reader(io.StringIO(only_bob)))) == 2


def test_verify_now_shows_ok_and_the_head_then_the_first_broken_entry(logged: World) -> None:
    client = logged_in(logged)
    token = csrf_of(client, "/admin/audit")
    assert client.post("/admin/audit/verify").status_code == 400  # no CSRF token
    ok = client.post("/admin/audit/verify", data={"csrf_token": token}).get_data(as_text=True)
    with logged.db.connect() as conn:
        head = audit.head(conn)
        victim = conn.execute(
            select(AuditEntry.id).where(AuditEntry.action == "incident.note")
        ).scalar_one()
    assert 'data-ok="yes"' in ok and str(head) in ok
    with logged.db.begin() as conn:  # someone edits an entry behind the appliance's back
        conn.execute(sa.update(AuditEntry).where(AuditEntry.id == victim).values(actor="user:eve"))
    broken = client.post("/admin/audit/verify", data={"csrf_token": token})
    text = broken.get_data(as_text=True)
    assert broken.status_code == 200 and 'data-ok="no"' in text
    assert f"Broken at entry {victim}" in text and "was changed after it was written" in text
    kept = client.post("/admin/audit/verify?actor=system", data={"csrf_token": token})
    assert len(shown_ids(kept.get_data(as_text=True))) == 1  # the filters stay
    assert 'action="/admin/audit/verify?actor=system"' in kept.get_data(as_text=True)


def test_an_admin_ending_their_own_sessions_is_sent_to_the_login(world: World) -> None:
    client = logged_in(world)
    assert session_cookie(client)
    token = csrf_of(client, "/admin/users")
    r = client.post(f"/admin/users/{STAFF['admin']}/sessions/end", data={"csrf_token": token})
    assert r.status_code == 302
    assert client.get("/admin/users").headers["Location"].startswith("/login")
    with world.db.connect() as conn:
        assert sessions.list_live(conn, at=time.time()) == []
