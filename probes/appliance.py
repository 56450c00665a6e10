"""``appliance`` probe: Dialwatch's own health, the built-in check of the engine itself.

The engine hands its numbers to this probe as ``ctx.extra["engine"]`` (an
object satisfying ``EngineStats``) and its ``appliance:`` config section as
``ctx.extra["appliance_config"]``. Limits come from that section; a field set
on the ``appliance`` target overrides it. What is judged:

- scheduler lag (p95 start delay over the last minute): warn above
  ``max_scheduler_lag``, fail above ``lag_fail_factor`` times it;
- probes erroring (the probe itself crashed): warn above ``max_errored_per_second``;
- free space of the data directory's filesystem: fail below ``min_free_disk_mb``;
- state DB size: warn above ``max_state_db_mb``;
- a metric sink that is down: warn, with the sink's own message;
- another part in trouble (``part_alerts``: a paging channel that is off or
  whose last attempts all failed): warn, with its sentence.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import Field, PositiveInt

from core.config import Duration, Interval, StrictModel, TargetBase
from core.observation import ErrorClass, MetricPoint, Observation, Status
from core.vitals import SinkHealth
from probes.base import BuiltinTarget, ProbeContext
from probes.thresholds import Breach, Limit, Rule, by_severity, format_value, judge, worst

ENGINE_KEY = "engine"
CONFIG_KEY = "appliance_config"
MIB = 1024 * 1024
APPLIANCE_TARGET_ID = "dialwatch"
"""Id of the built-in appliance target (when the config lists no ``appliance`` target)."""


class ApplianceConfig(StrictModel):
    """Limits for the appliance's own health check (the built-in ``dialwatch`` target)."""

    interval: Interval = 15.0
    """How often the appliance checks itself."""
    max_scheduler_lag: Duration = 2.0
    """Warn when probes start this much later than their slot."""
    min_free_disk_mb: int = 500
    """Fail when the data directory's filesystem has less free space than this."""
    max_state_db_mb: int = 2048
    """Warn when the state DB grows beyond this many MiB."""
    concurrency: PositiveInt = 512
    """Global cap on probes in flight."""


@runtime_checkable
class EngineStats(Protocol):
    """What the engine tells its own health check. All calls are cheap and non-blocking."""

    @property
    def data_dir(self) -> Path:
        """The data directory (state DB, embedded metrics, spool)."""
        ...

    def scheduler_lag_seconds(self) -> float:
        """p95 of how late probes started against their slot, over the last minute."""
        ...

    def late_per_second(self) -> float:
        """Probe runs per second that started later than ``max_scheduler_lag`` (last minute)."""
        ...

    def failed_per_second(self) -> float:
        """Observations per second with status ``fail`` (last minute) — targets in trouble."""
        ...

    def errored_per_second(self) -> float:
        """Observations per second with status ``error`` (last minute) — probes that crashed."""
        ...

    def state_db_bytes(self) -> int | None:
        """Size of the state DB on disk; None when it is not a local file (PostgreSQL)."""
        ...

    def sink_health(self) -> Sequence[SinkHealth]:
        """One entry per configured metric sink."""
        ...

    def probe_errors(self) -> Mapping[str, str]:
        """Targets whose latest probe could not run -> the health machine's alert sentence."""
        ...

    def part_alerts(self) -> Mapping[str, str]:
        """Other parts of the appliance in trouble (a paging channel off or degraded) ->
        a sentence."""
        ...


class ApplianceTarget(TargetBase):
    """The appliance itself. Limits left unset come from the ``appliance:`` config section."""

    kind: Literal["appliance"]
    interval: Interval = 15.0
    max_scheduler_lag: Duration | None = None
    """Warn when the p95 probe start delay is above this (default: appliance.max_scheduler_lag, 2s)."""
    lag_fail_factor: float = Field(5.0, gt=1)
    """Fail when the lag is above this many times ``max_scheduler_lag``."""
    max_errored_per_second: float = Field(0.0, ge=0)
    """Warn when probes crash more often than this (per second, last minute)."""
    min_free_disk_mb: int | None = Field(None, ge=0)
    """Fail below this much free space for the data directory (default: appliance.min_free_disk_mb, 500)."""
    max_state_db_mb: int | None = Field(None, ge=1)
    """Warn when the state DB is bigger (default: appliance.max_state_db_mb, 2048)."""


class WithApplianceSection(Protocol):
    """The part of the top-level config the built-in target is made from."""

    @property
    def appliance(self) -> ApplianceConfig: ...


def builtin_target(config: WithApplianceSection) -> BuiltinTarget:
    """The appliance's check of itself, for a config that lists no ``appliance`` target."""
    section = config.appliance
    target = ApplianceTarget(
        id=APPLIANCE_TARGET_ID,
        kind="appliance",
        name="Dialwatch",
        interval=section.interval,
    )
    return BuiltinTarget(target, f"builtin:{section.model_dump_json()}")


LAG = Rule("scheduler_lag", "scheduler lag", "s")
ERRORED = Rule("errored", "probes erroring", "/s")
MAX_PROBE_ERRORS_SHOWN = 3
DB_SIZE = Rule("state_db", "state DB", "MB")
FREE_DISK = Rule("free_disk", "data directory {subject} free", "MB", lower_is_worse=True)


@dataclass(frozen=True)
class Limits:
    """The effective limits for one run: target fields over the appliance section."""

    lag: Limit
    errored: Limit
    state_db: Limit
    free_disk: Limit

    @staticmethod
    def of(target: ApplianceTarget, section: ApplianceConfig) -> Limits:
        lag = target.max_scheduler_lag or section.max_scheduler_lag
        free = (
            target.min_free_disk_mb
            if target.min_free_disk_mb is not None
            else section.min_free_disk_mb
        )
        db = target.max_state_db_mb or section.max_state_db_mb
        return Limits(
            lag=Limit(warn=lag, fail=lag * target.lag_fail_factor),
            errored=Limit(warn=target.max_errored_per_second),
            state_db=Limit(warn=db),
            free_disk=Limit(fail=free),
        )


@dataclass(frozen=True)
class Reading:
    """One snapshot of the engine's numbers (the pure part judges it)."""

    data_dir: str
    lag: float
    late: float
    failed: float
    errored: float
    state_db_bytes: int | None
    sinks: tuple[SinkHealth, ...]
    free_bytes: int | None  # None: the data directory does not exist
    total_bytes: int | None
    probe_errors: tuple[str, ...] = ()  # sentences naming the targets whose probe could not run
    part_alerts: tuple[str, ...] = ()  # other parts in trouble: "channel sms is degraded: ..."


def judge_reading(reading: Reading, limits: Limits) -> tuple[Status, str, tuple[MetricPoint, ...]]:
    """Status, detail sentence and points for one reading (pure)."""
    breaches: list[Breach] = []
    for rule, limit, value, subject in (
        (LAG, limits.lag, reading.lag, ""),
        (ERRORED, limits.errored, reading.errored, ""),
    ):
        if breach := judge(rule, limit, value, subject):
            breaches.append(breach)
    if reading.state_db_bytes is not None and (
        breach := judge(DB_SIZE, limits.state_db, reading.state_db_bytes / MIB)
    ):
        breaches.append(breach)
    missing_dir = reading.free_bytes is None
    if not missing_dir and (
        breach := judge(FREE_DISK, limits.free_disk, reading.free_bytes / MIB, reading.data_dir)  # type: ignore[operator]
    ):
        breaches.append(breach)
    down = [sink for sink in reading.sinks if not sink.up]
    # e.g. points quarantined after a 400: the sink is up but someone must look
    alerting = [sink for sink in reading.sinks if sink.up and sink.alert]

    ordered = by_severity(breaches)
    sentences = [f"data directory {reading.data_dir} does not exist"] if missing_dir else []
    sentences += [breach.sentence() for breach in ordered]
    sentences += [f"sink {sink.name} down: {sink.message}" for sink in down]
    if reading.probe_errors:
        shown = list(reading.probe_errors[:MAX_PROBE_ERRORS_SHOWN])
        more = len(reading.probe_errors) - len(shown)
        sentences += shown + ([f"and {more} more probes could not run"] if more else [])
    sentences += [f"sink {sink.name}: {sink.alert}" for sink in alerting]
    sentences += list(reading.part_alerts)
    status = worst(
        [
            Status.FAIL if missing_dir else Status.OK,
            Status.WARN
            if down or alerting or reading.probe_errors or reading.part_alerts
            else Status.OK,
            *(breach.status for breach in ordered),
        ]
    )
    detail = "; ".join(sentences) if sentences else _summary(reading)
    return status, detail, _points(reading, len(down))


def _summary(reading: Reading) -> str:
    parts = [
        f"scheduler lag {format_value(round(reading.lag, 3), 's')}",
        f"{format_value(round(reading.failed, 2), '/s')} failing",
    ]
    if reading.free_bytes is not None:
        parts.append(f"{format_value(round(reading.free_bytes / MIB), 'MB')} free")
    if reading.sinks:
        parts.append(f"{len(reading.sinks)} sinks up")
    return ", ".join(parts)


def _points(reading: Reading, sinks_down: int) -> tuple[MetricPoint, ...]:
    fields: dict[str, float | int] = {
        "scheduler_lag_seconds": float(reading.lag),
        "late_per_second": float(reading.late),
        "failed_per_second": float(reading.failed),
        "errored_per_second": float(reading.errored),
        "sinks_down": sinks_down,
    }
    if reading.free_bytes is not None:
        fields["data_free_bytes"] = int(reading.free_bytes)
        if reading.total_bytes:
            fields["data_free_percent"] = round(100.0 * reading.free_bytes / reading.total_bytes, 2)
    if reading.state_db_bytes is not None:
        fields["state_db_bytes"] = int(reading.state_db_bytes)
    points = [MetricPoint("appliance", fields)]
    for sink in reading.sinks:
        points.append(
            MetricPoint(
                "appliance_sink",
                {
                    "up": int(sink.up),
                    "queued": int(sink.queued),
                    "points_written": int(sink.points_written),
                    "points_dropped": int(sink.points_dropped),
                    "spool_bytes": int(sink.spool_bytes),
                    "spool_oldest_age_s": float(sink.spool_oldest_age or 0.0),
                    "write_seconds": float(sink.last_write_seconds or 0.0),
                    "points_spooled": int(sink.points_spooled),
                    "points_evicted": int(sink.points_evicted),
                    "points_quarantined": int(sink.points_quarantined),
                },
                {"sink": sink.name},
            )
        )
    return tuple(points)


def _disk_usage(path: Path) -> tuple[int | None, int | None]:
    try:
        usage = shutil.disk_usage(path)
    except FileNotFoundError:
        return None, None
    return int(usage.free), int(usage.total)


async def check(target: ApplianceTarget, ctx: ProbeContext) -> Observation:
    engine = ctx.extra.get(ENGINE_KEY)
    if not isinstance(engine, EngineStats):
        return Observation(
            Status.ERROR,
            "no engine statistics: the appliance check runs only inside the engine",
        )
    section = ctx.extra.get(CONFIG_KEY)
    if not isinstance(section, ApplianceConfig):
        section = ApplianceConfig()
    started = time.perf_counter()
    data_dir = Path(engine.data_dir)
    # statvfs can block (slow or network storage): keep it off the event loop.
    free, total = await asyncio.to_thread(_disk_usage, data_dir)
    reading = Reading(
        data_dir=str(data_dir),
        lag=engine.scheduler_lag_seconds(),
        late=engine.late_per_second(),
        failed=engine.failed_per_second(),
        errored=engine.errored_per_second(),
        state_db_bytes=engine.state_db_bytes(),
        sinks=tuple(engine.sink_health()),
        probe_errors=tuple(sorted((getattr(engine, "probe_errors", dict)() or {}).values())),
        part_alerts=tuple(sorted(engine.part_alerts().values())),
        free_bytes=free,
        total_bytes=total,
    )
    status, detail, points = judge_reading(reading, Limits.of(target, section))
    error_class = ErrorClass.THRESHOLD if status is not Status.OK else None
    return Observation(status, detail, points, time.perf_counter() - started, error_class)
