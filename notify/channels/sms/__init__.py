"""The ``sms`` channel: a text message to the recipient's phone, through one of four providers.

``provider`` chooses the module and the keys of the entry:

- ``aliyun`` (``notify.channels.sms.aliyun``): Aliyun SMS, an approved template with
  named variables, HMAC-SHA1 signed;
- ``tencent`` (``.tencent``): Tencent Cloud SMS, an approved template with numbered
  variables, TC3-HMAC-SHA256 signed;
- ``twilio`` (``.twilio``): Twilio's Messages API, free text;
- ``http`` (``.gateway``): a gateway of yours, free text in a sandboxed body template.

``SmsChannelConfig`` is the one model the ``CHANNELS`` registry names; it
validates an entry as the provider's own model (a union discriminated on
``provider``), so every provider's keys are strict and an unknown provider is
one error. The recipient is ``message.phone`` (E.164); a message without one
fails permanently. See docs/channels/sms.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Field

from notify.channels.base import Message, Receipt
from notify.channels.sms.aliyun import AliyunSms, AliyunSmsConfig
from notify.channels.sms.common import SmsConfigBase
from notify.channels.sms.gateway import GatewaySms, GatewaySmsConfig
from notify.channels.sms.tencent import TencentSms, TencentSmsConfig
from notify.channels.sms.twilio import TwilioSms, TwilioSmsConfig

PROVIDERS: dict[str, tuple[type[SmsConfigBase], type[Any]]] = {
    "aliyun": (AliyunSmsConfig, AliyunSms),
    "tencent": (TencentSmsConfig, TencentSms),
    "twilio": (TwilioSmsConfig, TwilioSms),
    "http": (GatewaySmsConfig, GatewaySms),
}
"""provider → its config model and the class that sends; the literal registry of providers."""


class SmsChannelConfig(SmsConfigBase):
    """A text message to the recipient's phone (``phone``, E.164) through the chosen provider;
    the other keys are the provider's (see docs/channels/sms.md)."""

    provider: Literal["aliyun", "tencent", "twilio", "http"]
    """Which SMS provider: ``aliyun``, ``tencent``, ``twilio`` or ``http`` (a gateway of yours)."""

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> Any:
        # This class stands for the union of the providers' models: validating an entry
        # gives the provider's model (strict in its own keys), chosen by ``provider``.
        if cls.__name__ == "SmsChannelConfig":
            union = Union[tuple(model for model, _ in PROVIDERS.values())]  # type: ignore[valid-type]  # noqa: UP007
            return handler.generate_schema(Annotated[union, Field(discriminator="provider")])
        return super().__get_pydantic_core_schema__(source, handler)


class SmsChannel:
    """The channel for one ``kind: sms`` entry: the provider's sender, built from its config."""

    def __init__(self, config: SmsConfigBase, **options: Any) -> None:
        provider = getattr(config, "provider", None)
        if provider not in PROVIDERS or not isinstance(config, PROVIDERS[provider][0]):
            raise TypeError(f"not an SMS provider's config: {type(config).__name__}")
        self.config = config
        self.sender = PROVIDERS[provider][1](config, **options)

    def __repr__(self) -> str:
        return f"SmsChannel({self.sender!r})"

    def send(self, message: Message) -> Receipt:
        return self.sender.send(message)  # type: ignore[no-any-return]


__all__ = ["PROVIDERS", "SmsChannel", "SmsChannelConfig"]
