"""The words customers read: confirmation, manage-link and notice messages, zh-CN and en.

Plain text only (no HTML part, so nothing a customer or a staff member typed
can become markup in a mail client), each with the links it needs. Notices
carry what the status page shows and nothing else: the component's name, the
published cause, ETA and summary — never target ids, addresses, internal
notes or probe details (the caller passes only those fields).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

_WORDS: dict[str, dict[str, str]] = {
    "zh-CN": {
        "confirm.subject": "{site}：请确认订阅",
        "confirm.text": "您申请订阅 {site} 以下服务的状态通知：{components}。\n\n"
        "请打开以下链接确认（24 小时内有效）：\n{link}\n\n"
        "如果不是您本人申请，请忽略本邮件，您不会收到任何通知。",
        "manage.subject": "{site}：您的订阅",
        "manage.text": "有人（可能是您）再次申请订阅 {site} 的状态通知。您已订阅。\n\n"
        "更改订阅的服务或退订：\n{link}",
        "outage": "{component}：服务异常，我们正在处理。",
        "update": "{component}：最新进展。",
        "resolved": "{component}：已恢复正常。",
        "maintenance": "{component}：维护通知。",
        "cause": "原因：{cause}",
        "eta": "预计恢复时间：{eta}",
        "footer": "更改订阅：{manage}\n退订：{unsubscribe}",
        "footer.sms": "回复“退订”停止接收。更改订阅：{manage}",
        "maintenance.ahead": "{component}：计划维护通知。",
        "maintenance.start": "{component}：计划维护已开始。",
        "maintenance.end": "{component}：计划维护已结束。",
        "maintenance.when": "维护时间：{start} 至 {end}（{timezone}）",
        "maintenance.effect": "维护期间相关服务可能中断。",
        "code.subject": "【{site}】",
        "code.text": "您的订阅验证码是 {code}，10 分钟内有效。如非本人操作请忽略。"
        "订阅后回复“退订”即可停止接收。",
    },
    "en": {
        "confirm.subject": "{site}: please confirm your subscription",
        "confirm.text": "You asked to hear about these services of {site}: {components}.\n\n"
        "Open this link to confirm (it works for 24 hours):\n{link}\n\n"
        "If it was not you, ignore this message: you will hear nothing.",
        "manage.subject": "{site}: your subscription",
        "manage.text": "Someone (perhaps you) asked again to subscribe to {site}. You are "
        "subscribed already.\n\nChange what you hear about, or unsubscribe:\n{link}",
        "outage": "{component}: we are investigating a problem.",
        "update": "{component}: an update.",
        "resolved": "{component}: resolved.",
        "maintenance": "{component}: maintenance.",
        "cause": "Cause: {cause}",
        "eta": "Expected back: {eta}",
        "footer": "Change your subscription: {manage}\nUnsubscribe: {unsubscribe}",
        "footer.sms": "Reply STOP to stop. Change: {manage}",
        "maintenance.ahead": "{component}: scheduled maintenance.",
        "maintenance.start": "{component}: scheduled maintenance has begun.",
        "maintenance.end": "{component}: scheduled maintenance is over.",
        "maintenance.when": "When: {start} to {end} ({timezone})",
        "maintenance.effect": "The service may be interrupted meanwhile.",
        "code.subject": "{site}",
        "code.text": "Your code is {code} (valid 10 minutes). Not you? Ignore this. "
        "Once subscribed, reply STOP to stop.",
    },
}


@dataclass(frozen=True)
class Written:
    subject: str
    text: str


def _words(language: str) -> dict[str, str]:
    return _WORDS.get(language) or _WORDS["en"]


def confirmation(language: str, site: str, components: list[str], link: str) -> Written:
    w = _words(language)
    sep = "、" if language == "zh-CN" else ", "
    return Written(
        w["confirm.subject"].format(site=site),
        w["confirm.text"].format(site=site, components=sep.join(components), link=link),
    )


def manage_link(language: str, site: str, link: str) -> Written:
    w = _words(language)
    return Written(
        w["manage.subject"].format(site=site), w["manage.text"].format(site=site, link=link)
    )


def notice(
    language: str,
    kind: str,
    *,
    component: str,
    cause: str | None = None,
    eta: float | None = None,
    summary: str | None = None,
    timezone: str = "Asia/Shanghai",
    manage: str,
    unsubscribe: str,
    channel: str = "email",
) -> Written:
    """One notice about one component: what the status page says, and the links (a text
    message says to reply STOP instead of the long unsubscribe link)."""
    w = _words(language)
    subject = w[kind].format(component=component)
    lines = [subject]
    if summary:
        lines += ["", summary]
    if cause and kind != "resolved":
        lines.append(w["cause"].format(cause=cause))
    if eta is not None and kind != "resolved":
        lines.append(w["eta"].format(eta=f"{_local(eta, timezone)} ({timezone})"))
    return Written(subject, _text(lines, w, channel, manage, unsubscribe))


def _text(lines: list[str], w: dict[str, str], channel: str, manage: str, unsub: str) -> str:
    """The lines and the footer; a push's title is already the first line, so its body
    starts after it (and has no footer: a click opens the status page, where the browser
    unsubscribes)."""
    if channel == "webpush":
        return "\n".join(lines[1:]).strip("\n") + "\n"
    return "\n".join([*lines, "", _footer(w, channel, manage, unsub)]) + "\n"


def _local(at: float, timezone: str) -> str:
    return datetime.fromtimestamp(at, ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def _footer(w: dict[str, str], channel: str, manage: str, unsubscribe: str) -> str:
    key = "footer.sms" if channel == "sms" else "footer"
    return w[key].format(manage=manage, unsubscribe=unsubscribe)


def sms_code(language: str, site: str, code: str) -> Written:
    """The verification text: short (one SMS), and how to stop once subscribed. The SMS
    channel writes the subject (the site's name) before the text."""
    w = _words(language)
    return Written(w["code.subject"].format(site=site), w["code.text"].format(code=code))


def maintenance(
    language: str,
    stage: str,
    *,
    component: str,
    start: float,
    end: float,
    reason: str,
    timezone: str,
    manage: str,
    unsubscribe: str,
    channel: str = "email",
) -> Written:
    """A scheduled maintenance notice (``stage``: ahead, start or end) for one component."""
    w = _words(language)
    subject = w[f"maintenance.{stage}"].format(component=component)
    lines = [subject, ""]
    if reason:
        lines.append(reason)
    lines.append(w["maintenance.when"].format(
        start=_local(start, timezone), end=_local(end, timezone), timezone=timezone
    ))  # fmt: skip
    if stage != "end":
        lines.append(w["maintenance.effect"])
    return Written(subject, _text(lines, w, channel, manage, unsubscribe))
