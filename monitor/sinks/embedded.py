"""The embedded metrics sink: points go into ``<data_dir>/metrics.db``.

The default sink — it needs no server. Writes happen on the ``BatchingSink``
writer thread, one transaction per batch; after each batch the store's
maintenance runs when due (hourly rollups, retention every 10 s, and the disk
budget after every batch, which is a cheap size check unless over budget).
A store that is idle does no maintenance: with nothing written nothing grows.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

from core.observation import MetricPoint
from core.vitals import SinkHealth
from monitor.config.models import StorageConfig
from monitor.sinks.base import BatchingSink, SinkError
from monitor.store.metrics import MetricsStore

log = logging.getLogger(__name__)


class EmbeddedSink(BatchingSink):
    """Writes batches to a ``MetricsStore``; ``close()`` flushes, then closes the store."""

    def __init__(
        self,
        store: MetricsStore,
        name: str = "embedded",
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        max_queued: int = 200_000,
    ) -> None:
        super().__init__(name, batch_size, flush_interval, max_queued)
        self.store = store
        self.duplicates = 0
        self.rejected = 0

    @classmethod
    def from_config(cls, storage: StorageConfig, data_dir: str | Path) -> EmbeddedSink:
        return cls(MetricsStore.from_config(storage, data_dir))

    def write_batch(self, points: list[MetricPoint]) -> None:
        try:
            result = self.store.write(points)
        except sqlite3.Error as exc:
            # A full disk or a locked file may clear up; a corrupt file will not.
            retryable = isinstance(exc, sqlite3.OperationalError)
            raise SinkError(f"metrics store write failed: {exc}", retryable=retryable) from exc
        if result.rejected:
            self.count_dropped(result.rejected)
        with self._lock:
            self.duplicates += result.duplicates
            self.rejected += result.rejected
        try:
            self.store.maintain()
        except sqlite3.Error as exc:
            # The batch is stored, so it must not count as dropped; the
            # maintenance is tried again after the next batch.
            log.exception("sink %s: metrics store maintenance failed", self.name)
            self.fault(exc)

    def health(self) -> SinkHealth:
        base = super().health()
        size = self.store.size()
        message = base.message
        if base.up:
            message = (
                f"{message}; {size.file_bytes / 1e6:.1f} MB of {self.store.max_bytes / 1e6:.0f} MB"
            )
        return SinkHealth(
            name=base.name,
            up=base.up,
            message=message,
            points_written=base.points_written,
            points_dropped=base.points_dropped,
            queued=base.queued,
            last_write_at=base.last_write_at,
            last_write_seconds=base.last_write_seconds,
        )

    def on_close(self) -> None:
        self.store.close()
