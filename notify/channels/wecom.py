"""The ``wecom`` channel: a WeCom (企业微信) group robot.

```yaml
channels:
  - id: wecom
    kind: wecom
    webhook: "${WECOM_URL}"   # https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...
```

A WeCom robot has no signing: the ``key`` in its URL is the whole secret,
so keep the URL in a file or the environment. The message is a ``text``
message of at most 2,048 bytes; when the recipient has a mainland mobile
number it is @-mentioned (``mentioned_mobile_list``).

WeCom answers HTTP 200 with ``errcode``: 0 is delivered; 45009 (over 20
messages a minute) is transient, as is -1 (system busy); anything else,
e.g. 93000 (the key is not a robot's) or 40008 (a message type it does not
take), is permanent: the fallback moves on at once.
"""

from __future__ import annotations

from typing import Any, Literal

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

TEXT_LIMIT = 2048
"""Bytes of text WeCom takes in one text message."""
RATE_LIMITED = frozenset({45009})
BUSY = frozenset({-1})


class WeComChannelConfig(RobotConfigBase):
    """A WeCom group robot (its key is in the webhook URL; there is no signing)."""

    kind: Literal["wecom"]
    mention: Bool = True
    """@-mention the recipient in the group by their mainland mobile number (``+86``)."""


def body_of(config: WeComChannelConfig, message: Message) -> dict[str, Any]:
    text: dict[str, Any] = {"content": plain_text(message, config.keyword, TEXT_LIMIT)}
    mobile = mainland_mobile(message.phone) if config.mention else None
    if mobile:
        text["mentioned_mobile_list"] = [mobile]
    return {"msgtype": "text", "text": text}


def _code(document: Any) -> tuple[int | None, str]:
    code = document.get("errcode")
    return (code if isinstance(code, int) else None), str(document.get("errmsg", ""))


class WeComChannel:
    """Posts each message to the robot's webhook (a fresh connection each time)."""

    def __init__(self, config: WeComChannelConfig, context: ChannelContext | None = None) -> None:
        self.config = config
        self.context = context or ChannelContext()

    def __repr__(self) -> str:
        return f"WeComChannel({self.config.id!r})"

    def send(self, message: Message) -> Receipt:
        config = self.config
        exchange = Exchange.for_config(config, config.webhook, "WeCom")
        answer = exchange.send(
            "POST",
            {"Content-Type": "application/json; charset=utf-8"},
            json_body(body_of(config, message)),
        )
        return read_answer(exchange, answer, _code, RATE_LIMITED, transient=BUSY)
