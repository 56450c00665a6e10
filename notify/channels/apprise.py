"""The ``apprise`` channel: the long tail of services (Slack, Teams, Telegram, ...) through Apprise.

```yaml
channels:
  - id: telegram
    kind: apprise
    apprise_url: "${file:/etc/dialwatch/secrets/telegram-url}"   # tgram://bottoken/chatid
```

One channel is one Apprise URL (one service): the fallback between
services is ours, per attempt, so a channel never hides a half-failed fan
out. Apprise says only whether it worked; the reason on a failed attempt is
what Apprise logged while trying, with the URL's secret parts scrubbed. Any
failure is transient (retried as the paging settings say, then the person's
next contact method), since Apprise does not tell a refusal from an outage.

Why only the long tail: the services our users rely on most have their own
modules that read the answer (``dingtalk``, ``wecom``, ``feishu``, ``sms``,
``email``, ``webhook``); Apprise counts any HTTP 200 as sent. And Apprise
connects to the hosts it knows itself: its URLs are trusted config, **not**
checked against private ranges or pinned like the other HTTP channels.
Apprise's connect and read timeouts (``cto``, ``rto``) are set from
``timeout`` unless the URL sets them.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import field_validator

from core.config import Timeout
from core.observation import ErrorClass
from notify.channels.base import ChannelConfig, DeliveryError, Message, Receipt, shortened

_SECRET_PART = re.compile(r"[^/:?&=@#,]{4,}")
"""Pieces of an Apprise URL long enough to be a token, a key or a chat id."""


def _apprise() -> Any:
    # Deferred: Apprise loads its ~100 plugins on import (a quarter of a second).
    import apprise

    return apprise


class AppriseChannelConfig(ChannelConfig):
    """One service through Apprise, named by its Apprise URL."""

    kind: Literal["apprise"]
    apprise_url: str
    """The service's Apprise URL (``tgram://bottoken/chatid``, ``slack://...``,
    ``msteams://...``; see Apprise's list of services). It holds the service's token:
    write it as ``${file:/path}``. Never logged."""
    timeout: Timeout = 10.0
    """Apprise's connect and read timeouts for the service (``cto``/``rto``), unless the
    URL sets them."""

    @field_validator("apprise_url")
    @classmethod
    def _known(cls, value: str) -> str:
        if _apprise().Apprise.instantiate(value) is None:
            scheme = urlsplit(value).scheme or value.split(":", 1)[0]
            raise ValueError(
                f"Apprise does not understand this URL (scheme {scheme!r}); see the services "
                "Apprise supports, e.g. tgram://bottoken/chatid"
            )
        return value


def with_timeouts(url: str, timeout: float) -> str:
    """``url`` with Apprise's ``cto`` and ``rto`` set to ``timeout`` where it has none."""
    query = urlsplit(url).query
    present = {part.split("=", 1)[0] for part in query.split("&") if part}
    extra = [f"{key}={timeout:g}" for key in ("cto", "rto") if key not in present]
    if not extra:
        return url
    return url + ("&" if "?" in url else "?") + "&".join(extra)


def scrubbed(text: str, url: str) -> str:
    """``text`` with every token-like piece of ``url`` replaced by ``***``."""
    parts = urlsplit(url)
    secret_text = url[len(parts.scheme) + 3 :] if parts.scheme else url
    pieces = sorted(set(_SECRET_PART.findall(secret_text)), key=len, reverse=True)
    for piece in pieces:
        # A host name stays (it says which service failed); in many Apprise URLs the
        # "host" is itself a token (tgram://bottoken/...), and that goes.
        if piece != parts.hostname or "." not in piece:
            text = text.replace(piece, "***")
    return text


class AppriseChannel:
    """Sends each message through Apprise to the one configured service."""

    def __init__(self, config: AppriseChannelConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"AppriseChannel({self.config.id!r}, {urlsplit(self.config.apprise_url).scheme}://)"

    def send(self, message: Message) -> Receipt:
        apprise = _apprise()
        config = self.config
        url = with_timeouts(config.apprise_url, config.timeout)
        service = apprise.Apprise()
        if not service.add(url):
            raise DeliveryError(
                f"Apprise: the URL of channel {config.id} no longer loads", permanent=True
            )
        with apprise.LogCapture(level=logging.INFO) as captured:
            sent = service.notify(body=message.text, title=message.subject)
        said = [
            line.split(" - ", 2)[-1]
            for line in captured.getvalue().splitlines()
            if " - WARNING - " in line or " - ERROR - " in line
        ]
        scheme = urlsplit(url).scheme
        if sent:
            return Receipt(None, f"Apprise {scheme}:// accepted it")
        reason = scrubbed("; ".join(said), url) or "no reason given"
        raise DeliveryError(
            shortened(f"Apprise {scheme}:// did not send it: {reason}", 300),
            permanent=False,
            error_class=ErrorClass.RESPONSE,
        )
