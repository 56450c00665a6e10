"""A local HTTP/HTTPS server (Python's http.server with ssl) and generated test certificates.

``TestPki`` makes, in a temp dir, a test CA and leaf certificates for
``localhost``/``127.0.0.1``: valid, near expiry, expired, for another name,
and one signed by a CA nobody trusts. ``LocalWebServer`` serves a few fixed
routes over plain HTTP or TLS on an ephemeral loopback port, in a thread, and
records each request it gets so tests can check what the probe sent:

- ``/ok`` — 200 with ``BODY``
- ``/status/<code>`` — that status
- ``/redirect?to=<url>`` — 302 to ``url``
- ``/loop`` — 302 to itself
- ``/big`` — 2 MiB of filler, then ``TAIL_MARKER``
- ``/secret`` — 200 only with ``Authorization: <server.expect_authorization>``, else 401
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import IPv4Address
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BODY = b"<html><body>Dialwatch CRM: all systems nominal</body></html>"
TAIL_MARKER = b"END-OF-BIG-BODY"
BIG_SIZE = 2 * 1024 * 1024


@dataclass(frozen=True)
class CertPair:
    """A leaf certificate and its key as PEM files, and when it expires."""

    cert: Path
    key: Path
    not_after: dt.datetime


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class TestPki:
    """Generated CAs and leaf certificates (EC P-256: fast to make)."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, root: Path) -> None:
        self.root = root
        self.now = dt.datetime.now(dt.UTC)
        self.ca_key, self.ca_cert = self._ca("Dialwatch Test CA")
        self.rogue_key, self.rogue_cert = self._ca("Rogue Test CA")
        self.ca_file = root / "ca.pem"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def _ca(self, common_name: str) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(_name(common_name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self.now - dt.timedelta(days=30))
            .not_valid_after(self.now + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    def leaf(
        self,
        name: str,
        *,
        dns_names: tuple[str, ...] = ("localhost",),
        ips: tuple[str, ...] = ("127.0.0.1",),
        days_left: float = 90,
        rogue: bool = False,
    ) -> CertPair:
        """A server certificate valid until ``days_left`` from now (negative: already expired)."""
        ca_key, ca_cert = (
            (self.rogue_key, self.rogue_cert) if rogue else (self.ca_key, self.ca_cert)
        )
        key = ec.generate_private_key(ec.SECP256R1())
        not_after = (self.now + dt.timedelta(days=days_left)).replace(microsecond=0)
        sans: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
        sans += [x509.IPAddress(IPv4Address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(dns_names[0] if dns_names else name))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(self.now, not_after) - dt.timedelta(days=30))
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path, key_path = self.root / f"{name}.crt", self.root / f"{name}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return CertPair(cert_path, key_path, not_after)


@dataclass
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]


@dataclass
class LocalWebServer:
    """A running local HTTP(S) server; ``url(path)`` builds URLs to it."""

    port: int
    tls: bool
    requests: list[Seen] = field(default_factory=list)
    expect_authorization: str = ""

    def url(self, path: str = "/ok", host: str = "127.0.0.1") -> str:
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"


def _handler(server: LocalWebServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass  # keep pytest output clean

        def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None):
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if status in (204, 304):  # no body allowed
                body = b""
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD" and status not in (204, 304):
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            url = urlsplit(self.path)
            server.requests.append(Seen(self.command, self.path, dict(self.headers.items())))
            if url.path == "/ok":
                self._reply(200, BODY)
            elif url.path.startswith("/status/"):
                self._reply(int(url.path.rsplit("/", 1)[1]), b"status page")
            elif url.path == "/redirect":
                self._reply(302, b"moved", {"Location": parse_qs(url.query)["to"][0]})
            elif url.path == "/loop":
                self._reply(302, b"again", {"Location": "/loop"})
            elif url.path == "/big":
                self._reply(200, b"x" * BIG_SIZE + TAIL_MARKER)
            elif url.path == "/secret":
                if self.headers.get("Authorization") == server.expect_authorization:
                    self._reply(200, b"welcome")
                else:
                    self._reply(401, b"who are you", {"WWW-Authenticate": 'Basic realm="crm"'})
            else:
                self._reply(404, b"not found")

        do_HEAD = do_GET  # noqa: N815

    return Handler


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # clients that reject our certificate abort the handshake; that is the test


@contextmanager
def serve(pair: CertPair | None = None) -> Iterator[LocalWebServer]:
    """Serve on 127.0.0.1 (TLS with ``pair`` when given) until the block ends."""
    state = LocalWebServer(port=0, tls=pair is not None)
    httpd = _QuietServer(("127.0.0.1", 0), _handler(state))
    if pair is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(pair.cert, pair.key)
        # The handshake happens in the request thread, so a client that rejects the
        # certificate mid-handshake never blocks the accept loop.
        httpd.socket = context.wrap_socket(
            httpd.socket, server_side=True, do_handshake_on_connect=False
        )
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
