"""Judging what only SNMP reads — processors, interfaces, own OIDs — as findings (pure).

``evaluate`` judges the ``ServerSample`` part (memory, swap, disks, load,
processes) the same way for every source. This module turns the rest into
``probes.server.findings.Finding`` values, which ``with_findings`` folds into
that observation:

- ``snmp_cpu`` points: ``load_percent`` per processor (``processor`` = 0, 1,
  ... in index order) and their average (``processor`` = ``all``), which the
  ``cpu_percent`` threshold applies to. HOST-RESOURCES-MIB's hrProcessorLoad
  is the agent's own one-minute average, not busy time between two polls, so
  it is kept apart from ``server.cpu_percent``;
- ``snmp_if`` points (tag ``interface``): oper status, and octet, error and
  discard rates between two polls;
- ``snmp_oid`` points (tag ``name``): each configured OID's value, or its
  growth per second for a counter.

The state kept between polls (``ctx.state["snmp"]``) is JSON::

    {"taken_at": 1700000000.0, "uptime": 123456,
     "if": {"eth0": [in_octets, out_octets, in_errors, out_errors, in_discards, out_discards]},
     "oid": {"active-calls": [value, bits]}}

Rates are only computed against a previous poll that is recent and from the
same agent run: a sysUpTime smaller than last time means the agent restarted
(or its uptime wrapped after 497 days) and its counters may have restarted
with it, so that poll only re-primes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from core.observation import ErrorClass, MetricPoint, Status
from probes.server.config import SERVER_RULES
from probes.server.counters import counter_rate
from probes.server.findings import Finding
from probes.server.snmp_config import SnmpOid
from probes.server.snmp_profiles import (
    COUNTER_FIELDS,
    IF_STATUS,
    MAX_PROCESSORS,
    InterfaceRow,
    MalformedAnswer,
    SnmpReading,
    Var,
    number,
)
from probes.thresholds import Breach, Limit, Rule, format_value, judge

RULES = {rule.name: rule for rule in SERVER_RULES}
_SUMMARY_ITEMS = 3


def breach_finding(breach: Breach) -> Finding:
    return Finding(breach.status, breach.sentence(), error_class=ErrorClass.THRESHOLD)


def usable_previous(
    previous: Mapping[str, Any] | None, reading: SnmpReading, max_age: float
) -> Mapping[str, Any] | None:
    """Last poll's SNMP state if rates against it mean something (see the module doc)."""
    if not previous or not isinstance(previous.get("taken_at"), int | float):
        return None
    age = reading.sample.taken_at - previous["taken_at"]
    if age <= 0 or age > max_age:
        return None
    uptime = previous.get("uptime")
    if not isinstance(uptime, int) or isinstance(uptime, bool) or reading.uptime_ticks < uptime:
        return None
    return previous


def cpu_findings(loads: Sequence[float], limit: Limit | None) -> list[Finding]:
    """``snmp_cpu`` points per processor and on average; the ``cpu_percent`` threshold."""
    if not loads:
        return []
    average = sum(loads) / len(loads)
    points = [
        MetricPoint("snmp_cpu", {"load_percent": float(load)}, {"processor": str(position)})
        for position, load in enumerate(loads[:MAX_PROCESSORS])
    ]
    points.append(
        MetricPoint("snmp_cpu", {"load_percent": round(average, 2)}, {"processor": "all"})
    )
    shown = format_value(round(average, 1), "%")
    summary = Finding(Status.OK, f"cpu {shown} (1 min, {len(loads)} processors)", tuple(points))
    if limit is not None and (breach := judge(RULES["cpu_percent"], limit, average)):
        return [summary, breach_finding(breach)]
    return [summary]


def _counters(value: object) -> list[int | None] | None:
    """Persisted counters of one interface, if they have the shape this version writes."""
    if not isinstance(value, list) or len(value) != len(COUNTER_FIELDS):
        return None
    if not all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in value):
        return None
    return value


def interface_findings(
    rows: Sequence[InterfaceRow],
    previous: Mapping[str, Any] | None,
    elapsed: float,
    thresholds: Mapping[str, Limit | None],
    interface_down: str,
) -> tuple[list[Finding], dict[str, list[int | None]]]:
    """``snmp_if`` points, error/discard thresholds and down interfaces; the next state."""
    before_all = previous if isinstance(previous, Mapping) else {}
    points: list[MetricPoint] = []
    problems: list[Finding] = []
    down: list[str] = []
    for row in rows:
        fields: dict[str, float | int] = {"oper_status": int(row.oper_status)}
        before = _counters(before_all.get(row.name))
        if before is not None and elapsed > 0:
            for (name, bits), old, new in zip(COUNTER_FIELDS, before, row.counters(), strict=True):
                if "bytes" in name:
                    bits = row.octet_bits
                if old is not None and new is not None:
                    rate = counter_rate(old, new, elapsed, bits)
                    if rate is not None:
                        fields[name] = round(rate, 1 if "bytes" in name else 4)
        points.append(MetricPoint("snmp_if", fields, {"interface": row.name}))
        errors = _sum(fields, "in_errors_per_s", "out_errors_per_s")
        drops = _sum(fields, "in_discards_per_s", "out_discards_per_s")
        for rule_name, value in (("net_errors_per_s", errors), ("net_drops_per_s", drops)):
            limit = thresholds.get(rule_name)
            if value is None or limit is None:
                continue
            if breach := judge(RULES[rule_name], limit, value, row.name):
                problems.append(breach_finding(breach))
        if row.admin_up and not row.oper_up:
            down.append(row.name)
            if interface_down != "ok":
                state = IF_STATUS.get(row.oper_status, f"in status {row.oper_status}")
                problems.append(
                    Finding(
                        Status(interface_down),
                        f"interface {row.name} is {state}",
                        error_class=ErrorClass.THRESHOLD,
                    )
                )
    state = {row.name: row.counters() for row in rows}
    if not rows:
        return [Finding(Status.OK, "no interfaces chosen")], state
    up = [row.name for row in rows if row.oper_up]
    if down:
        sentence = f"{len(up)} of {len(rows)} interfaces up"
    else:
        more = f" and {len(up) - _SUMMARY_ITEMS} more" if len(up) > _SUMMARY_ITEMS else ""
        sentence = "interfaces up: " + ", ".join(up[:_SUMMARY_ITEMS]) + more if up else ""
        sentence = sentence or f"{len(rows)} interfaces, none up"
    return [Finding(Status.OK, sentence, tuple(points)), *problems], state


def _sum(fields: Mapping[str, float | int], *names: str) -> float | None:
    values = [fields[name] for name in names if name in fields]
    return float(sum(values)) if values else None


def oid_rule(oid: SnmpOid) -> tuple[Rule, Limit]:
    """The threshold rule of a configured OID (counters are judged per second)."""
    unit = oid.unit + "/s" if oid.type == "counter" else oid.unit
    rule = Rule(oid.name, oid.name, unit, lower_is_worse=oid.below)
    return rule, Limit(warn=oid.warn, fail=oid.fail)


def _previous_counter(value: object) -> int | None:
    if isinstance(value, list) and len(value) == 2:
        raw = value[0]
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
    return None


def oid_findings(
    configured: Sequence[SnmpOid],
    values: Mapping[str, Var],
    previous: Mapping[str, Any] | None,
    elapsed: float,
) -> tuple[list[Finding], dict[str, list[int | None]]]:
    """``snmp_oid`` points and thresholds of the configured OIDs; the next state."""
    before_all = previous if isinstance(previous, Mapping) else {}
    findings: list[Finding] = []
    state: dict[str, list[int | None]] = {}
    for oid in configured:
        var = values.get(oid.name)
        if var is None or var.missing:
            what = "object" if var is not None and var.kind == "NoSuchObject" else "instance"
            sentence = f"SNMP: no {what} for OID {oid.oid} ({oid.name})"
            findings.append(Finding(Status.FAIL, sentence, error_class=ErrorClass.RESPONSE))
            continue
        try:
            raw = number(var)
        except MalformedAnswer as exc:
            sentence = f"{exc} ({oid.name})"
            findings.append(Finding(Status.FAIL, sentence, error_class=ErrorClass.PROTOCOL))
            continue
        rule, limit = oid_rule(oid)
        value: float | None
        if oid.type == "gauge":
            value = float(raw)
        elif not isinstance(raw, int):
            sentence = f"SNMP: OID {oid.oid} ({oid.name}) is {var.kind}, not a counter"
            findings.append(Finding(Status.FAIL, sentence, error_class=ErrorClass.PROTOCOL))
            continue
        else:
            bits = 32 if var.kind == "Counter32" else None
            state[oid.name] = [raw, bits]
            before = _previous_counter(before_all.get(oid.name))
            rate = None if before is None else counter_rate(before, raw, elapsed, bits)
            value = None if rate is None else round(rate, 4)
        if value is None:
            continue  # a counter's first poll: its rate starts next time
        point = MetricPoint("snmp_oid", {"value": value}, {"name": oid.name})
        shown = f"{oid.name} {format_value(round(value, 3), rule.unit)}"
        findings.append(Finding(Status.OK, shown, (point,)))
        if breach := judge(rule, limit, value):
            findings.append(breach_finding(breach))
    return findings, state


def snmp_findings(
    reading: SnmpReading,
    previous: Mapping[str, Any] | None,
    thresholds: Mapping[str, Limit | None],
    oids: Sequence[SnmpOid],
    interface_down: str,
    max_age: float,
) -> tuple[list[Finding], dict[str, Any]]:
    """The findings of one SNMP poll and the SNMP state for the next one."""
    prev = usable_previous(previous, reading, max_age)
    elapsed = reading.sample.taken_at - prev["taken_at"] if prev else 0.0
    findings = cpu_findings(reading.processor_loads, thresholds.get("cpu_percent"))
    state: dict[str, Any] = {"taken_at": reading.sample.taken_at, "uptime": reading.uptime_ticks}
    if reading.interfaces is not None:
        found, state["if"] = interface_findings(
            reading.interfaces,
            prev.get("if") if prev else None,
            elapsed,
            thresholds,
            interface_down,
        )
        findings += found
    if oids:
        found, state["oid"] = oid_findings(
            oids, reading.oids, prev.get("oid") if prev else None, elapsed
        )
        findings += found
    return findings, state
