"""The ``server`` probe ``via: snmp``: config, row parsing, rates, and polls of a real Net-SNMP snmpd.

Parsing and rates are fed small hand-made tables; everything about the wire —
v2c, v3 authPriv, wrong credentials, missing OIDs, two polls for rates, an
agent restart — runs against ``snmpd`` started by ``tests/peers/snmpd.py``,
and the host readings are checked against ``snmpbulkwalk`` on the same agent.
Two stand-ins, named as such, answer what no real agent sends: a local UDP
socket that answers garbage, and one that answers well-formed SNMP with a
string where a number belongs.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pyasn1.codec.ber import decoder, encoder
from pydantic import ValidationError
from pysnmp.proto import api, errind

from core.observation import ErrorClass, Observation, Status
from core.shared import SharedResources
from monitor.config import load_config
from monitor.config.errors import ConfigError
from probes.base import ProbeContext
from probes.server import SOURCES, ServerTarget, check
from probes.server.config import DiskSelection, InterfaceSelection
from probes.server.snmp import (
    MAX_IN_FLIGHT,
    MAX_WAITING,
    SHARED_KEY,
    Sessions,
    error_detail,
    status_detail,
)
from probes.server.snmp_config import SnmpOid, SnmpOptions
from probes.server.snmp_evaluate import (
    cpu_findings,
    interface_findings,
    oid_findings,
    usable_previous,
)
from probes.server.snmp_profiles import (
    HR_STORAGE_COLUMNS,
    IF_ADMIN_STATUS,
    IF_DESCR,
    IF_HC_IN_OCTETS,
    IF_IN_OCTETS,
    IF_NAME,
    IF_OPER_STATUS,
    InterfaceRow,
    MalformedAnswer,
    SnmpReading,
    Var,
    count_processes,
    disks,
    interface_rows,
    load_average,
    memory_and_swap,
    number,
    server_sample,
    storage_rows,
    table,
)
from probes.thresholds import Limit
from tests.peers import free_port, require_binary
from tests.peers.snmpd import SnmpdAgent, snmpd_agent, snmpd_factory

__all__ = ["snmpd_agent", "snmpd_factory"]  # fixtures used by name below

QUIET = {"cpu_percent": None, "load_per_core": None, "memory_percent": None, "disk_percent": None}
"""Thresholds off for values a busy test machine may cross; these tests are about SNMP."""
RAM, VIRTUAL, OTHER, FIXED = (f"1.3.6.1.2.1.25.2.1.{n}" for n in (2, 3, 1, 4))


def target(snmp: dict[str, Any], **fields: Any) -> ServerTarget:
    given = {"id": "edge-host", "kind": "server", "via": "snmp", "thresholds": QUIET, "snmp": snmp}
    return ServerTarget.model_validate({**given, **fields})


@pytest.fixture
def ctx() -> Iterator[ProbeContext]:
    """A context whose shared SNMP engines are closed after the test, as the engine does on stop.

    5 s: a loaded CI machine must not turn a slow v3 discovery into a failure.
    """
    context = ProbeContext("edge-host", timeout=5.0)
    yield context
    asyncio.run(context.shared.aclose())


def poll(t: ServerTarget, ctx: ProbeContext) -> Observation:
    return asyncio.run(check(t, ctx))


def points(observation: Observation, measurement: str) -> dict[str, dict[str, Any]]:
    """The observation's points of one measurement, by their single tag value ('' if none)."""
    return {
        next(iter(p.tags.values()), ""): dict(p.fields)
        for p in observation.metrics
        if p.measurement == measurement
    }


# -- config -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("snmp", "message"),
    [
        ({"host": "10.0.0.1"}, "version 2c needs a community"),
        ({"host": "10.0.0.1", "version": 3}, "version 3 needs a user"),
        (
            {"host": "10.0.0.1", "version": 3, "user": "u", "auth_key": "short"},
            "must be at least 8 characters (RFC 3414)",
        ),
        (
            {"host": "10.0.0.1", "version": 3, "user": "u", "priv_key": "12345678"},
            "needs auth_key too (SNMPv3 has no privacy without authentication)",
        ),
        (
            {"host": "10.0.0.1", "community": "c", "user": "u"},
            "is for version 3; version 2c uses community",
        ),
        ({"host": "10.0.0.1", "version": 1, "community": "c"}, "Input should be '2c' or '3'"),
        (
            {"host": "10.0.0.1", "community": "c", "oids": [{"name": "x", "oid": "sysUpTime.0"}]},
            "must be a dotted numeric OID",
        ),
        (
            {
                "host": "10.0.0.1",
                "community": "c",
                "oids": [{"name": "x", "oid": "1.3.6.1.2.1.1.3.0", "warn": 9, "fail": 5}],
            },
            "warn must not be above fail",
        ),
        (
            {
                "host": "10.0.0.1",
                "community": "c",
                "oids": [{"name": "x", "oid": "1.3.6.1.1.0"}, {"name": "x", "oid": "1.3.6.1.2.0"}],
            },
            "each oid name may appear once",
        ),
        ({"host": "10.0.0.1", "community": "c", "profiles": []}, "nothing to read"),
        ({"host": "10.0.0.1", "community": "c", "port": 0}, "greater than or equal to 1"),
    ],
    ids=[
        "v2c-without-community",
        "v3-without-user",
        "v3-auth-key-too-short",
        "v3-privacy-without-authentication",
        "v2c-with-v3-user",
        "version-1-is-not-offered",
        "oid-given-as-a-mib-name",
        "oid-warn-above-fail",
        "oid-names-repeat",
        "nothing-to-read",
        "port-zero",
    ],
)
def test_a_bad_snmp_section_is_a_config_error_that_says_why(snmp: dict[str, Any], message: str):
    with pytest.raises(ValidationError, match=re.escape(message)):
        target(snmp)


SITE_WITH_ERRORS = """\
targets:
  - id: pbx-2
    kind: server
    via: snmp
    snmp:
      host: 10.0.0.22
      community: c0mmunity-secret
      oids:
        - {name: calls, oid: sysUpTime.0}
  - id: pbx-3
    kind: server
    via: snmp
    snmp:
      host: 10.0.0.23
  - id: pbx-4
    kind: server
    via: snmp
    snmp:
      host: 10.0.0.24
      version: 3
      user: mon
      community: c0mmunity-secret
"""


def test_snmp_config_errors_name_the_file_line_and_key(tmp_path: Path):
    site = tmp_path / "site.yaml"
    site.write_text(SITE_WITH_ERRORS)
    with pytest.raises(ConfigError) as raised:
        load_config(site, env={})
    text = str(raised.value)
    assert text.splitlines()[1:] == [
        f"{site}:9: targets[0].snmp.oids[0].oid: must be a dotted numeric OID like "
        "1.3.6.1.2.1.1.3.0 (MIB names are not looked up)",
        f"{site}:13: targets[1].snmp: version 2c needs a community",
        f"{site}:22: targets[2].snmp.community: is for version 2c; version 3 uses user and keys",
    ]
    assert "c0mmunity-secret" not in text


def test_via_snmp_needs_its_section_and_the_section_needs_via_snmp():
    with pytest.raises(ValidationError, match="via: snmp needs an snmp section"):
        ServerTarget.model_validate({"id": "a", "kind": "server", "via": "snmp"})
    with pytest.raises(ValidationError, match="only used with via: snmp, not local"):
        ServerTarget.model_validate(
            {"id": "a", "kind": "server", "snmp": {"host": "h", "community": "c"}}
        )


def test_version_3_from_yaml_as_a_number_and_oids_with_a_leading_dot_are_accepted():
    options = SnmpOptions.model_validate(
        {
            "host": "10.0.0.1",
            "version": 3,
            "user": "u",
            "auth_key": "12345678",
            "oids": [{"name": "calls", "oid": ".1.3.6.1.4.1.9.1.0"}],
        }
    )
    assert (options.version, options.security_level, options.oids[0].oid) == (
        "3",
        "authNoPriv",
        "1.3.6.1.4.1.9.1.0",
    )


def test_community_and_keys_never_show_in_the_targets_repr():
    t = target(
        {
            "host": "10.0.0.1",
            "version": 3,
            "user": "mon",
            "auth_key": "A" * 12,
            "priv_key": "P" * 12,
        }
    )
    shown = repr(t) + str(t)
    assert "A" * 12 not in shown and "P" * 12 not in shown
    assert "mon" in shown
    assert "c0mmunity-secret" not in repr(target({"host": "h", "community": "c0mmunity-secret"}))


# -- parsing rows (pure) --------------------------------------------------------------


def storage(rows: list[tuple[int, str, str, int, int, int]]) -> dict[str, dict[str, Var]]:
    """An hrStorageTable from (index, type, descr, units, size, used) rows."""
    columns: list[list[Var]] = [[] for _ in HR_STORAGE_COLUMNS]
    for index, type_, descr, units, size, used in rows:
        cells = [
            Var("", "ObjectIdentifier", type_),
            Var("", "OctetString", descr),
            Var("", "Integer", units),
            Var("", "Integer", size),
            Var("", "Integer", used),
        ]
        for column, (oid, cell) in enumerate(zip(HR_STORAGE_COLUMNS, cells, strict=True)):
            columns[column].append(Var(f"{oid}.{index}", cell.kind, cell.value))
    return table(HR_STORAGE_COLUMNS, columns)


NET_SNMP_STORAGE = [
    (1, RAM, "Physical memory", 1024, 1000, 900),
    (3, VIRTUAL, "Virtual memory", 1024, 1500, 950),
    (6, OTHER, "Memory buffers", 1024, 1000, 100),
    (7, OTHER, "Cached memory", 1024, 400, 400),
    (10, VIRTUAL, "Swap space", 1024, 500, 50),
    (11, OTHER, "Available memory", 1024, 600, 0),
    (31, FIXED, "/", 4096, 1000, 250),
    (32, FIXED, "/dev/shm", 4096, 100, 1),
    (33, FIXED, "/sys/fs/cgroup", 4096, 100, 0),
    (34, FIXED, "/var/spool/asterisk", 4096, 2000, 1900),
    (35, FIXED, "/empty", 4096, 0, 0),
]


def test_memory_is_what_is_not_available_and_swap_is_the_swap_row():
    memory, available, swap = memory_and_swap(storage_rows(storage(NET_SNMP_STORAGE)))
    assert (memory, available, swap) == (40.0, 600 * 1024, 10.0)


def test_without_an_available_row_buffers_and_cache_count_as_free():
    rows = [row for row in NET_SNMP_STORAGE if row[0] != 11]
    memory, available, _ = memory_and_swap(storage_rows(storage(rows)))
    # 1000 total - 900 used + 100 buffers + 400 cached = 600 available.
    assert (memory, available) == (40.0, 600 * 1024)


def test_disks_skip_pseudo_mounts_and_empty_rows_and_follow_the_selection():
    rows = storage_rows(storage(NET_SNMP_STORAGE))
    assert [d.mount for d in disks(rows, DiskSelection())] == ["/", "/var/spool/asterisk"]
    spool = disks(rows, DiskSelection(include=["/var/*"]))
    assert [(d.mount, d.total_bytes, d.free_bytes, round(d.percent, 1)) for d in spool] == [
        ("/var/spool/asterisk", 2000 * 4096, 100 * 4096, 95.0)
    ]
    assert len(disks(rows, DiskSelection(max_mounts=1))) == 1


def test_a_size_wrapped_into_a_negative_integer32_is_read_as_unsigned():
    rows = storage_rows(storage([(31, FIXED, "/data", 65536, -(2**31), 2**30)]))
    assert rows[0].total_bytes == 2**31 * 65536


@pytest.mark.parametrize(
    ("var", "expected"),
    [
        (Var("1.3.6.1.4.1.2021.10.1.3.1", "OctetString", "0.15"), 0.15),
        (Var("1.3.6.1.2.1.1.3.0", "TimeTicks", 4200), 4200),
        (Var("1.3.6.1.2.1.31.1.1.1.6.1", "Counter64", 2**63), 2**63),
    ],
    ids=["load-average-as-text", "timeticks", "counter64"],
)
def test_numbers_come_from_numeric_types_and_decimal_text(var: Var, expected: float):
    assert number(var) == expected


@pytest.mark.parametrize(
    ("var", "sentence"),
    [
        (
            Var("1.3.6.1.2.1.25.2.3.1.5.36", "OctetString", "lots"),
            "SNMP: hrStorageSize.36 (1.3.6.1.2.1.25.2.3.1.5.36) is OctetString 'lots', not a number",
        ),
        (
            Var("1.3.6.1.4.1.1.0", "OctetString", "nan"),
            "SNMP: 1.3.6.1.4.1.1.0 is OctetString 'nan', not a number",
        ),
        (
            Var("1.3.6.1.2.1.1.3.0", "ObjectIdentifier", "1.3.6"),
            "SNMP: sysUpTime.0 (1.3.6.1.2.1.1.3.0) is ObjectIdentifier '1.3.6', not a number",
        ),
    ],
    ids=["text-that-is-no-number", "nan-text", "an-oid"],
)
def test_a_value_of_the_wrong_type_is_a_sentence_naming_the_mib_column(var: Var, sentence: str):
    with pytest.raises(MalformedAnswer) as raised:
        number(var)
    assert str(raised.value) == sentence


def test_processes_are_counted_by_name_and_long_names_by_their_first_15_characters():
    rows = {
        str(i): Var(f"1.3.6.1.2.1.25.4.2.1.2.{i}", "OctetString", name)
        for i, name in enumerate(["asterisk", "asterisk", "kamailio", "dialer-supervis"])
    }
    counts = count_processes(rows, ["asterisk", "dialer-supervisor", "mysqld"])
    assert counts == {"asterisk": 2, "dialer-supervisor": 1, "mysqld": 0}


def test_load_averages_come_from_ucd_text_and_are_absent_without_that_mib():
    la = [f"1.3.6.1.4.1.2021.10.1.3.{n}" for n in (1, 2, 3)]
    given = [
        Var(oid, "OctetString", text) for oid, text in zip(la, ["0.50", "1.25", "2"], strict=True)
    ]
    assert load_average(given) == (0.5, 1.25, 2.0)
    assert load_average([Var(oid, "NoSuchObject") for oid in la]) is None


def test_processor_loads_give_one_point_each_and_the_average_is_judged():
    findings = cpu_findings([90.0, 100.0], Limit(warn=85, fail=95))
    assert [(f.status, f.sentence) for f in findings] == [
        (Status.OK, "cpu 95% (1 min, 2 processors)"),
        (Status.WARN, "cpu at 95% (warn above 85%)"),
    ]
    assert {p.tags["processor"]: p.fields["load_percent"] for p in findings[0].points} == {
        "0": 90.0,
        "1": 100.0,
        "all": 95.0,
    }
    assert cpu_findings([], Limit(warn=1)) == []


def iftable(rows: list[tuple[int, str | None, str, int, int]]) -> dict[str, dict[str, Var]]:
    """IF-MIB columns from (index, ifName or None, ifDescr, admin, oper) rows."""
    walked: dict[str, list[Var]] = {
        c: [] for c in (IF_DESCR, IF_NAME, IF_ADMIN_STATUS, IF_OPER_STATUS)
    }
    for index, name, descr, admin, oper in rows:
        walked[IF_DESCR].append(Var(f"{IF_DESCR}.{index}", "OctetString", descr))
        if name is not None:
            walked[IF_NAME].append(Var(f"{IF_NAME}.{index}", "OctetString", name))
        walked[IF_ADMIN_STATUS].append(Var(f"{IF_ADMIN_STATUS}.{index}", "Integer", admin))
        walked[IF_OPER_STATUS].append(Var(f"{IF_OPER_STATUS}.{index}", "Integer", oper))
    columns = list(walked)
    return table(columns, [walked[c] for c in columns])


def test_interfaces_are_named_by_ifname_else_ifdescr_and_capped():
    columns = iftable(
        [(1, "lo", "lo", 1, 1), (2, None, "GigabitEthernet0/1", 1, 2), (3, "eth0", "Intel", 2, 2)]
    )
    rows = interface_rows(columns, InterfaceSelection(exclude=[]))
    assert [(r.name, r.admin_up, r.oper_up) for r in rows] == [
        ("GigabitEthernet0/1", True, False),
        ("eth0", False, False),
        ("lo", True, True),
    ]
    assert [r.name for r in interface_rows(columns, InterfaceSelection())] == [
        "GigabitEthernet0/1",
        "eth0",
    ]  # lo is excluded by default
    assert len(interface_rows(columns, InterfaceSelection(max_interfaces=1, exclude=[]))) == 1


# -- rates between polls (pure) ---------------------------------------------------------


def reading(taken_at: float, uptime: int, **more: Any) -> SnmpReading:
    return SnmpReading(server_sample(taken_at, uptime / 100, None, {}), uptime, **more)


THRESHOLDS = {"net_errors_per_s": Limit(warn=1), "net_drops_per_s": None}


def test_interface_rates_unwrap_counter32_and_treat_a_smaller_64_bit_counter_as_reset():
    before = {"eth0": [1_000, 2**64 - 10, 2**32 - 5, 0, 0, 0]}
    row = InterfaceRow("eth0", True, 1, 11_000, 500, 15, 0, 0, 0)
    findings, state = interface_findings([row], before, 10.0, THRESHOLDS, "warn")
    fields = findings[0].points[0].fields
    assert fields["in_bytes_per_s"] == 1000.0  # (11000 - 1000) / 10 s
    assert fields["out_bytes_per_s"] == 50.0  # reset: counted from zero, 500 / 10 s
    assert fields["in_errors_per_s"] == 2.0  # wrapped: 5 + 15 = 20 errors / 10 s
    assert [f.sentence for f in findings[1:]] == ["eth0 errors at 2/s (warn above 1/s)"]
    assert state == {"eth0": [11_000, 500, 15, 0, 0, 0]}


def test_32_bit_octet_counters_are_unwrapped():
    before = {"sw1": [2**32 - 1_000, 0, 0, 0, 0, 0]}
    row = InterfaceRow("sw1", True, 1, 9_000, 0, 0, 0, 0, 0, octet_bits=32)
    findings, _ = interface_findings([row], before, 10.0, THRESHOLDS, "warn")
    assert findings[0].points[0].fields["in_bytes_per_s"] == 1000.0  # 1000 + 9000 in 10 s


def test_an_interface_up_by_admin_but_down_in_operation_is_reported_as_configured():
    rows = [InterfaceRow("eth1", True, 7), InterfaceRow("eth2", False, 2)]
    findings, _ = interface_findings(rows, None, 0.0, THRESHOLDS, "fail")
    assert [(f.status, f.sentence) for f in findings] == [
        (Status.OK, "0 of 2 interfaces up"),
        (Status.FAIL, "interface eth1 is lowerLayerDown"),
    ]
    quiet, _ = interface_findings(rows, None, 0.0, THRESHOLDS, "ok")
    assert [f.status for f in quiet] == [Status.OK]


@pytest.mark.parametrize(
    ("previous", "now", "usable"),
    [
        ({"taken_at": 100.0, "uptime": 5000}, reading(130.0, 8000), True),
        ({"taken_at": 100.0, "uptime": 5000}, reading(130.0, 300), False),
        ({"taken_at": 100.0, "uptime": 5000}, reading(100.0, 5000), False),
        ({"taken_at": 100.0, "uptime": 5000}, reading(500.0, 45000), False),
        ({"taken_at": 100.0, "uptime": "5000"}, reading(130.0, 8000), False),
        (None, reading(130.0, 8000), False),
    ],
    ids=[
        "same-agent-run",
        "sysuptime-went-backwards-agent-restarted",
        "no-time-passed",
        "too-old",
        "state-from-elsewhere",
        "first-poll",
    ],
)
def test_rates_use_the_previous_poll_only_when_it_is_recent_and_from_the_same_agent_run(
    previous: dict[str, Any] | None, now: SnmpReading, usable: bool
):
    assert (usable_previous(previous, now, max_age=120.0) is not None) is usable


def test_counter_oids_become_rates_and_gauges_trip_their_thresholds():
    oids = [
        SnmpOid(name="calls", oid="1.3.6.1.4.1.1.1.0", type="counter", unit="calls", warn=5),
        SnmpOid(name="free-licences", oid="1.3.6.1.4.1.1.2.0", fail=10, below=True),
        SnmpOid(name="gone", oid="1.3.6.1.4.1.1.3.0"),
    ]
    values = {
        "calls": Var("1.3.6.1.4.1.1.1.0", "Counter32", 40),
        "free-licences": Var("1.3.6.1.4.1.1.2.0", "Gauge32", 3),
        "gone": Var("1.3.6.1.4.1.1.3.0", "NoSuchInstance"),
    }
    previous = {"calls": [2**32 - 60, 32]}
    findings, state = oid_findings(oids, values, previous, 10.0)
    assert [(f.status, f.sentence) for f in findings] == [
        (Status.OK, "calls 10 calls/s"),
        (Status.WARN, "calls at 10 calls/s (warn above 5 calls/s)"),
        (Status.OK, "free-licences 3"),
        (Status.FAIL, "free-licences at 3 (fail below 10)"),
        (Status.FAIL, "SNMP: no instance for OID 1.3.6.1.4.1.1.3.0 (gone)"),
    ]
    assert state == {"calls": [40, 32]}


@pytest.mark.parametrize(
    ("indication", "sentence", "error_class"),
    [
        (
            errind.requestTimedOut,
            "SNMP: no answer from 10.0.0.1:161 within 2 s "
            "(community or v3 credentials wrong, or agent down)",
            ErrorClass.TIMEOUT,
        ),
        (errind.unknownUserName, "SNMP: 10.0.0.1:161 does not know v3 user 'mon'", ErrorClass.AUTH),
        (
            errind.wrongDigest,
            "SNMP: 10.0.0.1:161 rejected the auth_key of v3 user 'mon' "
            "(wrong key or auth_protocol SHA)",
            ErrorClass.AUTH,
        ),
        (
            errind.decryptionError,
            "SNMP: could not decrypt the answer from 10.0.0.1:161 "
            "(wrong priv_key or priv_protocol AES)",
            ErrorClass.AUTH,
        ),
    ],
    ids=["timeout", "unknown-user", "wrong-auth-key", "wrong-priv-key"],
)
def test_pysnmp_error_indications_become_sentences(
    indication: object, sentence: str, error_class: ErrorClass
):
    options = SnmpOptions(
        host="10.0.0.1", version="3", user="mon", auth_key="12345678", priv_key="12345678"
    )
    error = error_detail(indication, options, 2.0)
    assert (error.detail, error.error_class) == (sentence, error_class)


@pytest.mark.parametrize(
    ("status", "index", "sentence", "error_class"),
    [
        (
            "genErr",
            2,
            "SNMP: 10.0.0.1:161 answered genErr for hrStorageDescr (1.3.6.1.2.1.25.2.3.1.3)",
            ErrorClass.RESPONSE,
        ),
        ("tooBig", 0, "SNMP: 10.0.0.1:161 answered tooBig", ErrorClass.RESPONSE),
        (
            "noAccess",
            1,
            "SNMP: 10.0.0.1:161 denied access to hrStorageType (1.3.6.1.2.1.25.2.3.1.2) "
            "(noAccess): check the agent's view for this community and the security level it "
            "requires",
            ErrorClass.AUTH,
        ),
    ],
    ids=["gen-err-names-the-column", "too-big-without-an-index", "no-access-is-auth"],
)
def test_error_statuses_name_the_oid_they_point_at(
    status: str, index: int, sentence: str, error_class: ErrorClass
):
    options = SnmpOptions(host="10.0.0.1", community="c")
    error = status_detail(status, index, HR_STORAGE_COLUMNS[:3], options)
    assert (error.detail, error.error_class) == (sentence, error_class)


# -- a real snmpd ---------------------------------------------------------------------


def bulkwalk(agent: SnmpdAgent, *oids: str) -> dict[str, str]:
    """snmpbulkwalk's numeric answer, OID -> value text (the reference reading)."""
    out = subprocess.run(
        [require_binary("snmpbulkwalk"), "-v2c", "-c", agent.community, "-On", "-Oq", "-Ot",
         "-Oe", agent.address, *oids],
        check=True, capture_output=True, text=True, timeout=10,
    ).stdout  # fmt: skip
    return dict(line.lstrip(".").split(" ", 1) for line in out.splitlines() if " " in line)


@pytest.mark.peer
def test_v2c_host_profile_reads_memory_and_disks_as_snmpbulkwalk_sees_them(
    snmpd_agent: SnmpdAgent, ctx: ProbeContext
):
    observation = poll(target(snmpd_agent.v2c(), processes=["snmpd", "no-such-daemon"]), ctx)
    assert observation.status is Status.FAIL
    assert observation.detail == "process no-such-daemon is not running"
    server = points(observation, "server")[""]
    assert 0 < server["memory_percent"] < 100
    assert server["memory_available_bytes"] > 0
    processes = points(observation, "server_process")
    assert processes["snmpd"]["count"] >= 1  # this agent (other tests may run their own)
    assert processes["no-such-daemon"] == {"count": 0}

    walked = bulkwalk(snmpd_agent, "1.3.6.1.2.1.25.2.3.1")
    root = next(
        oid.rsplit(".", 1)[1]
        for oid, value in walked.items()
        if oid.startswith("1.3.6.1.2.1.25.2.3.1.3.") and value.strip('"') == "/"
    )
    units = int(walked[f"1.3.6.1.2.1.25.2.3.1.4.{root}"])
    size = int(walked[f"1.3.6.1.2.1.25.2.3.1.5.{root}"])
    used = int(walked[f"1.3.6.1.2.1.25.2.3.1.6.{root}"])
    disk = points(observation, "server_disk")["/"]
    assert disk["total_bytes"] == size * units
    # Other tests write to this disk meanwhile: allow a little movement.
    assert disk["used_percent"] == pytest.approx(100 * used / size, abs=0.5)
    cpu = bulkwalk(snmpd_agent, "1.3.6.1.2.1.25.3.3.1.2")
    processors = [oid for oid in cpu if oid.startswith("1.3.6.1.2.1.25.3.3.1.2.")]
    # A fresh agent has no processor loads for its first minute; then one per CPU.
    assert len(points(observation, "snmp_cpu")) == (len(processors) + 1 if processors else 0)


@pytest.mark.peer
def test_host_polls_reuse_the_fixed_storage_columns_until_rows_come_or_go(
    snmpd_agent: SnmpdAgent, ctx: ProbeContext
):
    t = target(snmpd_agent.v2c())

    async def polls() -> None:  # one loop: sessions live as long as it does
        first = await check(t, ctx)
        sessions = ctx.shared.get(SHARED_KEY)
        assert isinstance(sessions, Sessions)
        session = sessions.by_target["edge-host"]
        second = await check(t, ctx)
        assert session.storage_polls == 1  # type, description and units came from the first
        disks = points(first, "server_disk")
        assert set(points(second, "server_disk")) == set(disks)
        assert points(second, "server_disk")["/"]["total_bytes"] == disks["/"]["total_bytes"]

        # As if a filesystem had been unmounted since: the rows differ, all is read again.
        assert session.storage_fixed is not None
        for column in session.storage_fixed.values():
            column.pop(max(column, key=int))
        third = await check(t, ctx)
        assert session.storage_polls == 0
        assert set(points(third, "server_disk")) == set(disks)
        await ctx.shared.aclose()

    asyncio.run(polls())


@pytest.mark.peer
def test_interfaces_profile_gives_rates_from_the_second_poll_with_lo_present(
    snmpd_agent: SnmpdAgent, ctx: ProbeContext
):
    t = target(
        snmpd_agent.v2c(profiles=["interfaces"]), interfaces={"include": ["lo"], "exclude": []}
    )
    first = poll(t, ctx)
    assert first.status is Status.OK, first.detail
    assert first.detail == "interfaces up: lo"
    assert points(first, "snmp_if") == {"lo": {"oper_status": 1}}  # no rates yet

    # Net-SNMP refreshes interface counters every few seconds: send traffic over
    # lo and poll until a poll sees the counters move.
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        deadline = time.monotonic() + 15
        rates: dict[str, Any] = {}
        while time.monotonic() < deadline:
            for _ in range(50):
                sender.sendto(b"x" * 1000, sink.getsockname())
            time.sleep(0.5)
            rates = points(poll(t, ctx), "snmp_if")["lo"]
            assert set(rates) == {
                "oper_status",
                "in_bytes_per_s",
                "out_bytes_per_s",
                "in_errors_per_s",
                "out_errors_per_s",
                "in_discards_per_s",
                "out_discards_per_s",
            }
            if rates["in_bytes_per_s"] > 0:
                break
    finally:
        sender.close()
        sink.close()
    assert rates["in_bytes_per_s"] > 0 and rates["out_bytes_per_s"] > 0
    assert isinstance(rates["in_bytes_per_s"], float) and isinstance(rates["oper_status"], int)


@pytest.mark.peer
def test_without_ifxtable_interfaces_are_named_by_ifdescr_and_use_32_bit_octet_counters(
    snmpd_agent: SnmpdAgent, ctx: ProbeContext
):
    t = target(
        snmpd_agent.v2c_without_ifxtable(profiles=["interfaces"]),
        interfaces={"include": ["lo"], "exclude": []},
    )
    first = poll(t, ctx)
    assert first.status is Status.OK, first.detail
    assert points(first, "snmp_if") == {"lo": {"oper_status": 1}}  # Net-SNMP's ifDescr is "lo"
    sessions = ctx.shared.get(SHARED_KEY)
    assert isinstance(sessions, Sessions)
    rows = sessions.by_target["edge-host"].rows
    assert rows[IF_HC_IN_OCTETS] == 0 and rows[IF_IN_OCTETS] > 0  # the Counter32 walk ran
    time.sleep(0.2)
    second = points(poll(t, ctx), "snmp_if")["lo"]
    assert second["in_bytes_per_s"] >= 0 and second["out_bytes_per_s"] >= 0


@pytest.mark.peer
def test_v3_authpriv_with_sha_and_aes_reads_the_agent(snmpd_agent: SnmpdAgent, ctx: ProbeContext):
    observation = poll(target(snmpd_agent.v3()), ctx)
    assert observation.status is Status.OK, observation.detail
    assert "/" in points(observation, "server_disk")


@pytest.mark.peer
@pytest.mark.parametrize(
    ("snmp", "sentence", "error_class"),
    [
        (
            {"community": "not-the-community"},
            "SNMP: no answer from 127.0.0.1:{port} within 1 s "
            "(community or v3 credentials wrong, or agent down)",
            ErrorClass.TIMEOUT,
        ),
        (
            {"auth_key": "wrong-auth-key"},
            "SNMP: 127.0.0.1:{port} rejected the auth_key of v3 user 'dwmonitor' "
            "(wrong key or auth_protocol SHA)",
            ErrorClass.AUTH,
        ),
        (
            {"user": "intruder"},
            "SNMP: 127.0.0.1:{port} does not know v3 user 'intruder'",
            ErrorClass.AUTH,
        ),
    ],
    ids=["wrong-community", "wrong-v3-auth-key", "unknown-v3-user"],
)
def test_wrong_credentials_fail_with_a_sentence_and_the_next_poll_works(
    snmpd_agent: SnmpdAgent,
    ctx: ProbeContext,
    snmp: dict[str, Any],
    sentence: str,
    error_class: ErrorClass,
):
    v2c = "community" in snmp
    ctx.timeout = 1.0 if v2c else 5.0  # v3 discovery takes two more round trips
    base = snmpd_agent.v2c() if v2c else snmpd_agent.v3()
    bad = poll(target({**base, **snmp}), ctx)
    assert (bad.status, bad.detail, bad.error_class) == (
        Status.FAIL,
        sentence.format(port=snmpd_agent.port),
        error_class,
    )
    good = poll(target(base), ctx)
    assert good.status is Status.OK, good.detail


@pytest.mark.peer
def test_a_v3_security_level_below_what_the_user_needs_is_an_access_sentence(
    snmpd_agent: SnmpdAgent, ctx: ProbeContext
):
    snmp = snmpd_agent.v3()
    del snmp["priv_key"]  # authNoPriv, but the agent says `rouser dwmonitor priv`
    observation = poll(target(snmp), ctx)
    assert (observation.status, observation.error_class, observation.detail) == (
        Status.FAIL,
        ErrorClass.AUTH,
        f"SNMP: 127.0.0.1:{snmpd_agent.port} denied the request (authorizationError): check "
        "the agent's view for this user and the security level it requires (authNoPriv)",
    )


@pytest.mark.peer
def test_an_agent_on_ipv6_loopback_is_read_over_ipv6(
    snmpd_factory: Callable[..., SnmpdAgent], ctx: ProbeContext
):
    agent = snmpd_factory(ipv6=True)
    observation = poll(target({**agent.v2c(), "host": "::1"}), ctx)
    assert observation.status is Status.OK, observation.detail
    assert "/" in points(observation, "server_disk")
    sessions = ctx.shared.get(SHARED_KEY)
    assert isinstance(sessions, Sessions)
    assert sessions.by_target["edge-host"].transport.transport_address[0] == "::1"


@pytest.mark.peer
def test_own_oids_trip_thresholds_and_missing_ones_are_named(
    snmpd_agent: SnmpdAgent, ctx: ProbeContext
):
    t = target(
        snmpd_agent.v2c(
            profiles=[],
            oids=[
                {"name": "agent-uptime", "oid": "1.3.6.1.2.1.1.3.0", "fail": 1},
                {"name": "memory-kb", "oid": "1.3.6.1.2.1.25.2.2.0", "warn": 2**62},
                {"name": "vendor-thing", "oid": "1.3.6.1.4.1.99999.1.0"},
                {"name": "uptime-of-5", "oid": "1.3.6.1.2.1.1.3.5"},
            ],
        )
    )
    observation = poll(t, ctx)
    assert observation.status is Status.FAIL
    sentences = observation.detail.split("; ")
    assert sentences[0].startswith("agent-uptime at ") and sentences[0].endswith("(fail above 1)")
    assert sentences[1:] == [
        "SNMP: no object for OID 1.3.6.1.4.1.99999.1.0 (vendor-thing)",
        "SNMP: no instance for OID 1.3.6.1.2.1.1.3.5 (uptime-of-5)",
    ]
    values = points(observation, "snmp_oid")
    memory_kb = bulkwalk(snmpd_agent, "1.3.6.1.2.1.25.2.2")["1.3.6.1.2.1.25.2.2.0"]
    assert values["memory-kb"] == {"value": float(memory_kb.split()[0])}
    assert values["agent-uptime"]["value"] > 1
    assert set(values) == {"agent-uptime", "memory-kb"}


@pytest.mark.peer
def test_a_counter_oid_becomes_a_rate_on_the_second_poll(
    snmpd_agent: SnmpdAgent, ctx: ProbeContext
):
    t = target(
        snmpd_agent.v2c(
            profiles=[],
            oids=[
                {"name": "ticks", "oid": "1.3.6.1.2.1.1.3.0", "type": "counter", "unit": "ticks"}
            ],
        )
    )
    assert points(poll(t, ctx), "snmp_oid") == {}
    time.sleep(1.0)
    rate = points(poll(t, ctx), "snmp_oid")["ticks"]["value"]
    assert rate == pytest.approx(100, rel=0.2)  # sysUpTime counts hundredths of a second


@pytest.mark.peer
def test_an_agent_restart_reprimes_counters_instead_of_reporting_a_rate(
    snmpd_factory: Callable[..., SnmpdAgent], ctx: ProbeContext
):
    agent = snmpd_factory()
    t = target(agent.v2c(profiles=["interfaces"]), interfaces={"include": ["lo"], "exclude": []})
    time.sleep(1.5)  # so that sysUpTime right after the restart is smaller
    poll(t, ctx)
    before = ctx.state["snmp"]["uptime"]
    agent.restart()
    after = poll(t, ctx)
    assert ctx.state["snmp"]["uptime"] < before
    assert after.status is Status.OK, after.detail
    assert points(after, "snmp_if") == {"lo": {"oper_status": 1}}


@pytest.mark.peer
def test_engines_are_shared_per_credentials_reused_across_polls_and_closed_on_stop(
    snmpd_agent: SnmpdAgent,
):
    shared = SharedResources()
    up = [{"name": "up", "oid": "1.3.6.1.2.1.1.3.0"}]
    targets = {
        "v2c-a": target(snmpd_agent.v2c(profiles=[], oids=up), id="v2c-a"),
        "v2c-b": target(snmpd_agent.v2c(profiles=[], oids=up, retries=0), id="v2c-b"),
        "v3": target(snmpd_agent.v3(profiles=[], oids=up), id="v3"),
    }
    contexts = {name: ProbeContext(name, timeout=5.0, shared=shared) for name in targets}
    fds_before = len(os.listdir("/proc/self/fd"))

    async def polls() -> Sessions:
        seen: dict[str, set[int]] = {name: set() for name in targets}
        for _ in range(10):
            for name, t in targets.items():
                observation = await check(t, contexts[name])
                assert observation.status is Status.OK, observation.detail
                sessions = shared.get(SHARED_KEY)
                assert isinstance(sessions, Sessions)
                seen[name].add(id(sessions.by_target[name].engine.engine))
        assert all(len(engines) == 1 for engines in seen.values())  # reused across polls
        assert seen["v2c-a"] == seen["v2c-b"] != seen["v3"]  # shared by credentials
        assert len(sessions.engines) == 2
        await shared.aclose()
        return sessions

    sessions = asyncio.run(polls())
    assert sessions.engines == {} and sessions.by_target == {}
    assert len(os.listdir("/proc/self/fd")) <= fds_before


@pytest.mark.peer
def test_an_engine_no_target_uses_any_more_is_closed(snmpd_agent: SnmpdAgent):
    shared = SharedResources()
    up = [{"name": "up", "oid": "1.3.6.1.2.1.1.3.0"}]
    context = ProbeContext("edge-host", timeout=5.0, shared=shared)

    async def polls() -> None:
        assert (
            await check(target(snmpd_agent.v3(profiles=[], oids=up)), context)
        ).status is Status.OK
        sessions = shared.get(SHARED_KEY)
        assert isinstance(sessions, Sessions)
        v3 = next(iter(sessions.engines.values()))
        # The same target, now configured for v2c: its v3 engine has no user left.
        assert (
            await check(target(snmpd_agent.v2c(profiles=[], oids=up)), context)
        ).status is Status.OK
        assert list(sessions.engines) == ["v2c"]
        assert v3.engine.transport_dispatcher is None  # closed
        await shared.aclose()

    asyncio.run(polls())


@pytest.mark.peer
def test_a_new_event_loop_gets_new_engines_and_the_old_sockets_are_closed(
    snmpd_agent: SnmpdAgent, ctx: ProbeContext
):
    t = target(snmpd_agent.v2c(profiles=[], oids=[{"name": "up", "oid": "1.3.6.1.2.1.1.3.0"}]))
    poll(t, ctx)  # asyncio.run: its loop is closed afterwards
    fds_between = len(os.listdir("/proc/self/fd"))
    for _ in range(5):
        assert poll(t, ctx).status is Status.OK
    assert len(os.listdir("/proc/self/fd")) <= fds_between


def test_snmp_is_a_registered_source():
    assert "snmp" in SOURCES


# -- stand-ins for answers no real agent sends ----------------------------------------------


class LocalUdpResponder:
    """A local UDP socket that answers each datagram with ``answer(request)`` (None: silence)."""

    def __init__(self, answer: Callable[[bytes], bytes | None]) -> None:
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            reply = self.answer(data)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def responder() -> Iterator[Callable[[Callable[[bytes], bytes | None]], LocalUdpResponder]]:
    made: list[LocalUdpResponder] = []

    def make(answer: Callable[[bytes], bytes | None]) -> LocalUdpResponder:
        made.append(LocalUdpResponder(answer))
        return made[-1]

    yield make
    for one in made:
        one.close()


def garbage(request: bytes) -> bytes:
    """Bytes that start like BER and then make no sense."""
    return b"\x30\x82\xff\xff" + os.urandom(32)


def strings_for_numbers(request: bytes) -> bytes:
    """A well-formed v2c response to the request, with text where numbers belong."""
    v2c = api.v2c
    message, _ = decoder.decode(request, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(message)
    response = v2c.apiMessage.get_response(message)
    binds = [(oid, v2c.OctetString("many")) for oid, _ in v2c.apiPDU.get_varbinds(pdu)]
    v2c.apiPDU.set_varbinds(v2c.apiMessage.get_pdu(response), binds)
    return encoder.encode(response)


@pytest.mark.peer
def test_garbage_answers_are_no_answer_and_the_next_poll_of_a_real_agent_works(
    responder: Callable[..., LocalUdpResponder], ctx: ProbeContext, snmpd_agent: SnmpdAgent
):
    fake = responder(garbage)
    ctx.timeout = 1.0
    bad = poll(target({"host": "127.0.0.1", "port": fake.port, "community": "c"}), ctx)
    assert (bad.status, bad.error_class) == (Status.FAIL, ErrorClass.TIMEOUT)
    assert bad.detail == (
        f"SNMP: no answer from 127.0.0.1:{fake.port} within 1 s "
        "(community or v3 credentials wrong, or agent down)"
    )
    assert fake.requests >= 1
    good = poll(
        target(snmpd_agent.v2c(profiles=[], oids=[{"name": "up", "oid": "1.3.6.1.2.1.1.3.0"}])), ctx
    )
    assert good.status is Status.OK, good.detail


def test_a_string_where_a_number_belongs_fails_with_a_protocol_sentence(
    responder: Callable[..., LocalUdpResponder], ctx: ProbeContext
):
    fake = responder(strings_for_numbers)
    observation = poll(target({"host": "127.0.0.1", "port": fake.port, "community": "c"}), ctx)
    assert (observation.status, observation.error_class, observation.detail) == (
        Status.FAIL,
        ErrorClass.PROTOCOL,
        "SNMP: sysUpTime.0 (1.3.6.1.2.1.1.3.0) is OctetString 'many', not a number",
    )


def test_an_agent_that_does_not_exist_fails_within_the_timeout(ctx: ProbeContext):
    ctx.timeout = 0.5
    port = free_port(socket.SOCK_DGRAM)
    observation = poll(target({"host": "127.0.0.1", "port": port, "community": "c"}), ctx)
    assert (observation.status, observation.error_class, observation.detail) == (
        Status.FAIL,
        ErrorClass.TIMEOUT,
        f"SNMP: no answer from 127.0.0.1:{port} within 0.5 s "
        "(community or v3 credentials wrong, or agent down)",
    )


def same_oid_again(request: bytes) -> bytes:
    """A well-formed v2c agent whose table walks never move on: GETBULK gets the asked OID back."""
    v2c = api.v2c
    message, _ = decoder.decode(request, asn1Spec=v2c.Message())
    pdu = v2c.apiMessage.get_pdu(message)
    response = v2c.apiMessage.get_response(message)
    asked = [oid for oid, _ in v2c.apiPDU.get_varbinds(pdu)]
    if pdu.tagSet == v2c.GetBulkRequestPDU.tagSet:
        binds = [(v2c.ObjectIdentifier(str(oid) + ".1"), v2c.Integer(1)) for oid in asked]
        binds += [(v2c.ObjectIdentifier(str(oid) + ".1"), v2c.Integer(1)) for oid in asked]
    else:
        binds = [(oid, v2c.TimeTicks(100)) for oid in asked]
    v2c.apiPDU.set_varbinds(v2c.apiMessage.get_pdu(response), binds)
    return encoder.encode(response)


def test_an_agent_whose_walk_does_not_move_on_fails_instead_of_looping(
    responder: Callable[..., LocalUdpResponder], ctx: ProbeContext
):
    fake = responder(same_oid_again)
    observation = poll(target({"host": "127.0.0.1", "port": fake.port, "community": "c"}), ctx)
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.PROTOCOL)
    assert observation.detail.startswith(f"SNMP: 127.0.0.1:{fake.port} answered a walk of h")
    assert observation.detail.endswith("with OIDs that do not increase (broken agent)")


def test_polls_beyond_what_the_engine_runs_at_once_fail_saying_they_did_not_get_a_turn(
    responder: Callable[..., LocalUdpResponder],
):
    silent = responder(lambda request: None)  # a local UDP socket that never answers
    shared = SharedResources()
    extra = 10
    count = MAX_IN_FLIGHT + MAX_WAITING + extra
    t = target({"host": "127.0.0.1", "port": silent.port, "community": "c", "retries": 0})

    async def polls() -> list[Observation]:
        contexts = [ProbeContext(f"t{i}", timeout=1.0, shared=shared) for i in range(count)]
        targets = [t.model_copy(update={"id": f"t{i}"}) for i in range(count)]
        try:
            return await asyncio.gather(
                *(check(x, c) for x, c in zip(targets, contexts, strict=True))
            )
        finally:
            await shared.aclose()

    details = [o.detail for o in asyncio.run(polls())]
    where = f"127.0.0.1:{silent.port}"
    no_answer = f"SNMP: no answer from {where} within 1 s (community or v3 credentials wrong, or agent down)"
    queued_too_long = f"SNMP: this poll of {where} did not get its turn within 1 s"
    turned_away = f"SNMP: this poll of {where} did not get its turn — "
    assert details.count(no_answer) == MAX_IN_FLIGHT
    assert sum(d.startswith(queued_too_long) for d in details) == MAX_WAITING
    assert sum(d.startswith(turned_away) for d in details) == extra
