"""The ``feishu`` channel: a Feishu (飞书) or Lark group's custom bot.

```yaml
channels:
  - id: feishu
    kind: feishu
    webhook: "${FEISHU_URL}"     # https://open.feishu.cn/open-apis/bot/v2/hook/<token>
    secret: "${FEISHU_SECRET}"   # the bot's 签名校验 secret
```

The token is the last part of the URL's *path*, so reasons name only the
host. With a signing secret (the bot's "签名校验" setting) the body carries
``timestamp`` (epoch **seconds**) and ``sign``: the base64 HMAC-SHA256 of an
empty message keyed by ``"<timestamp>\\n<secret>"`` (Feishu's scheme: the
secret goes into the key, not the text). Feishu refuses a timestamp more
than an hour off.

Feishu answers with ``code`` (older deployments: ``StatusCode``): 0 is
delivered; 11232 (too many messages: 100 a minute, 5 a second) is
transient; anything else, e.g. 19021 (signature), 19022 (IP not allowed) or
19024 (keyword missing), is permanent: the fallback moves on at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Literal
from urllib.parse import urlsplit

from notify.channels.base import ChannelContext, Message, Receipt
from notify.channels.exchange import Exchange, shown_origin
from notify.channels.robot import RobotConfigBase, json_body, plain_text, read_answer

TEXT_LIMIT = 18000
"""Bytes of text per message (Feishu takes a body of at most 20 KB)."""
RATE_LIMITED = frozenset({11232})


class FeishuChannelConfig(RobotConfigBase):
    """A Feishu / Lark group's custom bot, signed when it has a secret."""

    kind: Literal["feishu"]
    secret: str | None = None
    """The bot's signing secret (the "签名校验" setting); write it as ``${file:/path}``.
    Without it requests are not signed. Never logged."""


def sign(secret: str, timestamp: int) -> str:
    """The ``sign`` for a request at ``timestamp`` (epoch seconds)."""
    key = f"{timestamp}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode("ascii")


def body_of(config: FeishuChannelConfig, message: Message, now: float) -> dict[str, Any]:
    document: dict[str, Any] = {
        "msg_type": "text",
        "content": {"text": plain_text(message, config.keyword, TEXT_LIMIT)},
    }
    if config.secret:
        timestamp = int(now)
        document["timestamp"] = str(timestamp)
        document["sign"] = sign(config.secret, timestamp)
    return document


def _code(document: Any) -> tuple[int | None, str]:
    for code_key, text_key in (("code", "msg"), ("StatusCode", "StatusMessage")):
        code = document.get(code_key)
        if isinstance(code, int):
            return code, str(document.get(text_key, ""))
    return None, ""


class FeishuChannel:
    """Posts each message to the bot's webhook (a fresh connection each time)."""

    def __init__(self, config: FeishuChannelConfig, context: ChannelContext | None = None) -> None:
        self.config = config
        self.context = context or ChannelContext()

    def __repr__(self) -> str:
        return f"FeishuChannel({self.config.id!r}, {urlsplit(self.config.webhook).hostname})"

    def send(self, message: Message) -> Receipt:
        config = self.config
        exchange = Exchange.for_config(
            config, config.webhook, "Feishu", shown=shown_origin(config.webhook)
        )
        answer = exchange.send(
            "POST",
            {"Content-Type": "application/json; charset=utf-8"},
            json_body(body_of(config, message, self.context.clock())),
        )
        return read_answer(exchange, answer, _code, RATE_LIMITED)
