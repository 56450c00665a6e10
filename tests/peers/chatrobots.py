"""STAND-INS for the group-chat robots' webhooks: one local HTTP server on 127.0.0.1 that
checks each request the way DingTalk, WeCom and Feishu do and answers in their shape.

They are not the services (those cannot run here): they implement what the
services document and what Dialwatch relies on, so the channels are tested
against real sockets.

- DingTalk ``POST /robot/send?access_token=T[&timestamp=&sign=]``: an unknown token
  is ``300001``; with a secret, the ``sign`` is recomputed (base64 HMAC-SHA256 keyed
  by the secret over ``"<ms>\\n<secret>"``) and a timestamp more than an hour off the
  stand-in's clock or a wrong sign is ``310000 sign not match``; a keyword robot
  refuses text without its keyword (``310000 keywords not in content``); the body
  must be ``msgtype: text`` with ``text.content``; HTTP 200 for all of these.
- WeCom ``POST /cgi-bin/webhook/send?key=K``: a wrong key is ``93000``; the body must
  be ``msgtype: text`` with ``text.content`` of at most 2,048 bytes (``40058``
  otherwise, ``44004`` when empty); HTTP 200 always.
- Feishu ``POST /open-apis/bot/v2/hook/<token>``: an unknown token is ``19001``; with
  a secret the body's ``sign`` is recomputed (base64 HMAC-SHA256 of an empty text,
  keyed by ``"<seconds>\\n<secret>"``), ``19021`` when it does not match or the
  timestamp is an hour off; ``msg_type: text`` with ``content.text`` is required
  (``9499 Bad Request``).

``mode`` makes the next requests misbehave: ``throttle`` (the service's rate-limit
code with HTTP 200), ``garbage`` (an HTML page with 200), ``hang`` (no answer until
the server stops).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

SKEW = 3600
"""Seconds a signed timestamp may be off (DingTalk and Feishu both take an hour)."""


@dataclass(frozen=True)
class Got:
    robot: str
    path: str
    body: bytes
    code: int
    """What the stand-in answered: 0 or the service's error code."""

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Robots:
    token: str = "tok-4f1c0e"
    secret: str | None = None
    keyword: str | None = None
    port: int = 0
    mode: str = "ok"
    clock: Callable[[], float] = time.time
    got: list[Got] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def dingtalk_url(self, token: str | None = None) -> str:
        return f"{self.base()}/robot/send?access_token={token or self.token}"

    def wecom_url(self, key: str | None = None) -> str:
        return f"{self.base()}/cgi-bin/webhook/send?key={key or self.token}"

    def feishu_url(self, token: str | None = None) -> str:
        return f"{self.base()}/open-apis/bot/v2/hook/{token or self.token}"

    def codes(self, robot: str) -> list[int]:
        return [g.code for g in self.got if g.robot == robot]


def dingtalk_sign(secret: str, timestamp: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def feishu_sign(secret: str, timestamp: str) -> str:
    digest = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _dingtalk(robots: Robots, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
    def error(code: int, text: str) -> dict[str, Any]:
        return {"errcode": code, "errmsg": text}

    if query.get("access_token") != [robots.token]:
        return error(300001, "token is not exist")
    if robots.secret:
        timestamp = (query.get("timestamp") or [""])[0]
        if not timestamp.isdigit() or abs(int(timestamp) / 1000 - robots.clock()) > SKEW:
            return error(310000, "sign not match, more: [invalid timestamp]")
        if (query.get("sign") or [""])[0] != dingtalk_sign(robots.secret, timestamp):
            return error(310000, "sign not match")
    if not isinstance(body, dict) or body.get("msgtype") != "text":
        return error(40035, "缺少参数 msgtype")
    content = (body.get("text") or {}).get("content")
    if not isinstance(content, str) or not content:
        return error(40035, "缺少参数 text")
    if robots.keyword and robots.keyword not in content:
        return error(310000, "keywords not in content")
    if robots.mode == "throttle":
        return error(130101, "send too fast, exceed 20 times per minute")
    return error(0, "ok")


def _wecom(robots: Robots, query: dict[str, list[str]], body: Any) -> dict[str, Any]:
    def error(code: int, text: str) -> dict[str, Any]:
        return {"errcode": code, "errmsg": text}

    if query.get("key") != [robots.token]:
        return error(93000, "invalid webhook url")
    if not isinstance(body, dict) or body.get("msgtype") != "text":
        return error(40008, "invalid message type")
    content = (body.get("text") or {}).get("content")
    if not isinstance(content, str) or not content:
        return error(44004, "empty content")
    if len(content.encode()) > 2048:
        return error(40058, "content exceed max length 2048")
    mentioned = (body.get("text") or {}).get("mentioned_mobile_list", [])
    if not isinstance(mentioned, list):
        return error(40058, "mentioned_mobile_list must be an array")
    if robots.mode == "throttle":
        return error(45009, "api freq out of limit")
    return error(0, "ok")


def _feishu(robots: Robots, path: str, body: Any) -> dict[str, Any]:
    def error(code: int, text: str) -> dict[str, Any]:
        return {"code": code, "msg": text, "data": {}}

    if path.rsplit("/", 1)[-1] != robots.token:
        return error(19001, "param invalid: incoming webhook access token invalid")
    if not isinstance(body, dict):
        return error(9499, "Bad Request")
    if robots.secret:
        timestamp = str(body.get("timestamp", ""))
        if not timestamp.isdigit() or abs(int(timestamp) - robots.clock()) > SKEW:
            return error(19021, "sign match fail or timestamp is not within one hour from now")
        if body.get("sign") != feishu_sign(robots.secret, timestamp):
            return error(19021, "sign match fail or timestamp is not within one hour from now")
    text = (body.get("content") or {}).get("text") if body.get("msg_type") == "text" else None
    if not isinstance(text, str) or not text:
        return error(9499, "Bad Request")
    if robots.keyword and robots.keyword not in text:
        return error(19024, "Key Words Not Found")
    if robots.mode == "throttle":
        return error(11232, "frequency limited psm[lark.oapi.app_platform_runtime]")
    return {**error(0, "success"), "StatusCode": 0, "StatusMessage": "success"}


def _handler(robots: Robots) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _reply(self, status: int, body: bytes, kind: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            parts = urlsplit(self.path)
            robot = (
                "dingtalk"
                if parts.path == "/robot/send"
                else "wecom"
                if parts.path == "/cgi-bin/webhook/send"
                else "feishu"
                if parts.path.startswith("/open-apis/bot/v2/hook/")
                else None
            )
            if robot is None:
                self._reply(404, b"not found", "text/plain")
                return
            if robots.mode == "hang":
                robots.got.append(Got(robot, self.path, raw, -1))
                robots.stop.wait(30)
                return
            if robots.mode == "garbage":
                robots.got.append(Got(robot, self.path, raw, -2))
                self._reply(200, b"<html>502 Bad Gateway</html>", "text/html")
                return
            if self.headers.get("Content-Type", "").split(";")[0] != "application/json":
                answer: dict[str, Any] = {"errcode": 40035, "errmsg": "不合法的参数"}
            else:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                query = parse_qs(parts.query)
                if robot == "dingtalk":
                    answer = _dingtalk(robots, query, body)
                elif robot == "wecom":
                    answer = _wecom(robots, query, body)
                else:
                    answer = _feishu(robots, parts.path, body)
            code = answer.get("errcode", answer.get("code"))
            robots.got.append(Got(robot, self.path, raw, int(code)))
            self._reply(200, json.dumps(answer, ensure_ascii=False).encode(), "application/json")

    return Handler


@contextmanager
def chat_robots(**fields: Any) -> Iterator[Robots]:
    """The three robots' stand-in on 127.0.0.1 and an ephemeral port."""
    robots = Robots(**fields)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(robots))
    server.daemon_threads = True
    robots.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield robots
    finally:
        robots.stop.set()
        server.shutdown()
        server.server_close()
