"""The metric sink interface: where observations' points go.

A sink receives *enriched* points (the engine has added the ``target``,
``kind``, ``site`` and configured tags, and set ``time_ns``). ``submit`` must
never block the probes: sinks queue and write from their own thread.

``BatchingSink`` is the shared base: a bounded queue, a writer thread that
flushes by size or time, and counters for the appliance's own health. A
concrete sink implements ``write_batch`` and raises ``SinkError`` when a write
fails. The embedded store and the InfluxDB sinks all build on it.

``SinkFactory`` is what a sink kind registers in ``monitor.sinks.SINKS``: how
to build the sink from its config entry, and how to read its points back.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.observation import MetricPoint
from core.vitals import SinkHealth
from monitor.faults import NO_FAULTS, Faults

log = logging.getLogger(__name__)


class SinkError(Exception):
    """A write failed. ``retryable``: time may fix it (server down, 5xx, 429)."""

    def __init__(
        self, message: str, retryable: bool = True, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class MetricSink(ABC):
    """Anything that accepts metric points."""

    name: str
    faults: Faults = NO_FAULTS
    """Where failures are reported beside the log (the engine sets it; ``monitor.faults``)."""

    def fault(self, error: BaseException | str, error_class: str | None = None) -> None:
        """Report a failure of this sink as ``sink:<name>`` (merged audit entries)."""
        self.faults.report(f"sink:{self.name}", error, error_class=error_class)

    @abstractmethod
    def submit(self, points: Sequence[MetricPoint]) -> None:
        """Queue points for writing. Never blocks; never raises for a full queue
        (points over the bound are dropped and counted)."""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Start background work (threads). Called once by the engine."""

    @abstractmethod
    def close(self, timeout: float = 10.0) -> None:
        """Flush what is queued (best effort within ``timeout``) and stop."""

    @abstractmethod
    def health(self) -> SinkHealth: ...


class BatchingSink(MetricSink):
    """Queue + writer thread; subclasses implement ``write_batch``."""

    def __init__(
        self,
        name: str,
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        max_queued: int = 200_000,
    ) -> None:
        self.name = name
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_queued = max_queued
        # A deque, not a queue.Queue: a Queue takes a lock and notifies a
        # condition per point, which was ~5% of the engine's main thread at
        # 1,000 observations/s. deque append/popleft are atomic; one Event wakes
        # the writer when a batch is full.
        self._pending: collections.deque[MetricPoint] = collections.deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._written = 0
        self._dropped = 0
        self._up = True
        self._message = "no writes yet"
        self._last_write_at: float | None = None
        self._last_write_seconds: float | None = None

    # -- interface -----------------------------------------------------
    def submit(self, points: Sequence[MetricPoint]) -> None:
        room = self.max_queued - len(self._pending)
        if room < len(points):
            with self._lock:
                self._dropped += len(points) - max(room, 0)
            points = points[: max(room, 0)]
        self._pending.extend(points)
        if len(self._pending) >= self.batch_size:
            self._wake.set()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"sink-{self.name}", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        else:
            self._drain_once()
        self.on_close()

    def health(self) -> SinkHealth:
        with self._lock:
            return SinkHealth(
                name=self.name,
                up=self._up,
                message=self._message,
                points_written=self._written,
                points_dropped=self._dropped,
                queued=len(self._pending),
                last_write_at=self._last_write_at,
                last_write_seconds=self._last_write_seconds,
            )

    # -- for subclasses ------------------------------------------------
    @abstractmethod
    def write_batch(self, points: list[MetricPoint]) -> int | None:
        """Write one batch; raise SinkError on failure. Called from the writer thread only.

        Return None when the whole batch was written. A sink that keeps its own
        books (a spooling sink may park a batch on disk instead) returns how many
        points to count as written now; the base then leaves up/message alone,
        since that sink sets them with ``set_state``.
        """

    def on_tick(self) -> None:  # noqa: B027 - optional hook
        """Called by the writer thread after every wait for points (about every
        ``flush_interval``), with or without a batch; spooling sinks replay here."""

    def batch_wait(self) -> float:
        """How long the writer thread waits to fill the next batch. A spooling sink
        with a backlog to replay says 0, so replay is not paced by the flush interval."""
        return self.flush_interval

    def on_close(self) -> None:  # noqa: B027 - optional hook
        """Release resources after the last batch."""

    def on_failure(self, points: list[MetricPoint], error: SinkError) -> None:
        """A batch could not be written. The base drops and counts it; spooling sinks override."""
        with self._lock:
            self._dropped += len(points)

    def count_dropped(self, n: int) -> None:
        with self._lock:
            self._dropped += n

    def count_written(self, n: int, seconds: float | None = None) -> None:
        """Count points a sink wrote outside ``write_batch``'s return (e.g. on replay)."""
        with self._lock:
            self._written += n
            self._last_write_at = time.time()
            if seconds is not None:
                self._last_write_seconds = seconds

    def set_state(self, up: bool, message: str) -> None:
        with self._lock:
            self._up = up
            self._message = message

    # -- writer thread -------------------------------------------------
    def _take_batch(self, wait: float) -> list[MetricPoint]:
        """Up to ``batch_size`` points, waiting at most ``wait`` for a full batch."""
        if wait > 0 and len(self._pending) < self.batch_size and not self._stop.is_set():
            self._wake.wait(wait)
        self._wake.clear()
        pending = self._pending
        n = min(self.batch_size, len(pending))
        return [pending.popleft() for _ in range(n)]

    def _write(self, batch: list[MetricPoint]) -> None:
        started = time.monotonic()
        try:
            counted = self.write_batch(batch)
        except SinkError as exc:
            with self._lock:
                self._up = False
                self._message = str(exc)
            log.warning("sink %s: write of %d points failed: %s", self.name, len(batch), exc)
            self.fault(exc)
            self.on_failure(batch, exc)
            return
        except Exception as exc:  # a sink bug must not kill the writer thread
            log.exception("sink %s: unexpected error writing %d points", self.name, len(batch))
            self.fault(exc)
            self.on_failure(batch, SinkError(f"unexpected error: {exc}", retryable=False))
            return
        elapsed = time.monotonic() - started
        if counted is not None:
            if counted:
                self.count_written(counted, elapsed)
            return
        with self._lock:
            self._up = True
            self._message = "ok"
            self._written += len(batch)
            self._last_write_at = time.time()
            self._last_write_seconds = elapsed

    def _drain_once(self) -> None:
        while batch := self._take_batch(0):
            self._write(batch)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._take_batch(self.batch_wait())
            if batch:
                self._write(batch)
            try:
                self.on_tick()
            except Exception as exc:  # a sink bug must not kill the writer thread
                log.exception("sink %s: unexpected error in on_tick", self.name)
                self.fault(exc)
        self._drain_once()


@dataclass(frozen=True)
class SinkFactory:
    """A sink kind's implementation in ``SINKS``: its sink and, if it has one, its reader.

    Both take the kind's own config model. Their modules import the kind's
    HTTP client when called, not when the registry is imported: validating a
    config must not load them.
    """

    sink: Callable[[Any, Path], MetricSink]
    """(config entry, data directory) → the sink, not started yet (the engine starts it)."""
    reader: Callable[[Any, float], Any] | None = None
    """(config entry, longest wait in seconds) → a ``MetricsQuery`` over what the sink
    wrote, for the dashboard's charts; it raises ``monitor.metrics_query.QueryError`` when it
    cannot answer.
    None: this kind cannot be read back."""
