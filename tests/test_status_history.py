"""The status page grows up (issue 13): /status.json, 90-day uptime bars, the incident
history and the Atom feed — all in customer words, redacted like the page."""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from monitor import incident_actions as actions
from monitor.store.models import UptimeDay
from monitor.store.repository import StateRepository
from monitor.uptime import HealthSeconds, uptime_ratio
from tests.test_web_support import (
    INTERNAL_URI,
    TOKEN,
    add_incident,
    add_targets,
    make_config,
    make_world,
    standard_rows,
)
from web.status import percent

ATOM = "{http://www.w3.org/2005/Atom}"
NOTE = "call Li on 138 0000 0000 at 4 a.m."
"""An internal note: never on a public page."""
SECRETS = (INTERNAL_URI, "10.9.8.7", "10.1.1.5", TOKEN, NOTE, "trunk-a", "crm-db", "user:")
TZ = ZoneInfo("Asia/Shanghai")


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    return w


def publish(world, incident: int, text: dict[str, str], at: float | None = None) -> None:
    actions.publish_customer_update(StateRepository(world.db), "user:alice", incident, text, at=at)


def planted(world) -> tuple[int, int]:
    """An open and a resolved incident whose cause, title, note and update quote an
    address and the secret; returns their ids."""
    open_id = add_incident(
        world.db,
        ["trunk-a"],
        title=f"trunk-a {INTERNAL_URI} OPTIONS timeout",
        cause=f"carrier {INTERNAL_URI} stopped answering (token {TOKEN})",
        eta=2_000_000_000.0,
        summary={"en": "Some outbound calls fail", "zh-CN": "部分外呼失败"},
    )
    publish(world, open_id, {"en": "Traffic moved to carrier B", "zh-CN": "已切换到运营商B"})
    publish(world, open_id, {"en": f"Rerouted from {INTERNAL_URI}", "zh-CN": "已绕开故障线路"})
    actions.add_note(StateRepository(world.db), "user:bob", open_id, NOTE)
    resolved_id = add_incident(
        world.db,
        ["crm-db"],
        state="resolved",
        opened_ago=3600,
        title="crm-db 10.1.1.5:5432 slow",
        cause="disk full on 10.1.1.5",
        summary={"en": "The CRM was slow", "zh-CN": "客户系统缓慢"},
    )
    publish(world, resolved_id, {"en": "The CRM is fast again", "zh-CN": "客户系统已恢复"})
    actions.add_note(StateRepository(world.db), "user:bob", resolved_id, NOTE)
    return open_id, resolved_id


def assert_nothing_internal(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, secret


# -- /status.json ------------------------------------------------------------------------
def test_status_json_has_the_overall_state_components_and_open_incidents(world) -> None:
    open_id, _resolved = planted(world)
    r = world.anonymous().get("/status.json")
    assert r.status_code == 200 and r.mimetype == "application/json"
    assert r.headers["Access-Control-Allow-Origin"] == "*"
    body = r.get_json()
    assert body["status"] == {
        "state": "partial_outage",
        "description": {"zh-CN": "部分中断", "en": "Partial outage"},
    }
    assert [c["id"] for c in body["components"]] == ["outbound", "crm"]
    outbound = body["components"][0]
    assert outbound["name"] == {"zh-CN": "外呼线路", "en": "Outbound calling"}
    assert outbound["state"] == "partial_outage" and outbound["uptime_90d"] is None
    assert set(outbound) == {"id", "name", "description", "state", "uptime_90d"}
    [incident] = body["incidents"]  # the resolved one is history, not an open incident
    assert incident["id"] == open_id and incident["state"] == "open"
    assert incident["title"] == {"en": "Some outbound calls fail", "zh-CN": "部分外呼失败"}
    assert incident["eta"] == "2033-05-18T03:33:20Z"
    assert incident["components"] == ["outbound"]
    assert incident["url"] == f"/status/incidents/{open_id}"
    assert incident["cause"] == "carrier [redacted] stopped answering (token [redacted])"
    texts = [u["text"]["en"] for u in incident["updates"]]
    assert texts == ["Rerouted from [redacted]", "Traffic moved to carrier B"]  # newest first
    assert incident["updates"][1]["text"]["zh-CN"] == "已切换到运营商B"
    assert set(incident) == {
        "id",
        "state",
        "title",
        "summary",
        "cause",
        "eta",
        "started_at",
        "updated_at",
        "components",
        "url",
        "updates",
    }


def test_status_json_never_carries_addresses_secrets_target_ids_or_notes(world) -> None:
    planted(world)
    assert_nothing_internal(world.anonymous().get("/status.json").get_data(as_text=True))


def test_status_json_without_a_summary_titles_the_incident_in_customer_words(world) -> None:
    add_incident(world.db, ["trunk-a"], title="trunk-a sip OPTIONS timeout")
    [incident] = world.anonymous().get("/status.json").get_json()["incidents"]
    assert incident["title"]["en"] == "We are investigating a problem and will post an update soon."
    assert incident["title"]["zh-CN"] and "trunk-a" not in incident["title"]["zh-CN"]


def test_status_json_is_a_snapshot_with_an_etag_and_follows_public_status(tmp_path) -> None:
    w = make_world(tmp_path)
    first = w.anonymous().get("/status.json")
    again = w.anonymous().get("/status.json", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304
    private = make_world(tmp_path / "private", config=make_config(web={"public_status": False}))
    assert private.anonymous().get("/status.json").status_code == 404
    r = private.client("viewer").get("/status.json")
    assert r.status_code == 200 and "Access-Control-Allow-Origin" not in r.headers


# -- the 90-day uptime bars -------------------------------------------------------------------
def add_uptime(world, component: str, days: dict[date, HealthSeconds]) -> None:
    with Session(world.db) as s:
        s.execute(
            sa.insert(UptimeDay),
            [
                {
                    "subject_kind": "component",
                    "subject_id": component,
                    "day": day,
                    "up_seconds": sec.up,
                    "degraded_seconds": sec.degraded,
                    "down_seconds": sec.down,
                    "maintenance_seconds": sec.maintenance,
                    "unknown_seconds": sec.unknown,
                }
                for day, sec in days.items()
            ],
        )
        s.commit()


def bars(html: str) -> list[tuple[str, str]]:
    """(class, title) of every day bar, in page order."""
    return [
        (cls, unescape(title))
        for cls, title in re.findall(r'<li class="(u-[a-z -]+)" title="([^"]*)"></li>', html)
    ]


def test_uptime_ratio_counts_down_against_and_leaves_maintenance_and_unknown_out() -> None:
    assert uptime_ratio([]) is None
    assert uptime_ratio([HealthSeconds(maintenance=100, unknown=50)]) is None
    assert uptime_ratio([HealthSeconds(up=900, degraded=50, down=50, maintenance=1000)]) == 0.95
    assert percent(0.99999) == "99.99%"  # rounded down: any downtime shows below 100 %
    assert percent(1.0) == "100.00%" and percent(None) == ""


def test_the_status_page_shows_90_daily_bars_and_the_90_day_uptime(world) -> None:
    today = datetime.now(TZ).date()
    ago = today - timedelta(days=3)
    add_uptime(
        world,
        "crm",
        {today - timedelta(days=n): HealthSeconds(up=86400) for n in range(10) if n != 3}
        | {ago: HealthSeconds(up=82800, down=3600)},  # one hour down three days ago
    )
    # the incident of that day, resolved, with an address in its title and cause
    add_incident(
        world.db,
        ["crm-db"],
        state="resolved",
        opened_ago=time.time() - datetime.combine(ago, datetime.min.time(), TZ).timestamp() - 3600,
        title="crm-db 10.1.1.5 down",
        cause="10.1.1.5 disk full",
        summary={"en": "The CRM was unreachable", "zh-CN": "客户系统无法访问"},
    )
    html = world.anonymous().get("/status?lang=en").get_data(as_text=True)
    found = bars(html)
    assert len(found) == 2 * 90  # two components, 90 days each
    outbound, crm = found[:90], found[90:]
    assert {cls for cls, _t in outbound} == {"u-none"}
    assert crm[-1][1].startswith(f"{today.isoformat()} · 100.00%")
    cls, title = crm[-4]
    assert "u-down" in cls and "u-incident" in cls
    assert title.startswith(f"{ago.isoformat()} · 95.83%")  # 23 of 24 hours
    assert "The CRM was unreachable" in title
    assert crm[-11] == (
        "u-none",
        f"{(today - timedelta(days=10)).isoformat()} · No data · No incidents.",
    )
    # 10 days counted, one hour down: 239/240
    assert "99.58% uptime" in html and "No uptime data yet" in html
    # the table fallback, for readers without a pointer or CSS
    assert '<details class="uptime-table">' in html
    assert f"<td>{ago.isoformat()}</td><td>95.83%</td><td>The CRM was unreachable</td>" in html
    assert "10.1.1.5" not in html
    zh = world.anonymous().get("/status?lang=zh-CN").get_data(as_text=True)
    assert "可用率 99.58%" in zh and "客户系统无法访问" in zh
    assert world.anonymous().get("/status.json").get_json()["components"][1]["uptime_90d"] == 99.583


# -- the incident history ---------------------------------------------------------------------
def test_incident_history_lists_resolved_incidents_newest_first_in_pages(world) -> None:
    for n in range(25):
        add_incident(
            world.db,
            ["crm-db"],
            state="resolved",
            opened_ago=100_000 - n * 100,  # resolved at the same time: newest id first
            summary={"en": f"Slow CRM number {n:02d}"},
        )
    add_incident(world.db, ["router"], state="resolved", summary={"en": "Internal router"})
    add_incident(world.db, ["trunk-a"], summary={"en": "Still open"})
    client = world.anonymous()
    first = client.get("/status/incidents?lang=en").get_data(as_text=True)
    numbers = re.findall(r"Slow CRM number (\d\d)", first)
    assert numbers == [f"{n:02d}" for n in range(24, 4, -1)]
    assert "Page 1 of 2" in first and 'href="/status/incidents?page=2" rel="next"' in first
    assert "Internal router" not in first and "Still open" not in first
    second = client.get("/status/incidents?page=2&lang=en").get_data(as_text=True)
    assert re.findall(r"Slow CRM number (\d\d)", second) == ["04", "03", "02", "01", "00"]
    assert client.get("/status/incidents?page=zero").status_code == 400
    assert client.get("/status/incidents?q=x").status_code == 400
    zh = client.get("/status/incidents?lang=zh-CN").get_data(as_text=True)
    assert "历史事件" in zh and "Slow CRM number 24" in zh  # no Chinese summary: the English one


def test_the_status_page_links_to_the_history_and_each_incident(world) -> None:
    open_id, resolved_id = planted(world)
    html = world.anonymous().get("/status?lang=en").get_data(as_text=True)
    assert 'href="/status/incidents"' in html
    assert f'href="/status/incidents/{open_id}"' in html
    assert f'href="/status/incidents/{resolved_id}"' in html


def test_one_incident_shows_its_customer_updates_and_never_an_internal_note(world) -> None:
    open_id, resolved_id = planted(world)
    client = world.anonymous()
    for lang in ("en", "zh-CN"):
        for incident in (open_id, resolved_id):
            html = client.get(f"/status/incidents/{incident}?lang={lang}").get_data(as_text=True)
            assert_nothing_internal(html)
        history = client.get(f"/status/incidents?lang={lang}").get_data(as_text=True)
        assert_nothing_internal(history)
    en = client.get(f"/status/incidents/{open_id}?lang=en").get_data(as_text=True)
    assert en.index("Rerouted from [redacted]") < en.index("Traffic moved to carrier B")
    assert "Some outbound calls fail" in en and "2033-05-18 11:33:20" in en
    zh = client.get(f"/status/incidents/{resolved_id}?lang=zh-CN").get_data(as_text=True)
    assert "客户系统缓慢" in zh and "客户系统已恢复" in zh


def test_an_incident_customers_never_saw_is_not_found(world) -> None:
    internal = add_incident(world.db, ["router"], summary={"en": "Internal router"})
    blink = add_incident(world.db, ["crm-db"], state="resolved", opened_ago=60)
    client = world.anonymous()
    for incident in (internal, blink, 9999):
        assert client.get(f"/status/incidents/{incident}").status_code == 404


# -- the Atom feed ------------------------------------------------------------------------------
def test_the_feed_is_valid_atom_with_an_entry_per_incident_and_its_updates(world) -> None:
    open_id, resolved_id = planted(world)
    r = world.anonymous().get("/status/feed.atom?lang=en")
    assert r.status_code == 200 and r.mimetype == "application/atom+xml"
    text = r.get_data(as_text=True)
    assert_nothing_internal(text)
    feed = ET.fromstring(r.data)
    assert feed.tag == f"{ATOM}feed"
    for name in ("id", "title", "updated"):
        assert (feed.findtext(f"{ATOM}{name}") or "").strip(), name
    assert feed.find(f"{ATOM}author/{ATOM}name").text == "Test Center"
    entries = feed.findall(f"{ATOM}entry")
    titles = [e.findtext(f"{ATOM}title") for e in entries]
    assert sorted(titles) == ["Resolved: The CRM was slow", "Some outbound calls fail"]
    ids = [e.findtext(f"{ATOM}id") for e in entries]
    assert len(set(ids)) == 2 and all(i.startswith("urn:uuid:") for i in ids)
    for e in entries:
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", e.findtext(f"{ATOM}updated"))
        assert e.find(f"{ATOM}link").get("href").startswith("/status/incidents/")
    by_title = dict(zip(titles, entries, strict=True))
    content = ET.tostring(by_title["Some outbound calls fail"].find(f"{ATOM}content"), "unicode")
    assert "Traffic moved to carrier B" in content and "Rerouted from [redacted]" in content
    zh = ET.fromstring(world.anonymous().get("/status/feed.atom?lang=zh-CN").data)
    assert "已解决：客户系统缓慢" in [
        e.findtext(f"{ATOM}title") for e in zh.findall(f"{ATOM}entry")
    ]
    assert_nothing_internal(
        world.anonymous().get("/status/feed.atom?lang=zh-CN").get_data(as_text=True)
    )


def test_the_status_page_announces_its_feed(world) -> None:
    html = world.anonymous().get("/status?lang=en").get_data(as_text=True)
    assert re.search(
        r'<link rel="alternate" type="application/atom\+xml" title="[^"]*" href="/status/feed.atom\?lang=en">',
        html,
    )


def test_the_feed_links_to_web_base_url_when_it_is_set(tmp_path) -> None:
    cfg = make_config(web={"base_url": "https://status.example.cn"})
    w = make_world(tmp_path, config=cfg)
    add_targets(w.db, standard_rows())
    add_incident(w.db, ["trunk-a"], summary={"en": "Calls fail"})
    feed = ET.fromstring(
        w.anonymous().get("/status/feed.atom?lang=en", base_url="https://status.example.cn").data
    )
    [entry] = feed.findall(f"{ATOM}entry")
    assert (
        entry.find(f"{ATOM}link")
        .get("href")
        .startswith("https://status.example.cn/status/incidents/")
    )


def test_incidents_of_no_shown_component_stay_out_of_the_json_the_history_and_the_feed(
    world,
) -> None:
    # "router" is in no component: its outage is internal
    add_incident(world.db, ["router"], summary={"en": "Internal router replaced"})
    add_incident(world.db, ["router"], state="resolved", summary={"en": "Router reboot"})
    client = world.anonymous()
    assert client.get("/status.json").get_json()["incidents"] == []
    for url in ("/status/incidents?lang=en", "/status/feed.atom?lang=en"):
        text = client.get(url).get_data(as_text=True)
        assert "Internal router" not in text and "Router reboot" not in text, url


def test_a_private_status_page_keeps_its_history_and_feed_from_anonymous_callers(tmp_path) -> None:
    w = make_world(tmp_path, config=make_config(web={"public_status": False}))
    add_targets(w.db, standard_rows())
    incident = add_incident(w.db, ["crm-db"], state="resolved", opened_ago=600)
    for url in ("/status/incidents", f"/status/incidents/{incident}", "/status/feed.atom"):
        assert w.anonymous().get(url).status_code == 404, url
        assert w.client("viewer").get(url).status_code == 200, url
