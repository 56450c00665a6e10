"""``influxdb-v1`` sink: InfluxDB 1.x ``/write`` (database + retention policy).

A thin HTTP adapter over ``SpoolingSink``: it posts line protocol and turns
every answer into success or a ``WriteFailed`` with the server's own message.
Authentication is HTTP basic (username/password) or ``Authorization: Token``.
A missing database is created when ``create_database`` allows it; otherwise
the write fails with a sentence saying what to do (and the points wait in the
spool until someone does).
"""

from __future__ import annotations

import gzip
import json
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import urllib3

from monitor.sinks.spool import SpoolingSink, WriteFailed, parse_retry_after


def server_message(body: bytes, fallback: str) -> str:
    """The ``error`` text of an InfluxDB JSON error body, else the body itself (short)."""
    text = body.decode(errors="replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        for key in ("error", "message"):
            if isinstance(data.get(key), str):
                return data[key]
    return text[:500] or fallback


def describe_transport_error(exc: Exception) -> str:
    """A short human sentence for a connection-level failure."""
    text = str(exc)
    # Checked first: urllib3's NewConnectionError is a subclass of its timeout errors.
    if isinstance(exc, ConnectionRefusedError) or "Connection refused" in text:
        return "connection refused"
    if isinstance(exc, urllib3.exceptions.TimeoutError | TimeoutError) or "timed out" in text:
        return "timed out"
    if "Name or service not known" in text or "resolution" in text:
        return "could not resolve host"
    if isinstance(exc, urllib3.exceptions.SSLError):
        return f"TLS failed ({exc})"
    return f"connection failed ({text[:200]})"


def make_pool(
    timeout: float, verify_tls: bool = True, ca_file: str | None = None
) -> urllib3.PoolManager:
    return urllib3.PoolManager(
        num_pools=4,
        maxsize=2,
        retries=False,  # retries are ours (spool + backoff), never hidden in the client
        timeout=urllib3.Timeout(connect=min(timeout, 5.0), read=timeout),
        cert_reqs="CERT_REQUIRED" if verify_tls else "CERT_NONE",
        ca_certs=ca_file,
    )


class InfluxV1Sink(SpoolingSink):
    """Writes to InfluxDB 1.x (and anything that speaks its ``/write``)."""

    def __init__(
        self,
        name: str,
        url: str,
        database: str,
        spool_dir: Path | str,
        *,
        retention_policy: str | None = None,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        create_database: bool = True,
        gzip_body: bool = False,
        timeout: float = 10.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
        **sink_options: Any,
    ) -> None:
        super().__init__(name, spool_dir, **sink_options)
        self.url = url.rstrip("/")
        self.database = database
        self.retention_policy = retention_policy
        self.create_database = create_database
        self.gzip_body = gzip_body
        self._pool = make_pool(timeout, verify_tls, ca_file)
        self._headers: dict[str, str] = {"Content-Type": "text/plain; charset=utf-8"}
        if token:
            self._headers["Authorization"] = f"Token {token}"
        elif username is not None:
            self._headers.update(urllib3.make_headers(basic_auth=f"{username}:{password or ''}"))
        if gzip_body:
            self._headers["Content-Encoding"] = "gzip"
        params = {"db": database, "precision": "ns"}
        if retention_policy:
            params["rp"] = retention_policy
        self._write_url = f"{self.url}/write?{urlencode(params)}"
        self._database_checked = False
        self._lock_db = threading.Lock()

    # -- HTTP ------------------------------------------------------------
    def _request(self, method: str, url: str, body: bytes, headers: dict[str, str]) -> Any:
        try:
            return self._pool.request(method, url, body=body, headers=headers)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise WriteFailed(f"{self.url}: {describe_transport_error(exc)}") from exc

    def post(self, body: bytes) -> None:
        if not self._database_checked and self.create_database:
            self.ensure_database()
        data = gzip.compress(body, compresslevel=1) if self.gzip_body else body
        response = self._request("POST", self._write_url, data, self._headers)
        if response.status in (200, 204):
            return
        message = server_message(response.data, f"HTTP {response.status}")
        if response.status == 404 and "database not found" in message:
            if self.create_database:
                self._database_checked = False
                self.ensure_database()
                response = self._request("POST", self._write_url, data, self._headers)
                if response.status in (200, 204):
                    return
                message = server_message(response.data, f"HTTP {response.status}")
            else:
                message = (
                    f"database {self.database!r} does not exist on {self.url}: create it "
                    f"(CREATE DATABASE {self.database}) or set create_database: true"
                )
        raise WriteFailed(
            f"{self.url}: HTTP {response.status}: {message}",
            status=response.status,
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
        )

    def ensure_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists); WriteFailed if the server refuses."""
        with self._lock_db:
            quoted = self.database.replace("\\", "\\\\").replace('"', '\\"')
            body = urlencode({"q": f'CREATE DATABASE "{quoted}"'}).encode()
            headers = {k: v for k, v in self._headers.items() if k not in ("Content-Encoding",)} | {
                "Content-Type": "application/x-www-form-urlencoded"
            }
            response = self._request("POST", f"{self.url}/query", body, headers)
            message = server_message(response.data, f"HTTP {response.status}")
            if response.status != 200 or '"error"' in response.data.decode(errors="replace"):
                # Always spooled (no status): whatever the code, the points are fine.
                raise WriteFailed(
                    f"{self.url}: cannot create database {self.database!r}: "
                    f"HTTP {response.status}: {message}"
                )
            self._database_checked = True

    def on_close(self) -> None:
        super().on_close()
        self._pool.clear()
