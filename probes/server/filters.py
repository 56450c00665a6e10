"""Choosing which mounts and interfaces to watch: globs, pseudo filesystems, a cap (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from probes.server.config import NETWORK_FSTYPES, PSEUDO_FSTYPES, DiskSelection


def matches(name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatchcase(name, pattern) for pattern in patterns)


def pick(
    names: Iterable[str], include: Sequence[str], exclude: Sequence[str], limit: int
) -> list[str]:
    """Names passing include (empty = all) and not excluded, at most ``limit``, in order."""
    chosen: list[str] = []
    for name in names:
        if include and not matches(name, include):
            continue
        if matches(name, exclude):
            continue
        if name not in chosen:
            chosen.append(name)
        if len(chosen) >= limit:
            break
    return chosen


def pick_mounts(partitions: Iterable[tuple[str, str, str]], selection: DiskSelection) -> list[str]:
    """Mount points to measure from ``(device, mountpoint, fstype)`` rows.

    Pseudo filesystems are never measured; network ones only when asked. A
    device mounted twice (bind mounts, a container's /etc/hosts) is measured
    once, at its shortest chosen mount point — shorter mount points also win
    the cap.
    """
    rows = sorted(partitions, key=lambda row: (len(row[1]), row[1]))
    seen_devices: set[str] = set()
    chosen: list[str] = []
    for device, mount, fstype in rows:
        if fstype in PSEUDO_FSTYPES:
            continue
        if fstype in NETWORK_FSTYPES and not selection.network:
            continue
        if selection.include and not matches(mount, selection.include):
            continue
        if matches(mount, selection.exclude) or mount in chosen:
            continue
        # Only real block devices identify a filesystem; "none"/"overlay" may repeat.
        if device.startswith("/dev/"):
            if device in seen_devices:
                continue
            seen_devices.add(device)
        chosen.append(mount)
        if len(chosen) >= selection.max_mounts:
            break
    return chosen
