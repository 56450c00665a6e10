"""Languages: how a page picks zh-CN or en, and that the catalogs are complete and compiled."""

from __future__ import annotations

import gettext
import re
from html import unescape
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from tests.test_web_support import add_targets, make_config, make_world, standard_rows
from web.i18n import choose_locale

WEB = Path(__file__).resolve().parent.parent / "web"
TRANSLATIONS = WEB / "translations"
KEYWORDS = {"_": None, "gettext": None, "_l": None, "lazy_gettext": None}
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.mark.parametrize(
    ("query", "cookie", "accept", "site", "expected"),
    [
        ("en", "zh-CN", ["zh-CN"], "zh-CN", "en"),
        ("zh-CN", None, ["en"], "en", "zh_CN"),
        ("fr", "en", ["zh-CN"], "zh-CN", "en"),  # an unknown ?lang= falls through to the cookie
        (None, "en", ["zh-CN"], "zh-CN", "en"),
        (None, None, ["zh-CN", "en"], "en", "zh_CN"),
        (None, None, ["zh-TW"], "en", "zh_CN"),
        (None, None, ["en-US", "zh-CN"], "zh-CN", "en"),
        (None, None, ["fr-FR", "en"], "zh-CN", "en"),
        (None, None, ["fr-FR"], "zh-CN", "zh_CN"),
        (None, None, [], "en", "en"),
        (None, None, [], "zh-CN", "zh_CN"),
    ],
)
def test_locale_comes_from_query_then_cookie_then_browser_then_site(
    query: str | None, cookie: str | None, accept: list[str], site: str, expected: str
) -> None:
    assert choose_locale(query, cookie, accept, site) == expected


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path, config=make_config(site={"name": "Center", "language": "en"}))
    add_targets(w.db, standard_rows())
    return w


@pytest.mark.parametrize(
    ("accept", "present", "absent"),
    [
        (
            "zh-CN,zh;q=0.9",
            ["仪表盘", "健康状态", "故障", "没有未解决的事件。"],
            ["Dashboard", "Open incidents"],
        ),
        (
            "en-US,en;q=0.9",
            ["Dashboard", "Health", "Open incidents", "Down"],
            ["仪表盘", "健康状态"],
        ),
    ],
)
def test_dashboard_speaks_the_browser_language(world, accept: str, present, absent) -> None:
    html = world.client().get("/", headers={"Accept-Language": accept}).get_data(as_text=True)
    for text in present:
        assert text in html
    for text in absent:
        assert text not in html


def test_status_page_speaks_the_browser_language(world) -> None:
    zh = world.client().get("/status", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    en = world.client().get("/status", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "服务状态" in zh and "外呼线路" in zh and "部分中断" in zh
    assert "Service status" in en and "Outbound calling" in en and "Partial outage" in en


def test_lang_query_sets_a_cookie_that_later_pages_follow(world) -> None:
    c = world.client()
    r = c.get("/status?lang=zh-CN", headers={"Accept-Language": "en"})
    assert "服务状态" in r.get_data(as_text=True)
    assert c.get_cookie("lang").value == "zh-CN"
    again = c.get("/", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert "仪表盘" in again


def test_site_language_applies_when_the_browser_sends_none(tmp_path) -> None:
    w = make_world(tmp_path)  # site.language zh-CN
    assert '<html lang="zh-CN">' in w.client().get("/status").get_data(as_text=True)
    w_en = make_world(tmp_path / "en", config=make_config(site={"language": "en"}))
    assert '<html lang="en">' in w_en.client().get("/status").get_data(as_text=True)


def test_times_are_shown_in_the_site_timezone(tmp_path) -> None:
    w = make_world(tmp_path)  # Asia/Shanghai, UTC+8
    add_targets(w.db, [{"target_id": "trunk-a", "since": 1_767_225_600.0}])  # 2026-01-01 00:00 UTC
    html = w.client().get("/?lang=en").get_data(as_text=True)
    assert "2026-01-01 08:00:00" in html
    assert "Times in Asia/Shanghai" in html
    utc = make_world(tmp_path / "utc", config=make_config(site={"timezone": "UTC"}))
    add_targets(utc.db, [{"target_id": "trunk-a", "since": 1_767_225_600.0}])
    assert "2026-01-01 00:00:00" in utc.client().get("/?lang=en").get_data(as_text=True)


def test_relative_times_are_in_the_page_language(world) -> None:
    zh = world.client().get("/?lang=zh-CN").get_data(as_text=True)
    en = world.client().get("/?lang=en").get_data(as_text=True)
    assert "10分钟前" in zh  # standard_rows: since 600 s ago
    assert "10 minutes ago" in en


def _source_msgids() -> set[str]:
    method_map = [
        ("**/templates/**.html", "jinja2"),
        ("**/templates/**.xml", "jinja2"),  # the Atom feed
        ("**.py", "python"),
    ]
    ids: set[str] = set()
    for _file, _line, message, _comments, _ctx in extract_from_dir(
        str(WEB), method_map, keywords=KEYWORDS
    ):
        ids.add(message if isinstance(message, str) else message[0])
    return ids


def _catalog(lang: str):
    with (TRANSLATIONS / lang / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return read_po(f)


def test_every_msgid_in_templates_and_code_has_a_zh_cn_translation() -> None:
    source = _source_msgids()
    assert "Dashboard" in source and "Open incidents" in source  # the extraction itself works
    catalog = _catalog("zh_CN")
    missing = sorted(m for m in source if not (catalog.get(m) and catalog.get(m).string))
    assert missing == []
    fuzzy = sorted(m.id for m in catalog if m.id and m.fuzzy)
    assert fuzzy == []


def test_english_catalog_knows_every_msgid() -> None:
    catalog = _catalog("en")
    assert sorted(m for m in _source_msgids() if catalog.get(m) is None) == []


def test_translations_keep_every_placeholder() -> None:
    for m in _catalog("zh_CN"):
        if m.id and m.string:
            assert set(PLACEHOLDER.findall(m.id)) == set(PLACEHOLDER.findall(m.string)), m.id


@pytest.mark.parametrize("lang", ["zh_CN", "en"])
def test_committed_mo_files_match_their_po_files(lang: str) -> None:
    mo_path = TRANSLATIONS / lang / "LC_MESSAGES" / "messages.mo"
    with mo_path.open("rb") as f:
        compiled = gettext.GNUTranslations(f)
    for m in _catalog(lang):
        if m.id and m.string:
            assert compiled.gettext(m.id) == m.string, (
                f"{mo_path} is stale: run web/translations/compile.py"
            )


def lang_links(html: str) -> dict[str, str]:
    return {
        lang: unescape(href)
        for href, lang in re.findall(r'<a href="([^"]*)" hreflang="([^"]+)">', html)
    }


def test_the_language_switch_keeps_the_filters_and_the_page(world) -> None:
    html = world.client().get("/?health=down&health=degraded&kind=sip&page=1&lang=en")
    links = lang_links(html.get_data(as_text=True))
    assert links == {"zh-CN": "?health=down&health=degraded&kind=sip&page=1&lang=zh-CN"}
    zh = world.client().get(links["zh-CN"].replace("?", "/?", 1)).get_data(as_text=True)
    assert lang_links(zh) == {"en": "?health=down&health=degraded&kind=sip&page=1&lang=en"}


def test_the_language_switch_encodes_what_it_keeps(world) -> None:
    html = world.client().get("/?q=a+b%26c%22%3E&lang=zh-CN").get_data(as_text=True)
    assert lang_links(html) == {"en": "?q=a+b%26c%22%3E&lang=en"}


def test_a_page_without_a_query_switches_with_lang_alone(world) -> None:
    html = world.client().get("/status", headers={"Accept-Language": "zh-CN"})
    assert lang_links(html.get_data(as_text=True)) == {"en": "?lang=en"}
