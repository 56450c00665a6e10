"""The words of a page: a delivery's notices rendered into subject, text and HTML.

Templates are Jinja2, rendered in its ``SandboxedEnvironment`` (template
injection is a known class of flaw in peers' notification templates): an
edited template cannot reach Python internals (``{{ ''.__class__ }}`` is
refused) nor read files (templates come from a fixed dictionary, so an
``{% include %}`` can name nothing else). The HTML part is autoescaped: a
target's name or an incident's cause typed by anyone reaches it as text.

One template per kind of message and language, built in below; a file
``<kind>.<language>.txt`` (first line: the subject) or ``.html`` in
``paging.templates`` replaces the built-in one. A custom template that
fails (a syntax error, a refused attribute) is reported and the built-in
one is used, so a bad edit never silences a page.

Kinds: ``opened`` (also an escalation to a later level), ``acknowledged``,
``updated``, ``resolved``, ``digest`` (several notices in one message) and
``test``.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import DictLoader, TemplateError
from jinja2.sandbox import SandboxedEnvironment

log = logging.getLogger(__name__)

KINDS = ("opened", "acknowledged", "updated", "resolved", "digest", "test")
LANGUAGES = ("zh-CN", "en")

_BUILT_IN: dict[str, str] = {
    # -- zh-CN -------------------------------------------------------------------
    "opened.zh-CN.txt": """\
[{{ site }}] {% if n.severity == 'down' %}故障{% else %}降级{% endif %} #{{ n.incident_id }}：{{ n.title }}
{{ n.title }}
对象：{{ n.target }}　开始：{{ n.opened_at }}{% if n.level and n.level > 1 %}　（第 {{ n.level }} 级升级：之前的值班人员未确认）{% endif %}
{% if n.cause %}原因：{{ n.cause }}
{% endif %}{% if n.eta %}预计恢复：{{ n.eta }}
{% endif %}{% if n.ack_url %}确认（停止升级）：{{ n.ack_url }}
{% endif %}详情：{{ n.url }}
""",
    "acknowledged.zh-CN.txt": """\
[{{ site }}] 已确认 #{{ n.incident_id }}：{{ n.title }}
{{ n.by }} 已确认事件 #{{ n.incident_id }}（{{ n.title }}），升级已停止。
详情：{{ n.url }}
""",
    "updated.zh-CN.txt": """\
[{{ site }}] 更新 #{{ n.incident_id }}：{{ n.title }}
事件 #{{ n.incident_id }}（{{ n.title }}）有更新。
{% if n.cause %}原因：{{ n.cause }}
{% endif %}{% if n.eta %}预计恢复：{{ n.eta }}
{% endif %}详情：{{ n.url }}
""",
    "resolved.zh-CN.txt": """\
[{{ site }}] 已恢复 #{{ n.incident_id }}：{{ n.title }}
事件 #{{ n.incident_id }}（{{ n.title }}）已于 {{ n.resolved_at }} 恢复{% if n.duration %}，持续 {{ n.duration }}{% endif %}。
详情：{{ n.url }}
""",
    "digest.zh-CN.txt": """\
[{{ site }}] {{ notices | length }} 条事件通知
{% for n in notices %}- {{ kinds[n.kind] }} #{{ n.incident_id }}：{{ n.title }}（{{ n.target }}）{% if n.ack_url %} 确认：{{ n.ack_url }}{% endif %}
{% endfor %}详情：{{ console }}
""",
    "test.zh-CN.txt": """\
[{{ site }}] 测试通知
这是一条来自 {{ site }} 的测试通知，发送给 {{ person }}。收到即说明此渠道可用。
""",
    # -- en ------------------------------------------------------------------------
    "opened.en.txt": """\
[{{ site }}] {% if n.severity == 'down' %}DOWN{% else %}DEGRADED{% endif %} #{{ n.incident_id }}: {{ n.title }}
{{ n.title }}
Target: {{ n.target }}  since {{ n.opened_at }}{% if n.level and n.level > 1 %}  (escalated to level {{ n.level }}: not acknowledged before){% endif %}
{% if n.cause %}Cause: {{ n.cause }}
{% endif %}{% if n.eta %}Expected recovery: {{ n.eta }}
{% endif %}{% if n.ack_url %}Acknowledge (stops escalation): {{ n.ack_url }}
{% endif %}Details: {{ n.url }}
""",
    "acknowledged.en.txt": """\
[{{ site }}] Acknowledged #{{ n.incident_id }}: {{ n.title }}
{{ n.by }} acknowledged incident #{{ n.incident_id }} ({{ n.title }}); escalation has stopped.
Details: {{ n.url }}
""",
    "updated.en.txt": """\
[{{ site }}] Update #{{ n.incident_id }}: {{ n.title }}
Incident #{{ n.incident_id }} ({{ n.title }}) was updated.
{% if n.cause %}Cause: {{ n.cause }}
{% endif %}{% if n.eta %}Expected recovery: {{ n.eta }}
{% endif %}Details: {{ n.url }}
""",
    "resolved.en.txt": """\
[{{ site }}] Resolved #{{ n.incident_id }}: {{ n.title }}
Incident #{{ n.incident_id }} ({{ n.title }}) was resolved at {{ n.resolved_at }}{% if n.duration %} after {{ n.duration }}{% endif %}.
Details: {{ n.url }}
""",
    "digest.en.txt": """\
[{{ site }}] {{ notices | length }} incident notices
{% for n in notices %}- {{ kinds[n.kind] }} #{{ n.incident_id }}: {{ n.title }} ({{ n.target }}){% if n.ack_url %} acknowledge: {{ n.ack_url }}{% endif %}
{% endfor %}Details: {{ console }}
""",
    "test.en.txt": """\
[{{ site }}] Test notification
This is a test notification from {{ site }} to {{ person }}. If it arrived, this channel works.
""",
    # -- HTML (one per language; autoescaped) -----------------------------------------
    "message.zh-CN.html": """\
<!doctype html><html lang="zh-CN"><body style="font-family:sans-serif">
{% for n in notices %}<p><strong>{{ kinds[n.kind] }} #{{ n.incident_id }}：{{ n.title }}</strong><br>
对象：{{ n.target }}{% if n.cause %}<br>原因：{{ n.cause }}{% endif %}{% if n.eta %}<br>预计恢复：{{ n.eta }}{% endif %}</p>
<p>{% if n.ack_url %}<a href="{{ n.ack_url }}">确认（停止升级）</a> · {% endif %}<a href="{{ n.url }}">详情</a></p>
{% endfor %}{% if not notices %}<p>{{ text }}</p>{% endif %}
</body></html>
""",
    "message.en.html": """\
<!doctype html><html lang="en"><body style="font-family:sans-serif">
{% for n in notices %}<p><strong>{{ kinds[n.kind] }} #{{ n.incident_id }}: {{ n.title }}</strong><br>
Target: {{ n.target }}{% if n.cause %}<br>Cause: {{ n.cause }}{% endif %}{% if n.eta %}<br>Expected recovery: {{ n.eta }}{% endif %}</p>
<p>{% if n.ack_url %}<a href="{{ n.ack_url }}">Acknowledge (stops escalation)</a> · {% endif %}<a href="{{ n.url }}">Details</a></p>
{% endfor %}{% if not notices %}<p>{{ text }}</p>{% endif %}
</body></html>
""",
}

KIND_WORDS: Mapping[str, Mapping[str, str]] = {
    "zh-CN": {
        "opened": "故障",
        "escalated": "升级",
        "acknowledged": "已确认",
        "updated": "更新",
        "resolved": "已恢复",
    },
    "en": {
        "opened": "Down",
        "escalated": "Escalated",
        "acknowledged": "Acknowledged",
        "updated": "Update",
        "resolved": "Resolved",
    },
}


@dataclass(frozen=True, slots=True)
class Written:
    subject: str
    text: str
    html: str
    language: str


def _environment(sources: Mapping[str, str], autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=DictLoader(dict(sources)),
        autoescape=autoescape,
        keep_trailing_newline=True,
    )


def read_templates(directory: str | Path | None) -> dict[str, str]:
    """The templates of a ``paging.templates`` directory (only known names; others are ignored)."""
    if directory is None:
        return {}
    known = set(_BUILT_IN)
    found: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*")):
        if path.name in known and path.is_file():
            found[path.name] = path.read_text(encoding="utf-8")
    return found


class Writer:
    """Renders messages from the built-in templates and, over them, the site's own."""

    def __init__(
        self,
        custom: Mapping[str, str] | None = None,
        *,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.custom = dict(custom or {})
        self.report = report or (lambda problem: log.error("%s", problem))
        self._built_in = (_environment(_BUILT_IN, False), _environment(_BUILT_IN, True))
        self._site = (_environment(self.custom, False), _environment(self.custom, True))

    def _render(self, name: str, context: Mapping[str, Any]) -> str:
        html = name.endswith(".html")
        if name in self.custom:
            try:
                return self._site[html].get_template(name).render(context)
            except TemplateError as exc:  # SecurityError is one: the sandbox refused
                self.report(f"message template {name} failed ({exc}); the built-in one was used")
        return self._built_in[html].get_template(name).render(context)

    def write(
        self,
        kind: str,
        language: str,
        notices: Sequence[Mapping[str, Any]],
        context: Mapping[str, Any],
    ) -> Written:
        """The message for ``notices`` (dicts of facts: see ``notice_facts``) in ``language``."""
        language = language if language in LANGUAGES else "zh-CN"
        if kind == "escalated":
            kind = "opened"
        if kind not in KINDS or (kind not in ("digest", "test") and len(notices) != 1):
            kind = "digest"
        full = {
            **context,
            "notices": list(notices),
            "n": notices[0] if notices else {},
            "kinds": KIND_WORDS[language],
        }
        text = self._render(f"{kind}.{language}.txt", full)
        subject, _, body = text.partition("\n")
        full["text"] = body
        html = self._render(f"message.{language}.html", full)
        # One line: a subject with a line break would end the header (e-mail) or the title.
        return Written(" ".join(subject.split())[:200], body.strip() + "\n", html, language)


def local_time(at: float | None, timezone: str) -> str:
    if at is None:
        return ""
    return dt.datetime.fromtimestamp(at, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M %Z")


def duration_words(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 60:
        return f"{max(minutes, 1)} min"
    return f"{minutes // 60} h {minutes % 60:02d} min"
