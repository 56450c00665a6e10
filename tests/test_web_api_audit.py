"""``GET /api/v1/audit``: admins only, newest first, filtered and paged; bad input is a 400."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor import audit
from monitor.store.repository import StateRepository
from tests.test_web_support import World, make_world

ALL_SIX = ("config.reload", "login", "incident.ack", "user.role", "user.add", "login")
BEFORE_SETUP = "2026-12-02T00:00:00Z"
"""Before the world's token.create entries (written at the real time of the run)."""


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """The staff of make_world (their token.create entries, actor ``test``, written now)
    and six entries on 2026-12-01 (UTC)."""
    w = make_world(Path(tmp_path_factory.mktemp("api_audit")))
    with StateRepository(w.db).transaction() as conn:
        for at, actor, action, obj, extra in [
            ("2026-12-01T08:00:00", "user:alice", "login", "user:alice", {}),
            (
                "2026-12-01T09:00:00",
                "user:alice",
                "user.add",
                "user:bob",
                {"after": {"role": "viewer"}},
            ),
            (
                "2026-12-01T10:00:00",
                "user:alice",
                "user.role",
                "user:bob",
                {"before": {"role": "viewer"}, "after": {"role": "operator"}},
            ),
            (
                "2026-12-01T11:00:00",
                "token:7",
                "incident.ack",
                "incident:3",
                {"address": "10.0.0.9"},
            ),
            (
                "2026-12-01T12:00:00",
                "anonymous",
                "login",
                "user:mallory",
                {"result": "failed", "detail": "wrong user name or password"},
            ),
            ("2026-12-01T13:00:00", "system", "config.reload", "config:/etc/dw.yaml", {}),
        ]:
            audit.record(conn, at=utc(at), actor=actor, action=action, object=obj, **extra)
    return w


def get(world: World, query: str = "", role: str = "admin"):  # noqa: ANN201
    return world.client(role).get("/api/v1/audit" + (f"?{query}" if query else ""))


def items(world: World, query: str) -> list[dict]:
    r = get(world, query)
    assert r.status_code == 200, r.get_json()
    return r.get_json()["items"]


def test_admins_get_the_entries_newest_first_with_every_field(world: World) -> None:
    body = get(world, "from=2026-12-01T00:00:00Z&to=2026-12-02T00:00:00Z").get_json()
    assert (body["page"], body["per_page"], body["total"]) == (1, 50, 6)
    assert [i["at"] for i in body["items"]] == [
        f"2026-12-01T{h:02}:00:00Z" for h in (13, 12, 11, 10, 9, 8)
    ]
    failed = body["items"][1]
    assert {k: failed[k] for k in ("actor", "address", "action", "object", "result")} == {
        "actor": "anonymous",
        "address": "",
        "action": "login",
        "object": "user:mallory",
        "result": "failed",
    }
    assert failed["detail"] == "wrong user name or password"
    assert "before" not in failed and "after" not in failed
    role = body["items"][3]
    assert (role["before"], role["after"]) == ({"role": "viewer"}, {"role": "operator"})
    assert "detail" not in role
    assert body["items"][2]["address"] == "10.0.0.9"


@pytest.mark.parametrize("role", ["operator", "viewer"])
def test_operators_and_viewers_get_403_naming_the_role(world: World, role: str) -> None:
    r = get(world, role=role)
    assert r.status_code == 403 and r.mimetype == "application/json"
    assert "admin" in r.get_json()["error"]


def test_anonymous_callers_get_401_json(world: World) -> None:
    r = world.anonymous().get("/api/v1/audit")
    assert r.status_code == 401 and "error" in r.get_json()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor=user:alice", ["user.role", "user.add", "login"]),
        ("action=login", ["login", "login"]),
        ("action=user.", ["user.role", "user.add"]),
        ("object=BOB", ["user.role", "user.add"]),
        ("actor=user:alice&action=login", ["login"]),
        ("from=2026-12-01T10:00:00Z&to=2026-12-01T12:00:00Z", ["incident.ack", "user.role"]),
        ("from=2026-12-01T17:00:00%2B08:00&to=2026-12-01T18:00:00%2B08:00", ["user.add"]),
        # no offset: site time (Asia/Shanghai); a date alone as the end takes its whole day
        ("from=2026-12-01T20:30&to=2026-12-01", ["config.reload"]),
        ("from=2026-12-01&to=2026-12-01", [*ALL_SIX]),  # 16:00-21:00 in Shanghai
        ("action=nothing.like.this", []),
    ],
    ids=[
        "actor",
        "action",
        "action-prefix",
        "object",
        "actor-and-action",
        "range",
        "range-with-offset",
        "range-without-offset",
        "one-day-in-site-time",
        "none",
    ],
)
def test_filters(world: World, query: str, expected: list[str]) -> None:
    got = items(world, query + f"&to={BEFORE_SETUP}" if "to=" not in query else query)
    assert [i["action"] for i in got] == expected


def test_pages_follow_each_other_newest_first(world: World) -> None:
    r1 = get(world, f"to={BEFORE_SETUP}&per_page=4").get_json()
    r2 = get(world, f"to={BEFORE_SETUP}&per_page=4&page=2").get_json()
    assert (r1["total"], r2["total"], len(r1["items"]), len(r2["items"])) == (6, 6, 4, 2)
    assert r1["items"][-1]["at"] > r2["items"][0]["at"]
    assert get(world, f"to={BEFORE_SETUP}&per_page=4&page=3").get_json()["items"] == []


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("from=yesterday", "from: must be an ISO 8601 date or time"),
        ("to=", "to: must be an ISO 8601"),  # given empty: not "no limit"
        ("to=2026-12-32", "to: must be an ISO 8601"),
        ("from=2026-12-02&to=2026-12-01", "to: must be later than from"),
        ("page=0", "page: must be from 1"),
        ("page=%C2%B2", "page: must be a whole number"),
        ("per_page=1001", "per_page: must be from 1 to 1000"),
        ("actor=a%00b", "actor: must not contain control characters"),
        ("actor=a&actor=b", "actor: give it at most once"),
        ("colour=red", "unknown parameter colour"),
        ("from=%EF%BC%92026-12-01", "from: must be an ISO 8601"),  # a full-width digit
    ],
)
def test_bad_parameters_are_400_with_the_reason(world: World, query: str, reason: str) -> None:
    r = get(world, query)
    assert r.status_code == 400 and r.mimetype == "application/json"
    assert reason in r.get_json()["error"]


def test_the_document_describes_the_route(world: World) -> None:
    doc = world.client("viewer").get("/api/v1/openapi.json").get_json()
    op = doc["paths"]["/api/v1/audit"]["get"]
    names = [p["name"] for p in op["parameters"]]
    assert names == ["actor", "action", "object", "from", "to", "page", "per_page"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AuditPage"
    }
