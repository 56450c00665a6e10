"""What the ``host`` and ``interfaces`` profiles read over SNMP, and how rows become readings (pure).

The SNMP adapter (``probes/server/snmp.py``) turns every answer into ``Var``
values — OID, SMI type name, plain Python value — so everything here works
without pysnmp and is tested with hand-made rows.

``host`` reads HOST-RESOURCES-MIB (RFC 2790): hrProcessorLoad per processor,
hrStorageTable for memory, swap and disks, hrSWRunName for ``processes``;
plus UCD-SNMP-MIB's load averages where the agent has them (Net-SNMP does).
``interfaces`` reads IF-MIB (RFC 2863): names, admin and oper status, the
64-bit octet counters, errors and discards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from probes.server.config import DiskSelection, InterfaceSelection
from probes.server.filters import matches, pick, pick_mounts
from probes.server.findings import SampleWithFindings
from probes.server.sample import DiskUsage

SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
"""sysUpTime.0: hundredths of a second since the agent (re)started; read on every poll."""

LA_LOAD = ("1.3.6.1.4.1.2021.10.1.3.1", "1.3.6.1.4.1.2021.10.1.3.2", "1.3.6.1.4.1.2021.10.1.3.3")
"""UCD-SNMP-MIB laLoad.1-3: the 1, 5 and 15 minute load averages (as text)."""

HR_PROCESSOR_LOAD = "1.3.6.1.2.1.25.3.3.1.2"
HR_STORAGE_TYPE = "1.3.6.1.2.1.25.2.3.1.2"
HR_STORAGE_DESCR = "1.3.6.1.2.1.25.2.3.1.3"
HR_STORAGE_UNITS = "1.3.6.1.2.1.25.2.3.1.4"
HR_STORAGE_SIZE = "1.3.6.1.2.1.25.2.3.1.5"
HR_STORAGE_USED = "1.3.6.1.2.1.25.2.3.1.6"
HR_SW_RUN_NAME = "1.3.6.1.2.1.25.4.2.1.2"

HR_STORAGE_COLUMNS = (
    HR_STORAGE_TYPE,
    HR_STORAGE_DESCR,
    HR_STORAGE_UNITS,
    HR_STORAGE_SIZE,
    HR_STORAGE_USED,
)

HR_STORAGE_FIXED = (HR_STORAGE_TYPE, HR_STORAGE_DESCR, HR_STORAGE_UNITS)
"""Columns that stay as they are while the table keeps its rows: read again only when
rows come or go, and every ``FIXED_REFRESH_POLLS`` polls."""
HR_STORAGE_CHANGING = (HR_STORAGE_SIZE, HR_STORAGE_USED)
"""Read every poll (Net-SNMP's memory rows change their size too)."""
FIXED_REFRESH_POLLS = 20

IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"
IF_OUT_OCTETS = "1.3.6.1.2.1.2.2.1.16"
IF_ADMIN_STATUS = "1.3.6.1.2.1.2.2.1.7"
IF_OPER_STATUS = "1.3.6.1.2.1.2.2.1.8"
IF_IN_DISCARDS = "1.3.6.1.2.1.2.2.1.13"
IF_IN_ERRORS = "1.3.6.1.2.1.2.2.1.14"
IF_OUT_DISCARDS = "1.3.6.1.2.1.2.2.1.19"
IF_OUT_ERRORS = "1.3.6.1.2.1.2.2.1.20"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"

IF_COLUMNS = (
    IF_DESCR,
    IF_NAME,
    IF_ADMIN_STATUS,
    IF_OPER_STATUS,
    IF_HC_IN_OCTETS,
    IF_HC_OUT_OCTETS,
    IF_IN_ERRORS,
    IF_OUT_ERRORS,
    IF_IN_DISCARDS,
    IF_OUT_DISCARDS,
)

IF_OCTETS_32 = (IF_IN_OCTETS, IF_OUT_OCTETS)
"""ifInOctets/ifOutOctets (Counter32): read only from agents without the 64-bit ifXTable
counters (SNMPv1-era devices); at 1 Gbit/s they wrap every 34 s."""

COLUMN_NAMES = {
    HR_PROCESSOR_LOAD: "hrProcessorLoad",
    HR_STORAGE_TYPE: "hrStorageType",
    HR_STORAGE_DESCR: "hrStorageDescr",
    HR_STORAGE_UNITS: "hrStorageAllocationUnits",
    HR_STORAGE_SIZE: "hrStorageSize",
    HR_STORAGE_USED: "hrStorageUsed",
    HR_SW_RUN_NAME: "hrSWRunName",
    IF_DESCR: "ifDescr",
    IF_IN_OCTETS: "ifInOctets",
    IF_OUT_OCTETS: "ifOutOctets",
    IF_NAME: "ifName",
    IF_ADMIN_STATUS: "ifAdminStatus",
    IF_OPER_STATUS: "ifOperStatus",
    IF_HC_IN_OCTETS: "ifHCInOctets",
    IF_HC_OUT_OCTETS: "ifHCOutOctets",
    IF_IN_ERRORS: "ifInErrors",
    IF_OUT_ERRORS: "ifOutErrors",
    IF_IN_DISCARDS: "ifInDiscards",
    IF_OUT_DISCARDS: "ifOutDiscards",
    SYS_UPTIME: "sysUpTime.0",
}
"""MIB names of the OIDs above, for detail sentences."""

_STORAGE_TYPES = "1.3.6.1.2.1.25.2.1."
STORAGE_RAM = _STORAGE_TYPES + "2"
STORAGE_VIRTUAL = _STORAGE_TYPES + "3"
STORAGE_FIXED_DISK = _STORAGE_TYPES + "4"
STORAGE_FLASH = _STORAGE_TYPES + "9"
STORAGE_NETWORK_DISK = _STORAGE_TYPES + "10"

PSEUDO_MOUNTS = ("/dev", "/dev/*", "/proc", "/proc/*", "/sys", "/sys/*", "/run", "/run/*")
"""Mount points never measured over SNMP: the agent does not say a mount is tmpfs or
cgroup (Net-SNMP lists /dev/shm and /sys/fs/cgroup as fixed disks), so these go by path."""

MAX_PROCESSORS = 64
"""At most this many ``snmp_cpu`` series; the average covers every processor."""

NUMERIC_KINDS = frozenset(
    {"Integer", "Integer32", "Counter32", "Counter64", "Gauge32", "Unsigned32", "TimeTicks"}
)
MISSING_KINDS = frozenset({"NoSuchObject", "NoSuchInstance", "EndOfMibView"})

IF_STATUS = {
    1: "up",
    2: "down",
    3: "testing",
    4: "unknown",
    5: "dormant",
    6: "notPresent",
    7: "lowerLayerDown",
}


class MalformedAnswer(ValueError):
    """A value of the wrong type or shape; its message is the detail sentence."""


@dataclass(frozen=True, slots=True)
class Var:
    """One variable binding from an answer, without pysnmp types.

    ``kind`` is the SMI type name (``Counter64``, ``OctetString``,
    ``NoSuchInstance``...); ``value`` an int for numbers, a str for
    strings and OIDs, None for the exceptions and Null.
    """

    oid: str
    kind: str
    value: int | str | None = None

    @property
    def missing(self) -> bool:
        return self.kind in MISSING_KINDS


def describe(oid: str) -> str:
    """``1.3.6.1.2.1.25.2.3.1.5.36`` -> ``hrStorageSize.36 (1.3.6.1.2.1.25.2.3.1.5.36)``."""
    for column, name in COLUMN_NAMES.items():
        if oid == column:
            return f"{name} ({oid})"
        if oid.startswith(column + "."):
            return f"{name}{oid[len(column) :]} ({oid})"
    return oid


def number(var: Var) -> float | int:
    """A numeric value; a decimal string counts (UCD laLoad is text). MalformedAnswer otherwise."""
    if var.kind in NUMERIC_KINDS and isinstance(var.value, int):
        return var.value
    if var.kind == "OctetString" and isinstance(var.value, str):
        try:
            value = float(var.value.strip())
        except ValueError:
            pass
        else:
            if value == value and abs(value) != float("inf"):  # NaN and inf are no readings
                return value
    shown = "" if var.value is None else f" {str(var.value)[:40]!r}"
    raise MalformedAnswer(f"SNMP: {describe(var.oid)} is {var.kind}{shown}, not a number")


def text(var: Var) -> str:
    """A string value (names, descriptions); numbers are accepted as their digits."""
    if var.kind == "OctetString" and isinstance(var.value, str):
        return var.value
    if var.kind in NUMERIC_KINDS and isinstance(var.value, int):
        return str(var.value)
    raise MalformedAnswer(f"SNMP: {describe(var.oid)} is {var.kind}, not a string")


Table = Mapping[str, Mapping[str, Var]]
"""Column OID -> row index (the OID suffix after the column, e.g. ``36``) -> value."""


def table(columns: Sequence[str], rows: Sequence[Sequence[Var]]) -> dict[str, dict[str, Var]]:
    """Index walked rows by column and instance suffix; rows outside their column are dropped."""
    indexed: dict[str, dict[str, Var]] = {}
    for column, walked in zip(columns, rows, strict=True):
        prefix = column + "."
        indexed[column] = {
            var.oid[len(prefix) :]: var
            for var in walked
            if var.oid.startswith(prefix) and not var.missing
        }
    return indexed


def _index_order(index: str) -> tuple[int, ...]:
    return tuple(int(part) for part in index.split(".") if part.isdigit())


# -- host ---------------------------------------------------------------------


@dataclass(frozen=True)
class HostReading:
    """What the host profile adds to a ``ServerSample``."""

    processor_loads: tuple[float, ...] = ()
    """hrProcessorLoad of each processor, in index order (percent over the last minute)."""
    memory_percent: float | None = None
    memory_available_bytes: int | None = None
    swap_percent: float | None = None
    disks: tuple[DiskUsage, ...] = ()
    load: tuple[float, float, float] | None = None


def processor_loads(rows: Mapping[str, Var]) -> tuple[float, ...]:
    return tuple(float(number(rows[i])) for i in sorted(rows, key=_index_order))


def load_average(vars_: Sequence[Var]) -> tuple[float, float, float] | None:
    """laLoad.1-3, or None when the agent does not have UCD-SNMP-MIB."""
    if len(vars_) != 3 or any(var.missing for var in vars_):
        return None
    one, five, fifteen = (float(number(var)) for var in vars_)
    return one, five, fifteen


def _unsigned(value: float | int) -> int:
    # hrStorageSize/Used are Integer32: agents that do not scale their allocation
    # units for huge filesystems send them wrapped into negative numbers.
    value = int(value)
    return value + 2**32 if value < 0 else value


@dataclass(frozen=True, slots=True)
class StorageRow:
    index: str
    type: str
    descr: str
    units: int
    size: int
    used: int

    @property
    def total_bytes(self) -> int:
        return self.size * self.units

    @property
    def used_bytes(self) -> int:
        return min(self.used, self.size) * self.units


def storage_rows(columns: Table) -> list[StorageRow]:
    """hrStorageTable rows that have every column we need, in index order."""
    types = columns.get(HR_STORAGE_TYPE, {})
    rows: list[StorageRow] = []
    for index in sorted(types, key=_index_order):
        try:
            cells = [columns[column][index] for column in HR_STORAGE_COLUMNS]
        except KeyError:
            continue  # a row that vanished between the column walks
        type_, descr, units, size, used = cells
        if type_.kind not in ("ObjectIdentifier", "ObjectName"):
            raise MalformedAnswer(
                f"SNMP: {describe(type_.oid)} is {type_.kind}, not an OBJECT IDENTIFIER"
            )
        rows.append(
            StorageRow(
                index,
                str(type_.value),
                text(descr),
                max(_unsigned(number(units)), 0),
                _unsigned(number(size)),
                _unsigned(number(used)),
            )
        )
    return rows


def memory_and_swap(rows: Sequence[StorageRow]) -> tuple[float | None, int | None, float | None]:
    """(memory %, memory available bytes, swap %) from hrStorage rows.

    Memory is "not available to new programs", as ``via: local`` counts it:
    Net-SNMP's "Available memory" row when the agent has it (5.9+), else
    physical used minus "Memory buffers" and "Cached memory" — hrStorageRam's
    own used figure counts page cache and would read near 100 % on any busy box.
    """
    ram = next((r for r in rows if r.type == STORAGE_RAM and r.total_bytes > 0), None)
    memory_percent = available = None
    if ram is not None:
        by_descr = {r.descr.lower(): r for r in rows}
        if (row := by_descr.get("available memory")) is not None:
            available = row.total_bytes
        else:
            reclaimable = sum(
                by_descr[name].used_bytes
                for name in ("memory buffers", "cached memory")
                if name in by_descr
            )
            available = ram.total_bytes - ram.used_bytes + reclaimable
        available = max(0, min(available, ram.total_bytes))
        memory_percent = round(100.0 * (ram.total_bytes - available) / ram.total_bytes, 2)
    swap = next(
        (r for r in rows if r.type == STORAGE_VIRTUAL and r.descr.lower() == "swap space"), None
    )
    swap_percent = None
    if swap is not None:
        swap_percent = round(100.0 * swap.used_bytes / swap.total_bytes, 2) if swap.size else 0.0
    return memory_percent, available, swap_percent


def _mount(descr: str) -> str:
    # Windows agents describe a volume as "C:\ Label:System  Serial Number 1a2b3c".
    return descr.split(" Label:", 1)[0].strip()


def disks(rows: Sequence[StorageRow], selection: DiskSelection) -> tuple[DiskUsage, ...]:
    """Disk rows chosen like ``via: local`` chooses mounts (globs, network, cap)."""
    kinds = {STORAGE_FIXED_DISK: "fixedDisk", STORAGE_FLASH: "flashMemory"}
    if selection.network:
        kinds[STORAGE_NETWORK_DISK] = "networkDisk"
    by_mount: dict[str, StorageRow] = {}
    for row in rows:
        mount = _mount(row.descr)
        if row.type not in kinds or row.size <= 0 or not mount:
            continue
        if matches(mount, PSEUDO_MOUNTS):
            continue
        by_mount.setdefault(mount, row)
    # Devices are unknown over SNMP, so every row counts as its own filesystem.
    chosen = pick_mounts([("", mount, "") for mount in by_mount], selection)
    usages: list[DiskUsage] = []
    for mount in chosen:
        row = by_mount[mount]
        used = row.used_bytes
        usages.append(
            DiskUsage(mount, kinds[row.type], row.total_bytes, used, row.total_bytes - used)
        )
    return tuple(usages)


def host_reading(columns: Table, load_vars: Sequence[Var], selection: DiskSelection) -> HostReading:
    """Everything the host profile found, from its walked columns and laLoad."""
    rows = storage_rows(columns)
    memory_percent, available, swap_percent = memory_and_swap(rows)
    return HostReading(
        processor_loads=processor_loads(columns.get(HR_PROCESSOR_LOAD, {})),
        memory_percent=memory_percent,
        memory_available_bytes=available,
        swap_percent=swap_percent,
        disks=disks(rows, selection),
        load=load_average(load_vars),
    )


def count_processes(rows: Mapping[str, Var], names: Sequence[str]) -> dict[str, int]:
    """How many hrSWRunName rows carry each configured name (the kernel's 15-char name)."""
    counts = dict.fromkeys(names, 0)
    running: dict[str, int] = {}
    for var in rows.values():
        name = text(var)
        running[name] = running.get(name, 0) + 1
    for name in names:
        # Linux agents report the kernel's name, cut to 15 characters.
        counts[name] = running.get(name, 0) or (running.get(name[:15], 0) if len(name) > 15 else 0)
    return counts


def server_sample(
    taken_at: float,
    uptime_seconds: float | None,
    host: HostReading | None,
    processes: Mapping[str, int],
) -> SampleWithFindings:
    """The shared part of a reading, judged by ``evaluate`` like every other source's."""
    if host is None:
        return SampleWithFindings(taken_at=taken_at, processes=processes, has_readings=False)
    return SampleWithFindings(
        taken_at=taken_at,
        # The agent's start, not the machine's boot: what matters is when its
        # counters may have restarted.
        boot_time=taken_at - uptime_seconds if uptime_seconds is not None else None,
        cpu_count=len(host.processor_loads) or None,
        load=host.load,
        memory_percent=host.memory_percent,
        memory_available_bytes=host.memory_available_bytes,
        swap_percent=host.swap_percent,
        disks=host.disks,
        processes=processes,
    )


# -- interfaces ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InterfaceRow:
    """One interface's status and raw counters (None where the agent has no such column)."""

    name: str
    admin_up: bool
    oper_status: int
    in_octets: int | None = None
    out_octets: int | None = None
    in_errors: int | None = None
    out_errors: int | None = None
    in_discards: int | None = None
    out_discards: int | None = None
    octet_bits: int | None = None
    """32 when the octet counters are the Counter32 ones (they wrap); None for 64-bit."""

    @property
    def oper_up(self) -> bool:
        return self.oper_status == 1

    def counters(self) -> list[int | None]:
        return [
            self.in_octets,
            self.out_octets,
            self.in_errors,
            self.out_errors,
            self.in_discards,
            self.out_discards,
        ]


COUNTER_FIELDS = (
    ("in_bytes_per_s", None),
    ("out_bytes_per_s", None),
    ("in_errors_per_s", 32),
    ("out_errors_per_s", 32),
    ("in_discards_per_s", 32),
    ("out_discards_per_s", 32),
)
"""``snmp_if`` rate fields in ``InterfaceRow.counters()`` order, with the counter width
that wraps (Counter32); the 64-bit octet counters never wrap in practice, so a
decrease there is a reset (``InterfaceRow.octet_bits`` says when the octets are
Counter32 after all)."""


def interface_rows(columns: Table, selection: InterfaceSelection) -> list[InterfaceRow]:
    """Interfaces named by ifName (ifDescr where ifName is missing), chosen by the globs and cap."""
    names: dict[str, str] = {}
    for index, var in columns.get(IF_DESCR, {}).items():
        names[index] = text(var)
    for index, var in columns.get(IF_NAME, {}).items():
        if value := text(var).strip():
            names[index] = value
    index_of: dict[str, str] = {}
    for index in sorted(names, key=_index_order):
        index_of.setdefault(names[index], index)  # two rows with one name: the first wins
    chosen = pick(sorted(index_of), selection.include, selection.exclude, selection.max_interfaces)

    def cell(column: str, index: str) -> int | None:
        var = columns.get(column, {}).get(index)
        return None if var is None else int(number(var))

    rows: list[InterfaceRow] = []
    for name in chosen:
        index = index_of[name]
        hc = index in columns.get(IF_HC_IN_OCTETS, {}) or index in columns.get(IF_HC_OUT_OCTETS, {})
        rows.append(
            InterfaceRow(
                name=name,
                admin_up=cell(IF_ADMIN_STATUS, index) in (1, None),
                oper_status=cell(IF_OPER_STATUS, index) or 4,
                in_octets=cell(IF_HC_IN_OCTETS, index) if hc else cell(IF_IN_OCTETS, index),
                out_octets=cell(IF_HC_OUT_OCTETS, index) if hc else cell(IF_OUT_OCTETS, index),
                octet_bits=None if hc else 32,
                in_errors=cell(IF_IN_ERRORS, index),
                out_errors=cell(IF_OUT_ERRORS, index),
                in_discards=cell(IF_IN_DISCARDS, index),
                out_discards=cell(IF_OUT_DISCARDS, index),
            )
        )
    return rows


@dataclass(frozen=True)
class SnmpReading:
    """Everything one SNMP poll read: the shared sample plus what only SNMP has."""

    sample: SampleWithFindings
    uptime_ticks: int
    """sysUpTime.0 (1/100 s); a smaller value than last poll's means the agent restarted."""
    processor_loads: tuple[float, ...] = ()
    interfaces: tuple[InterfaceRow, ...] | None = None
    """None without the interfaces profile."""
    oids: Mapping[str, Var] = field(default_factory=dict)
    """Configured OID name -> its value (possibly NoSuchInstance)."""
