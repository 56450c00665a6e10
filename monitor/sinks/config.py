"""The ``metrics:`` config section (InfluxDB sinks) and building sinks from it.

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

Each entry becomes one sink with its own spool in
``<data_dir>/spool/<name>`` and its own quarantine file in
``<data_dir>/quarantine/<name>``; ``name`` defaults to the kind, so two sinks
of one kind need names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, ByteSize, Field, PositiveInt, field_validator, model_validator

from core.config import Duration, StrictModel
from monitor.sinks.base import MetricSink

_NAME_RE = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"


class InfluxSinkBase(StrictModel):
    """Options every InfluxDB sink has."""

    name: Annotated[str, Field(pattern=_NAME_RE)] | None = None
    """Shown on the dashboard and names the spool directory; default: the kind."""
    url: str
    """Base URL of the server, ``http://`` or ``https://`` (no path needed)."""
    timeout: Duration = 10.0
    """How long one write may take before it counts as failed (and is spooled)."""
    verify_tls: bool = True
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
    def sink_name(self) -> str:
        return self.name or self.kind  # type: ignore[attr-defined]


class InfluxV1SinkConfig(InfluxSinkBase):
    """InfluxDB 1.x ``/write``: a database and optional retention policy."""

    kind: Literal["influxdb-v1"]
    database: Annotated[str, Field(min_length=1)]
    retention_policy: str | None = None
    """Retention policy to write into; default: the database's default policy."""
    create_database: bool = True
    """``CREATE DATABASE`` when it is missing (needs an admin user on an auth-enabled server)."""
    username: str | None = None
    password: str | None = None
    token: str | None = None
    """``Authorization: Token`` (InfluxDB 1.8+ with a v2-style token); instead of username."""
    gzip: bool = False
    """Compress request bodies (worth it over slow links; costs CPU here)."""

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
    gzip: bool = True
    """Compress request bodies."""


MetricSinkConfig = Annotated[InfluxV1SinkConfig | InfluxV2SinkConfig, Field(discriminator="kind")]


def _unique_names(sinks: list[InfluxV1SinkConfig | InfluxV2SinkConfig]) -> list:
    seen: set[str] = set()
    for sink in sinks:
        if sink.sink_name in seen:
            raise ValueError(
                f"two metric sinks are named {sink.sink_name!r}: give each its own `name` "
                "(it names the sink's spool directory)"
            )
        seen.add(sink.sink_name)
    return sinks


MetricsConfig = Annotated[list[MetricSinkConfig], AfterValidator(_unique_names)]
"""The whole ``metrics:`` list."""


def build_sinks(
    configs: Sequence[InfluxV1SinkConfig | InfluxV2SinkConfig], data_dir: Path | str
) -> list[MetricSink]:
    """One started-later sink per config entry (the engine calls ``start()``)."""
    # Imported here: the config schema imports this module, and it should not
    # pull in HTTP clients just to validate a file.
    from monitor.sinks.influx_v1 import InfluxV1Sink
    from monitor.sinks.influx_v2 import InfluxV2Sink

    root = Path(data_dir)
    sinks: list[MetricSink] = []
    for config in configs:
        name = config.sink_name
        common = {
            "timeout": config.timeout,
            "verify_tls": config.verify_tls,
            "ca_file": config.ca_file,
            "gzip_body": config.gzip,
            "batch_size": config.batch_size,
            "flush_interval": config.flush_interval,
            "max_queued": config.max_queued,
            "spool_max_bytes": int(config.spool_max_bytes),
            "retry_max": config.retry_max,
            "quarantine_dir": root / "quarantine" / name,
        }
        spool_dir = root / "spool" / name
        if isinstance(config, InfluxV1SinkConfig):
            sinks.append(
                InfluxV1Sink(
                    name,
                    config.url,
                    config.database,
                    spool_dir,
                    retention_policy=config.retention_policy,
                    username=config.username,
                    password=config.password,
                    token=config.token,
                    create_database=config.create_database,
                    **common,  # type: ignore[arg-type]
                )
            )
        else:
            sinks.append(
                InfluxV2Sink(
                    name,
                    config.url,
                    config.org,
                    config.bucket,
                    config.token,
                    spool_dir,
                    **common,  # type: ignore[arg-type]
                )
            )
    return sinks
