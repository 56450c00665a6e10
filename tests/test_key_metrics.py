"""Key metrics are chosen per probe kind: each ``PROBES`` entry declares its own, with units,
and the dashboard list shows the first ones a target's last observation has."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from probes import PROBES
from probes.base import UNITS, KeyMetric
from web import format as fmt

ROOT = Path(__file__).resolve().parent.parent


def declared(kind: str) -> tuple[KeyMetric, ...]:
    return PROBES[kind].key_metrics


@pytest.mark.parametrize(
    ("kind", "metrics", "expected"),
    [
        pytest.param(
            "server",
            {
                "server.cpu_count": 8,
                "server.load1": 0.5,
                "server.cpu_percent": 12.5,
                "server.memory_available_bytes": 2_000_000_000,
                "server.memory_percent": 41.0,
                "server_disk.used_percent[mount=/]": 63.2,
                "server_disk.used_percent[mount=/var]": 80.0,
            },
            [
                ("cpu_percent", "12.5%"),
                ("memory_percent", "41%"),
                ("used_percent[mount=/]", "63.2%"),
            ],
            id="server-cpu-memory-disk-not-cpu-count",
        ),
        pytest.param(
            "server",
            {
                "snmp_cpu.load_percent[processor=1]": 3.0,
                "snmp_cpu.load_percent[processor=all]": 7.5,
                "snmp_if.oper_status[interface=eth0]": 1,
            },
            [("load_percent[processor=all]", "7.5%")],
            id="server-over-snmp-the-overall-cpu-only",
        ),
        pytest.param(
            "sip",
            {"sip.status_code": 200, "sip.retransmissions": 0, "sip.up": 1, "sip.rtt_ms": 12.5},
            [("rtt_ms", "12.5 ms"), ("status_code", "200")],
            id="sip-rtt-first",
        ),
        pytest.param(
            "sip",
            {"sip.status_code": 0, "sip.up": 0, "sip.loss_pct": 100.0, "sip.retransmissions": 7},
            [("loss_pct", "100%"), ("status_code", "0")],
            id="sip-down-loss-and-code",
        ),
        pytest.param(
            "http",
            {"http.cert_days": 30.0, "http.response_ms": 85.1, "http.status_code": 200},
            [("response_ms", "85.1 ms"), ("status_code", "200"), ("cert_days", "30 d")],
            id="http",
        ),
        pytest.param(
            "dialer",
            {
                "dialer.abandoned": 3,
                "dialer.answered": 400,
                "dialer.asr": 40.0,
                "dialer.attempts": 1000,
                "dialer.calls_per_minute": 33.3,
                "dialer.loss_rate": 60.0,
            },
            [("loss_rate", "60%"), ("asr", "40%"), ("calls_per_minute", "33.3/min")],
            id="dialer-cdrs-call-loss-first",
        ),
        pytest.param(
            "dialer",
            {"dialer.agents_available": 4, "dialer.calls_waiting": 2, "dialer.queues": 3},
            [("calls_waiting", "2"), ("agents_available", "4")],
            id="dialer-queues",
        ),
        pytest.param(
            "appliance",
            {"appliance.data_free_percent": 55.0, "appliance.scheduler_lag_seconds": 0.02},
            [("scheduler_lag_seconds", "0.02 s"), ("data_free_percent", "55%")],
            id="appliance",
        ),
    ],
)
def test_key_metrics_are_the_kinds_own_in_its_order_with_units(
    kind: str, metrics: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    got = fmt.key_metrics(metrics, declared(kind))
    assert [(short, value) for _key, short, value in got] == expected


def test_a_kind_without_declared_metrics_falls_back_to_the_first_keys() -> None:
    metrics = {"x.b": 2, "x.a": 1, "x.c": 3, "x.d": 4}
    assert [k for k, _s, _v in fmt.key_metrics(metrics, ())] == ["x.a", "x.b", "x.c"]
    # a kind whose declared metrics are all absent (probe failed before measuring) too
    assert [k for k, _s, _v in fmt.key_metrics({"tcp.other": 1}, declared("tcp"))] == ["tcp.other"]
    assert fmt.key_metrics({}, declared("tcp")) == []


def test_every_kind_declares_key_metrics_with_known_units() -> None:
    for kind, entry in PROBES.items():
        assert entry.key_metrics, f"{kind} declares no key metrics"
        for metric in entry.key_metrics:
            assert metric.unit in UNITS, f"{kind}: {metric.key} has unit {metric.unit!r}"
            assert re.fullmatch(r"[a-z0-9_]+\.[a-z0-9_]+(\[[a-z_]+=[^,\]]+(,[a-z_]+=[^,\]]+)*\])?",
                                metric.key), metric.key  # fmt: skip


def _probe_source(kind: str) -> str:
    module = ROOT / "probes" / f"{kind}.py"
    files = [module] if module.is_file() else sorted((ROOT / "probes" / kind).rglob("*.py"))
    return "\n".join(f.read_text(encoding="utf-8") for f in files)


@pytest.mark.parametrize("kind", list(PROBES))
def test_each_key_metric_names_a_measurement_and_field_its_probe_writes(kind: str) -> None:
    # A typo in a declaration would silently never match: the probe's own code must
    # spell the measurement and the field (as string literals).
    source = _probe_source(kind)
    for metric in declared(kind):
        measurement, _dot, name = metric.base.partition(".")
        for word in (measurement, name):
            assert f'"{word}"' in source, f"{kind}: {metric.key}: {word!r} is not in probes/{kind}"


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (12.5, "ms", "12.5 ms"),
        (40.24, "%", "40.2%"),
        (3, "/min", "3/min"),
        (0.5, "/s", "0.5/s"),
        (512, "B", "512 B"),
        (1536, "B", "1.5 KiB"),
        (3 * 1024**3, "B/s", "3 GiB/s"),
        (200, "", "200"),
        (True, "%", "true"),
        ("OK", "ms", "OK"),
    ],
)
def test_values_read_with_their_units(value: object, unit: str, shown: str) -> None:
    assert fmt.with_unit(value, unit) == shown


def test_a_key_metric_without_tags_matches_every_tag_set_and_one_with_tags_only_its_own() -> None:
    disk = KeyMetric("server_disk.used_percent", "%")
    assert disk.matches("server_disk.used_percent")
    assert disk.matches("server_disk.used_percent[mount=/]")
    assert not disk.matches("server_disk.used_percent_x")
    overall = KeyMetric("snmp_cpu.load_percent[processor=all]", "%")
    assert overall.base == "snmp_cpu.load_percent"
    assert overall.matches("snmp_cpu.load_percent[processor=all]")
    assert not overall.matches("snmp_cpu.load_percent[processor=1]")
