"""The engine's own numbers, as the ``appliance`` probe reads them (its ``EngineStats``).

Rates are sampled every few seconds by the engine (``EngineVitals.sample``) on
the engine's clock; everything else is read on demand and is cheap.

What is read of the engine is ``EngineParts``, not the engine itself: the
engine builds its vitals, and vitals need not know the engine.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from core.clock import Clock
from core.vitals import SinkHealth
from monitor.runner import ProbeRunner
from monitor.scheduler import ProbeScheduler
from monitor.sinks.base import MetricSink


class EngineParts(Protocol):
    """The parts of the engine its vitals read (``monitor.engine.Engine`` has them)."""

    @property
    def data_dir(self) -> Path: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def scheduler(self) -> ProbeScheduler: ...
    @property
    def runner(self) -> ProbeRunner: ...
    @property
    def state_db_path(self) -> Path | None: ...
    @property
    def sinks(self) -> Sequence[MetricSink]: ...
    @property
    def appliance_alerts(self) -> Mapping[str, str]:
        """Targets whose latest probe could not run -> the alert sentence."""
        ...

    @property
    def alert_sources(self) -> Sequence[Callable[[], Mapping[str, str]]]:
        """Other parts' alerts (channels off or degraded): each key -> sentence."""
        ...


class _Rate:
    """Per-second rate of a monotonic counter over the last ``window`` seconds."""

    def __init__(self, read: Callable[[], int], window: float = 60.0) -> None:
        self._read = read
        self._window = window
        self._samples: deque[tuple[float, int]] = deque()

    def sample(self, now: float) -> None:
        self._samples.append((now, self._read()))
        while len(self._samples) > 2 and self._samples[1][0] < now - self._window:
            self._samples.popleft()

    def per_second(self) -> float:
        if len(self._samples) < 2:
            return 0.0
        (t0, v0), (t1, v1) = self._samples[0], self._samples[-1]
        return (v1 - v0) / (t1 - t0) if t1 > t0 else 0.0


class EngineVitals:
    """The engine as the ``appliance`` probe sees it (probes.appliance's protocol)."""

    def __init__(self, engine: EngineParts) -> None:
        self._engine = engine
        sched = engine.scheduler
        stats = engine.runner.stats
        self._late = _Rate(lambda: sched.late + sched.missed)
        self._failed = _Rate(lambda: stats.failed)
        self._errored = _Rate(lambda: stats.errored)

    @property
    def data_dir(self) -> Path:
        return self._engine.data_dir

    def sample(self) -> None:
        now = self._engine.clock.monotonic()
        for rate in (self._late, self._failed, self._errored):
            rate.sample(now)

    def scheduler_lag_seconds(self) -> float:
        return self._engine.scheduler.lag_p95()

    def late_per_second(self) -> float:
        return self._late.per_second()

    def failed_per_second(self) -> float:
        return self._failed.per_second()

    def errored_per_second(self) -> float:
        return self._errored.per_second()

    def state_db_bytes(self) -> int | None:
        path = self._engine.state_db_path
        if path is None:
            return None
        total = 0
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(OSError):
                total += (path.parent / (path.name + suffix)).stat().st_size
        return total

    def sink_health(self) -> list[SinkHealth]:
        return [sink.health() for sink in self._engine.sinks]

    def probe_errors(self) -> dict[str, str]:
        return dict(self._engine.appliance_alerts)

    def part_alerts(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for source in self._engine.alert_sources:
            try:
                found.update(source())
            except Exception as exc:  # a broken source is itself worth a warning
                found[f"source:{id(source)}"] = f"an alert source failed: {exc!r}"
        return found
