"""The embedded metrics store: SQLite, its own file ``<data_dir>/metrics.db``.

``MetricsStore`` writes (one per process, used by ``monitor.sinks.embedded``);
``MetricsReader`` reads from any thread (used by ``monitor.metrics_query``).
See ``schema.py`` for the layout and docs/storage.md for the disk budget.
"""

from __future__ import annotations

from monitor.store.metrics.reader import MetricsReader, SeriesInfo
from monitor.store.metrics.schema import H1, M1, RAW, TIERS, Tier
from monitor.store.metrics.store import (
    METRICS_DB,
    MetricsStore,
    Retention,
    StoreSize,
    WriteResult,
)

__all__ = [
    "H1",
    "M1",
    "METRICS_DB",
    "RAW",
    "TIERS",
    "MetricsReader",
    "MetricsStore",
    "Retention",
    "SeriesInfo",
    "StoreSize",
    "Tier",
    "WriteResult",
]
