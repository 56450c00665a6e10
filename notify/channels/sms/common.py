"""What every SMS provider module shares: the config fields, the facts a message offers,
truncation, and the guarded HTTP exchange to a provider's API host.

The exchange is every HTTP channel's (``notify.channels.exchange``): checked and
pinned address, no redirects, bounded time and answer; what the provider
*said* is each provider module's to read.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Literal

from notify.channels.base import DeliveryError, Message
from notify.channels.exchange import Answer, Exchange, HttpChannelConfig, retry_after
from notify.channels.exchange import http_url as checked_url

__all__ = ["Answer", "Exchange", "retry_after"]
E164 = re.compile(r"\+[1-9][0-9]{6,14}")
MISSING_FACT = "-"
"""Sent for a template variable whose fact the message does not have (providers refuse
an empty variable, and a dash reads as "not known" on a phone)."""


class SmsConfigBase(HttpChannelConfig):
    """What every ``kind: sms`` entry has, whatever its provider."""

    kind: Literal["sms"]


def http_url(value: str) -> str:
    """Validate an endpoint or gateway URL: http(s), a host, no user:password, a numeric port."""
    return checked_url(value, "https://sms.example.cn/send")


def check_fact_names(value: Mapping[str, str]) -> Mapping[str, str]:
    for name, fact in value.items():
        if not name or not fact:
            raise ValueError("template variable names and fact names must not be empty")
    return value


def recipient(message: Message, provider: str) -> str:
    """The message's phone number (E.164); a permanent failure when it has none or a bad one."""
    phone = (message.phone or "").strip()
    if not phone:
        raise DeliveryError(f"SMS ({provider}): the recipient has no phone number", permanent=True)
    if not E164.fullmatch(phone):
        raise DeliveryError(
            f"SMS ({provider}): {phone!r} is not an E.164 phone number (+8613800138000)",
            permanent=True,
        )
    return phone


def facts(message: Message) -> dict[str, str]:
    """What a template variable may name: ``message.data``, plus subject, text and delivery_id."""
    found = {
        key: (
            "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
        )
        for key, value in message.data.items()
    }
    found.update(subject=message.subject, text=message.text, delivery_id=message.delivery_id)
    return found


def truncated(value: str, limit: int) -> str:
    """``value`` in at most ``limit`` characters (code points, as the providers count),
    ending in ``…`` when it was cut."""
    line = " ".join(value.split())  # a variable is one line; providers refuse line breaks
    return line if len(line) <= limit else line[: limit - 1] + "…"


def template_values(
    variables: Mapping[str, str], found: Mapping[str, str], limit: int
) -> dict[str, str]:
    """Each template variable's value: its fact, truncated to ``limit``."""
    return {
        name: truncated(found.get(fact) or MISSING_FACT, limit) for name, fact in variables.items()
    }


def free_text(message: Message, limit: int) -> str:
    """Subject and text as one short message, at most ``limit`` characters."""
    body = message.subject.strip()
    text = " ".join(message.text.split())
    if text and text != body:
        body = f"{body}: {text}" if body else text
    return body if len(body) <= limit else body[: limit - 1] + "…"


def provider_exchange(config: SmsConfigBase, url: str, provider: str) -> Exchange:
    """The exchange for one message to ``provider``'s API at ``url``."""
    return Exchange.for_config(config, url, f"SMS ({provider})")
