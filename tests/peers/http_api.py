"""A local HTTP API for runbook ``http`` steps: answers the test sets, every request recorded.

``api.routes[(method, path)] = Answer(...)`` (``"*"`` as method: any); an unknown
route is 404 with a JSON error like most APIs give. ``Answer(hang=True)``
never answers until the server stops (a timeout). Each request is kept in
``api.seen`` with its method, path (with query), headers (lower-case names)
and body, so tests check what the step sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False

    @classmethod
    def of(cls, document: Any, status: int = 200) -> Answer:
        return cls(status, json.dumps(document).encode())


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Api:
    port: int = 0
    routes: dict[tuple[str, str], Answer] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _handler(api: Api) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _any(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {k.lower(): v for k, v in self.headers.items()}
            api.seen.append(Seen(self.command, self.path, headers, body))
            path = self.path.split("?", 1)[0]
            answer = api.routes.get((self.command, path)) or api.routes.get(("*", path))
            if answer is None:
                answer = Answer.of({"error": f"no route {self.command} {path}"}, 404)
            if answer.hang:
                api.stop.wait(30)
                return
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            for key, value in answer.headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any  # noqa: N815

    return Handler


@contextmanager
def http_api() -> Iterator[Api]:
    """The API on 127.0.0.1 and an ephemeral port."""
    api = Api()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    api.port = server.server_address[1]
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield api
    finally:
        api.stop.set()
        server.shutdown()
        server.server_close()
