"""The ``server`` target model and the metrics its thresholds can be set on.

One model for every source (``via``); a source that needs connection details
(SNMP community, SSH user) adds its own optional section here and checks in a
validator that it is given when ``via`` names it.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config import Bool, FieldValueError, StrictModel, TargetBase
from probes.server.snmp_config import SnmpOptions
from probes.server.ssh_config import SshOptions
from probes.thresholds import Limit, Rule, resolve

SERVER_RULES: tuple[Rule, ...] = (
    Rule("cpu_percent", "cpu", "%", Limit(warn=85, fail=95), doc="busy CPU since the last poll"),
    Rule(
        "load_per_core",
        "load per core (5 min)",
        "",
        Limit(warn=1.5, fail=3),
        doc="5-minute load average divided by the number of CPUs",
    ),
    Rule("memory_percent", "memory", "%", Limit(warn=85, fail=95), doc="memory in use"),
    Rule("swap_percent", "swap", "%", Limit(warn=80), doc="swap in use"),
    Rule("disk_percent", "disk {subject}", "%", Limit(warn=80, fail=90), doc="per mount"),
    Rule(
        "disk_free_mb",
        "disk {subject} free",
        "MB",
        lower_is_worse=True,
        doc="per mount; fails when free space drops below",
    ),
    Rule("net_errors_per_s", "{subject} errors", "/s", Limit(warn=1), doc="per interface"),
    Rule("net_drops_per_s", "{subject} drops", "/s", doc="per interface"),
)
"""Every metric ``thresholds:`` accepts, with its default limits."""

PSEUDO_FSTYPES = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs", "devpts",
        "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "nsfs", "proc", "pstore",
        "ramfs", "rpc_pipefs", "securityfs", "squashfs", "sysfs", "tmpfs", "tracefs", "iso9660",
        "fuse.lxcfs", "fuse.gvfsd-fuse", "fuse.portal", "nullfs", "devfs",
    }
)  # fmt: skip
"""Filesystems that never hold data worth watching (squashfs snaps are always 100% full)."""

NETWORK_FSTYPES = frozenset(
    {"nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "fuse.sshfs", "9p", "afs"}
)
"""Filesystems whose ``statvfs`` can hang for minutes when their server is gone."""


class DiskSelection(StrictModel):
    """Which mounts the disk checks cover."""

    include: list[str] = Field(default_factory=list)
    """Mount-point globs to watch (``/``, ``/var/spool/*``); empty means every real mount."""
    exclude: list[str] = Field(
        default_factory=lambda: ["/snap/*", "/var/lib/docker/*", "/var/lib/containers/*", "/run/*"]
    )
    """Mount-point globs to skip; giving this replaces the default list."""
    network: Bool = False
    """Also measure network filesystems (NFS, CIFS...). Off by default: a hung file
    server blocks the measuring thread until the server answers."""
    max_mounts: int = Field(16, ge=1, le=64)
    """At most this many mounts (shortest mount points first) — keeps the series bounded."""


class InterfaceSelection(StrictModel):
    """Which network interfaces the error/drop rates cover."""

    include: list[str] = Field(default_factory=list)
    """Interface-name globs to watch (``eth*``, ``bond0``); empty means all."""
    exclude: list[str] = Field(
        default_factory=lambda: ["lo", "veth*", "docker*", "br-*", "virbr*", "cali*", "ifb*"]
    )
    """Interface-name globs to skip; giving this replaces the default list."""
    max_interfaces: int = Field(16, ge=1, le=64)
    """At most this many interfaces (in name order) — keeps the series bounded."""


class ServerTarget(TargetBase):
    """A machine's resources: CPU, load, memory, swap, disks, network errors, processes."""

    kind: Literal["server"]
    via: Literal["local", "ssh", "snmp"] = "local"
    """Where the numbers come from: ``local`` is the machine Dialwatch runs on (psutil);
    ``ssh`` logs in to the machine (needs ``ssh``); ``snmp`` asks its SNMP agent (needs ``snmp``)."""
    ssh: SshOptions | None = None
    """For ``via: ssh``: host, user, credentials, host-key policy, profiles, commands."""
    snmp: SnmpOptions | None = None
    """For ``via: snmp``: agent address, version and credentials, profiles, own OIDs."""
    thresholds: dict[str, Limit | None] = Field(default_factory=dict, validate_default=True)
    """Per metric ``{warn: N, fail: N}``; ``null`` turns a level or a metric off. Names and
    defaults: docs/probes/server.md. (After validation it holds every metric, defaults filled in.)"""
    disks: DiskSelection = Field(default_factory=DiskSelection)
    """Which mounts the disk checks cover (pseudo filesystems never)."""
    interfaces: InterfaceSelection = Field(default_factory=InterfaceSelection)
    """Which network interfaces the error and drop rates cover."""
    processes: list[str] = Field(default_factory=list, max_length=32)
    """Process names that must be running (``asterisk``, ``kamailio``); a missing one fails."""

    @field_validator("thresholds")
    @classmethod
    def _thresholds(cls, value: dict[str, Limit | None]) -> dict[str, Limit | None]:
        return dict(resolve(value, SERVER_RULES))

    @field_validator("processes")
    @classmethod
    def _processes(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip() or "/" in name:
                raise ValueError(f"{name!r} is not a process name (give e.g. asterisk)")
        if len(set(value)) != len(value):
            raise ValueError("each process name may appear once")
        return value

    @model_validator(mode="after")
    def _ssh_section(self) -> ServerTarget:
        if self.via == "ssh" and self.ssh is None:
            raise FieldValueError("via", "via: ssh needs an ssh section (host, user, key_file...)")
        if self.via != "ssh" and self.ssh is not None:
            raise FieldValueError(
                "ssh", f"the ssh section is only used with via: ssh, not {self.via}"
            )
        return self

    @model_validator(mode="after")
    def _snmp_section(self) -> ServerTarget:
        if self.via == "snmp" and self.snmp is None:
            raise FieldValueError("via", "via: snmp needs an snmp section (host, community...)")
        if self.via != "snmp" and self.snmp is not None:
            raise FieldValueError(
                "snmp", f"the snmp section is only used with via: snmp, not {self.via}"
            )
        return self
