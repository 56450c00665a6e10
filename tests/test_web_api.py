"""The JSON API /api/v1 against a real temporary SQLite state DB."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from tests.test_web_support import (
    World,
    add_incident,
    add_targets,
    make_world,
    standard_rows,
)


@pytest.fixture
def world(tmp_path) -> World:
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    return w


@pytest.fixture
def client(world: World) -> FlaskClient:
    return world.client()


def test_targets_list_has_items_page_and_totals_per_health(client: FlaskClient) -> None:
    r = client.get("/api/v1/targets")
    assert r.status_code == 200
    assert r.mimetype == "application/json"
    body = r.get_json()
    assert body["page"] == 1 and body["per_page"] == 100 and body["total"] == 4
    assert body["totals"] == {"down": 1, "degraded": 1, "unknown": 1, "maintenance": 0, "up": 1}
    # worst health first
    assert [i["id"] for i in body["items"]] == ["trunk-a", "crm-db", "router", "trunk-b"]


def test_target_item_carries_name_since_markers_and_last_observation(client: FlaskClient) -> None:
    items = {i["id"]: i for i in client.get("/api/v1/targets").get_json()["items"]}
    a = items["trunk-a"]
    assert a["name"] == "Carrier A trunk" and a["kind"] == "sip" and a["health"] == "down"
    assert a["since"].endswith("Z") and "T" in a["since"]
    assert a["last_observation"]["status"] == "fail"
    assert a["last_observation"]["detail"].startswith("no answer to OPTIONS")
    assert a["last_observation"]["latency"] == pytest.approx(0.0123)
    assert a["last_observation"]["metrics"] == {"sip.rtt_ms": 12.5}
    assert items["trunk-b"]["flapping"] is True and items["trunk-b"]["name"] == "trunk-b"
    assert items["router"]["affected_by"] == "trunk-a"
    assert items["router"]["last_observation"] is None


def test_lang_adds_each_detail_as_the_pages_show_it_and_keeps_the_probes_own(
    client: FlaskClient,
) -> None:
    zh = {i["id"]: i for i in client.get("/api/v1/targets?lang=zh-CN").get_json()["items"]}
    last = zh["trunk-a"]["last_observation"]
    assert last["detail"] == "no answer to OPTIONS after 7 retransmissions (4.0 s)"
    assert last["detail_shown"] == "重传 7 次后 OPTIONS 仍无应答（4.0 秒）"
    assert zh["router"]["last_observation"] is None
    plain = client.get("/api/v1/targets").get_json()["items"]
    assert all("detail_shown" not in (i["last_observation"] or {}) for i in plain)
    bad = client.get("/api/v1/targets?lang=fr")
    assert bad.status_code == 400 and "allowed: zh-CN, en" in bad.get_json()["error"]


@pytest.mark.parametrize(
    ("query", "expected_ids"),
    [
        ("health=down", ["trunk-a"]),
        ("health=down,degraded", ["trunk-a", "crm-db"]),
        ("health=down&health=up", ["trunk-a", "trunk-b"]),
        ("kind=tcp", ["crm-db", "router"]),
        ("kind=tcp&health=unknown", ["router"]),
        ("q=trunk", ["trunk-a", "trunk-b"]),
        ("q=CRM%20data", ["crm-db"]),  # matches the configured name, not the id
        ("q=TRUNK-B", ["trunk-b"]),
        ("q=%25", []),  # LIKE wildcards are literal
        ("q=nothing-matches", []),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_targets_filter_by_health_kind_and_text(
    client: FlaskClient, query: str, expected_ids: list[str]
) -> None:
    body = client.get(f"/api/v1/targets?{query}").get_json()
    assert [i["id"] for i in body["items"]] == expected_ids
    assert body["total"] == len(expected_ids)


def test_totals_follow_kind_and_text_filters_but_not_the_health_filter(client: FlaskClient) -> None:
    body = client.get("/api/v1/targets?kind=tcp&health=degraded").get_json()
    assert body["total"] == 1
    assert body["totals"] == {"down": 0, "degraded": 1, "unknown": 1, "maintenance": 0, "up": 0}


def test_pagination_over_ten_thousand_targets_stays_consistent(tmp_path) -> None:
    w = make_world(tmp_path)
    healths = ["up"] * 9000 + ["down"] * 700 + ["degraded"] * 250 + ["maintenance"] * 50
    add_targets(
        w.db,
        ({"target_id": f"t-{i:05d}", "kind": "tcp", "health": h} for i, h in enumerate(healths)),
    )
    c = w.client()
    first = c.get("/api/v1/targets?per_page=1000").get_json()
    assert first["total"] == 10_000 and len(first["items"]) == 1000
    assert first["totals"] == {
        "down": 700,
        "degraded": 250,
        "unknown": 0,
        "maintenance": 50,
        "up": 9000,
    }
    assert {i["health"] for i in first["items"][:700]} == {"down"}
    last = c.get("/api/v1/targets?per_page=1000&page=10").get_json()
    assert len(last["items"]) == 1000 and last["items"][-1]["id"] == "t-08999"
    beyond = c.get("/api/v1/targets?per_page=1000&page=11").get_json()
    assert beyond["items"] == [] and beyond["total"] == 10_000
    down_page2 = c.get("/api/v1/targets?health=down&per_page=300&page=3").get_json()
    assert down_page2["total"] == 700 and len(down_page2["items"]) == 100
    seen = set()
    for page in range(1, 11):
        items = c.get(f"/api/v1/targets?per_page=1000&page={page}").get_json()["items"]
        seen.update(i["id"] for i in items)
    assert len(seen) == 10_000


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (
            "health=sick",
            "health: unknown value 'sick'; allowed: down, degraded, unknown, maintenance, up",
        ),
        ("health=up,", "health: empty value; allowed: down, degraded, unknown, maintenance, up"),
        ("kind=fax", "kind: unknown value 'fax'; allowed: "),
        ("per_page=0", "per_page: must be from 1 to 1000, got 0"),
        ("per_page=1001", "per_page: must be from 1 to 1000, got 1001"),
        ("per_page=ten", "per_page: must be a whole number from 1 to 1000, got 'ten'"),
        ("page=0", "page: must be from 1 to 1000000, got 0"),
        ("page=-1", "page: must be a whole number from 1 to 1000000, got '-1'"),
        ("page=1&page=2", "page: give it at most once (got 2 values)"),
        ("q=" + "x" * 201, "q: at most 200 characters, got 201"),
        ("helth=down", "unknown parameter helth; allowed: health, kind, lang, page, per_page, q"),
        ("token=abc", "unknown parameter token; allowed: health, kind, lang, page, per_page, q"),
    ],
    ids=lambda v: v[:40] if isinstance(v, str) else None,
)
def test_every_bad_target_list_parameter_is_a_400_naming_it(
    client: FlaskClient, query: str, message: str
) -> None:
    r = client.get(f"/api/v1/targets?{query}")
    assert r.status_code == 400
    assert r.mimetype == "application/json"
    assert r.get_json()["error"].startswith(message)


def test_kind_error_lists_the_registered_probe_kinds(client: FlaskClient) -> None:
    error = client.get("/api/v1/targets?kind=fax").get_json()["error"]
    for kind in ("sip", "tcp", "server"):
        assert kind in error


def test_one_target_has_config_facts_transitions_and_incidents(
    world: World, client: FlaskClient
) -> None:
    incident_id = add_incident(world.db, ["trunk-a", "router"], title="Carrier A down")
    body = client.get("/api/v1/targets/trunk-a").get_json()
    assert body["id"] == "trunk-a" and body["configured"] is True
    assert body["tags"] == {"carrier": "ct", "role": "trunk"}
    assert [i["id"] for i in body["incidents"]] == [incident_id]
    assert body["transitions"] == []


@pytest.mark.parametrize("path", ["/api/v1/targets/nope", "/api/v1/targets/Trunk-A"])
def test_unknown_target_is_a_json_404_with_the_reason(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404 and r.mimetype == "application/json"
    assert "no target with id" in r.get_json()["error"]


@pytest.mark.parametrize(
    "path", ["/api/v1/nothing", "/api/v2/targets", "/api/v1/targets/a/b", "/api/"]
)
def test_unknown_api_routes_are_json_404s(client: FlaskClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code == 404
    assert r.mimetype == "application/json"
    assert "no such API route" in r.get_json()["error"]


def test_wrong_method_on_an_api_route_is_a_json_405(client: FlaskClient) -> None:
    r = client.delete("/api/v1/targets")
    assert r.status_code == 405 and r.get_json()["error"].startswith("method DELETE")


def test_incidents_filter_by_state_and_list_their_targets(
    world: World, client: FlaskClient
) -> None:
    open_id = add_incident(
        world.db,
        ["trunk-a", "router"],
        title="Carrier A down",
        cause="carrier maintenance",
        eta=2_000_000_000.0,
        summary={"en": "Some calls fail", "zh-CN": "部分呼叫失败"},
    )
    resolved_id = add_incident(world.db, ["crm-db"], state="resolved", title="CRM slow")
    all_items = client.get("/api/v1/incidents").get_json()
    assert [i["id"] for i in all_items["items"]] == [open_id, resolved_id]
    assert all_items["total"] == 2
    open_items = client.get("/api/v1/incidents?state=open").get_json()["items"]
    assert len(open_items) == 1
    item = open_items[0]
    assert item["targets"] == ["trunk-a", "router"]
    assert item["state"] == "open" and item["resolved_at"] is None
    assert item["title"] == "Carrier A down" and item["cause"] == "carrier maintenance"
    assert item["eta"] == "2033-05-18T03:33:20Z"
    assert item["summary"] == {"en": "Some calls fail", "zh-CN": "部分呼叫失败"}
    resolved = client.get("/api/v1/incidents?state=resolved").get_json()["items"]
    assert [i["id"] for i in resolved] == [resolved_id] and resolved[0]["resolved_at"] is not None


def statements_for(world: World, path: str) -> int:
    """How many queries one GET of ``path`` sends to the state DB."""
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        sent.append(statement)

    client = world.client()
    sa.event.listen(world.db, "before_cursor_execute", record)
    try:
        assert client.get(path).status_code == 200
    finally:
        sa.event.remove(world.db, "before_cursor_execute", record)
    return len(sent)


@pytest.mark.parametrize(
    "path",
    ["/api/v1/incidents?per_page=50", "/api/v1/targets", "/api/v1/components", "/", "/status"],
)
def test_a_list_costs_the_same_queries_for_one_incident_as_for_forty(tmp_path, path: str) -> None:
    worlds = []
    for incidents in (1, 40):
        world = make_world(tmp_path / str(incidents))
        add_targets(world.db, standard_rows())
        for n in range(incidents):
            add_incident(world.db, ["trunk-a", "trunk-b", "router", f"extra-{n}"])
        worlds.append(world)
    one, forty = (statements_for(w, path) for w in worlds)
    assert one == forty, f"{path}: {one} queries for one incident, {forty} for forty"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("state=closed", "state: unknown value 'closed'; allowed: open, resolved"),
        (
            "status=open",
            "unknown parameter status; allowed: component, from, page, per_page, severity, "
            "state, target, to",
        ),
        ("per_page=5000", "per_page: must be from 1 to 1000, got 5000"),
    ],
)
def test_bad_incident_parameters_are_400s(client: FlaskClient, query: str, message: str) -> None:
    r = client.get(f"/api/v1/incidents?{query}")
    assert r.status_code == 400 and r.get_json()["error"] == message


def test_components_show_state_members_and_counts(client: FlaskClient) -> None:
    items = {c["id"]: c for c in client.get("/api/v1/components").get_json()["items"]}
    assert items["outbound"]["targets"] == ["trunk-a", "trunk-b"]
    assert items["outbound"]["state"] == "partial_outage"
    assert items["outbound"]["counts"] == {"down": 1, "up": 1}
    assert items["crm"]["state"] == "degraded"
    assert items["crm"]["name"] == {"zh-CN": "客户系统", "en": "CRM"}


def test_components_reject_parameters(client: FlaskClient) -> None:
    r = client.get("/api/v1/components?x=1")
    assert r.status_code == 400 and r.get_json()["error"] == "unknown parameter x; allowed: "


@pytest.mark.parametrize(
    ("errors", "status", "body"),
    [
        ([], 200, {"status": "reloaded"}),
        (
            ["config/site.yaml:3: targets[0].uri: field required"],
            422,
            {
                "error": "the new config has errors; the running config is unchanged",
                "errors": ["config/site.yaml:3: targets[0].uri: field required"],
            },
        ),
    ],
    ids=["reloaded", "config-errors"],
)
def test_reload_calls_the_service_and_reports_config_errors(
    tmp_path, errors: list[str], status: int, body: dict
) -> None:
    calls: list[tuple[str, str]] = []

    def reload(actor: str, address: str) -> list[str]:
        calls.append((actor, address))
        return errors

    w = make_world(tmp_path, reload=reload)
    r = w.client().post("/api/v1/reload")
    assert (r.status_code, r.get_json()) == (status, body)
    assert calls == [("token:1", "127.0.0.1")]  # who asked, for the audit entry


def test_reload_without_a_reload_service_is_501(client: FlaskClient) -> None:
    r = client.post("/api/v1/reload")
    assert r.status_code == 501 and "not available" in r.get_json()["error"]


def test_reload_from_another_site_is_refused(tmp_path) -> None:
    calls: list[int] = []
    w = make_world(tmp_path, reload=lambda *_: calls.append(1) or [])
    r = w.client().post("/api/v1/reload", headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and calls == []
    same = w.client().post("/api/v1/reload", headers={"Origin": "http://localhost"})
    assert same.status_code == 200 and calls == [1]


def test_reload_rejects_get(client: FlaskClient) -> None:
    assert client.get("/api/v1/reload").status_code == 405


def test_healthz_is_ok_json(client: FlaskClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.get_json() == {"status": "ok"}
