"""``provider: twilio``: Twilio's Messages API, free text.

```yaml
channels:
  - {id: sms-intl, kind: sms, provider: twilio, account_sid: AC..., auth_token: "${TWILIO_TOKEN}",
     from: "+15005550006"}
```

One form POST to ``/2010-04-01/Accounts/<AccountSid>/Messages.json`` with
basic auth (Account SID and auth token), ``To``, ``From`` or
``MessagingServiceSid``, and ``Body``: the subject and text, cut to
``max_length`` characters (a few segments; Twilio itself refuses more than
1600). A 2xx answer with a message ``sid`` is accepted; an error answer
carries Twilio's JSON ``code``: 20429 (and HTTP 429) is throttling, 20003
and other 4xx are permanent, 5xx transient.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import quote, urlencode, urljoin

from pydantic import ConfigDict, Field, field_validator, model_validator

from core.config import FieldValueError
from core.observation import ErrorClass
from notify.channels.base import DeliveryError, Message, Receipt, shortened
from notify.channels.sms.common import (
    E164,
    SmsConfigBase,
    free_text,
    http_url,
    provider_exchange,
    recipient,
    retry_after,
)

DEFAULT_ENDPOINT = "https://api.twilio.com/"
THROTTLED_CODES = frozenset({20429, 14107})
AUTH_CODES = frozenset({20003, 20005, 20008})


class TwilioSmsConfig(SmsConfigBase):
    """Twilio: free text from a number of yours or a Messaging Service."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    provider: Literal["twilio"]
    """Which SMS provider: ``aliyun``, ``tencent``, ``twilio`` or ``http`` (a gateway of yours)."""
    account_sid: Annotated[str, Field(pattern=r"^AC[0-9a-fA-F]{32}$")]
    """The Account SID (``AC`` and 32 hex digits): the basic-auth user."""
    auth_token: Annotated[str, Field(min_length=1)]
    """The auth token: the basic-auth password; write it as ``${file:/path}``. Never logged."""
    from_: str | None = Field(default=None, alias="from")
    """The sending number, E.164 (``+15005550006``); or give ``messaging_service_sid``."""
    messaging_service_sid: Annotated[str, Field(pattern=r"^MG[0-9a-fA-F]{32}$")] | None = None
    """A Messaging Service (``MG...``) that picks the sender, instead of ``from``."""
    max_length: Annotated[int, Field(ge=20, le=1600)] = 320
    """Characters of subject and text sent (longer is cut, ending in ``…``): 320 is two
    or three segments, enough for a page and cheap to deliver."""
    endpoint: str = DEFAULT_ENDPOINT
    """The API's base URL; change it only for a test stand-in or a proxy."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return http_url(value)

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        if value is not None and not E164.fullmatch(value):
            raise ValueError("must be an E.164 phone number like +15005550006")
        return value

    @model_validator(mode="after")
    def _sender(self) -> TwilioSmsConfig:
        if (self.from_ is None) == (self.messaging_service_sid is None):
            raise FieldValueError("from", "give either from or messaging_service_sid")
        return self


class TwilioSms:
    """Sends each message as one Messages API call."""

    def __init__(self, config: TwilioSmsConfig) -> None:
        self.config = config

    def __repr__(self) -> str:
        return f"TwilioSms({self.config.id!r}, {self.config.account_sid})"

    def form(self, message: Message, phone: str) -> dict[str, str]:
        config = self.config
        form = {"To": phone, "Body": free_text(message, config.max_length)}
        if config.from_ is not None:
            form["From"] = config.from_
        else:
            form["MessagingServiceSid"] = config.messaging_service_sid or ""
        return form

    def send(self, message: Message) -> Receipt:
        from core.net.http import basic_auth

        config = self.config
        phone = recipient(message, "twilio")
        path = f"2010-04-01/Accounts/{quote(config.account_sid)}/Messages.json"
        exchange = provider_exchange(config, urljoin(config.endpoint, path), "twilio")
        answer = exchange.send(
            "POST",
            {
                "Content-Type": "application/x-www-form-urlencoded",
                "Accept": "application/json",
                "Authorization": basic_auth(config.account_sid, config.auth_token),
            },
            urlencode(self.form(message, phone)).encode("ascii"),
        )
        if 300 <= answer.status < 400:
            raise exchange.redirect(answer)
        document = answer.document if isinstance(answer.document, dict) else None
        if 200 <= answer.status < 300:
            if document is None or not document.get("sid"):
                raise exchange.garbage(answer)
            said = shortened(f"HTTP {answer.status}: {document.get('status', 'accepted')}", 200)
            return Receipt(str(document["sid"]), said)
        code = document.get("code") if document is not None else None
        if not isinstance(code, int):
            raise exchange.garbage(answer)
        said = shortened(f"HTTP {answer.status}, error {code}: {document.get('message', '')}", 200)  # type: ignore[union-attr]
        if code in THROTTLED_CODES or answer.status == 429:
            raise DeliveryError(
                f"{exchange.where} is throttling: {said}",
                permanent=False,
                error_class=ErrorClass.RESPONSE,
                retry_after=retry_after(answer.headers.get("retry-after")) or 1.0,
            )
        raise DeliveryError(
            f"{exchange.where} refused the message: {said}",
            permanent=answer.status < 500,
            error_class=ErrorClass.AUTH
            if code in AUTH_CODES or answer.status == 401
            else ErrorClass.RESPONSE,
        )
