"""``via: local`` — read the machine Dialwatch runs on with psutil.

psutil calls block (they read /proc, and ``statvfs`` on a mount can hang),
so the whole reading runs in a worker thread and the event loop never waits
on it. A reading that is still stuck from an earlier poll is not started
again: piling up threads behind one hung mount would starve every other
probe that needs a thread.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Sequence

import psutil

from core.observation import ErrorClass
from probes.base import ProbeContext
from probes.server.config import ServerTarget
from probes.server.filters import pick, pick_mounts
from probes.server.sample import CpuTimes, DiskUsage, NetCounters, ServerSample, SourceError

# psutil's busy CPU counters on Linux; guest and guest_nice are already inside
# user and nice, so they are left out as psutil's own cpu_percent does.
BUSY_FIELDS = ("user", "nice", "system", "irq", "softirq", "steal")

_in_flight: dict[str, float] = {}  # target id -> monotonic start of its running reading
_lock = threading.Lock()


async def collect(target: ServerTarget, ctx: ProbeContext) -> ServerSample:
    key = ctx.target_id
    with _lock:
        started = _in_flight.get(key)
        if started is not None:
            raise SourceError(
                f"the previous reading started {time.monotonic() - started:.0f}s ago "
                "and has not finished (a hung mount?)",
                ErrorClass.TIMEOUT,
            )
        _in_flight[key] = time.monotonic()
    try:
        # Submitting happens right here; from then on the thread releases the mark
        # itself, even when this coroutine is cancelled by the runner's timeout.
        reading = asyncio.get_running_loop().run_in_executor(None, _read_and_release, key, target)
    except BaseException:
        _release(key)  # the thread never started (executor shut down)
        raise
    return await reading


def _read_and_release(key: str, target: ServerTarget) -> ServerSample:
    try:
        return read(target)
    finally:
        _release(key)


def _release(key: str) -> None:
    with _lock:
        _in_flight.pop(key, None)


def read(target: ServerTarget) -> ServerSample:
    """One blocking reading of this machine (call it from a thread)."""
    times = psutil.cpu_times()
    # Busy time is a sum of the busy counters, never total minus idle: a sum of
    # counters that only grow only grows, while the float difference can step back
    # by a rounding error on an idle machine and read as a counter reset.
    busy = sum(getattr(times, name, 0.0) for name in BUSY_FIELDS)
    idle = times.idle + getattr(times, "iowait", 0.0)
    total = busy + idle
    memory = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return ServerSample(
        taken_at=time.time(),
        boot_time=psutil.boot_time(),
        cpu_count=psutil.cpu_count(logical=True),
        cpu=CpuTimes(total=total, busy=busy),
        load=psutil.getloadavg(),
        memory_percent=float(memory.percent),
        memory_available_bytes=int(memory.available),
        swap_percent=float(swap.percent),
        disks=_disks(target),
        interfaces=_interfaces(target),
        processes=count_processes(target.processes),
    )


def _disks(target: ServerTarget) -> tuple[DiskUsage, ...]:
    partitions = [(p.device, p.mountpoint, p.fstype) for p in psutil.disk_partitions(all=True)]
    fstypes = {mount: fstype for _, mount, fstype in partitions}
    usages: list[DiskUsage] = []
    for mount in pick_mounts(partitions, target.disks):
        try:
            usage = psutil.disk_usage(mount)
        except OSError:
            continue  # unmounted since we listed it, or not readable by us
        usages.append(
            DiskUsage(mount, fstypes[mount], int(usage.total), int(usage.used), int(usage.free))
        )
    return tuple(usages)


def _interfaces(target: ServerTarget) -> tuple[NetCounters, ...]:
    counters = psutil.net_io_counters(pernic=True)
    selection = target.interfaces
    names = pick(sorted(counters), selection.include, selection.exclude, selection.max_interfaces)
    return tuple(
        NetCounters(
            name,
            errors=counters[name].errin + counters[name].errout,
            drops=counters[name].dropin + counters[name].dropout,
            rx_bytes=counters[name].bytes_recv,
            tx_bytes=counters[name].bytes_sent,
        )
        for name in names
    )


def count_processes(names: Sequence[str]) -> dict[str, int]:
    """How many live (non-zombie) processes answer to each name.

    A process answers to its kernel name (``comm``, cut to 15 characters on
    Linux) and to the file name of its ``argv[0]`` — the latter catches long
    names the kernel truncated.
    """
    counts = dict.fromkeys(names, 0)
    if not names:
        return counts
    for proc in psutil.process_iter(["name", "cmdline", "status"]):
        info = proc.info
        if info.get("status") == psutil.STATUS_ZOMBIE:
            continue
        known = {info.get("name") or ""}
        cmdline = info.get("cmdline") or []
        if cmdline:
            known.add(os.path.basename(cmdline[0]))
        for name in names:
            if name in known:
                counts[name] += 1
    return counts
