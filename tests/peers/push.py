"""A stand-in for a web push service (FCM, Mozilla autopush, ...) on 127.0.0.1: a local
HTTP server, not a real push service (none can run here, and tests must never reach one).

It checks a push the way push services do (RFC 8030 / 8291 / 8292):

- ``Authorization: vapid t=<JWT>,k=<public key>``: the JWT is ES256, verified against
  ``k`` (and against the key the subscription was made with, ``server.vapid_public_key``,
  when the test sets it); ``aud`` is this server's origin, ``exp`` in the future and at
  most 24 h away, ``sub`` present. A bad token is a 401/403 like autopush answers.
- ``Content-Encoding: aes128gcm`` and a ``TTL`` header; the body at most 4096 bytes (413).
- The body is **decrypted** with ``http_ece`` using the browser side of a subscription
  the test made itself (``PushClient``: its P-256 key pair and auth secret), and the
  plaintext recorded (``server.received``).

``server.answers[path]`` makes one endpoint answer something else (410, 429 with
``Retry-After``...); endpoints are ``server.endpoint(name)``.
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_BODY = 4096


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class PushClient:
    """The browser's side of a subscription: what ``PushManager.subscribe`` would make."""

    private_key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    auth_secret: bytes = field(default_factory=lambda: os.urandom(16))

    @property
    def p256dh(self) -> str:
        return b64url(
            self.private_key.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
            )
        )

    @property
    def auth(self) -> str:
        return b64url(self.auth_secret)

    def keys(self) -> dict[str, str]:
        return {"p256dh": self.p256dh, "auth": self.auth}

    def decrypt(self, body: bytes) -> bytes:
        return http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth_secret, version="aes128gcm"
        )


@dataclass
class Answer:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    claims: dict[str, Any]
    plaintext: bytes

    def json(self) -> Any:
        return json.loads(self.plaintext)


def verify_vapid(
    header: str, audience: str, expected_key: str | None, now: float
) -> dict[str, Any]:
    """The claims of a valid ``vapid t=,k=`` header; ``ValueError`` naming what is wrong."""
    scheme, _, rest = header.partition(" ")
    if scheme.lower() != "vapid":
        raise ValueError(f"Authorization scheme {scheme!r} is not vapid")
    parts = dict(p.strip().split("=", 1) for p in rest.split(",") if "=" in p)
    token, key = parts.get("t"), parts.get("k")
    if not token or not key:
        raise ValueError("vapid header needs t= and k=")
    if expected_key is not None and key != expected_key:
        raise ValueError("k= is not the key the subscription was made with")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    head_b64, claims_b64, sig_b64 = token.split(".")
    header_json = json.loads(unb64url(head_b64))
    if header_json.get("alg") != "ES256":
        raise ValueError(f"JWT alg {header_json.get('alg')!r} is not ES256")
    sig = unb64url(sig_b64)
    if len(sig) != 64:
        raise ValueError("ES256 signature is not 64 bytes")
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        public.verify(der, f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise ValueError("JWT signature does not verify") from None
    claims = json.loads(unb64url(claims_b64))
    if claims.get("aud") != audience:
        raise ValueError(f"aud {claims.get('aud')!r} is not {audience!r}")
    exp = claims.get("exp")
    if not isinstance(exp, int) or not now < exp <= now + 24 * 3600:
        raise ValueError(f"exp {exp!r} is not within the next 24 h")
    if not claims.get("sub"):
        raise ValueError("sub missing")
    return claims


class PushServer:
    """The running stand-in: ``origin``, ``endpoint(name)``, ``clients``, ``received``."""

    def __init__(self) -> None:
        self.clients: dict[str, PushClient] = {}
        """Path → the subscription's browser side, for decrypting."""
        self.answers: dict[str, Answer] = {}
        self.received: list[Received] = []
        self.refused: list[tuple[str, int, str]] = []
        self.vapid_public_key: str | None = None
        self.clock = time.time
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def origin(self) -> str:
        assert self._httpd is not None
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def endpoint(self, name: str) -> str:
        return f"{self.origin}/push/{name}"

    def subscribe(self, name: str) -> tuple[str, PushClient]:
        """A new subscription's endpoint and browser side (as the browser would make)."""
        client = PushClient()
        self.clients[f"/push/{name}"] = client
        return self.endpoint(name), client

    def _handle(self, handler: BaseHTTPRequestHandler) -> Answer:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        path = handler.path
        headers = {k.lower(): v for k, v in handler.headers.items()}

        def refuse(status: int, why: str) -> Answer:
            self.refused.append((path, status, why))
            return Answer(status, {"Content-Type": "text/plain"}, why.encode())

        if handler.command != "POST":
            return refuse(405, "POST only")
        try:
            claims = verify_vapid(
                headers.get("authorization", ""), self.origin, self.vapid_public_key, self.clock()
            )
        except ValueError as exc:
            return refuse(401, f"VAPID: {exc}")
        if headers.get("content-encoding") != "aes128gcm":
            return refuse(400, "Content-Encoding must be aes128gcm")
        if "ttl" not in headers:
            return refuse(400, "TTL header missing")
        if len(body) > MAX_BODY:
            return refuse(413, f"body of {len(body)} bytes is over {MAX_BODY}")
        if path in self.answers:
            return self.answers[path]
        client = self.clients.get(path)
        if client is None:
            return refuse(404, "no such subscription")
        try:
            plaintext = client.decrypt(body)
        except Exception as exc:  # http_ece raises several kinds
            return refuse(400, f"does not decrypt: {exc}")
        self.received.append(Received(path, headers, claims, plaintext))
        return Answer(201, {"Location": f"{self.origin}/message/{len(self.received)}"})


@contextmanager
def push_service() -> Iterator[PushServer]:
    server = PushServer()

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            answer = server._handle(self)
            self.send_response(answer.status)
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_POST = _any
        do_GET = _any

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server._httpd = httpd
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
