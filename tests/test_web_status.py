"""The public status page: component states, incidents in customer words, nothing internal."""

from __future__ import annotations

import asyncio

import pytest

from monitor import incident_actions as actions
from monitor.components import members
from monitor.config.schema import Config
from monitor.health import Health
from monitor.redact import MASK, redact, sensitive_strings
from monitor.store import queries
from monitor.store.repository import StateRepository
from tests.test_events import Driven, target
from tests.test_web_support import (
    INTERNAL_URI,
    TOKEN,
    add_incident,
    add_targets,
    make_config,
    make_world,
    standard_rows,
)
from web import WebServices, create_app
from web.components import ComponentState, component_state, overall_state

S = ComponentState


@pytest.mark.parametrize(
    ("healths", "state"),
    [
        ([], S.OPERATIONAL),
        (["unknown", "unknown"], S.OPERATIONAL),
        (["up", "up"], S.OPERATIONAL),
        (["up", "unknown"], S.OPERATIONAL),
        (["up", "degraded"], S.DEGRADED),
        (["up", "down"], S.PARTIAL_OUTAGE),
        (["degraded", "down"], S.PARTIAL_OUTAGE),
        (["down", "down"], S.MAJOR_OUTAGE),
        (["down", "unknown"], S.MAJOR_OUTAGE),
        (["down", "maintenance"], S.MAJOR_OUTAGE),
        (["maintenance", "maintenance"], S.MAINTENANCE),
        (["maintenance", "unknown"], S.MAINTENANCE),
        (["maintenance", "up"], S.OPERATIONAL),
        (["maintenance", "degraded"], S.DEGRADED),
    ],
    ids=lambda v: ",".join(v) if isinstance(v, list) else None,
)
def test_component_state_follows_the_documented_rule(healths: list[str], state: S) -> None:
    assert component_state(Health(h) for h in healths) is state


def test_overall_state_is_the_worst_component_state() -> None:
    assert overall_state([]) is S.OPERATIONAL
    assert overall_state([S.OPERATIONAL, S.MAINTENANCE]) is S.MAINTENANCE
    assert overall_state([S.DEGRADED, S.MAJOR_OUTAGE, S.PARTIAL_OUTAGE]) is S.MAJOR_OUTAGE


def test_component_members_are_the_explicit_list_then_the_selector_matches() -> None:
    cfg = make_config(
        components=[
            {
                "id": "mixed",
                "name": {"zh-CN": "混合", "en": "Mixed"},
                "targets": ["router"],
                "selector": {"role": "trunk"},
            },
            {
                "id": "both",
                "name": {"zh-CN": "两者", "en": "Both"},
                "selector": {"role": "trunk", "carrier": "ct"},
            },
            {"id": "none", "name": {"zh-CN": "无", "en": "None"}},
        ]
    )
    found = {c.id: members(c, cfg.targets) for c in cfg.components}
    assert found == {"mixed": ["router", "trunk-a", "trunk-b"], "both": ["trunk-a"], "none": []}


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    return w


def test_status_page_shows_components_with_their_state_in_english(world) -> None:
    html = world.client().get("/status?lang=en").get_data(as_text=True)
    assert "Outbound calling" in html and "Partial outage" in html
    assert "CRM" in html and "Degraded performance" in html
    assert "Calls to your customers" in html
    assert 'class="banner s-partial_outage"' in html


def test_status_page_is_chinese_by_default_for_a_zh_site(world) -> None:
    html = world.client().get("/status").get_data(as_text=True)
    assert '<html lang="zh-CN">' in html
    assert "外呼线路" in html and "部分中断" in html and "客户系统" in html


def test_open_incident_shows_summary_cause_eta_and_affected_components(world) -> None:
    add_incident(
        world.db,
        ["trunk-a"],
        title="trunk-a down",
        cause="Carrier A is repairing a fibre cut",
        eta=2_000_000_000.0,
        summary={"en": "Some outbound calls fail", "zh-CN": "部分外呼失败"},
    )
    html = world.client().get("/status?lang=en").get_data(as_text=True)
    assert "Some outbound calls fail" in html
    assert "Carrier A is repairing a fibre cut" in html
    assert "2033-05-18 11:33:20" in html  # ETA in the site timezone (Asia/Shanghai)
    assert "Affected</span> Outbound calling" in html
    zh = world.client().get("/status?lang=zh-CN").get_data(as_text=True)
    assert "部分外呼失败" in zh and "外呼线路" in zh


def test_incident_without_summary_gets_a_generic_sentence_not_its_internal_title(world) -> None:
    add_incident(world.db, ["trunk-a"], title="trunk-a sip OPTIONS timeout")
    html = world.client().get("/status?lang=en").get_data(as_text=True)
    assert "We are investigating a problem" in html
    assert "trunk-a" not in html and "OPTIONS" not in html


def test_an_incident_of_a_target_in_no_component_stays_off_the_public_page(world) -> None:
    # "router" belongs to no component: its outage is internal
    add_incident(world.db, ["router"], summary={"en": "Internal router replaced"})
    add_incident(world.db, ["router"], state="resolved", summary={"en": "Router reboot"})
    html = world.client().get("/status?lang=en").get_data(as_text=True)
    assert "Internal router replaced" not in html and "Router reboot" not in html
    assert "We are investigating" not in html
    assert "No incidents." in html


def test_recently_resolved_incidents_are_listed(world) -> None:
    add_incident(world.db, ["crm-db"], state="resolved", summary={"en": "CRM was slow"})
    html = world.client().get("/status?lang=en").get_data(as_text=True)
    assert "Resolved in the last 7 days" in html and "CRM was slow" in html


def test_status_page_never_shows_addresses_uris_target_ids_or_the_token(world) -> None:
    add_incident(
        world.db,
        ["trunk-a", "router"],
        title=f"{INTERNAL_URI} down",
        cause=f"carrier {INTERNAL_URI} stopped answering; the edge at 10.1.1.1:22 and [fd00::1]:5060 too (token {TOKEN})",
        summary={"en": f"Calls via {INTERNAL_URI} fail", "zh-CN": f"经 {INTERNAL_URI} 的呼叫失败"},
    )
    c = world.client()
    for lang in ("en", "zh-CN"):
        html = c.get(f"/status?lang={lang}").get_data(as_text=True)
        for secret in (
            INTERNAL_URI,
            "10.9.8.7",
            "10.9.8.8",
            "10.1.1.1",
            "10.1.1.5",
            "fd00::1",
            TOKEN,
        ):
            assert secret not in html, (lang, secret)
        for target_id in ("trunk-a", "trunk-b", "crm-db", "router"):
            assert target_id not in html, (lang, target_id)
        assert MASK in html
    # it is also the first page a customer sees without any token
    assert c.get("/status").status_code == 200


def test_component_name_that_quotes_an_address_is_redacted_and_escaped(tmp_path) -> None:
    cfg = make_config(
        components=[
            {
                "id": "odd",
                "name": {
                    "zh-CN": "<script>alert(1)</script> 经 10.9.8.7",
                    "en": "<script>alert(1)</script> via 10.9.8.7",
                },
                "targets": ["crm-db"],
            }
        ]
    )
    w = make_world(tmp_path, config=cfg)
    html = w.client().get("/status?lang=en").get_data(as_text=True)
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "10.9.8.7" not in html


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Carrier trunk sip:10.9.8.7:5060 down", f"Carrier trunk {MASK} down"),
        ("sips:gw@carrier.example;transport=tls", MASK),
        ("router 192.168.1.1 unreachable", f"router {MASK} unreachable"),
        ("failover to [2001:db8::5]:5060", f"failover to {MASK}"),
        ("ops@center.example will call you", f"{MASK} will call you"),
        ("recovery expected at 10:30", "recovery expected at 10:30"),
        ("部分呼叫失败", "部分呼叫失败"),
    ],
)
def test_redact_masks_address_like_text(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_sensitive_strings_come_from_kind_specific_fields_and_the_token() -> None:
    cfg: Config = make_config()
    found = sensitive_strings(cfg)
    assert TOKEN in found and INTERNAL_URI in found and "10.1.1.5:5432" in found
    # ids, names, fixed choices (transport: udp) and durations are not secrets
    assert "trunk-a" not in found and "Carrier A trunk" not in found and "udp" not in found
    assert redact("CRM host db-internal", ["db-internal"]) == f"CRM host {MASK}"


# -- customer updates, cause and ETA, merged incidents, the appliance component -------
def publish(world, incident: int, text: dict[str, str], at: float | None = None) -> None:
    actions.publish_customer_update(StateRepository(world.db), "user:alice", incident, text, at=at)


def test_published_updates_show_under_their_incident_in_each_language_newest_first(world) -> None:
    incident = add_incident(
        world.db, ["trunk-a"], summary={"en": "Calls fail", "zh-CN": "呼叫失败"}
    )
    publish(
        world,
        incident,
        {"en": "Carrier A found a fibre cut", "zh-CN": "运营商A发现光缆中断"},
        at=1_900_000_000.0,
    )
    publish(world, incident, {"en": "Traffic moved to carrier B"}, at=1_900_000_600.0)
    actions.add_note(StateRepository(world.db), "user:bob", incident, "call Li at the NOC, 4 a.m.")
    en = world.client().get("/status?lang=en").get_data(as_text=True)
    zh = world.client().get("/status?lang=zh-CN").get_data(as_text=True)
    assert en.index("Traffic moved to carrier B") < en.index("Carrier A found a fibre cut")
    assert "2030-03-18 01:46:40" in en  # published_at, in the site timezone
    assert 'datetime="2030-03-17T17:46:40Z"' in en
    assert "运营商A发现光缆中断" in zh and "Carrier A found a fibre cut" not in zh
    assert "Traffic moved to carrier B" in zh  # no Chinese text: the English one, not nothing
    for html in (en, zh):
        assert "call Li" not in html and "user:" not in html  # notes and who published: never


def test_customer_updates_never_render_internal_addresses_or_secrets(world) -> None:
    incident = add_incident(world.db, ["trunk-a"])
    publish(
        world,
        incident,
        {
            "en": f"Rerouted from {INTERNAL_URI} to 10.1.1.5:5432 (token {TOKEN})",
            "zh-CN": f"已从 {INTERNAL_URI} 切换 <b>备用</b>",
        },
    )
    for lang in ("en", "zh-CN"):
        html = world.client().get(f"/status?lang={lang}").get_data(as_text=True)
        for secret in (INTERNAL_URI, "10.9.8.7", "10.1.1.5", TOKEN, "<b>"):
            assert secret not in html, (lang, secret)
        assert MASK in html


def test_an_incident_with_a_cause_or_eta_says_so_instead_of_investigating(world) -> None:
    add_incident(world.db, ["trunk-a"], cause="Carrier A is repairing a fibre cut")
    add_incident(world.db, ["crm-db"], eta=2_000_000_000.0)
    html = world.client().get("/status?lang=en").get_data(as_text=True)
    assert "We are investigating" not in html
    assert "We have found the cause and are working on a fix." in html
    assert "Carrier A is repairing a fibre cut" in html
    assert "We are working on a problem affecting the service." in html
    assert "2033-05-18 11:33:20" in html


def test_a_resolved_incident_that_lasted_no_time_is_not_listed(world) -> None:
    add_incident(world.db, ["crm-db"], state="resolved", opened_ago=60, summary={"en": "Blink"})
    add_incident(world.db, ["crm-db"], state="resolved", opened_ago=600, summary={"en": "Real"})
    html = world.client().get("/status?lang=en").get_data(as_text=True)
    assert "Real" in html and "Blink" not in html


def test_an_incident_merged_into_its_parents_is_not_a_resolved_incident(tmp_path) -> None:
    # The real engine merges: the child (pbx) notices first, then its parent goes down.
    targets = target("edge-router") + target("pbx", "depends_on: [edge-router]\n")
    web_cfg = make_config(
        targets=[
            {"id": "edge-router", "kind": "tcp", "address": "127.0.0.1:9"},
            {"id": "pbx", "kind": "tcp", "address": "127.0.0.1:9", "depends_on": ["edge-router"]},
        ],
        components=[{"id": "calls", "name": {"en": "Calls", "zh-CN": "呼叫"}, "targets": ["pbx"]}],
    )

    async def scenario() -> None:
        async with Driven(tmp_path, targets) as d:
            await d.feed("edge-router", "ok")
            await d.feed("pbx", "ok")
            await d.feed("pbx", "fail", "fail", step=0.1)
            await d.feed("edge-router", "fail", "fail", step=0.1)
            [own, parent] = [i.id for i in queries.incidents_page(d.db).items][::-1]
            app = create_app(WebServices(config=lambda: web_cfg, db=d.db))
            html = app.test_client().get("/status?lang=en").get_data(as_text=True)
            assert queries.incident(d.db, own).state == "resolved"  # as the keeper wrote it
            assert "A problem affected the service and has been resolved." not in html
            assert "No incidents." in html
            assert html.count('class="incident"') == 1  # the parent's, open, affecting Calls

            await d.feed("edge-router", "ok", "ok")
            await d.feed("pbx", "ok", "ok")
            assert queries.incident(d.db, parent).state == "resolved"
            later = create_app(WebServices(config=lambda: web_cfg, db=d.db))
            html = later.test_client().get("/status?lang=en").get_data(as_text=True)
            assert html.count('class="incident resolved"') == 1  # the parent's only

    asyncio.run(scenario())


def test_a_config_without_components_shows_the_appliance_itself(tmp_path) -> None:
    w = make_world(tmp_path, config=make_config(components=[]))
    add_targets(w.db, [{"target_id": "dialwatch", "kind": "appliance", "health": "degraded"}])
    en = w.client().get("/status?lang=en").get_data(as_text=True)
    assert "Monitoring" in en and "Degraded performance" in en
    assert "No components are configured." not in en and "All systems operational" not in en
    assert "监控系统" in w.client().get("/status?lang=zh-CN").get_data(as_text=True)
    [item] = w.client().get("/api/v1/components").get_json()["items"]
    assert item["id"] == "dialwatch" and item["targets"] == ["dialwatch"]
    assert item["name"] == {"zh-CN": "监控系统", "en": "Monitoring"}
    assert item["state"] == "degraded"


def test_the_appliance_component_follows_a_configured_appliance_target(tmp_path) -> None:
    cfg = make_config(components=[], targets=[{"id": "self-check", "kind": "appliance"}])
    w = make_world(tmp_path, config=cfg)
    add_targets(w.db, [{"target_id": "self-check", "kind": "appliance", "health": "down"}])
    assert "Major outage" in w.client().get("/status?lang=en").get_data(as_text=True)
