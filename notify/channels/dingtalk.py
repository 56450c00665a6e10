"""The ``dingtalk`` channel: a DingTalk (钉钉) group's custom robot.

```yaml
channels:
  - id: ding
    kind: dingtalk
    webhook: "${DINGTALK_URL}"        # https://oapi.dingtalk.com/robot/send?access_token=...
    secret: "${DINGTALK_SECRET}"      # the robot's 加签 secret, SEC...
```

With a signing secret (the robot's "加签" setting) each request carries
``timestamp`` (epoch milliseconds) and ``sign`` in its query: the base64
HMAC-SHA256, keyed by the secret, of ``"<timestamp>\\n<secret>"``,
URL-encoded. DingTalk refuses a timestamp more than an hour off, so the
appliance's clock matters. The message is a ``text`` message; when the
recipient has a mainland mobile number it is @-mentioned (``atMobiles``),
which makes DingTalk ring that member's phone louder than the group.

DingTalk answers HTTP 200 with ``errcode``: 0 is delivered; 130101 and
410100 (over 20 messages a minute) are transient; anything else, e.g.
310000 (signature, keyword or IP-list mismatch) or 300001 (no such token),
is permanent: the fallback moves on at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Literal
from urllib.parse import quote_plus

from core.config import Bool
from notify.channels.base import ChannelContext, Message, Receipt
from notify.channels.exchange import Exchange
from notify.channels.robot import (
    RobotConfigBase,
    json_body,
    mainland_mobile,
    plain_text,
    read_answer,
)

TEXT_LIMIT = 18000
"""Bytes of text per message (DingTalk takes about 20,000; the JSON around it counts too)."""
RATE_LIMITED = frozenset({130101, 410100})


class DingTalkChannelConfig(RobotConfigBase):
    """A DingTalk group's custom robot, signed when it has a secret."""

    kind: Literal["dingtalk"]
    secret: str | None = None
    """The robot's signing secret (``SEC...``, the "加签" setting); write it as
    ``${file:/path}``. Without it requests are not signed (a robot secured by keyword
    or IP list). Never logged."""
    mention: Bool = True
    """@-mention the recipient in the group by their mainland mobile number (``+86``)."""


def signed_query(secret: str, timestamp_ms: int) -> str:
    """``timestamp=...&sign=...`` for a request at ``timestamp_ms`` (epoch milliseconds)."""
    text = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode("utf-8"), text, hashlib.sha256).digest()
    return f"timestamp={timestamp_ms}&sign={quote_plus(base64.b64encode(digest))}"


def body_of(config: DingTalkChannelConfig, message: Message) -> dict[str, Any]:
    text = plain_text(message, config.keyword, TEXT_LIMIT)
    mobile = mainland_mobile(message.phone) if config.mention else None
    document: dict[str, Any] = {"msgtype": "text", "text": {"content": text}}
    if mobile:
        # DingTalk highlights the mention only when the text names the number too.
        document["text"]["content"] = f"{text}\n@{mobile}"
        document["at"] = {"atMobiles": [mobile], "isAtAll": False}
    return document


def _code(document: Any) -> tuple[int | None, str]:
    code = document.get("errcode")
    return (code if isinstance(code, int) else None), str(document.get("errmsg", ""))


class DingTalkChannel:
    """Posts each message to the robot's webhook (a fresh connection each time)."""

    def __init__(
        self, config: DingTalkChannelConfig, context: ChannelContext | None = None
    ) -> None:
        self.config = config
        self.context = context or ChannelContext()

    def __repr__(self) -> str:
        return f"DingTalkChannel({self.config.id!r})"

    def send(self, message: Message) -> Receipt:
        config = self.config
        url = config.webhook
        if config.secret:
            query = signed_query(config.secret, int(self.context.clock() * 1000))
            url += ("&" if "?" in url else "?") + query
        exchange = Exchange.for_config(config, url, "DingTalk")
        answer = exchange.send(
            "POST",
            {"Content-Type": "application/json; charset=utf-8"},
            json_body(body_of(config, message)),
        )
        return read_answer(exchange, answer, _code, RATE_LIMITED)
