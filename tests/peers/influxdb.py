"""A real InfluxDB 1.x (``influxd``) on loopback ports with a temporary data dir.

``InfluxServer`` can be stopped and started again on the same ports and data
(fault-injection tests); ``influxdb`` is the pytest fixture.
"""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import free_port, require_binary, stop_process, wait_tcp

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = {max_body_size}
  auth-enabled = {auth}
  https-enabled = {https}
  https-certificate = "{cert}"
  https-private-key = "{key}"

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false
"""


class InfluxServer:
    """One influxd process; ``stop()``/``start()`` keep ports and data."""

    def __init__(
        self,
        root: Path,
        max_body_size: int = 25_000_000,
        auth: bool = False,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        """``auth``: HTTP auth on (create the first admin with ``query`` before it).
        ``tls``: (certificate, key) PEM files to serve HTTPS with."""
        self.binary = require_binary("influxd")
        self.root = root
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.config = root / "influxdb.conf"
        self.config.write_text(
            _CONFIG.format(
                root=root,
                port=self.port,
                rpc_port=self.rpc_port,
                max_body_size=max_body_size,
                auth="true" if auth else "false",
                https="true" if tls else "false",
                cert=tls[0] if tls else "",
                key=tls[1] if tls else "",
            )
        )
        self.context: ssl.SSLContext | None = None
        if tls:
            self.context = ssl.create_default_context(cafile=str(tls[0]))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "influxd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [self.binary, "-config", str(self.config)], stdout=log, stderr=log
        )
        log.close()
        wait_tcp(self.port, timeout=20)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 10)
            self.proc = None

    def query(
        self, q: str, db: str | None = None, auth: tuple[str, str] | None = None
    ) -> dict[str, Any]:
        """Run InfluxQL over ``/query`` (POST, so CREATE/DROP work too)."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        request = urllib.request.Request(
            f"{self.url}/query", data=urllib.parse.urlencode(params).encode()
        )
        if auth:
            token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
            request.add_header("Authorization", f"Basic {token}")
        with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
            return json.loads(response.read())

    def select(self, q: str, db: str) -> list[dict[str, Any]]:
        """Rows of a SELECT as dicts (time in ns), across all series in the answer."""
        result = self.query(q, db)["results"][0]
        if "error" in result:
            raise AssertionError(result["error"])
        rows: list[dict[str, Any]] = []
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                rows.append(row)
        return rows


@pytest.fixture(name="influxdb")
def influxdb_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """A fresh InfluxDB 1.x, started before the test and stopped after it."""
    server = InfluxServer(tmp_path_factory.mktemp("influxdb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dialwatch test influxdb")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "influxdb.crt", directory / "influxdb.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
