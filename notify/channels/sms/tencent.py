"""``provider: tencent``: Tencent Cloud SMS, the ``SendSms`` action of API 3.0 (2021-01-11).

```yaml
channels:
  - {id: sms-tc, kind: sms, provider: tencent, secret_id: "${TC_ID}", secret_key: "${TC_KEY}",
     sdk_app_id: "1400000000", sign_name: 外呼中心, template_id: "123456",
     parameters: [target, health]}
```

Like Aliyun, Tencent sends only an approved template; its variables are
numbered (``{1}``, ``{2}``), so ``parameters`` is the ordered list of facts
that fill them, each cut to ``max_variable_length``.

Each request is a JSON POST signed with TC3-HMAC-SHA256 (Tencent's "Signature
v3"): a canonical request over the method, ``/``, the empty query, the signed
headers ``content-type`` and ``host`` and the body's SHA-256; a string to sign
over the timestamp and the scope ``<UTC date>/sms/tc3_request``; a key derived
from ``"TC3" + SecretKey`` through the date, the service and ``tc3_request``.
The answer is always HTTP 200: success is ``Response.SendStatusSet[0].Code ==
"Ok"``; ``Response.Error`` or any other code is a failed delivery.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from core.observation import ErrorClass
from notify.channels.base import DeliveryError, Message, Receipt, shortened
from notify.channels.sms.common import (
    MISSING_FACT,
    Answer,
    Exchange,
    SmsConfigBase,
    facts,
    http_url,
    provider_exchange,
    recipient,
    truncated,
)

DEFAULT_ENDPOINT = "https://sms.tencentcloudapi.com/"
SERVICE = "sms"
API_VERSION = "2021-01-11"
CONTENT_TYPE = "application/json; charset=utf-8"
VARIABLE_LIMIT = 12
"""Tencent's limit for one variable of a template made by an individually verified account
(characters); an enterprise account's templates allow more (raise max_variable_length)."""

THROTTLED = {
    "LimitExceeded.PhoneNumberThirtySecondLimit": 30.0,
    "LimitExceeded.PhoneNumberOneHourLimit": 3600.0,
    "LimitExceeded.PhoneNumberDailyLimit": 3600.0,
    "LimitExceeded.PhoneNumberSameContentDailyLimit": 3600.0,
    "LimitExceeded.DeliveryFrequencyLimit": 60.0,
    "LimitExceeded.AppCountryOrRegionDailyLimit": 3600.0,
    "LimitExceeded.AppDailyLimit": 3600.0,
    "RequestLimitExceeded": 1.0,
}
"""Codes that say "not now": transient, with the wait we suggest before the next try."""


class TencentSmsConfig(SmsConfigBase):
    """Tencent Cloud SMS: an approved template (``template_id``) under an approved
    signature (``sign_name``) of an SMS application (``sdk_app_id``)."""

    provider: Literal["tencent"]
    """Which SMS provider: ``aliyun``, ``tencent``, ``twilio`` or ``http`` (a gateway of yours)."""
    secret_id: Annotated[str, Field(min_length=1)]
    """The API key's SecretId (``AKID...``)."""
    secret_key: Annotated[str, Field(min_length=1)]
    """The API key's SecretKey that signs each request; write it as ``${file:/path}``. Never logged."""
    sdk_app_id: Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]
    """The SMS application's SdkAppId (``1400000000``)."""
    sign_name: Annotated[str, Field(min_length=1)]
    """The approved signature (签名) shown in brackets before the text."""
    template_id: Annotated[str, Field(pattern=r"^[0-9]{1,20}$")]
    """The approved template's id (``123456``)."""
    parameters: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    """The facts that fill the template's ``{1}``, ``{2}``, ... in order: ``[target, health]``.
    Facts are the message's data (incident, target, health, ...) and ``subject``, ``text``."""
    max_variable_length: Annotated[int, Field(ge=1, le=500)] = VARIABLE_LIMIT
    """Characters one variable may have; longer values are cut and end in ``…`` (Tencent
    allows 12 for an individually verified account)."""
    region: Annotated[str, Field(min_length=1)] = "ap-guangzhou"
    """``X-TC-Region`` of the request (``ap-guangzhou``, ``ap-beijing``, ``ap-nanjing``)."""
    endpoint: str = DEFAULT_ENDPOINT
    """The API's URL; change it only for a test stand-in or a proxy."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return http_url(value)


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()


def canonical_request(content_type: str, host: str, payload: bytes) -> str:
    """Step 1 for a POST to ``/``: method, URI, empty query, the two signed headers, body hash."""
    return "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type.strip().lower()}\nhost:{host.strip().lower()}\n",
            "content-type;host",
            hashlib.sha256(payload).hexdigest(),
        ]
    )


def scope(timestamp: int, service: str) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(timestamp)) + f"/{service}/tc3_request"


def string_to_sign(timestamp: int, service: str, canonical: str) -> str:
    """Step 2: algorithm, timestamp, credential scope, the canonical request's SHA-256."""
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"TC3-HMAC-SHA256\n{timestamp}\n{scope(timestamp, service)}\n{digest}"


def signature(secret_key: str, timestamp: int, service: str, to_sign: str) -> str:
    """Step 3: the derived key (date → service → tc3_request), then HMAC of the string to sign."""
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()


def authorization(
    secret_id: str,
    secret_key: str,
    timestamp: int,
    service: str,
    host: str,
    payload: bytes,
    content_type: str = CONTENT_TYPE,
) -> str:
    """Step 4: the ``Authorization`` header of a request with this host, body and time."""
    to_sign = string_to_sign(timestamp, service, canonical_request(content_type, host, payload))
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope(timestamp, service)}, "
        f"SignedHeaders=content-type;host, "
        f"Signature={signature(secret_key, timestamp, service, to_sign)}"
    )


class TencentSms:
    """Sends each message as one ``SendSms`` call."""

    def __init__(self, config: TencentSmsConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock

    def __repr__(self) -> str:
        return f"TencentSms({self.config.id!r}, {self.config.template_id})"

    def body(self, message: Message, phone: str) -> bytes:
        config = self.config
        found = facts(message)
        values = [
            truncated(found.get(fact) or MISSING_FACT, config.max_variable_length)
            for fact in config.parameters
        ]
        document = {
            "PhoneNumberSet": [phone],
            "SmsSdkAppId": config.sdk_app_id,
            "SignName": config.sign_name,
            "TemplateId": config.template_id,
            "TemplateParamSet": values,
            "SessionContext": message.delivery_id[:512],
        }
        return json.dumps(document, ensure_ascii=False).encode("utf-8")

    def send(self, message: Message) -> Receipt:
        config = self.config
        phone = recipient(message, "tencent")
        payload = self.body(message, phone)
        exchange = provider_exchange(config, config.endpoint, "tencent")
        pinned = exchange.pin()
        timestamp = int(self.clock())
        headers = {
            "Content-Type": CONTENT_TYPE,
            "X-TC-Action": "SendSms",
            "X-TC-Version": API_VERSION,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Region": config.region,
            "Authorization": authorization(
                config.secret_id,
                config.secret_key,
                timestamp,
                SERVICE,
                pinned.host_header,
                payload,
            ),
        }
        answer = exchange.send("POST", headers, payload)
        if 300 <= answer.status < 400:
            raise exchange.redirect(answer)
        return _read(exchange, answer)


def _read(exchange: Exchange, answer: Answer) -> Receipt:
    document = answer.document
    response: Any = document.get("Response") if isinstance(document, dict) else None
    if not isinstance(response, dict):
        raise exchange.garbage(answer)
    error = response.get("Error")
    if isinstance(error, dict):
        code, text = str(error.get("Code", "")), str(error.get("Message", ""))
    else:
        statuses = response.get("SendStatusSet")
        if not isinstance(statuses, list) or not statuses or not isinstance(statuses[0], dict):
            raise exchange.garbage(answer)
        status = statuses[0]
        code, text = str(status.get("Code", "")), str(status.get("Message", ""))
        if code == "Ok":
            serial = status.get("SerialNo")
            return Receipt(str(serial) if serial else None, shortened(f"{code}: {text}", 200))
    said = shortened(f"{code}: {text}", 200)
    if code in THROTTLED or code.startswith("LimitExceeded."):
        raise DeliveryError(
            f"{exchange.where} is throttling: {said}",
            permanent=False,
            error_class=ErrorClass.RESPONSE,
            retry_after=THROTTLED.get(code, 60.0),
        )
    if code.startswith("AuthFailure"):
        raise DeliveryError(
            f"{exchange.where} refused the credentials: {said}",
            permanent=True,
            error_class=ErrorClass.AUTH,
        )
    # InternalError.* and a busy backend are Tencent's side: a resend may well pass.
    transient = code.startswith(("InternalError", "ResourceUnavailable")) or answer.status >= 500
    raise DeliveryError(
        f"{exchange.where} refused the message: {said}",
        permanent=not transient,
        error_class=ErrorClass.RESPONSE,
    )
