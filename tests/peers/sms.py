"""STAND-INS for the SMS providers' APIs: local HTTP servers on 127.0.0.1 that check each
request the way the provider does and answer in its shape, error codes included.

They are not the providers: they implement what the providers document and what
Dialwatch relies on, so the channels can be tested against real sockets.

- ``aliyun``: recomputes the RPC HMAC-SHA1 signature of the form parameters with the
  account's secret (``SignatureDoesNotMatch``), requires the SendSms parameters,
  checks ``Timestamp`` within 15 minutes (``InvalidTimeStamp.Expired``) and answers
  ``{"Code": "OK", ...}``;
- ``tencent``: recomputes the TC3-HMAC-SHA256 ``Authorization`` over the headers and
  the body as received (``AuthFailure.SignatureFailure``), checks ``X-TC-Timestamp``
  within 5 minutes (``AuthFailure.SignatureExpire``) and the SendSms fields, answers
  ``SendStatusSet`` — always with HTTP 200, as Tencent does;
- ``twilio``: checks basic auth (401, code 20003), ``To``/``From``/``Body``, answers
  201 with a ``sid``;
- ``http``: a gateway that records what it got and answers ``{"result": {"code": 0}}``.

``mode`` makes a server misbehave for the next requests: ``throttle`` (the provider's
rate-limit answer), ``garbage`` (an HTML page with 200), ``error500``, ``redirect`` (302 to another path), ``hang``
(no answer until the server stops), ``refuse`` (a provider error: template / number).
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote

ALIYUN_REQUIRED = (
    "AccessKeyId", "Action", "PhoneNumbers", "SignName", "SignatureMethod", "SignatureNonce",
    "SignatureVersion", "TemplateCode", "Timestamp", "Version", "Signature",
)  # fmt: skip


@dataclass(frozen=True)
class Got:
    path: str
    headers: dict[str, str]
    body: bytes
    verdict: str
    """What the stand-in concluded: ``ok`` or the provider's error code it answered."""

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Peer:
    provider: str
    key_id: str
    secret: str
    port: int = 0
    mode: str = "ok"
    got: list[Got] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _pop(value: str) -> str:
    return quote(value, safe="-_.~")


def aliyun_expected(secret: str, params: dict[str, str]) -> str:
    canonical = "&".join(f"{_pop(k)}={_pop(params[k])}" for k in sorted(params) if k != "Signature")
    to_sign = f"POST&%2F&{_pop(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def tencent_expected(secret_key: str, headers: dict[str, str], body: bytes) -> str:
    timestamp = int(headers.get("x-tc-timestamp", "0"))
    date = time.strftime("%Y-%m-%d", time.gmtime(timestamp))
    canonical = (
        f"POST\n/\n\ncontent-type:{headers.get('content-type', '').lower()}\n"
        f"host:{headers.get('host', '').lower()}\n\ncontent-type;host\n"
        + hashlib.sha256(body).hexdigest()
    )
    to_sign = (
        f"TC3-HMAC-SHA256\n{timestamp}\n{date}/sms/tc3_request\n"
        + hashlib.sha256(canonical.encode()).hexdigest()
    )

    def mac(key: bytes, text: str) -> bytes:
        return hmac.new(key, text.encode(), hashlib.sha256).digest()

    key = mac(mac(mac(f"TC3{secret_key}".encode(), date), "sms"), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def _aliyun(peer: Peer, got: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:
    missing = [k for k in ALIYUN_REQUIRED if not got.get(k)]
    if missing:
        return 400, {"Code": "MissingParameter", "Message": f"missing {missing[0]}"}, {}
    if got["AccessKeyId"] != peer.key_id:
        return 404, {"Code": "InvalidAccessKeyId.NotFound", "Message": "Specified access key is not found."}, {}  # fmt: skip
    if not hmac.compare_digest(got["Signature"], aliyun_expected(peer.secret, got)):
        return 400, {"Code": "SignatureDoesNotMatch", "Message": "Specified signature is not matched with our calculation."}, {}  # fmt: skip
    stamp = calendar.timegm(time.strptime(got["Timestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    if abs(stamp - time.time()) > 900:
        return 400, {"Code": "InvalidTimeStamp.Expired", "Message": "Specified time stamp or date value is expired."}, {}  # fmt: skip
    if peer.mode == "throttle":
        return 200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1"}, {}
    if peer.mode == "refuse":
        return 200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "模板不合法"}, {}
    return 200, {"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "F655A8D5"}, {}  # fmt: skip


def _tencent(peer: Peer, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any], dict[str, str]]:  # fmt: skip
    def error(code: str, text: str) -> tuple[int, dict[str, Any], dict[str, str]]:
        return 200, {"Response": {"Error": {"Code": code, "Message": text}, "RequestId": "r-1"}}, {}

    auth = headers.get("authorization", "")
    if not auth.startswith(f"TC3-HMAC-SHA256 Credential={peer.key_id}/"):
        return error("AuthFailure.SecretIdNotFound", "The SecretId is not found")
    if abs(int(headers.get("x-tc-timestamp", "0")) - time.time()) > 300:
        return error("AuthFailure.SignatureExpire", "Signature expired")
    if not auth.endswith("Signature=" + tencent_expected(peer.secret, headers, body)):
        return error("AuthFailure.SignatureFailure", "The provided credentials could not be validated")  # fmt: skip
    if headers.get("x-tc-action") != "SendSms" or headers.get("x-tc-version") != "2021-01-11":
        return error("InvalidAction", "action or version")
    document = json.loads(body)
    for key in ("PhoneNumberSet", "SmsSdkAppId", "TemplateId"):
        if not document.get(key):
            return error("MissingParameter", f"missing {key}")
    if peer.mode == "throttle":
        return error("LimitExceeded.PhoneNumberThirtySecondLimit", "单个手机号30秒内下发短信条数超过设定的上限")  # fmt: skip
    phone = document["PhoneNumberSet"][0]
    if peer.mode == "refuse":
        status = {"SerialNo": "", "PhoneNumber": phone, "Fee": 0, "Code": "FailedOperation.TemplateIncorrectOrUnapproved", "Message": "template is not approved"}  # fmt: skip
    else:
        status = {"SerialNo": "2019:538884*", "PhoneNumber": phone, "Fee": 1, "Code": "Ok", "Message": "send success"}  # fmt: skip
    return 200, {"Response": {"SendStatusSet": [status], "RequestId": "r-2"}}, {}


def _twilio(peer: Peer, path: str, headers: dict[str, str], got: dict[str, str]) -> tuple[int, dict[str, Any], dict[str, str]]:  # fmt: skip
    expected = "Basic " + base64.b64encode(f"{peer.key_id}:{peer.secret}".encode()).decode()
    if path != f"/2010-04-01/Accounts/{peer.key_id}/Messages.json":
        return 404, {"code": 20404, "message": "The requested resource was not found", "status": 404}, {}  # fmt: skip
    if not hmac.compare_digest(headers.get("authorization", ""), expected):
        return 401, {"code": 20003, "message": "Authenticate", "status": 401}, {}
    if not got.get("To") or not (got.get("From") or got.get("MessagingServiceSid")) or not got.get("Body"):  # fmt: skip
        return 400, {"code": 21604, "message": "A 'To', 'From' and 'Body' are required", "status": 400}, {}  # fmt: skip
    if peer.mode == "throttle":
        return 429, {"code": 20429, "message": "Too Many Requests", "status": 429}, {"Retry-After": "3"}  # fmt: skip
    if peer.mode == "refuse":
        return 400, {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}, {}  # fmt: skip
    return 201, {"sid": "SM" + "0" * 32, "status": "queued", "to": got["To"]}, {}


def _handler(peer: Peer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str], kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _handle(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            if peer.mode == "hang":
                peer.got.append(Got(self.path, headers, body, "hang"))
                peer.stop.wait(30)
                return
            if peer.mode == "garbage":
                peer.got.append(Got(self.path, headers, body, "garbage"))
                self._reply(200, b"<html>502 Bad Gateway</html>", {}, "text/html")
                return
            if peer.mode == "redirect":
                peer.got.append(Got(self.path, headers, body, "redirect"))
                self._reply(302, b"", {"Location": peer.url("/elsewhere")}, "text/plain")
                return
            if peer.mode == "error500":
                peer.got.append(Got(self.path, headers, body, "error500"))
                self._reply(503, b"<html>busy</html>", {"Retry-After": "9"}, "text/html")
                return
            form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if peer.provider == "aliyun":
                status, document, extra = _aliyun(peer, form)
                verdict = document["Code"]
            elif peer.provider == "tencent":
                status, document, extra = _tencent(peer, headers, body)
                response = document["Response"]
                verdict = response["Error"]["Code"] if "Error" in response else response["SendStatusSet"][0]["Code"]  # fmt: skip
            elif peer.provider == "twilio":
                status, document, extra = _twilio(peer, self.path, headers, form)
                verdict = str(document.get("code", "ok"))
            else:
                status, document, extra = (
                    200,
                    {"result": {"code": 0 if peer.mode == "ok" else 7}},
                    {},
                )
                verdict = "ok"
            peer.got.append(Got(self.path, headers, body, verdict))
            self._reply(status, json.dumps(document, ensure_ascii=False).encode(), extra, "application/json")  # fmt: skip

        do_POST = _handle  # noqa: N815
        do_PUT = _handle  # noqa: N815

    return Handler


@contextmanager
def sms_peer(provider: str, key_id: str = "", secret: str = "") -> Iterator[Peer]:
    """The stand-in for ``provider`` on 127.0.0.1 and an ephemeral port."""
    peer = Peer(provider, key_id, secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(peer))
    server.daemon_threads = True
    peer.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield peer
    finally:
        peer.stop.set()
        server.shutdown()
        server.server_close()
