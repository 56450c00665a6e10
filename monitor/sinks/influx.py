"""The InfluxDB sink kinds' factories: their sinks and readers built from config entries.

``monitor.sinks.SINKS`` registers these for ``influxdb-v1`` and ``influxdb``.
Each imports its sink module when called: the registry is imported by the
config schema, which must not pull in urllib3 or influxdb-client just to
validate a file (tests/test_lazy_imports.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from monitor.sinks.config import InfluxSinkBase, InfluxV1SinkConfig, InfluxV2SinkConfig

if TYPE_CHECKING:
    from monitor.sinks.influx_query import InfluxQLMetricsQuery
    from monitor.sinks.influx_v1 import InfluxV1Sink
    from monitor.sinks.influx_v2 import InfluxV2Sink


def _spooling_options(config: InfluxSinkBase, data_dir: Path) -> dict[str, Any]:
    """What every InfluxDB sink takes besides its server and where it writes."""
    return {
        "timeout": config.timeout,
        "verify_tls": config.verify_tls,
        "ca_file": config.ca_file,
        "batch_size": config.batch_size,
        "flush_interval": config.flush_interval,
        "max_queued": config.max_queued,
        "spool_max_bytes": int(config.spool_max_bytes),
        "retry_max": config.retry_max,
        "quarantine_dir": data_dir / "quarantine" / config.sink_name,
    }


def v1_sink(config: InfluxV1SinkConfig, data_dir: Path) -> InfluxV1Sink:
    from monitor.sinks.influx_v1 import InfluxV1Sink

    return InfluxV1Sink(
        config.sink_name,
        config.url,
        config.database,
        data_dir / "spool" / config.sink_name,
        retention_policy=config.retention_policy,
        username=config.username,
        password=config.password,
        token=config.token,
        create_database=config.create_database,
        gzip_body=config.gzip,
        **_spooling_options(config, data_dir),
    )


def v2_sink(config: InfluxV2SinkConfig, data_dir: Path) -> InfluxV2Sink:
    from monitor.sinks.influx_v2 import InfluxV2Sink

    return InfluxV2Sink(
        config.sink_name,
        config.url,
        config.org,
        config.bucket,
        config.token,
        data_dir / "spool" / config.sink_name,
        gzip_body=config.gzip,
        **_spooling_options(config, data_dir),
    )


def v1_reader(config: InfluxV1SinkConfig, timeout: float) -> InfluxQLMetricsQuery:
    """InfluxQL over ``/query`` on the sink's database and retention policy."""
    from monitor.sinks.influx_query import InfluxQLMetricsQuery

    return InfluxQLMetricsQuery(
        config.url,
        config.database,
        retention_policy=config.retention_policy,
        username=config.username,
        password=config.password,
        token=config.token,
        timeout=min(timeout, config.timeout),
        verify_tls=config.verify_tls,
        ca_file=config.ca_file,
    )


def v2_reader(config: InfluxV2SinkConfig, timeout: float) -> InfluxQLMetricsQuery:
    """InfluxQL over ``/query`` on the bucket, through its DBRP mapping (2.x) or natively (3.x)."""
    from monitor.sinks.influx_query import InfluxQLMetricsQuery

    return InfluxQLMetricsQuery(
        config.url,
        config.bucket,
        token=config.token,
        timeout=min(timeout, config.timeout),
        verify_tls=config.verify_tls,
        ca_file=config.ca_file,
    )
