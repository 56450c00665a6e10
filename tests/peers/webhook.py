"""A webhook receiver: a local HTTP(S) server that checks each request's HMAC signature
the way a receiver's own code would, and records what it got.

Routes (any other path is 404):

- ``/hook`` — 204 when ``X-Dialwatch-Signature`` is the HMAC-SHA256 of the body
  under ``secret``, else 401;
- ``/status/<code>`` — that status (429 and 503 with ``Retry-After: 7``);
- ``/moved`` — 302 to ``/hook`` on the same server (a channel must not follow it);
- ``/hang`` — never answers until the server stops (a timeout).
"""

from __future__ import annotations

import hashlib
import hmac
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    signed: bool
    """The signature header matched the body under the receiver's secret."""


@dataclass
class Receiver:
    secret: str
    port: int = 0
    scheme: str = "http"
    requests: list[Request] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    delay: float = 0.0
    """Seconds each /hook request takes to answer (a slow provider: sends are in flight)."""

    def url(self, path: str = "/hook", host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _reply(self, status: int, headers: dict[str, str] | None = None) -> None:
            body = b"" if status == 204 else f"status {status}".encode()
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            expected = (
                "sha256=" + hmac.new(receiver.secret.encode(), body, hashlib.sha256).hexdigest()
            )
            signed = hmac.compare_digest(self.headers.get("X-Dialwatch-Signature", ""), expected)
            receiver.requests.append(
                Request(self.path, {k.lower(): v for k, v in self.headers.items()}, body, signed)
            )
            if self.path == "/hook":
                if receiver.delay:
                    receiver.stop.wait(receiver.delay)
                self._reply(204 if signed else 401)
            elif self.path.startswith("/status/"):
                code = int(self.path.rsplit("/", 1)[1])
                later = {"Retry-After": "7"} if code in (429, 503) else {}
                self._reply(code, later)
            elif self.path == "/moved":
                self._reply(302, {"Location": receiver.url("/hook")})
            elif self.path == "/hang":
                receiver.stop.wait(30)
            else:
                self._reply(404)

    return Handler


@contextmanager
def webhook_receiver(
    secret: str, *, cert: str | None = None, key: str | None = None, delay: float = 0.0
) -> Iterator[Receiver]:
    """The receiver on 127.0.0.1 and an ephemeral port (TLS with ``cert``/``key``)."""
    receiver = Receiver(secret, scheme="https" if cert else "http", delay=delay)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(receiver))
    server.daemon_threads = True
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stop.set()
        server.shutdown()
        server.server_close()
