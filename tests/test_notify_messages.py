"""Message templates: the built-in words, the site's own, and the sandbox around them."""

from __future__ import annotations

from pathlib import Path

import pytest

from notify import ack_links
from notify.messages import Writer, read_templates

NOTICE = {
    "kind": "opened",
    "incident_id": 12,
    "title": "trunk-a down",
    "severity": "down",
    "target": "电信中继 A",
    "cause": "carrier <b>maintenance</b>",
    "eta": "2026-12-02 22:00 CST",
    "opened_at": "2026-12-02 21:00 CST",
    "level": 1,
    "url": "https://noc.example.cn/incidents/12",
    "ack_url": "https://noc.example.cn/ack/TOKEN",
}
CONTEXT = {"site": "外呼中心", "person": "张伟", "console": "https://noc.example.cn/incidents"}


def test_a_page_in_chinese_has_the_facts_the_links_and_a_one_line_subject() -> None:
    w = Writer().write("opened", "zh-CN", [NOTICE], CONTEXT)
    assert w.subject == "[外呼中心] 故障 #12：trunk-a down"
    assert "对象：电信中继 A" in w.text
    assert "原因：carrier <b>maintenance</b>" in w.text  # plain text stays as typed
    assert "确认（停止升级）：https://noc.example.cn/ack/TOKEN" in w.text
    # The HTML part escapes what anyone typed.
    assert "carrier &lt;b&gt;maintenance&lt;/b&gt;" in w.html
    assert "<b>maintenance" not in w.html


def test_english_an_escalation_and_a_digest() -> None:
    second = dict(NOTICE, kind="escalated", level=2)
    w = Writer().write("escalated", "en", [second], CONTEXT)
    assert w.subject == "[外呼中心] DOWN #12: trunk-a down"
    assert "escalated to level 2" in w.text
    many = [dict(NOTICE, incident_id=i, title=f"trunk-{i} down") for i in range(1, 51)]
    d = Writer().write("digest", "en", many, CONTEXT)
    assert d.subject == "[外呼中心] 50 incident notices"
    assert d.text.count("\n- ") + d.text.startswith("- ") == 50


@pytest.mark.parametrize(
    ("kind", "language", "subject"),
    [
        ("acknowledged", "zh-CN", "[外呼中心] 已确认 #12：trunk-a down"),
        ("updated", "en", "[外呼中心] Update #12: trunk-a down"),
        ("resolved", "zh-CN", "[外呼中心] 已恢复 #12：trunk-a down"),
    ],
)
def test_every_kind_renders_without_a_page_s_links(kind: str, language: str, subject: str) -> None:
    notice = {k: v for k, v in NOTICE.items() if k not in ("ack_url", "level")}
    notice.update(kind=kind, by="user:zhang", resolved_at="2026-12-02 22:10 CST")
    w = Writer().write(kind, language, [notice], CONTEXT)
    assert w.subject == subject
    assert "/ack/" not in w.text + w.html


def test_a_subject_cannot_carry_a_line_break_into_a_header() -> None:
    evil = dict(NOTICE, title="x\r\nBcc: someone@example.cn")
    w = Writer().write("opened", "en", [evil], CONTEXT)
    assert "\n" not in w.subject and "\r" not in w.subject


@pytest.mark.parametrize(
    "template",
    [
        pytest.param("{{ ''.__class__.__mro__[1].__subclasses__() }}\nx", id="python-internals"),
        pytest.param("{% include '/etc/passwd' %}\nx", id="file-read"),
        pytest.param("{{ cycler.__init__.__globals__.os.popen('id').read() }}\nx", id="globals"),
        pytest.param("{% for %}\nx", id="syntax-error"),
    ],
)
def test_a_hostile_or_broken_custom_template_is_refused_and_the_built_in_one_is_used(
    tmp_path: Path, template: str
) -> None:
    (tmp_path / "opened.en.txt").write_text(template, encoding="utf-8")
    problems: list[str] = []
    writer = Writer(read_templates(tmp_path), report=problems.append)
    w = writer.write("opened", "en", [NOTICE], CONTEXT)
    assert w.subject == "[外呼中心] DOWN #12: trunk-a down"
    assert "root:" not in w.text and "uid=" not in w.text and "object" not in w.text
    assert len(problems) == 1 and "opened.en.txt failed" in problems[0]


def test_a_custom_template_replaces_the_built_in_one(tmp_path: Path) -> None:
    (tmp_path / "opened.zh-CN.txt").write_text(
        "【{{ n.target }}】中断 #{{ n.incident_id }}\n请立即处理：{{ n.ack_url }}\n",
        encoding="utf-8",
    )
    (tmp_path / "unrelated.txt").write_text("{{ boom", encoding="utf-8")
    w = Writer(read_templates(tmp_path)).write("opened", "zh-CN", [NOTICE], CONTEXT)
    assert w.subject == "【电信中继 A】中断 #12"
    assert w.text == "请立即处理：https://noc.example.cn/ack/TOKEN\n"


KEY = b"k" * 32


def test_an_ack_link_names_its_incident_and_person_and_cannot_be_moved_or_kept() -> None:
    token = ack_links.sign(KEY, 12, "zhang", now=1000.0, lifetime=3600)
    assert ack_links.verify(KEY, token, 1000.0 + 3599) == ack_links.AckLink(12, "zhang", 4600)
    moved = token.replace("12.", "13.", 1)
    for bad, why in [
        (moved, "altered"),
        (token, "expired"),
        ("../../etc", "not an acknowledge link"),
        (token[:-1] + ("A" if token[-1] != "A" else "B"), "altered"),
    ]:
        with pytest.raises(ack_links.BadLink, match=why):
            ack_links.verify(KEY, bad, 1000.0 + 3600 if why == "expired" else 1001.0)
    with pytest.raises(ack_links.BadLink, match="altered"):
        ack_links.verify(b"o" * 32, token, 1001.0)
