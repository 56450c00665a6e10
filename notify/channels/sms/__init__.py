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

from pydantic import BaseModel, Field, ValidationError

from core.config import FieldValueError
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
        if cls.__name__ != "SmsChannelConfig":
            return super().__get_pydantic_core_schema__(source, handler)
        from pydantic_core import core_schema

        union = Union[tuple(model for model, _ in PROVIDERS.values())]  # type: ignore[valid-type]  # noqa: UP007
        inner = handler.generate_schema(Annotated[union, Field(discriminator="provider")])
        # (a lambda: the function is defined below this class, which is built first)
        return core_schema.no_info_wrap_validator_function(
            lambda value, validate: _as_written(value, validate), inner
        )


def _as_written(value: Any, validate: Any) -> Any:
    """Validate, reporting errors at the keys as written: without pydantic's union tag (the
    provider's name) in their location, an unknown or missing provider at ``provider``, an
    unknown key with the keys its provider allows. The loader words errors from the
    location; a tag in it would read as a key of the entry."""
    try:
        return validate(value)
    except ValidationError as exc:
        provider = value.get("provider") if isinstance(value, dict) else None
        errors = [_untagged(error, provider) for error in exc.errors()]
        raise ValidationError.from_exception_data(exc.title, errors) from None


def _untagged(error: Any, provider: Any) -> Any:
    loc = tuple(error["loc"])
    if loc and loc[0] in PROVIDERS:
        loc = loc[1:]
    kind = error["type"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        if provider is None:
            return {"type": "missing", "loc": (*loc, "provider"), "input": error["input"]}
        return {
            "type": "literal_error",
            "loc": (*loc, "provider"),
            "input": provider,
            "ctx": {"expected": ", ".join(repr(name) for name in PROVIDERS)},
        }
    if kind == "extra_forbidden" and loc:
        model = _model_at(PROVIDERS[str(provider)][0], loc[:-1]) if provider in PROVIDERS else None
        if model is not None:
            keys = sorted(field.alias or name for name, field in model.model_fields.items())
            problem = FieldValueError(
                str(loc[-1]), f"unknown key for provider {provider}; allowed: {', '.join(keys)}"
            )
            return {"type": "value_error", "loc": loc[:-1], "input": error["input"],
                    "ctx": {"error": problem}}  # fmt: skip
    cleaned = {"type": kind, "loc": loc, "input": error["input"]}
    if error.get("ctx"):
        cleaned["ctx"] = error["ctx"]
    return cleaned


def _model_at(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model that holds the key at the end of ``loc`` (nested models of a provider)."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(part) if isinstance(part, str) else None
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        current = annotation
    return current  # type: ignore[no-any-return]


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
