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
from notify.channels.base import Channel, ChannelConfig, DeliveryError, Message, Receipt
from notify.channels.email import EmailChannel, EmailChannelConfig
from notify.channels.sms import SmsChannel, SmsChannelConfig
from notify.channels.webhook import WebhookChannel, WebhookChannelConfig

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
}


def build_channel(config: ChannelConfig) -> Channel:
    """The channel for one ``channels:`` entry."""
    return CHANNELS[config.kind].implementation(config)


__all__ = [
    "CHANNELS",
    "Channel",
    "ChannelConfig",
    "ChannelKind",
    "DeliveryError",
    "Message",
    "Receipt",
    "build_channel",
]
