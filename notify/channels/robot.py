"""What the group-robot channels (DingTalk, WeCom, Feishu/Lark) share.

Each robot is a webhook URL that posts into one group chat. They differ in
how a request is signed and in how the answer names an error, and they agree
on the rest, which lives here:

- the message is sent as **plain text** (subject, then the text with its
  console and acknowledge links): no markdown, so nothing an incident or a
  probe wrote can turn into a link or a format in the chat;
- the text is cut to the robot's byte limit at a character boundary;
- an optional ``keyword`` is put in front of every message that lacks it
  (robots set up with the "custom keyword" security setting refuse any
  message without one);
- the answer is read: **an HTTP 200 carrying a non-zero ``errcode`` /
  ``code`` is a failed delivery** (a wrong signature, a rate limit), so the
  fallback moves on; the robots' rate-limit codes are transient with a
  wait of a minute, the rest permanent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from typing import Annotated, Any

from pydantic import Field, field_validator

from core.observation import ErrorClass
from notify.channels.base import DeliveryError, Message, Receipt
from notify.channels.exchange import Answer, Exchange, HttpChannelConfig, http_url

RATE_LIMIT_WAIT = 60.0
"""Seconds to wait after a robot said "too many messages": they count per minute."""


class RobotConfigBase(HttpChannelConfig):
    """What every group-robot entry has."""

    webhook: str
    """The robot's webhook URL as the group's robot settings show it (it holds the robot's
    token: write it as ``${file:/path}`` or ``${ENV}``). Never logged."""
    keyword: Annotated[str, Field(max_length=50)] | None = None
    """The robot's custom keyword, when its security setting asks for one: put in front of
    every message that does not already contain it."""

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, value: str) -> str:
        return http_url(value, "https://oapi.dingtalk.com/robot/send?access_token=...")


def plain_text(message: Message, keyword: str | None, limit: int) -> str:
    """Subject and text as one plain-text chat message of at most ``limit`` UTF-8 bytes."""
    subject = message.subject.strip()
    text = message.text.strip()
    body = text if not subject or text.startswith(subject) else f"{subject}\n{text}"
    if keyword and keyword not in body:
        body = f"【{keyword}】{body}"
    return cut_to_bytes(body, limit)


def cut_to_bytes(text: str, limit: int) -> str:
    """``text`` in at most ``limit`` UTF-8 bytes, ending in ``…`` when it was cut."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    room = limit - len("…".encode())
    # Decoding with "ignore" drops a character split by the cut.
    return encoded[:room].decode("utf-8", "ignore") + "…"


def mainland_mobile(phone: str | None) -> str | None:
    """A +86 mobile number as the 11 digits the robots' @-mention lists take; else None."""
    if phone and phone.startswith("+861") and len(phone) == 14 and phone[1:].isdigit():
        return phone[3:]
    return None


def read_answer(
    exchange: Exchange,
    answer: Answer,
    code_of: Callable[[Any], tuple[int | None, str]],
    rate_limited: Collection[int],
    transient: Collection[int] = (),
) -> Receipt:
    """The verdict on a robot's answer: a receipt for code 0, else a ``DeliveryError``."""
    if 300 <= answer.status < 400:
        raise exchange.redirect(answer, key="webhook")
    if not answer.ok and not isinstance(answer.document, dict):
        raise exchange.refused(answer)
    if not isinstance(answer.document, dict):
        raise exchange.garbage(answer, "the robot's JSON")
    code, said = code_of(answer.document)
    if code is None:
        raise exchange.garbage(answer, "the robot's JSON")
    if code == 0 and answer.ok:
        return Receipt(None, answer.said)
    if code in rate_limited:
        raise DeliveryError(
            f"{exchange.where} refused: too many messages (code {code}: {said}); "
            f"robots take about 20 a minute",
            permanent=False,
            error_class=ErrorClass.RESPONSE,
            retry_after=answer.retry_after or RATE_LIMIT_WAIT,
        )
    if code == 0:  # a non-2xx status with code 0: judged by the status
        raise exchange.refused(answer)
    raise DeliveryError(
        f"{exchange.where} refused the message: code {code}: {said}",
        permanent=code not in transient and answer.status < 500,
        error_class=ErrorClass.RESPONSE,
        retry_after=answer.retry_after,
    )


def json_body(document: dict[str, Any]) -> bytes:
    """The request body: JSON in UTF-8 as the robots take it (no ``\\u`` escapes)."""
    return json.dumps(document, ensure_ascii=False).encode("utf-8")
