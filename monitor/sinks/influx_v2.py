"""``influxdb`` sink: the InfluxDB v2 write API through ``influxdb-client``.

Serves InfluxDB 2.x, 3 Core/Enterprise and Cloud (v2-compatible write
endpoint), InfluxDB 1.8+ and VictoriaMetrics. The client's own batching runs
on reactivex threads and can lose buffered points on shutdown; we use its
SYNCHRONOUS mode and post our own batches, so every batch is either
acknowledged or still in our spool (FACTS.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from monitor.sinks.influx_v1 import describe_transport_error, server_message
from monitor.sinks.spool import SpoolingSink, WriteFailed, parse_retry_after


class InfluxV2Sink(SpoolingSink):
    """Writes to an org/bucket with a token."""

    def __init__(
        self,
        name: str,
        url: str,
        org: str,
        bucket: str,
        token: str,
        spool_dir: Path | str,
        *,
        gzip_body: bool = True,
        timeout: float = 10.0,
        verify_tls: bool = True,
        ca_file: str | None = None,
        **sink_options: Any,
    ) -> None:
        super().__init__(name, spool_dir, **sink_options)
        self.url = url.rstrip("/")
        self.org = org
        self.bucket = bucket
        self._client = InfluxDBClient(
            url=self.url,
            token=token,
            org=org,
            timeout=int(timeout * 1000),
            enable_gzip=gzip_body,
            verify_ssl=verify_tls,
            ssl_ca_cert=ca_file,
            retries=False,  # retries are ours (spool + backoff)
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)

    def post(self, body: bytes) -> None:
        try:
            self._write_api.write(
                bucket=self.bucket, org=self.org, record=body, write_precision=WritePrecision.NS
            )
        except ApiException as exc:
            status = int(exc.status or 0)
            body_bytes = (exc.body or "").encode() if isinstance(exc.body, str) else exc.body or b""
            message = server_message(body_bytes, exc.reason or f"HTTP {status}")
            headers = exc.headers or {}
            raise WriteFailed(
                f"{self.url}: HTTP {status}: {message}",
                status=status or None,
                retry_after=parse_retry_after(headers.get("Retry-After")),
            ) from exc
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise WriteFailed(f"{self.url}: {describe_transport_error(exc)}") from exc

    def on_close(self) -> None:
        super().on_close()
        self._write_api.close()
        self._client.close()
