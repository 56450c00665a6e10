"""InfluxDB's HTTP API as the ``influxdb-v1`` sink and the InfluxQL reader speak it.

``InfluxHttp`` is one server: its base URL, its credentials (HTTP basic or
``Authorization: Token``), a connection pool of its own and the request
timeout, over the one HTTP client (``core.net.http``). A request is sent once:
retries are the spool's (with backoff), never hidden in the client, and a
redirect is the server's answer, not followed (as before this client: the
write fails with its status and the points wait in the spool).

The sentences are shared by both InfluxDB sinks: a transport failure reads
the same whether it came through this client or through ``influxdb-client``
(the v2 sink), which raises the same urllib3 errors.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping

import urllib3

from core.net import http

CONNECT_TIMEOUT = 5.0
"""Longest wait for a TCP connect (never past the timeout): a host that drops SYNs is
known to be away sooner than a busy server is given to answer."""


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


def describe_transport_error(exc: BaseException) -> str:
    """A short human sentence for a connection-level failure (a urllib3 error or an OSError)."""
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


def transport_failure(failure: http.HttpFailure) -> str:
    """The short sentence for a request that got no answer."""
    if failure.cause is None:  # the client's own verdict (an answer too large...)
        return failure.detail
    return describe_transport_error(failure.cause)


class InfluxHttp:
    """One InfluxDB server's HTTP API. Safe to share between threads."""

    def __init__(
        self,
        url: str,
        *,
        username: str | None = None,
        password: str | None = None,
        token: str | None = None,
        timeout: float = 10.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._auth: dict[str, str] = {}
        if token:
            self._auth["Authorization"] = f"Token {token}"
        elif username is not None:
            self._auth["Authorization"] = http.basic_auth(username, password or "")
        self._pool = http.new_pool(verify_tls, ca_file, num_pools=4, maxsize=2)

    def post(
        self, path: str, body: bytes, headers: Mapping[str, str], max_bytes: int
    ) -> http.HttpAnswer:
        """POST to the server's ``path`` (with its query), within ``timeout``; an answer of
        any status, or ``HttpFailure`` when none came."""
        return http.request(
            self._pool,
            "POST",
            self.url + path,
            headers={**self._auth, **headers},
            body=body,
            deadline=time.monotonic() + self.timeout,
            connect_timeout=min(self.timeout, CONNECT_TIMEOUT),
            max_bytes=max_bytes,
            redirects="none",
        )

    def close(self) -> None:
        self._pool.clear()
