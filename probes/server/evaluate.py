"""From a ``ServerSample`` and the previous poll's state to metric points and a status (pure).

Shared by every ``via``: a source only reads numbers; rates, thresholds, the
detail sentence and the points are made here, the same way for all.

The state kept between polls (``ctx.state["server"]``) is JSON::

    {"taken_at": 1700000000.0, "boot_time": 1699990000.0,
     "cpu": [total_seconds, busy_seconds],
     "net": {"eth0": [errors, drops, rx_bytes, tx_bytes]}}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.server.config import SERVER_RULES
from probes.server.counters import busy_percent, counter_rate
from probes.server.sample import ServerSample
from probes.thresholds import Breach, Limit, by_severity, format_value, judge, worst

RULES = {rule.name: rule for rule in SERVER_RULES}
MIB = 1024 * 1024
BOOT_TIME_SLACK = 5.0  # seconds
_SUMMARY_DISKS = 3  # how many mounts the all-ok detail names before "+N more"


@dataclass(frozen=True)
class Judgement:
    """What one poll found: the points, the sentences and the resulting status."""

    status: Status
    detail: str
    metrics: tuple[MetricPoint, ...]
    state: dict[str, Any]

    def observation(self, latency: float | None = None) -> Observation:
        error_class = ErrorClass.THRESHOLD if self.status is not Status.OK else None
        return Observation(self.status, self.detail, self.metrics, latency, error_class)


def usable_previous(
    previous: Mapping[str, Any] | None, sample: ServerSample, max_age: float
) -> Mapping[str, Any] | None:
    """The previous poll's state if rates against it mean something.

    Not when it is missing, from the future (clock stepped back), older than
    ``max_age`` (a rate over hours says little about now), or from before a
    reboot (every counter restarted).
    """
    if not previous or not isinstance(previous.get("taken_at"), int | float):
        return None
    age = sample.taken_at - previous["taken_at"]
    if age <= 0 or age > max_age:
        return None
    before = previous.get("boot_time")
    # Boot time is derived as "now - uptime", so a clock step moves it a little;
    # a real reboot moves it by at least the time the reboot took.
    if (
        isinstance(before, int | float)
        and sample.boot_time is not None
        and abs(before - sample.boot_time) > BOOT_TIME_SLACK
    ):
        return None
    return previous


def evaluate(
    sample: ServerSample,
    previous: Mapping[str, Any] | None,
    thresholds: Mapping[str, Limit | None],
    expected_processes: Sequence[str] = (),
    max_age: float = 300.0,
) -> Judgement:
    """Judge one sample. ``thresholds`` is a resolved ServerTarget.thresholds."""
    prev = usable_previous(previous, sample, max_age)
    breaches: list[Breach] = []

    def check(rule_name: str, value: float, subject: str = "") -> None:
        limit = thresholds.get(rule_name)
        if limit is not None and (breach := judge(RULES[rule_name], limit, value, subject)):
            breaches.append(breach)

    fields: dict[str, float | int] = {}
    cpu_percent = None
    prev_cpu = prev.get("cpu") if prev else None
    if sample.cpu is not None and _numbers(prev_cpu, 2):
        total, busy = prev_cpu  # type: ignore[misc]
        cpu_percent = busy_percent(total, busy, sample.cpu.total, sample.cpu.busy)
    if cpu_percent is not None:
        fields["cpu_percent"] = round(cpu_percent, 2)
        check("cpu_percent", cpu_percent)
    load_per_core = None
    if sample.load is not None:
        fields["load1"], fields["load5"], fields["load15"] = (float(v) for v in sample.load)
        if sample.cpu_count:
            load_per_core = sample.load[1] / sample.cpu_count
            fields["load_per_core"] = round(load_per_core, 3)
            check("load_per_core", load_per_core)
    if sample.cpu_count:
        fields["cpu_count"] = int(sample.cpu_count)
    if sample.memory_percent is not None:
        fields["memory_percent"] = float(sample.memory_percent)
        check("memory_percent", sample.memory_percent)
    if sample.memory_available_bytes is not None:
        fields["memory_available_bytes"] = int(sample.memory_available_bytes)
    if sample.swap_percent is not None:
        fields["swap_percent"] = float(sample.swap_percent)
        check("swap_percent", sample.swap_percent)
    points: list[MetricPoint] = []
    if fields:
        points.append(MetricPoint("server", fields))

    for disk in sample.disks:
        percent = disk.percent
        points.append(
            MetricPoint(
                "server_disk",
                {
                    "used_percent": round(percent, 2),
                    "free_bytes": int(disk.free_bytes),
                    "total_bytes": int(disk.total_bytes),
                },
                {"mount": disk.mount},
            )
        )
        check("disk_percent", percent, disk.mount)
        check("disk_free_mb", disk.free_bytes / MIB, disk.mount)

    prev_net = (prev or {}).get("net")
    if not isinstance(prev_net, Mapping):
        prev_net = {}
    elapsed = sample.taken_at - prev["taken_at"] if prev else 0.0
    for nic in sample.interfaces:
        before = prev_net.get(nic.interface)
        if not _numbers(before, 4):
            continue  # new interface (or first poll): its rates start next time
        now = (nic.errors, nic.drops, nic.rx_bytes, nic.tx_bytes)
        rates = [
            counter_rate(b, c, elapsed, sample.counter_bits)
            for b, c in zip(before, now, strict=True)
        ]
        if any(rate is None for rate in rates):
            continue
        errors, drops, rx, tx = (float(rate) for rate in rates)  # type: ignore[arg-type]
        points.append(
            MetricPoint(
                "server_net",
                {
                    "errors_per_s": round(errors, 4),
                    "drops_per_s": round(drops, 4),
                    "rx_bytes_per_s": round(rx, 1),
                    "tx_bytes_per_s": round(tx, 1),
                },
                {"interface": nic.interface},
            )
        )
        check("net_errors_per_s", errors, nic.interface)
        check("net_drops_per_s", drops, nic.interface)

    missing: list[str] = []
    for name in expected_processes:
        count = int(sample.processes.get(name, 0))
        points.append(MetricPoint("server_process", {"count": count}, {"process": name}))
        if count == 0:
            missing.append(name)

    ordered = by_severity(breaches)
    sentences = [f"process {name} is not running" for name in missing]
    sentences += [breach.sentence() for breach in ordered]
    status = worst([Status.FAIL if missing else Status.OK, *(b.status for b in ordered)])
    detail = "; ".join(sentences) if sentences else _summary(sample, cpu_percent, load_per_core)
    return Judgement(status, detail, tuple(points), next_state(sample))


def _numbers(value: object, length: int) -> bool:
    """Whether persisted state holds what this version wrote (it may come from an older one)."""
    return (
        isinstance(value, list)
        and len(value) == length
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def next_state(sample: ServerSample) -> dict[str, Any]:
    """What the next poll needs from this one (JSON-serialisable)."""
    return {
        "taken_at": sample.taken_at,
        "boot_time": sample.boot_time,
        "cpu": [sample.cpu.total, sample.cpu.busy] if sample.cpu else None,
        "net": {
            nic.interface: [nic.errors, nic.drops, nic.rx_bytes, nic.tx_bytes]
            for nic in sample.interfaces
        },
    }


def _summary(sample: ServerSample, cpu_percent: float | None, load_per_core: float | None) -> str:
    parts: list[str] = []
    if cpu_percent is not None:
        parts.append(f"cpu {format_value(round(cpu_percent, 1), '%')}")
    if load_per_core is not None:
        parts.append(f"load per core {format_value(round(load_per_core, 2))}")
    if sample.memory_percent is not None:
        parts.append(f"memory {format_value(round(sample.memory_percent, 1), '%')}")
    if sample.swap_percent:
        parts.append(f"swap {format_value(round(sample.swap_percent, 1), '%')}")
    for disk in sample.disks[:_SUMMARY_DISKS]:
        parts.append(f"disk {disk.mount} {format_value(round(disk.percent, 1), '%')}")
    if len(sample.disks) > _SUMMARY_DISKS:
        parts.append(f"{len(sample.disks) - _SUMMARY_DISKS} more mounts")
    running = [f"{name} ×{count}" for name, count in sample.processes.items() if count]
    if running:
        parts.append("running: " + ", ".join(running))
    return ", ".join(parts) if parts else "no readings"
