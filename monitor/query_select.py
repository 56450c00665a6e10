"""Which metrics store the dashboard's charts read: InfluxDB when it answers, else the embedded one.

The embedded store always has every point (its sink stays on), so it is the
safe answer. When an InfluxDB sink is configured, charts read InfluxDB over
InfluxQL ``/query`` (1.x; 2.x with a DBRP mapping for the bucket; 3.x) — it
may keep a longer history. If InfluxDB cannot answer (down, no DBRP mapping,
wrong credentials), the chart comes from the embedded store and InfluxDB is
not asked again for ``COOL_DOWN`` seconds, so a dead server costs one slow
request a minute, not one per page.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from monitor.config.models import StorageConfig
from monitor.metrics_query import EmbeddedMetricsQuery, Series
from monitor.sinks.config import InfluxV1SinkConfig, InfluxV2SinkConfig
from monitor.sinks.influx_query import InfluxQLMetricsQuery, QueryError

log = logging.getLogger(__name__)

COOL_DOWN = 60.0
QUERY_TIMEOUT = 3.0
"""Seconds a chart may wait for InfluxDB before the embedded store answers instead."""


class FallbackMetricsQuery:
    """``MetricsQuery`` that asks ``primary`` and falls back to ``fallback`` on QueryError."""

    def __init__(
        self,
        primary: Any,
        fallback: Any,
        name: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.fallback = fallback
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._failed_at: float | None = None

    def _ask(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            resting = self._failed_at is not None and self._clock() - self._failed_at < COOL_DOWN
        if not resting:
            try:
                answer = getattr(self.primary, method)(*args, **kwargs)
            except QueryError as exc:
                with self._lock:
                    first = self._failed_at is None
                    self._failed_at = self._clock()
                if first:
                    log.warning(
                        "charts read the embedded store: %s cannot answer (%s)", self.name, exc
                    )
            else:
                with self._lock:
                    if self._failed_at is not None:
                        log.info("charts read %s again", self.name)
                    self._failed_at = None
                return answer
        return getattr(self.fallback, method)(*args, **kwargs)

    def series(
        self,
        target_id: str,
        measurement: str,
        field: str,
        start: float,
        end: float,
        max_points: int = 300,
        tags: Mapping[str, str] | None = None,
    ) -> list[Series]:
        return self._ask("series", target_id, measurement, field, start, end, max_points, tags)

    def latest(self, target_id: str) -> dict[str, list[dict[str, Any]]]:
        return self._ask("latest", target_id)

    def close(self) -> None:
        for query in (self.primary, self.fallback):
            close = getattr(query, "close", None)
            if close is not None:
                close()


def influx_query_for(config: InfluxV1SinkConfig | InfluxV2SinkConfig) -> InfluxQLMetricsQuery:
    """An InfluxQL reader for a configured sink (v2: the bucket through its DBRP mapping)."""
    common = {
        "timeout": min(QUERY_TIMEOUT, config.timeout),
        "verify_tls": config.verify_tls,
        "ca_file": config.ca_file,
    }
    if isinstance(config, InfluxV1SinkConfig):
        return InfluxQLMetricsQuery(
            config.url,
            config.database,
            retention_policy=config.retention_policy,
            username=config.username,
            password=config.password,
            token=config.token,
            **common,
        )
    return InfluxQLMetricsQuery(config.url, config.bucket, token=config.token, **common)


def build_metrics_query(
    storage: StorageConfig,
    data_dir: Path,
    sinks: Sequence[InfluxV1SinkConfig | InfluxV2SinkConfig],
) -> Any:
    """The dashboard's query: the first InfluxDB sink with the embedded store behind it."""
    embedded = EmbeddedMetricsQuery.from_config(storage, data_dir)
    if not sinks:
        return embedded
    first = sinks[0]
    return FallbackMetricsQuery(influx_query_for(first), embedded, f"InfluxDB {first.url}")
