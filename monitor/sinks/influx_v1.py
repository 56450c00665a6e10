"""``influxdb-v1`` sink: InfluxDB 1.x ``/write`` (database + retention policy).

A thin HTTP adapter over ``SpoolingSink``: it posts line protocol through
``InfluxHttp`` (the one HTTP client, ``core.net.http``) and turns every answer
into success or a ``WriteFailed`` with the server's own message.
Authentication is HTTP basic (username/password) or ``Authorization: Token``.
A missing database is created when ``create_database`` allows it; otherwise
the write fails with a sentence saying what to do (and the points wait in the
spool until someone does).
"""

from __future__ import annotations

import gzip
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from core.net.http import HttpAnswer, HttpFailure
from monitor.sinks.influx_http import InfluxHttp, server_message, transport_failure
from monitor.sinks.spool import SpoolingSink, WriteFailed, parse_retry_after

ANSWER_MAX_BYTES = 64 * 1024
"""A write's answer is empty or a short JSON error; an error body longer than this is cut."""


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
        self._server = InfluxHttp(
            self.url,
            username=username,
            password=password,
            token=token,
            timeout=timeout,
            verify_tls=verify_tls,
            ca_file=ca_file,
        )
        self._headers: dict[str, str] = {"Content-Type": "text/plain; charset=utf-8"}
        if gzip_body:
            self._headers["Content-Encoding"] = "gzip"
        params = {"db": database, "precision": "ns"}
        if retention_policy:
            params["rp"] = retention_policy
        self._write_path = f"/write?{urlencode(params)}"
        self._database_checked = False
        self._lock_db = threading.Lock()

    # -- HTTP ------------------------------------------------------------
    def _request(self, path: str, body: bytes, headers: dict[str, str]) -> HttpAnswer:
        try:
            return self._server.post(path, body, headers, ANSWER_MAX_BYTES)
        except HttpFailure as failure:
            raise WriteFailed(f"{self.url}: {transport_failure(failure)}") from None

    def post(self, body: bytes) -> None:
        if not self._database_checked and self.create_database:
            self.ensure_database()
        data = gzip.compress(body, compresslevel=1) if self.gzip_body else body
        answer = self._request(self._write_path, data, self._headers)
        if answer.status in (200, 204):
            return
        message = server_message(answer.body, f"HTTP {answer.status}")
        if answer.status == 404 and "database not found" in message:
            if self.create_database:
                self._database_checked = False
                self.ensure_database()
                answer = self._request(self._write_path, data, self._headers)
                if answer.status in (200, 204):
                    return
                message = server_message(answer.body, f"HTTP {answer.status}")
            else:
                message = (
                    f"database {self.database!r} does not exist on {self.url}: create it "
                    f"(CREATE DATABASE {self.database}) or set create_database: true"
                )
        raise WriteFailed(
            f"{self.url}: HTTP {answer.status}: {message}",
            status=answer.status,
            retry_after=parse_retry_after(answer.headers.get("retry-after")),
        )

    def ensure_database(self) -> None:
        """``CREATE DATABASE`` (a no-op when it exists); WriteFailed if the server refuses."""
        with self._lock_db:
            quoted = self.database.replace("\\", "\\\\").replace('"', '\\"')
            body = urlencode({"q": f'CREATE DATABASE "{quoted}"'}).encode()
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            answer = self._request("/query", body, headers)
            message = server_message(answer.body, f"HTTP {answer.status}")
            if answer.status != 200 or '"error"' in answer.body.decode(errors="replace"):
                # Always spooled (no status): whatever the code, the points are fine.
                raise WriteFailed(
                    f"{self.url}: cannot create database {self.database!r}: "
                    f"HTTP {answer.status}: {message}"
                )
            self._database_checked = True

    def on_close(self) -> None:
        super().on_close()
        self._server.close()
