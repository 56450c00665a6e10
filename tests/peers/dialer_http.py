"""A local HTTP(S) server standing in for a dialer's HTTP API (a mock: no dialer is
installable here), for the dialer probe's HTTP source tests.

- Fixed routes the test sets (``server.routes[path] = Reply(...)``): a JSON
  queue endpoint, a 5xx, invalid JSON, a slow answer, redirects, a
  connection closed without an answer (``Reply(drop=True)``).
- ``/vicidial/non_agent_api.php``: VICIdial's non-agent API as its
  NON-AGENT_API.txt documents ``in_group_status`` and ``user_group_status``:
  it checks ``source``, ``user``/``pass``, ``function``, ``stage``,
  ``header`` and ``in_groups``/``user_groups``, answers
  ``ERROR: … USER DOES NOT HAVE PERMISSION …`` or ``ERROR: … INVALID SEARCH
  PARAMETERS …`` like VICIdial does, and otherwise a header line and one
  data line for the group, from ``server.vicidial_groups``.

Every request is recorded (``server.seen``) so tests check what the probe
sent. ``self_signed(tmp)`` makes a certificate for 127.0.0.1 for HTTPS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

VICIDIAL_PATH = "/vicidial/non_agent_api.php"
IN_GROUP_HEADER = (
    "ingroups|total_calls|calls_waiting|agents_logged_in|agents_in_calls|agents_waiting|"
    "agents_paused|agents_in_dispo|agents_in_dial"
)
USER_GROUP_HEADER = (
    "usergroups|calls_waiting|agents_logged_in|agents_in_calls|agents_waiting|agents_paused|"
    "agents_in_dead_calls|agents_in_dispo|agents_in_dial"
)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    """Close the connection without any answer."""


@dataclass
class Seen:
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class VicidialGroup:
    """Live numbers of one VICIdial in-group (or user group)."""

    total_calls: int = 0
    calls_waiting: int = 0
    agents_logged_in: int = 0
    agents_in_calls: int = 0
    agents_waiting: int = 0
    agents_paused: int = 0
    agents_in_dispo: int = 0
    agents_in_dial: int = 0


class DialerApi:
    def __init__(self) -> None:
        self.routes: dict[str, Reply] = {}
        self.seen: list[Seen] = []
        self.vicidial_user = "apiuser"
        self.vicidial_pass = "api-pass-1234"
        self.vicidial_groups: dict[str, VicidialGroup] = {}
        self.port = 0
        self.scheme = "http"
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def vicidial(self, query: dict[str, list[str]]) -> str:
        q = {k: v[0] for k, v in query.items()}
        function = q.get("function", "")
        if q.get("user") != self.vicidial_user or q.get("pass") != self.vicidial_pass:
            return f"ERROR: Invalid Username/Password: |{q.get('user', '')}|\n"
        if function not in ("in_group_status", "user_group_status") or not q.get("source"):
            return f"ERROR: {function} INVALID SEARCH PARAMETERS - {q.get('user')}||\n"
        key = "in_groups" if function == "in_group_status" else "user_groups"
        names = [n for n in q.get(key, "").split("|") if n]
        if not names or any(n not in self.vicidial_groups for n in names):
            return f"ERROR: {function} INVALID SEARCH PARAMETERS - {q.get('user')}||\n"
        # VICIdial sums the listed groups into one line.
        g = [self.vicidial_groups[n] for n in names]
        total = {f: sum(getattr(x, f) for x in g) for f in VicidialGroup.__dataclass_fields__}
        sep = {"csv": ",", "tab": "\t"}.get(q.get("stage", "pipe"), "|")
        if function == "in_group_status":
            header = IN_GROUP_HEADER
            row = [" ".join(names), total["total_calls"], total["calls_waiting"]]
        else:
            header = USER_GROUP_HEADER
            row = [" ".join(names), total["calls_waiting"]]
        row += [total["agents_logged_in"], total["agents_in_calls"], total["agents_waiting"]]
        row += [total["agents_paused"]]
        if function == "user_group_status":
            row += [0]  # agents_in_dead_calls
        row += [total["agents_in_dispo"], total["agents_in_dial"]]
        data = sep.join(str(v) for v in row)
        lines = [header.replace("|", sep), data] if q.get("header") == "YES" else [data]
        return "\n".join(lines) + "\n"


def _handler(api: DialerApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            parts = urlsplit(self.path)
            api.seen.append(Seen(parts.path, parse_qs(parts.query), dict(self.headers)))
            if parts.path == VICIDIAL_PATH:
                self._answer(
                    Reply(
                        body=api.vicidial(parse_qs(parts.query)).encode(), content_type="text/plain"
                    )
                )
                return
            reply = api.routes.get(parts.path)
            if reply is None:
                self._answer(Reply(404, b'{"error": "not found"}'))
                return
            if reply.delay:
                time.sleep(reply.delay)
            if reply.drop:
                self.close_connection = True
                self.connection.close()
                return
            with contextlib.suppress(OSError):
                self._answer(reply)

        def _answer(self, reply: Reply) -> None:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            # The probe may have given up already (a timeout test): nobody is reading.
            with contextlib.suppress(OSError):
                self.wfile.write(reply.body)

    return Handler


@dataclass(frozen=True)
class SelfSigned:
    cert: Path
    key: Path


def self_signed(directory: Path) -> SelfSigned:
    """A certificate for 127.0.0.1 that is its own CA (trusted only through ``ca_file``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dialer.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "dialer.crt", directory / "dialer.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return SelfSigned(cert_path, key_path)


@contextmanager
def serve(tls: SelfSigned | None = None) -> Iterator[DialerApi]:
    api = DialerApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(api))
    server.daemon_threads = True
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls.cert, tls.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        api.scheme = "https"
    api.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
