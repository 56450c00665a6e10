"""Which metrics store the dashboard's charts read: InfluxDB when it answers, else the embedded one.

The embedded store always has every point (its sink stays on), so it is the
safe answer. When a sink that can be read back is configured (its kind has a
``reader`` in ``monitor.sinks.SINKS``: both InfluxDB kinds, over InfluxQL
``/query`` — 1.x; 2.x with a DBRP mapping for the bucket; 3.x), charts read
it: it may keep a longer history. If it cannot answer (down, no DBRP mapping,
wrong credentials), the chart comes from the embedded store and the sink is
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
from monitor.metrics_query import EmbeddedMetricsQuery, QueryError, Series
from monitor.sinks import SINKS
from monitor.sinks.config import SinkConfig

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


def build_metrics_query(
    storage: StorageConfig,
    data_dir: Path,
    sinks: Sequence[SinkConfig],
) -> Any:
    """The dashboard's query: the first sink that can be read back, with the embedded store behind it."""
    embedded = EmbeddedMetricsQuery.from_config(storage, data_dir)
    for config in sinks:
        reader = SINKS[config.kind].implementation.reader
        if reader is not None:
            return FallbackMetricsQuery(reader(config, QUERY_TIMEOUT), embedded, config.describe())
    return embedded
