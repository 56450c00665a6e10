"""What a source (local psutil, later SNMP and SSH) reads from a machine in one poll.

Raw readings only — cumulative counters as they are, no rates and no
judgement. ``evaluate`` turns a sample plus the previous poll's state into
metric points and a status, the same way for every source.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from core.observation import ErrorClass


class SourceError(Exception):
    """A source could not read the machine; ``check`` reports it as a ``fail``."""

    def __init__(self, detail: str, error_class: ErrorClass) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error_class = error_class


@dataclass(frozen=True, slots=True)
class CpuTimes:
    """Cumulative CPU seconds since boot, summed over all CPUs."""

    total: float
    busy: float  # total minus idle and iowait


@dataclass(frozen=True, slots=True)
class DiskUsage:
    mount: str
    fstype: str
    total_bytes: int
    used_bytes: int
    free_bytes: int  # available to unprivileged users, as `df` shows it

    @property
    def percent(self) -> float:
        # Like `df`: used against what users can reach (used + available), not the raw size.
        reachable = self.used_bytes + self.free_bytes
        return 100.0 * self.used_bytes / reachable if reachable else 0.0


@dataclass(frozen=True, slots=True)
class NetCounters:
    """Cumulative counters of one interface, both directions summed."""

    interface: str
    errors: int
    drops: int
    rx_bytes: int
    tx_bytes: int


@dataclass(frozen=True, slots=True)
class ServerSample:
    taken_at: float
    """Epoch seconds of the reading (rates are per second of this clock)."""
    boot_time: float | None = None
    """When the machine booted; a change means every counter restarted."""
    cpu_count: int | None = None
    cpu: CpuTimes | None = None
    load: tuple[float, float, float] | None = None
    memory_percent: float | None = None
    memory_available_bytes: int | None = None
    swap_percent: float | None = None
    disks: tuple[DiskUsage, ...] = ()
    interfaces: tuple[NetCounters, ...] = ()
    processes: Mapping[str, int] = field(default_factory=dict)
    """Configured process name -> how many are running."""
    counter_bits: int | None = None
    """Width of the interface counters when they wrap (32 for SNMP Counter32); None:
    a decrease means the counter was reset."""
