"""Channel kinds: one module each, one interface, one literal registry.

``CHANNELS`` is the only place a channel kind is registered, in the shape
every plugin registry has (``core.registry``, as ``probes.PROBES`` and
``monitor.sinks.SINKS``): kind → its config model, the class that sends
(built from one config entry: ``Kind(config)``, see ``notify.channels.base``)
and a summary. The composition root builds the ``channels:`` section of the
config from it (``dialwatch.schema``); ``build_channel`` looks kinds up here.
A new channel kind is a config model, a class and one entry below.
"""

from __future__ import annotations

from collections.abc import Callable

from core.registry import PluginKind
from notify.channels.apprise import AppriseChannel, AppriseChannelConfig
from notify.channels.base import (
    Channel,
    ChannelConfig,
    ChannelContext,
    DeliveryError,
    Message,
    Receipt,
)
from notify.channels.dingtalk import DingTalkChannel, DingTalkChannelConfig
from notify.channels.disabled import ChannelOff, DisabledChannel, DisabledChannelConfig
from notify.channels.email import EmailChannel, EmailChannelConfig
from notify.channels.feishu import FeishuChannel, FeishuChannelConfig
from notify.channels.sms import SmsChannel, SmsChannelConfig
from notify.channels.webhook import WebhookChannel, WebhookChannelConfig
from notify.channels.webpush import WebPushChannel, WebPushChannelConfig
from notify.channels.wecom import WeComChannel, WeComChannelConfig

ChannelKind = PluginKind[ChannelConfig, Callable[..., Channel]]

CHANNELS: dict[str, ChannelKind] = {
    "email": PluginKind(
        "email",
        EmailChannelConfig,
        EmailChannel,
        "e-mail through an SMTP server (STARTTLS or implicit TLS, login, text and HTML)",
    ),
    "webhook": PluginKind(
        "webhook",
        WebhookChannelConfig,
        WebhookChannel,
        "a signed JSON POST to a URL of yours (private addresses refused unless allowed)",
    ),
    "sms": PluginKind(
        "sms",
        SmsChannelConfig,
        SmsChannel,
        "a text message to the recipient's phone: Aliyun, Tencent Cloud, Twilio or a gateway of yours",
    ),
    "webpush": PluginKind(
        "webpush",
        WebPushChannelConfig,
        WebPushChannel,
        "browser notifications to console users who pressed Subscribe (VAPID, encrypted)",
    ),
    "dingtalk": PluginKind(
        "dingtalk",
        DingTalkChannelConfig,
        DingTalkChannel,
        "a DingTalk (钉钉) group robot, signed with its secret; an error code is a failed delivery",
    ),
    "wecom": PluginKind(
        "wecom",
        WeComChannelConfig,
        WeComChannel,
        "a WeCom (企业微信) group robot; an error code is a failed delivery",
    ),
    "feishu": PluginKind(
        "feishu",
        FeishuChannelConfig,
        FeishuChannel,
        "a Feishu / Lark (飞书) group bot, signed with its secret; an error code is a failed delivery",
    ),
    "apprise": PluginKind(
        "apprise",
        AppriseChannelConfig,
        AppriseChannel,
        "the long tail (Slack, Teams, Telegram...) through one Apprise URL; trusted config, unchecked",
    ),
    "disabled": PluginKind(
        "disabled",
        DisabledChannelConfig,
        DisabledChannel,
        "a channel that is off, with its reason (also what a channel entry that does not load becomes)",
    ),
}

WITH_CONTEXT = frozenset({"webpush", "dingtalk", "feishu", "wecom"})
"""Kinds built as ``Kind(config, context)``: they need the appliance (state DB, keys) or
its clock (the robots sign with the time)."""


def build_channel(config: ChannelConfig, context: ChannelContext | None = None) -> Channel:
    """The channel for one ``channels:`` entry; ``context``: what the appliance gives the
    kinds that need more than their config (``WITH_CONTEXT``)."""
    implementation = CHANNELS[config.kind].implementation
    if config.kind in WITH_CONTEXT:
        return implementation(config, context or ChannelContext())
    return implementation(config)


__all__ = [
    "CHANNELS",
    "Channel",
    "ChannelConfig",
    "ChannelContext",
    "ChannelKind",
    "ChannelOff",
    "DeliveryError",
    "Message",
    "Receipt",
    "build_channel",
]
