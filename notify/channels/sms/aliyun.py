"""``provider: aliyun``: Aliyun (Alibaba Cloud) SMS, the ``SendSms`` action of dysmsapi.

```yaml
channels:
  - {id: sms, kind: sms, provider: aliyun, access_key_id: "${ALIYUN_AK}",
     access_key_secret: "${ALIYUN_SK}", sign_name: 外呼中心, template: SMS_123,
     variables: {target: target, state: health}}
```

Aliyun sends only an approved template with named variables, so the message
becomes ``TemplateParam``: each variable takes one fact of the message
(``message.data``, subject, text), cut to ``max_variable_length``.

The request is an RPC-style call signed with HMAC-SHA1 (``SignatureVersion
1.0``), the method the SMS API's "Signature method" page documents: every
parameter but ``Signature``, sorted, percent-encoded (RFC 3986, space as
``%20``), joined into ``POST&%2F&<encoded query>`` and signed with the
AccessKey secret followed by ``&``. We POST the parameters as a form; the
answer is JSON whose ``Code`` is ``OK`` on success — an HTTP 200 with any
other code is a failed delivery.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Literal
from urllib.parse import quote

from pydantic import Field, field_validator

from core.observation import ErrorClass
from notify.channels.base import DeliveryError, Message, Receipt, shortened
from notify.channels.sms.common import (
    SmsConfigBase,
    check_fact_names,
    facts,
    http_url,
    provider_exchange,
    recipient,
    template_values,
)

DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com/"
API_VERSION = "2017-05-25"
VARIABLE_LIMIT = 35
"""Aliyun's default limit for one variable of a notification template (characters)."""

THROTTLED = {
    "isv.BUSINESS_LIMIT_CONTROL": 60.0,  # per-number flow control: minute/hour limits
    "Throttling.User": 1.0,
    "Throttling": 1.0,
    "isv.DAY_LIMIT_CONTROL": 3600.0,
    "SignatureNonceUsed": 1.0,  # a nonce collision; a new one is made on the next try
}
"""Codes that say "not now": transient, with the wait we suggest before the next try."""
AUTH = frozenset(
    {
        "InvalidAccessKeyId.NotFound",
        "InvalidAccessKeyId.Inactive",
        "SignatureDoesNotMatch",
        "IncompleteSignature",
        "InvalidTimeStamp.Expired",
        "Forbidden.RAM",
        "isp.RAM_PERMISSION_DENY",
        "isv.ACCOUNT_NOT_EXISTS",
        "isv.ACCOUNT_ABNORMAL",
    }
)


class AliyunSmsConfig(SmsConfigBase):
    """Aliyun SMS: an approved template (``template``) under an approved signature
    (``sign_name``), its variables filled from the message's facts."""

    provider: Literal["aliyun"]
    """Which SMS provider: ``aliyun``, ``tencent``, ``twilio`` or ``http`` (a gateway of yours)."""
    access_key_id: Annotated[str, Field(min_length=1)]
    """The AccessKey ID (of a RAM user that may only send SMS)."""
    access_key_secret: Annotated[str, Field(min_length=1)]
    """The AccessKey secret that signs each request; write it as ``${file:/path}``. Never logged."""
    sign_name: Annotated[str, Field(min_length=1)]
    """The approved signature (签名) shown in brackets before the text: ``外呼中心``."""
    template: Annotated[str, Field(min_length=1)]
    """The approved template's code: ``SMS_123456789``."""
    variables: dict[str, str] = Field(default_factory=dict)
    """Template variable → the message fact it shows: ``{target: target, state: health}``.
    Facts are the message's data (incident, target, health, ...) and ``subject``, ``text``."""
    max_variable_length: Annotated[int, Field(ge=1, le=500)] = VARIABLE_LIMIT
    """Characters one variable may have; longer values are cut and end in ``…`` (Aliyun's
    default for a notification template's variable is 35)."""
    region: Annotated[str, Field(min_length=1)] = "cn-hangzhou"
    """``RegionId`` of the request (SMS is served from cn-hangzhou)."""
    endpoint: str = DEFAULT_ENDPOINT
    """The API's URL; change it only for a test stand-in or a proxy."""

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return http_url(value)

    @field_validator("variables")
    @classmethod
    def _variables(cls, value: dict[str, str]) -> dict[str, str]:
        return dict(check_fact_names(value))


def percent(value: str) -> str:
    """Aliyun's POP encoding: RFC 3986 unreserved characters kept, everything else %XX (UTF-8)."""
    return quote(value, safe="-_.~")


def string_to_sign(method: str, parameters: Mapping[str, str]) -> str:
    """``<METHOD>&%2F&<the sorted, encoded parameters, encoded again>`` (no ``Signature``)."""
    canonical = "&".join(
        f"{percent(key)}={percent(parameters[key])}"
        for key in sorted(parameters)
        if key != "Signature"
    )
    return f"{method}&{percent('/')}&{percent(canonical)}"


def signature(secret: str, method: str, parameters: Mapping[str, str]) -> str:
    """Base64 of HMAC-SHA1 over the string to sign, keyed by the secret and ``&``."""
    digest = hmac.new(
        f"{secret}&".encode(), string_to_sign(method, parameters).encode(), hashlib.sha1
    ).digest()
    return base64.b64encode(digest).decode("ascii")


def phone_number(e164: str) -> str:
    """``PhoneNumbers`` as Aliyun takes it: a mainland number without +86, others with
    their country code and no ``+``."""
    return e164[3:] if e164.startswith("+86") else e164[1:]


class AliyunSms:
    """Sends each message as one ``SendSms`` call."""

    def __init__(self, config: AliyunSmsConfig, *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self.clock = clock

    def __repr__(self) -> str:
        return f"AliyunSms({self.config.id!r}, {self.config.template})"

    def parameters(self, message: Message, phone: str) -> dict[str, str]:
        config = self.config
        values = template_values(config.variables, facts(message), config.max_variable_length)
        return {
            "AccessKeyId": config.access_key_id,
            "Action": "SendSms",
            "Format": "JSON",
            "OutId": message.delivery_id[:256],
            "PhoneNumbers": phone_number(phone),
            "RegionId": config.region,
            "SignName": config.sign_name,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": str(uuid.uuid4()),
            "SignatureVersion": "1.0",
            "TemplateCode": config.template,
            "TemplateParam": json.dumps(values, ensure_ascii=False, separators=(",", ":")),
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
            "Version": API_VERSION,
        }

    def send(self, message: Message) -> Receipt:
        config = self.config
        phone = recipient(message, "aliyun")
        parameters = self.parameters(message, phone)
        parameters["Signature"] = signature(config.access_key_secret, "POST", parameters)
        body = "&".join(f"{percent(k)}={percent(v)}" for k, v in parameters.items())
        exchange = provider_exchange(config, config.endpoint, "aliyun")
        answer = exchange.send(
            "POST",
            {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"},
            body.encode("ascii"),
        )
        if 300 <= answer.status < 400:
            raise exchange.redirect(answer)
        document = answer.document
        if not isinstance(document, dict) or not isinstance(document.get("Code"), str):
            raise exchange.garbage(answer)
        code = document["Code"]
        said = shortened(f"{code}: {document.get('Message', '')}", 200)
        if code == "OK" and answer.status < 300:
            return Receipt(str(document.get("BizId") or "") or None, said)
        if code in THROTTLED:
            raise DeliveryError(
                f"{exchange.where} is throttling: {said}",
                permanent=False,
                error_class=ErrorClass.RESPONSE,
                retry_after=THROTTLED[code],
            )
        # isp.* is Aliyun's side failing; a resend may well pass.
        transient = (code.startswith("isp.") and code not in AUTH) or answer.status >= 500
        raise DeliveryError(
            f"{exchange.where} refused the message: {said}",
            permanent=not transient,
            error_class=ErrorClass.AUTH if code in AUTH else ErrorClass.RESPONSE,
        )
