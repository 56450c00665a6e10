"""What ``via: ssh`` runs on the host and how it reads the output (pure).

Nothing here does I/O: the scripts are strings, and every parser takes the
text a command printed and returns readings, points or a ``Finding``. The SSH
adapter (``probes/server/ssh.py``) runs the scripts and hands the output here,
so every parser is testable with real output captured from a real host.

- ``basic``: one ``/bin/sh`` script prints ``/proc/loadavg``, ``/proc/meminfo``,
  the ``cpu``/``btime`` lines of ``/proc/stat``, ``/proc/net/dev`` and
  ``df -P -T -k``, each after an ``@@name`` marker line; the readings fill the
  same ``ServerSample`` fields ``via: local`` fills, so thresholds work alike.
- ``services``: ``systemctl is-active UNIT...`` prints one state per unit.
- own commands: exit code, a number, regex named groups or JSON paths.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.net.ssh import CommandResult
from core.observation import ErrorClass, MetricPoint, Status
from probes.server.config import ServerTarget
from probes.server.filters import pick, pick_mounts
from probes.server.findings import Finding
from probes.server.sample import CpuTimes, DiskUsage, NetCounters
from probes.server.ssh_config import FieldLimit, SshCommand
from probes.thresholds import Limit, Rule, format_value, judge

USER_HZ = 100
"""Clock ticks per second of /proc/stat on Linux (fixed by the kernel ABI for /proc)."""

MARKER = "@@"
_EXCERPT = 60


class ParseError(Exception):
    """The host printed something the parser cannot read; the message is a human sentence."""


@dataclass(frozen=True)
class BasicReadings:
    """The ``ServerSample`` fields the basic script provides (None where it printed nothing)."""

    boot_time: float | None = None
    cpu_count: int | None = None
    cpu: CpuTimes | None = None
    load: tuple[float, float, float] | None = None
    memory_percent: float | None = None
    memory_available_bytes: int | None = None
    swap_percent: float | None = None
    disks: tuple[DiskUsage, ...] = ()
    interfaces: tuple[NetCounters, ...] = ()
    processes: Mapping[str, int] | None = None


def sh(script: str) -> str:
    """Run ``script`` with /bin/sh whatever the login shell is (csh, fish...)."""
    return "/bin/sh -c " + shlex.quote(script)


def basic_script(target: ServerTarget, readings: bool = True) -> str:
    """The one command a poll runs for the basic readings (and process counts, if any)."""
    parts = ["LC_ALL=C; export LC_ALL"]
    if readings:
        # -l: network filesystems are left out unless asked for, since df on a
        # hung NFS mount blocks until the file server answers.
        local = "" if target.disks.network else " -l"
        parts += [
            f"echo {MARKER}loadavg; cat /proc/loadavg",
            f"echo {MARKER}meminfo; cat /proc/meminfo",
            f"echo {MARKER}stat; grep -E '^(cpu|btime)' /proc/stat",
            f"echo {MARKER}netdev; cat /proc/net/dev",
            f"echo {MARKER}df; df -P -T -k{local}",
        ]
    if target.processes:
        parts += [
            f"echo {MARKER}ps; ps -e -o pid= -o stat= -o comm=",
            f"echo {MARKER}args; ps -e -o pid= -o args=",
        ]
    parts.append(f"echo {MARKER}end")
    return sh("; ".join(parts))


def sections(text: str) -> dict[str, list[str]]:
    """``@@name`` marker lines split the output into named blocks of lines."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith(MARKER) and line[len(MARKER) :].isidentifier():
            current = found.setdefault(line[len(MARKER) :], [])
        elif current is not None:
            current.append(line)
    return found


def parse_basic(text: str, target: ServerTarget, readings: bool = True) -> BasicReadings:
    """Readings from the basic script's output; ParseError names the part that was unreadable."""
    blocks = sections(text)
    if "end" not in blocks:
        raise ParseError(f"the basic readings stopped before the end ({_excerpt(text)})")
    values: dict[str, Any] = {}
    if readings:
        if not any(blocks.get(name) for name in ("loadavg", "meminfo", "stat", "df")):
            raise ParseError(
                "the host printed none of /proc/loadavg, /proc/meminfo, /proc/stat or df "
                "(the basic profile needs a Linux host)"
            )
        values["load"] = parse_loadavg(blocks.get("loadavg", []))
        values.update(parse_meminfo(blocks.get("meminfo", [])))
        values.update(parse_stat(blocks.get("stat", [])))
        values["interfaces"] = parse_netdev(blocks.get("netdev", []), target)
        values["disks"] = parse_df(blocks.get("df", []), target)
    if target.processes:
        if not blocks.get("ps"):
            # An empty list would read as "nothing runs" and fail every process check.
            raise ParseError("ps printed no processes (the host's ps lacks -e -o?)")
        values["processes"] = count_processes(
            blocks.get("ps", []), blocks.get("args", []), target.processes
        )
    return BasicReadings(**values)


def parse_loadavg(lines: Sequence[str]) -> tuple[float, float, float] | None:
    if not lines:
        return None
    parts = lines[0].split()
    try:
        return float(parts[0]), float(parts[1]), float(parts[2])
    except (IndexError, ValueError):
        raise ParseError(f"/proc/loadavg is unreadable ({_excerpt(lines[0])})") from None


def parse_meminfo(lines: Sequence[str]) -> dict[str, Any]:
    """Memory % as ``via: local`` counts it: total minus available, so cache is not "used"."""
    if not lines:
        return {}
    kib: dict[str, int] = {}
    for line in lines:
        name, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            kib[name.strip()] = int(fields[0])
    total = kib.get("MemTotal")
    if not total:
        raise ParseError(f"/proc/meminfo has no MemTotal ({_excerpt(lines[0])})")
    available = kib.get("MemAvailable")
    if available is None:  # kernels before 3.14
        available = kib.get("MemFree", 0) + kib.get("Buffers", 0) + kib.get("Cached", 0)
    available = min(available, total)
    values: dict[str, Any] = {
        "memory_percent": round(100.0 * (total - available) / total, 2),
        "memory_available_bytes": available * 1024,
    }
    swap_total, swap_free = kib.get("SwapTotal"), kib.get("SwapFree")
    if swap_total is not None and swap_free is not None:
        used = max(0, swap_total - swap_free)
        values["swap_percent"] = round(100.0 * used / swap_total, 2) if swap_total else 0.0
    return values


def parse_stat(lines: Sequence[str]) -> dict[str, Any]:
    """Cumulative CPU times (seconds, all CPUs), the CPU count and the boot time."""
    values: dict[str, Any] = {}
    cpus = 0
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        try:
            if parts[0] == "cpu":
                ticks = [int(v) for v in parts[1:]]
                if len(ticks) < 4:
                    raise ValueError
                # user nice system idle iowait irq softirq steal: guest time is already
                # inside user and nice, so it is not added again (as via: local does).
                total = sum(ticks[:8])
                idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
                values["cpu"] = CpuTimes(total=total / USER_HZ, busy=(total - idle) / USER_HZ)
            elif parts[0].startswith("cpu") and parts[0][3:].isdigit():
                cpus += 1
            elif parts[0] == "btime":
                values["boot_time"] = float(int(parts[1]))
        except (IndexError, ValueError):
            raise ParseError(f"/proc/stat is unreadable ({_excerpt(line)})") from None
    if cpus:
        values["cpu_count"] = cpus
    return values


def parse_netdev(lines: Sequence[str], target: ServerTarget) -> tuple[NetCounters, ...]:
    counters: dict[str, NetCounters] = {}
    for line in lines:
        name, sep, rest = line.partition(":")
        if not sep or "|" in line:
            continue  # the two header lines
        fields = rest.split()
        try:
            numbers = [int(v) for v in fields[:16]]
            rx_bytes, _, rx_errs, rx_drop = numbers[0:4]
            tx_bytes, _, tx_errs, tx_drop = numbers[8:12]
        except ValueError:
            raise ParseError(f"/proc/net/dev is unreadable ({_excerpt(line)})") from None
        except IndexError:
            raise ParseError(f"/proc/net/dev has a short line ({_excerpt(line)})") from None
        interface = name.strip()
        counters[interface] = NetCounters(
            interface, rx_errs + tx_errs, rx_drop + tx_drop, rx_bytes, tx_bytes
        )
    selection = target.interfaces
    names = pick(sorted(counters), selection.include, selection.exclude, selection.max_interfaces)
    return tuple(counters[name] for name in names)


def parse_df(lines: Sequence[str], target: ServerTarget) -> tuple[DiskUsage, ...]:
    """``df -P -T -k`` rows, chosen with the same rules as ``via: local``.

    POSIX output keeps one row per filesystem; a mount point may contain
    spaces, so it is everything after the capacity column.
    """
    rows: dict[str, tuple[str, str, int, int, int]] = {}
    for line in lines:
        parts = line.split()
        if not parts or parts[0] == "Filesystem":
            continue
        if len(parts) < 7 or not parts[5].endswith("%"):
            raise ParseError(f"df printed a line it should not ({_excerpt(line)})")
        device, fstype = parts[0], parts[1]
        try:
            total, used, free = (int(v) * 1024 for v in parts[2:5])
        except ValueError:
            raise ParseError(f"df printed a line it should not ({_excerpt(line)})") from None
        mount = " ".join(parts[6:])
        rows.setdefault(mount, (device, fstype, total, used, free))
    partitions = [(device, mount, fstype) for mount, (device, fstype, *_) in rows.items()]
    return tuple(
        DiskUsage(mount, rows[mount][1], rows[mount][2], rows[mount][3], rows[mount][4])
        for mount in pick_mounts(partitions, target.disks)
    )


def count_processes(
    ps_lines: Sequence[str], args_lines: Sequence[str], names: Sequence[str]
) -> dict[str, int]:
    """Live processes per name, matched like ``via: local``: kernel name or argv[0]'s file name."""
    argv0: dict[str, str] = {}
    for line in args_lines:
        parts = line.split(None, 1)
        if len(parts) == 2:
            argv0[parts[0]] = os.path.basename(parts[1].split()[0]) if parts[1].split() else ""
    counts = dict.fromkeys(names, 0)
    for line in ps_lines:
        parts = line.split(None, 2)
        if len(parts) < 3:
            continue
        pid, stat, comm = parts
        if stat.startswith("Z"):
            continue
        known = {comm.strip(), argv0.get(pid, "")}
        for name in names:
            if name in known:
                counts[name] += 1
    return counts


# -- services ------------------------------------------------------------------


def services_command(systemctl: str, services: Sequence[str]) -> str:
    return sh(f"LC_ALL=C {systemctl} is-active -- " + " ".join(shlex.quote(s) for s in services))


def judge_services(services: Sequence[str], result: CommandResult) -> Finding:
    """One state line per unit (``active``, ``inactive``, ``failed``...); any but active fails.

    Without systemd, systemctl prints an error instead of states: that is a
    failure to check, reported with systemctl's own words.
    """
    states = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if len(states) != len(services) or not all(re.fullmatch(r"[a-z-]+", s) for s in states):
        said = _first_line(result.stderr) or _first_line(result.stdout) or "no output"
        if result.exit_code == 127:
            said = "command not found"
        return Finding(
            Status.FAIL,
            f"could not check services: systemctl is-active answered {said!r} "
            f"(exit {result.exit_code})",
            error_class=ErrorClass.RESPONSE,
        )
    points = tuple(
        MetricPoint(
            "server_service", {"active": int(state == "active"), "state": state}, {"service": name}
        )
        for name, state in zip(services, states, strict=True)
    )
    down = [f"service {name} is {state}" for name, state in zip(services, states, strict=True)
            if state != "active"]  # fmt: skip
    if down:
        return Finding(Status.FAIL, "; ".join(down), points, ErrorClass.THRESHOLD)
    return Finding(Status.OK, f"services active: {', '.join(services)}", points)


# -- own commands --------------------------------------------------------------


def judge_command(command: SshCommand, result: CommandResult) -> Finding:
    """Fields from one command's result, judged against its thresholds."""
    exit_code = result.exit_code if result.exit_code is not None else -1
    fields: dict[str, float | int] = {
        "exit_code": exit_code,
        "duration_ms": round(result.seconds * 1000, 3),
    }
    tags = {"command": command.name}
    if command.parse != "exit":
        if exit_code not in command.ok_exit:
            said = _first_line(result.stderr) or _first_line(result.stdout)
            return Finding(
                Status.FAIL,
                f"command {command.name} exited with {exit_code}" + (f": {said}" if said else ""),
                (MetricPoint("server_command", fields, tags),),
                ErrorClass.RESPONSE,
            )
        try:
            parsed = parse_output(command, result.stdout)
        except ParseError as exc:
            return Finding(
                Status.FAIL,
                f"command {command.name}: {exc}",
                (MetricPoint("server_command", fields, tags),),
                ErrorClass.PROTOCOL,
            )
        fields.update(parsed)
    point = MetricPoint("server_command", fields, tags)
    breaches = []
    for name, limit in command.limits().items():
        value = fields.get(name)
        if value is None:
            continue
        rule = Rule(name, f"{command.name} {name}", lower_is_worse=limit.below)
        breach = judge(rule, _limit(limit), float(value), "")
        if breach is not None:
            breaches.append(breach)
    if breaches:
        breaches.sort(key=lambda b: b.status is not Status.FAIL)
        sentences = [
            _exit_sentence(command, result, exit_code, b.status, b.bound)
            if b.rule.name == "exit_code"
            else b.sentence()
            for b in breaches
        ]
        status = Status.FAIL if breaches[0].status is Status.FAIL else Status.WARN
        return Finding(status, "; ".join(sentences), (point,), ErrorClass.THRESHOLD)
    shown = {k: v for k, v in fields.items() if k not in ("exit_code", "duration_ms")}
    if not shown:
        return Finding(Status.OK, f"{command.name} exit {exit_code}", (point,))
    values = ", ".join(f"{k} {format_value(float(v))}" for k, v in shown.items())
    if list(shown) == ["value"]:
        values = format_value(float(shown["value"]))
    return Finding(Status.OK, f"{command.name} {values}", (point,))


def parse_output(command: SshCommand, stdout: str) -> dict[str, float]:
    """The numeric fields a command's output holds, per its ``parse`` rule."""
    if command.parse == "number":
        return {"value": _number(stdout.strip(), "output")}
    if command.parse == "regex":
        assert command.pattern is not None
        match = re.search(command.pattern, stdout, re.MULTILINE)
        if match is None:
            raise ParseError(f"output does not match the pattern ({_excerpt(stdout)})")
        return {
            name: _number(match.group(name), f"group {name}")
            for name in re.compile(command.pattern).groupindex
        }
    if command.parse == "json":
        try:
            document = json.loads(stdout)
        except ValueError as exc:
            raise ParseError(
                f"output is not JSON ({getattr(exc, 'msg', exc)}: {_excerpt(stdout)})"
            ) from None
        return {
            name: _number(_at_path(document, path), path) for name, path in command.fields.items()
        }
    return {}


def _at_path(document: Any, path: str) -> Any:
    current = document
    for step in path.split("."):
        if isinstance(current, Mapping) and step in current:
            current = current[step]
        elif (
            isinstance(current, list)
            and step.lstrip("-").isdigit()
            and -len(current) <= int(step) < len(current)
        ):
            current = current[int(step)]
        else:
            raise ParseError(f"the JSON output has nothing at {path}")
    return current


def _number(value: object, what: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            pass
        else:
            if number == number and abs(number) != float("inf"):  # no NaN or infinity
                return number
    shown = "nothing" if value is None or value == "" else _excerpt(str(value))
    raise ParseError(f"{what} is not a number ({shown})")


def _limit(limit: FieldLimit) -> Limit:
    return Limit(warn=limit.warn, fail=limit.fail)


def _exit_sentence(
    command: SshCommand, result: CommandResult, exit_code: int, status: Status, bound: float
) -> str:
    said = _first_line(result.stderr) or _first_line(result.stdout)
    level = "fail" if status is Status.FAIL else "warn"
    text = f"command {command.name} exited with {exit_code} ({level} above {format_value(bound)})"
    return text + (f": {said}" if said else "")


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line if len(line) <= 160 else line[:160] + "…"
    return ""


def _excerpt(text: str, size: int = _EXCERPT) -> str:
    text = text.strip().replace("\n", "⏎")
    if not text:
        return "empty output"
    return repr(text if len(text) <= size else text[:size] + "…")
