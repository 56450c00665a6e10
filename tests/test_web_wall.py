"""The wall screen (``/wall``) and its data (``/wall/data``), over a real SQLite state DB."""

from __future__ import annotations

import json
import re

import pytest

from tests.test_web_support import (
    OnePointMetrics,
    add_incident,
    add_targets,
    make_config,
    make_world,
    standard_rows,
)


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    return w


def island(html: str, element_id: str) -> dict:
    found = re.search(rf'<script id="{element_id}" type="application/json">(.*?)</script>', html)
    assert found is not None, f"no #{element_id} in the page"
    return json.loads(found.group(1))


def test_the_wall_carries_its_first_snapshot_and_where_to_poll(world) -> None:
    world.app.config["DIALWATCH_REFRESH_MS"] = 1234
    r = world.client().get("/wall?lang=en")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    cfg = island(html, "dw-config")
    assert cfg["dataUrl"] == "/wall/data" and cfg["refreshMs"] == 1234
    assert cfg["labels"]["new_incident"] == "New incident #{id}"
    snap = island(html, "wall-data")
    assert snap["totals"] == {"down": 1, "degraded": 1, "unknown": 1, "maintenance": 0, "up": 1}
    assert '<body class="wall"' in html and "/static/wall.js" in html


def test_wall_data_has_a_tile_per_component_and_the_open_incidents(world) -> None:
    first = add_incident(world.db, ["trunk-a", "router"], opened_ago=600, acknowledged_by="li.wei")
    second = add_incident(world.db, ["crm-db"], opened_ago=60, severity="degraded")
    add_incident(world.db, ["trunk-b"], state="resolved")
    data = world.client().get("/wall/data?lang=en").get_json()
    assert data["tile_kind"] == "component"
    tiles = {t["id"]: t for t in data["tiles"]}
    assert list(tiles) == ["outbound", "crm"]  # config order
    assert tiles["outbound"]["name"] == "Outbound calling"
    assert (tiles["outbound"]["state"], tiles["outbound"]["state_label"]) == (
        "partial_outage",
        "Partial outage",
    )
    assert tiles["outbound"]["counts"]["down"] == 1 and tiles["outbound"]["counts"]["up"] == 1
    assert tiles["crm"]["state"] == "degraded" and tiles["crm"]["total"] == 1
    incidents = data["incidents"]
    assert incidents["total"] == 2
    assert [i["id"] for i in incidents["items"]] == [second, first]  # newest first
    assert incidents["items"][1]["title"] == "trunk-a is Down"
    assert incidents["items"][1]["acknowledged_by"] == "li.wei"
    assert incidents["items"][1]["targets"] == ["trunk-a", "router"]


def test_wall_data_follows_the_page_language(world) -> None:
    add_incident(world.db, ["trunk-a"])
    data = world.client().get("/wall/data?lang=zh-CN").get_json()
    assert data["tiles"][0]["name"] == "外呼线路"
    assert data["incidents"]["items"][0]["title"] == "trunk-a 故障"


def test_a_site_without_components_gets_a_tile_per_probe_kind(tmp_path) -> None:
    w = make_world(tmp_path, config=make_config(components=[]))
    add_targets(w.db, standard_rows())
    data = w.client().get("/wall/data?lang=en").get_json()
    assert data["tile_kind"] == "kind"
    assert [(t["id"], t["state"], t["total"]) for t in data["tiles"]] == [
        ("sip", "partial_outage", 2),
        ("tcp", "degraded", 2),
    ]


@pytest.mark.parametrize("path", ["/wall?sound=1", "/wall/data?page=2"])
def test_an_unknown_parameter_is_a_400_naming_it(world, path: str) -> None:
    r = world.client().get(path)
    assert r.status_code == 400
    assert "unknown parameter" in r.get_data(as_text=True)


def test_the_wall_is_guarded_like_every_dashboard_page(tmp_path) -> None:
    w = make_world(tmp_path)
    c = w.anonymous()
    assert c.get("/wall").headers["Location"].startswith("/login")
    assert c.get("/wall/data").headers["Location"].startswith("/login")
    # A wall screen trades a viewer token for its own session, once.
    r = c.get(f"/wall/open?token={w.tokens['viewer']}")
    assert r.status_code == 302 and r.headers["Location"] == "/wall"
    assert c.get("/wall").status_code == 200 and c.get("/wall/data").status_code == 200


@pytest.mark.parametrize("path", ["/wall", "/targets/trunk-a", "/"])
def test_pages_run_no_inline_script(tmp_path, path: str) -> None:
    w = make_world(tmp_path, metrics=OnePointMetrics())  # so the target page has a chart
    add_targets(w.db, standard_rows())
    r = w.client().get(path)
    assert "script-src 'self'" in r.headers["Content-Security-Policy"]
    tags = re.findall(r"<script\b[^>]*>", r.get_data(as_text=True))
    assert tags
    for tag in tags:
        assert 'type="application/json"' in tag or re.search(r'src="/static/[^"]+"', tag), tag
