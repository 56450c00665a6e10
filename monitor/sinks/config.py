"""The config models of the metric sinks: one entry of the ``metrics:`` list each.

```yaml
metrics:
  - kind: influxdb-v1
    url: http://127.0.0.1:8086
    database: dialwatch        # created if missing and allowed, else a clear error
  - kind: influxdb
    url: https://influx.example:8086
    org: ops
    bucket: dialwatch
    token: ${INFLUX_TOKEN}
```

Each model is registered with its kind in ``monitor.sinks.SINKS``, and the
config schema builds the ``metrics:`` union from that registry. Each entry
becomes one sink with its own spool in ``<data_dir>/spool/<name>`` and its own
quarantine file in ``<data_dir>/quarantine/<name>``; ``name`` defaults to the
kind, so two sinks of one kind need names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import ByteSize, Field, PositiveInt, field_validator, model_validator

from core.config import Bool, Duration, StrictModel

_NAME_RE = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"


class SinkConfig(StrictModel):
    """What every ``metrics:`` entry has, whatever its kind."""

    kind: str
    """Which sink: one of the kinds in ``monitor.sinks.SINKS``."""
    name: Annotated[str, Field(pattern=_NAME_RE)] | None = None
    """Shown on the dashboard and names the spool directory; default: the kind."""

    @property
    def sink_name(self) -> str:
        return self.name or self.kind

    def describe(self) -> str:
        """Where the sink writes, for logs: no credentials."""
        return self.kind


class InfluxSinkBase(SinkConfig):
    """Options every InfluxDB sink has."""

    url: str
    """Base URL of the server, ``http://`` or ``https://`` (no path needed)."""
    timeout: Duration = 10.0
    """How long one write may take before it counts as failed (and is spooled)."""
    verify_tls: Bool = True
    """Check the server's certificate on ``https://``; turn off only for lab servers."""
    ca_file: str | None = None
    """PEM file of the CA that signed the server's certificate (default: the system's)."""
    batch_size: PositiveInt = 5000
    """Most points per write request."""
    flush_interval: Duration = 1.0
    """Longest a point waits in memory before it is written: also what a kill -9 can lose."""
    max_queued: PositiveInt = 200_000
    """Points held in memory at most; more are dropped and counted (probes never wait)."""
    spool_max_bytes: ByteSize = ByteSize(1024**3)
    """Disk the spool may use (``1GiB``, ``500MB``); when full the oldest points go first."""
    retry_max: Duration = 30.0
    """Longest wait between tries while the server is away (backoff starts at 1 s)."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError("must be an http:// or https:// URL, e.g. http://127.0.0.1:8086")
        return value

    @property
    def server(self) -> str:
        """The URL without any ``user:password@`` in it."""
        parts = urlsplit(self.url)
        host = parts.netloc.rpartition("@")[2]
        return parts._replace(netloc=host).geturl()


class InfluxV1SinkConfig(InfluxSinkBase):
    """InfluxDB 1.x ``/write``: a database and optional retention policy."""

    kind: Literal["influxdb-v1"]
    database: Annotated[str, Field(min_length=1)]
    retention_policy: str | None = None
    """Retention policy to write into; default: the database's default policy."""
    create_database: Bool = True
    """``CREATE DATABASE`` when it is missing (needs an admin user on an auth-enabled server)."""
    username: str | None = None
    password: str | None = None
    token: str | None = None
    """``Authorization: Token`` (InfluxDB 1.8+ with a v2-style token); instead of username."""
    gzip: Bool = False
    """Compress request bodies (worth it over slow links; costs CPU here)."""

    def describe(self) -> str:
        return f"InfluxDB {self.server} (database {self.database})"

    @model_validator(mode="after")
    def _one_auth(self) -> InfluxV1SinkConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        if self.token is not None and self.username is not None:
            raise ValueError("give either username/password or token, not both")
        return self


class InfluxV2SinkConfig(InfluxSinkBase):
    """The InfluxDB v2 write API: InfluxDB 2.x, 3.x, Cloud, 1.8+, VictoriaMetrics."""

    kind: Literal["influxdb"]
    org: Annotated[str, Field(min_length=1)]
    bucket: Annotated[str, Field(min_length=1)]
    token: Annotated[str, Field(min_length=1)]
    """API token with write permission on the bucket (use ``${INFLUX_TOKEN}``)."""
    gzip: Bool = True
    """Compress request bodies."""

    def describe(self) -> str:
        return f"InfluxDB {self.server} (bucket {self.bucket})"


def unique_sink_names(sinks: Sequence[SinkConfig]) -> Sequence[SinkConfig]:
    """The ``metrics:`` list's own check: each sink's name names its spool, so one each."""
    seen: set[str] = set()
    for sink in sinks:
        if sink.sink_name in seen:
            raise ValueError(
                f"two metric sinks are named {sink.sink_name!r}: give each its own `name` "
                "(it names the sink's spool directory)"
            )
        seen.add(sink.sink_name)
    return sinks
