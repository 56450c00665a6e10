"""``provider: http``: a generic HTTP SMS gateway of yours, free text.

```yaml
channels:
  - id: sms-gw
    kind: sms
    provider: http
    url: https://sms-gw.example.cn/api/send
    secret_headers: {Authorization: "Bearer ${SMS_GW_TOKEN}"}
    content_type: application/json
    body: '{"to": {{ phone }}, "text": {{ text }}}'
    success: {status: [200], json_path: result.code, equals: "0"}
```

The body is a Jinja2 template rendered in a *sandbox* (``jinja2.sandbox.
ImmutableSandboxedEnvironment``, no loader): it may use the facts (``phone``,
``subject``, ``text``, ``message`` — subject and text in one line, cut to
``max_length`` — ``delivery_id`` and the message's data) but no attribute
starting with ``_``, no file, no import: ``{{ ''.__class__.__mro__ }}`` is a
configuration error, not a way into the appliance. Every value is escaped for
the content type as it is inserted — a JSON string literal (quotes included)
for ``application/json``, percent-encoded for a form, as it is for
``text/plain`` — so a target name with quotes or ``&`` cannot change the
request's shape, and message text is only ever a value, never a template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from urllib.parse import quote_plus

from pydantic import Field, field_validator, model_validator

from core.config import StrictModel
from core.observation import ErrorClass
from notify.channels.base import DeliveryError, Message, Receipt, shortened
from notify.channels.sms.common import (
    Answer,
    Exchange,
    SmsConfigBase,
    facts,
    free_text,
    http_url,
    provider_exchange,
    recipient,
    retry_after,
)

ContentType = Literal["application/json", "application/x-www-form-urlencoded", "text/plain"]
_HEADER_NAME = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$"
_SAMPLE = {
    "phone": "+8613800138000",
    "subject": "subject",
    "text": "text",
    "message": "message",
    "delivery_id": "d-1",
}


class Success(StrictModel):
    """When the gateway accepted the message."""

    status: list[Annotated[int, Field(ge=100, le=599)]] = Field(default_factory=list)
    """HTTP statuses that mean accepted; empty: any 2xx."""
    json_path: str | None = None
    """Dotted path into the JSON answer (``result.code``, ``items.0.status``) that must
    equal ``equals``; none: the status alone decides."""
    equals: str | int | bool | None = None
    """The value at ``json_path`` that means accepted (compared as text)."""

    @model_validator(mode="after")
    def _pair(self) -> Success:
        if (self.json_path is None) != (self.equals is None):
            raise ValueError("json_path and equals go together")
        return self


def _environment(content_type: str) -> Any:
    # Deferred: Jinja2 loads only where a gateway channel is built.
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def escape(value: Any) -> str:
        text = "" if value is None else str(value)
        if content_type == "application/json":
            return json.dumps(text, ensure_ascii=False)
        if content_type == "application/x-www-form-urlencoded":
            return quote_plus(text)
        return text

    return ImmutableSandboxedEnvironment(
        autoescape=False, undefined=StrictUndefined, finalize=escape, loader=None
    )


class GatewaySmsConfig(SmsConfigBase):
    """A gateway of yours that takes free text over HTTP."""

    provider: Literal["http"]
    """Which SMS provider: ``aliyun``, ``tencent``, ``twilio`` or ``http`` (a gateway of yours)."""
    url: str
    """``http://`` or ``https://`` URL of the gateway (no user:password in it)."""
    method: Literal["POST", "PUT"] = "POST"
    """HTTP method of the request (the body is always sent)."""
    headers: dict[Annotated[str, Field(pattern=_HEADER_NAME)], str] = Field(default_factory=dict)
    """Extra request headers, shown in the config as they are."""
    secret_headers: dict[Annotated[str, Field(pattern=_HEADER_NAME)], str] = Field(
        default_factory=dict
    )
    """Headers that carry credentials (``Authorization``, ``X-Api-Key``): sent like
    ``headers`` but never shown or logged."""
    content_type: ContentType = "application/json"
    """How values are escaped into ``body`` and the ``Content-Type`` sent."""
    body: str = '{"to": {{ phone }}, "text": {{ message }}}'
    """Jinja2 template of the request body (sandboxed; values escaped for ``content_type``)."""
    max_length: Annotated[int, Field(ge=20, le=1600)] = 320
    """Characters of ``message`` (subject and text in one line) before it is cut with ``…``."""
    success: Success = Field(default_factory=Success)
    """What counts as accepted."""
    inbound_secret: Annotated[str, Field(min_length=16)] | None = None
    """A shared secret for replies your gateway posts to ``/hooks/sms/<channel id>``
    (``X-Dialwatch-Signature: sha256=<hex HMAC-SHA256 of the body>``); none: no replies."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return http_url(value)

    @model_validator(mode="after")
    def _template(self) -> GatewaySmsConfig:
        from core.config import FieldValueError

        try:
            render(self, _sample(self))
        except Exception as exc:  # noqa: BLE001 - any template failure is a config error
            raise FieldValueError("body", f"template refused: {_template_error(exc)}") from None
        return self


def _template_error(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "SecurityError":
        return "it reaches for something unsafe (attributes starting with _ and the like)"
    return f"{name}: {shortened(str(exc), 120)}"


def _sample(config: GatewaySmsConfig) -> dict[str, str]:
    """A value for every name the template uses: a trial render finds what the sandbox refuses
    (a fact a message may lack is not an error here; it is one at send time)."""
    from jinja2 import meta

    names = meta.find_undeclared_variables(_environment(config.content_type).parse(config.body))
    return {name: "x" for name in names} | _SAMPLE


def render(config: GatewaySmsConfig, values: Mapping[str, str]) -> str:
    """The body for these values: the template rendered in the sandbox, values escaped."""
    environment = _environment(config.content_type)
    return str(environment.from_string(config.body).render(**values))


def _at(document: Any, path: str) -> Any:
    for part in path.split("."):
        if isinstance(document, dict) and part in document:
            document = document[part]
        elif isinstance(document, list) and part.isdigit() and int(part) < len(document):
            document = document[int(part)]
        else:
            return _MISSING
    return document


_MISSING = object()


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class GatewaySms:
    """Sends each message as one request to the gateway."""

    def __init__(self, config: GatewaySmsConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        from core.net.http import shown_url

        return f"GatewaySms({self.config.id!r}, {shown_url(self.config.url)})"

    def values(self, message: Message, phone: str) -> dict[str, str]:
        found = facts(message)
        found.update(phone=phone, message=free_text(message, self.config.max_length))
        return found

    def send(self, message: Message) -> Receipt:
        config = self.config
        phone = recipient(message, "http")
        try:
            body = render(config, self.values(message, phone))
        except Exception as exc:  # noqa: BLE001 - e.g. a fact the template names is missing
            raise DeliveryError(
                f"SMS (http): the body template failed for this message: {_template_error(exc)}",
                permanent=True,
            ) from None
        exchange = provider_exchange(config, config.url, "http")
        headers = {**config.headers, **config.secret_headers}
        if not any(name.lower() == "content-type" for name in headers):
            headers["Content-Type"] = f"{config.content_type}; charset=utf-8"
        answer = exchange.send(config.method, headers, body.encode("utf-8"))
        return self.judge(exchange, answer)

    def judge(self, exchange: Exchange, answer: Answer) -> Receipt:
        success = self.config.success
        said = shortened(f"HTTP {answer.status}: {answer.text}", 200)
        accepted = answer.status in success.status if success.status else 200 <= answer.status < 300
        if not accepted:
            if 300 <= answer.status < 400:
                raise exchange.redirect(answer)
            transient = answer.status >= 500 or answer.status in (408, 429)
            raise DeliveryError(
                f"{exchange.where} answered {said}",
                permanent=not transient,
                error_class=ErrorClass.RESPONSE,
                retry_after=retry_after(answer.headers.get("retry-after")),
            )
        if success.json_path is not None:
            if answer.document is None:
                raise exchange.garbage(answer)
            found = _at(answer.document, success.json_path)
            if found is _MISSING or _text(found) != _text(success.equals):
                shown = "nothing" if found is _MISSING else repr(found)
                raise DeliveryError(
                    f"{exchange.where} did not accept the message ({success.json_path} is "
                    f"{shown}, not {_text(success.equals)!r}): {said}",
                    permanent=True,
                    error_class=ErrorClass.RESPONSE,
                )
        return Receipt(answer.headers.get("x-request-id"), said)
