"""The ``server`` probe: shared thresholds, counter rates, mount/interface choice,
evaluation of a sample, and real readings of this machine through psutil."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time

import psutil
import pytest
from pydantic import ValidationError

from core.observation import ErrorClass, Status
from monitor.config.schema import Config
from probes import PROBES
from probes.base import ProbeContext
from probes.server import SERVER_RULES, ServerTarget, check, local
from probes.server.config import DiskSelection
from probes.server.counters import busy_percent, counter_delta, counter_rate
from probes.server.evaluate import evaluate
from probes.server.filters import pick, pick_mounts
from probes.server.sample import CpuTimes, DiskUsage, NetCounters, ServerSample
from probes.thresholds import Limit, Rule, format_value, judge, resolve, worst

GIB = 1024**3
USAGE = Rule("usage", "disk {subject}", "%", Limit(warn=80, fail=90))
FREE = Rule("free", "disk {subject} free", "MB", Limit(warn=1000, fail=500), lower_is_worse=True)


def target(**fields: object) -> ServerTarget:
    return ServerTarget.model_validate({"id": "pbx-host", "kind": "server", **fields})


def run(t: ServerTarget, ctx: ProbeContext):
    return asyncio.run(check(t, ctx))


# -- thresholds (probes/thresholds.py) ----------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        (USAGE, 50, None),
        (USAGE, 80, None),  # equal to a limit is not above it
        (USAGE, 80.5, "disk / at 80.5% (warn above 80%)"),
        (USAGE, 93, "disk / at 93% (fail above 90%)"),
        (FREE, 2000, None),
        (FREE, 800, "disk / free at 800 MB (warn below 1000 MB)"),
        (FREE, 12.25, "disk / free at 12.2 MB (fail below 500 MB)"),
    ],
    ids=[
        "usage-under-warn-is-fine",
        "usage-equal-to-warn-is-fine",
        "usage-over-warn-warns",
        "usage-over-fail-fails",
        "free-space-plenty-is-fine",
        "free-space-under-warn-warns",
        "free-space-under-fail-fails",
    ],
)
def test_judge_names_what_crossed_which_level(rule: Rule, value: float, expected: str | None):
    breach = judge(rule, rule.default, value, "/")
    assert (breach.sentence() if breach else None) == expected


def test_a_level_set_to_none_never_trips():
    assert judge(USAGE, Limit(warn=None, fail=90), 85, "/") is None
    assert judge(USAGE, Limit(), 1e9, "/") is None


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, Limit(warn=80, fail=90)),
        ({"usage": Limit(warn=70)}, Limit(warn=70, fail=90)),
        ({"usage": Limit(fail=None)}, Limit(warn=80, fail=None)),
        ({"usage": None}, Limit()),
        ({"usage": Limit(warn=85, fail=99)}, Limit(warn=85, fail=99)),
    ],
    ids=[
        "nothing-given-keeps-defaults",
        "a-given-key-overrides-only-itself",
        "null-turns-one-level-off",
        "null-turns-the-metric-off",
        "both-keys-replace-both",
    ],
)
def test_resolve_merges_given_limits_over_defaults(given: dict, expected: Limit):
    assert resolve(given, [USAGE])["usage"] == expected


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"cpu": Limit(warn=1)}, "unknown metric 'cpu'; allowed: free, usage"),
        ({"usage": Limit(warn=95)}, "usage: warn (95) must not be above fail (90)"),
        ({"free": Limit(warn=100)}, "free: warn (100) must not be below fail (500)"),
    ],
    ids=["unknown-name-lists-allowed", "warn-above-fail", "warn-below-fail-when-lower-is-worse"],
)
def test_resolve_rejects_bad_thresholds_with_a_clear_reason(given: dict, message: str):
    with pytest.raises(ValueError) as info:
        resolve(given, [USAGE, FREE])
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("value", "unit", "text"),
    [(93, "%", "93%"), (93.46, "%", "93.5%"), (0.001, "%", "0.001%"), (1.5, "", "1.5"),
     (2.25, "/s", "2.2/s"), (512, "MB", "512 MB")],
)  # fmt: skip
def test_format_value_is_short_and_carries_the_unit(value: float, unit: str, text: str):
    assert format_value(value, unit) == text


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        ([], Status.OK),
        ([Status.OK, Status.WARN], Status.WARN),
        ([Status.WARN, Status.FAIL, Status.OK], Status.FAIL),
        ([Status.FAIL, Status.ERROR], Status.ERROR),
    ],
)
def test_worst_status_wins(statuses: list[Status], expected: Status):
    assert worst(statuses) == expected


# -- config ---------------------------------------------------------------------


def test_server_target_fills_every_threshold_with_its_default():
    limits = target().thresholds
    assert set(limits) == {rule.name for rule in SERVER_RULES}
    assert limits["disk_percent"] == Limit(warn=80, fail=90)
    assert limits["disk_free_mb"] == Limit()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"thresholds": {"cpu": {"warn": 1}}}, "unknown metric 'cpu'; allowed: cpu_percent,"),
        ({"thresholds": {"cpu_percent": {"warn": 99}}}, "warn (99) must not be above fail (95)"),
        ({"thresholds": {"cpu_percent": {"warn": True}}}, "warn must be a number, not true"),
        ({"thresholds": {"cpu_percent": {"warm": 1}}}, "Extra inputs are not permitted"),
        ({"processes": ["asterisk", "asterisk"]}, "each process name may appear once"),
        ({"processes": ["/usr/sbin/asterisk"]}, "is not a process name"),
        ({"disks": {"max_mounts": 0}}, "greater than or equal to 1"),
        ({"via": "telnet"}, "Input should be 'local'"),
    ],
    ids=[
        "unknown-metric",
        "warn-above-default-fail",
        "boolean-limit",
        "misspelt-level",
        "duplicate-process",
        "process-path-instead-of-name",
        "zero-mount-cap",
        "unknown-source",
    ],
)
def test_bad_server_config_is_an_error_naming_the_problem(fields: dict, message: str):
    with pytest.raises(ValidationError) as info:
        target(**fields)
    assert message in str(info.value)


def test_server_config_survives_a_dump_and_reload_unchanged():
    config = Config.model_validate(
        {"targets": [{"id": "h", "kind": "server", "thresholds": {"swap_percent": None}}]}
    )
    again = Config.model_validate(config.model_dump())
    assert again.targets[0] == config.targets[0]
    assert PROBES["server"].model is ServerTarget


# -- counters -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("previous", "current", "bits", "delta"),
    [
        (100, 150, None, 50),
        (100, 100, None, 0),
        (5000, 30, None, 30),  # reset: counted again from zero
        (2**32 - 10, 5, 32, 15),  # Counter32 wrapped past its maximum
        (2**40, 5, 32, 5),  # bigger than 32 bits cannot be a Counter32 wrap: a reset
    ],
    ids=["growth", "no-change", "reset", "32-bit-wrap", "reset-despite-bits"],
)
def test_counter_delta_handles_resets_and_wraps(previous, current, bits, delta):
    assert counter_delta(previous, current, bits) == delta


def test_counter_rate_is_per_second_and_none_without_elapsed_time():
    assert counter_rate(10, 40, 15.0) == 2.0
    assert counter_rate(10, 40, 0.0) is None
    assert counter_rate(10, 40, -1.0) is None


@pytest.mark.parametrize(
    ("before", "after", "expected"),
    [
        ((100.0, 20.0), (110.0, 25.0), 50.0),
        ((100.0, 20.0), (110.0, 20.0), 0.0),
        ((100.0, 20.0), (100.0, 20.0), None),  # no time passed
        ((100.0, 20.0), (50.0, 10.0), None),  # counters went back: rebooted
    ],
    ids=["half-busy", "idle", "no-elapsed-time", "counters-went-back"],
)
def test_busy_percent_between_two_cpu_readings(before, after, expected):
    assert busy_percent(*before, *after) == expected


# -- which mounts and interfaces ---------------------------------------------------

PARTITIONS = [
    ("/dev/vda1", "/", "ext4"),
    ("/dev/vda1", "/etc/hosts", "ext4"),  # a container's bind mount of the same disk
    ("/dev/vdb1", "/var/spool/asterisk", "xfs"),
    ("tmpfs", "/dev/shm", "tmpfs"),
    ("proc", "/proc", "proc"),
    ("/dev/loop3", "/snap/core/1", "squashfs"),
    ("nas:/rec", "/mnt/recordings", "nfs4"),
    ("overlay", "/var/lib/docker/overlay2/abc/merged", "overlay"),
]


@pytest.mark.parametrize(
    ("selection", "expected"),
    [
        ({}, ["/", "/var/spool/asterisk"]),
        ({"network": True}, ["/", "/mnt/recordings", "/var/spool/asterisk"]),
        ({"include": ["/var/*"]}, ["/var/spool/asterisk"]),
        ({"include": ["/etc/hosts"]}, ["/etc/hosts"]),
        ({"exclude": []}, ["/", "/var/spool/asterisk", "/var/lib/docker/overlay2/abc/merged"]),
        ({"max_mounts": 1}, ["/"]),
    ],
    ids=[
        "default-skips-pseudo-network-bind-and-docker",
        "network-filesystems-when-asked",
        "include-glob",
        "an-included-bind-mount-is-measured",
        "empty-exclude-keeps-docker-overlays",
        "cap-keeps-the-shortest-mount-points",
    ],
)
def test_pick_mounts_chooses_real_filesystems_within_the_cap(selection: dict, expected: list):
    assert pick_mounts(PARTITIONS, DiskSelection(**selection)) == expected


def test_pick_interfaces_honours_include_exclude_and_cap():
    names = ["bond0", "docker0", "eth0", "eth1", "lo", "veth12ab"]
    assert pick(names, [], ["lo", "veth*", "docker*"], 16) == ["bond0", "eth0", "eth1"]
    assert pick(names, ["eth*"], [], 16) == ["eth0", "eth1"]
    assert pick(names, [], [], 2) == ["bond0", "docker0"]


# -- evaluating samples (pure) -------------------------------------------------------


def sample(at: float, **fields: object) -> ServerSample:
    base: dict[str, object] = {
        "taken_at": at,
        "boot_time": 1000.0,
        "cpu_count": 4,
        "cpu": CpuTimes(total=400.0 + at, busy=100.0 + at / 4),
        "load": (0.5, 1.0, 2.0),
        "memory_percent": 40.0,
        "memory_available_bytes": 8 * GIB,
        "swap_percent": 0.0,
        "disks": (DiskUsage("/", "ext4", 100 * GIB, 50 * GIB, 50 * GIB),),
        "interfaces": (NetCounters("eth0", errors=0, drops=0, rx_bytes=0, tx_bytes=0),),
    }
    base.update(fields)
    return ServerSample(**base)  # type: ignore[arg-type]


DEFAULTS = target().thresholds


def points_by_measurement(points) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for point in points:
        grouped.setdefault(point.measurement, []).append(point)
    return grouped


def test_first_poll_reports_load_but_no_cpu_percent_or_rates():
    judged = evaluate(sample(5000.0), None, DEFAULTS)
    grouped = points_by_measurement(judged.metrics)
    assert "cpu_percent" not in grouped["server"][0].fields
    assert grouped["server"][0].fields["load_per_core"] == 0.25
    assert "server_net" not in grouped
    assert judged.status is Status.OK


def test_second_poll_turns_counters_into_rates():
    first = evaluate(sample(5000.0), None, DEFAULTS)
    later = sample(
        5010.0,
        interfaces=(NetCounters("eth0", errors=30, drops=5, rx_bytes=10_000, tx_bytes=2_000),),
    )
    judged = evaluate(later, json.loads(json.dumps(first.state)), DEFAULTS)
    grouped = points_by_measurement(judged.metrics)
    assert grouped["server"][0].fields["cpu_percent"] == 25.0
    net = grouped["server_net"][0]
    assert net.tags == {"interface": "eth0"}
    assert net.fields == {
        "errors_per_s": 3.0,
        "drops_per_s": 0.5,
        "rx_bytes_per_s": 1000.0,
        "tx_bytes_per_s": 200.0,
    }
    assert judged.status is Status.WARN
    assert judged.detail == "eth0 errors at 3/s (warn above 1/s)"


def test_a_reset_counter_counts_from_zero_instead_of_going_negative():
    before = sample(5000.0, interfaces=(NetCounters("eth0", 900, 900, 10**9, 10**9),))
    after = sample(5010.0, interfaces=(NetCounters("eth0", 20, 0, 100, 100),))
    judged = evaluate(after, evaluate(before, None, DEFAULTS).state, DEFAULTS)
    net = points_by_measurement(judged.metrics)["server_net"][0]
    assert net.fields["errors_per_s"] == 2.0
    assert all(value >= 0 for value in net.fields.values())


@pytest.mark.parametrize(
    ("later", "why"),
    [
        (sample(5000.0 + 301), "older than max_age"),
        (sample(5010.0, boot_time=4000.0), "machine rebooted"),
        (sample(4990.0), "clock stepped back"),
    ],
    ids=["stale", "rebooted", "clock-went-back"],
)
def test_previous_poll_is_ignored_when_rates_against_it_mean_nothing(later, why):
    state = evaluate(sample(5000.0), None, DEFAULTS).state
    judged = evaluate(later, state, DEFAULTS, max_age=300)
    grouped = points_by_measurement(judged.metrics)
    assert "cpu_percent" not in grouped["server"][0].fields, why
    assert "server_net" not in grouped, why


@pytest.mark.parametrize(
    "state",
    [
        {"taken_at": "yesterday"},
        {"taken_at": 4990.0, "cpu": [1.0]},
        {"taken_at": 4990.0, "cpu": "busy", "net": ["eth0"]},
        {"taken_at": 4990.0, "net": {"eth0": [1, 2]}},
        {"taken_at": 4990.0, "net": {"eth0": ["a", "b", "c", "d"]}},
    ],
    ids=["time-not-a-number", "short-cpu", "wrong-shapes", "short-counters", "text-counters"],
)
def test_state_of_an_unexpected_shape_is_ignored_not_a_crash(state: dict):
    judged = evaluate(sample(5000.0), state, DEFAULTS)
    grouped = points_by_measurement(judged.metrics)
    assert "cpu_percent" not in grouped["server"][0].fields
    assert "server_net" not in grouped
    assert judged.state["taken_at"] == 5000.0


def test_worst_check_wins_and_fails_are_named_first():
    full = sample(
        5000.0,
        memory_percent=88.0,
        disks=(
            DiskUsage("/", "ext4", 100 * GIB, 93 * GIB, 7 * GIB),
            DiskUsage("/var", "ext4", 100 * GIB, 10 * GIB, 90 * GIB),
        ),
    )
    judged = evaluate(full, None, DEFAULTS)
    assert judged.status is Status.FAIL
    assert judged.detail == "disk / at 93% (fail above 90%); memory at 88% (warn above 85%)"
    assert judged.observation().error_class is ErrorClass.THRESHOLD


def test_a_missing_process_fails_and_each_process_gets_a_count():
    judged = evaluate(
        sample(5000.0, processes={"asterisk": 0, "kamailio": 3}),
        None,
        DEFAULTS,
        expected_processes=["asterisk", "kamailio"],
    )
    assert judged.status is Status.FAIL
    assert judged.detail == "process asterisk is not running"
    counts = {
        p.tags["process"]: p.fields["count"]
        for p in judged.metrics
        if p.measurement == "server_process"
    }
    assert counts == {"asterisk": 0, "kamailio": 3}


def test_all_ok_detail_summarises_the_readings():
    judged = evaluate(sample(5000.0, processes={"asterisk": 2}), None, DEFAULTS, ["asterisk"])
    assert judged.status is Status.OK
    assert judged.detail == "load per core 0.25, memory 40%, disk / 50%, running: asterisk ×2"
    assert judged.observation().error_class is None


def test_a_turned_off_metric_is_not_judged():
    limits = target(thresholds={"memory_percent": None}).thresholds
    judged = evaluate(sample(5000.0, memory_percent=99.0), None, limits)
    assert judged.status is Status.OK


# -- real readings of this machine (psutil) ------------------------------------------

FIELD_TYPES = {
    "server": {
        "cpu_percent": float,
        "load1": float,
        "load5": float,
        "load15": float,
        "load_per_core": float,
        "cpu_count": int,
        "memory_percent": float,
        "memory_available_bytes": int,
        "swap_percent": float,
    },
    "server_disk": {"used_percent": float, "free_bytes": int, "total_bytes": int},
    "server_net": {
        "errors_per_s": float,
        "drops_per_s": float,
        "rx_bytes_per_s": float,
        "tx_bytes_per_s": float,
    },
    "server_process": {"count": int},
}
LABELS = {"server": set(), "server_disk": {"mount"}, "server_net": {"interface"}}
LABELS["server_process"] = {"process"}


def own_process_name() -> str:
    return psutil.Process(os.getpid()).name()


def test_two_local_polls_give_every_metric_with_fixed_field_types():
    t = target(processes=[own_process_name()], interfaces={"exclude": []})
    ctx = ProbeContext("pbx-host", timeout=5.0)
    first = run(t, ctx)
    assert "cpu_percent" not in points_by_measurement(first.metrics)["server"][0].fields
    json.dumps(ctx.state)  # the engine persists probe state as JSON
    time.sleep(0.05)
    second = run(t, ctx)
    grouped = points_by_measurement(second.metrics)
    assert set(grouped) == set(FIELD_TYPES)
    for measurement, points in grouped.items():
        for point in points:
            assert set(point.tags) == LABELS[measurement]
            assert {k: type(v) for k, v in point.fields.items()} == {
                k: FIELD_TYPES[measurement][k] for k in point.fields
            }
    assert set(grouped["server"][0].fields) == set(FIELD_TYPES["server"])
    assert 0.0 <= grouped["server"][0].fields["cpu_percent"] <= 100.0
    assert second.latency is not None and second.latency > 0
    assert second.status in (Status.OK, Status.WARN, Status.FAIL)


def test_a_tiny_disk_threshold_fails_naming_the_mount():
    t = target(thresholds={"disk_percent": {"warn": 0.0005, "fail": 0.001}})
    observation = run(t, ProbeContext("pbx-host", timeout=5.0))
    mounts = [p.tags["mount"] for p in observation.metrics if p.measurement == "server_disk"]
    assert mounts, "this machine has at least one real filesystem"
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.THRESHOLD
    assert f"disk {mounts[0]} at " in observation.detail
    assert "(fail above 0.001%)" in observation.detail


def test_disk_include_limits_the_mounts_measured():
    t = target(disks={"include": ["/no-such-mount-*"]})
    observation = run(t, ProbeContext("pbx-host", timeout=5.0))
    assert [p for p in observation.metrics if p.measurement == "server_disk"] == []


def test_a_running_process_counts_and_a_missing_one_fails():
    mine = own_process_name()
    t = target(processes=[mine, "dialwatch-no-such-process"])
    observation = run(t, ProbeContext("pbx-host", timeout=5.0))
    counts = {
        p.tags["process"]: p.fields["count"]
        for p in observation.metrics
        if p.measurement == "server_process"
    }
    assert counts[mine] >= 1
    assert counts["dialwatch-no-such-process"] == 0
    assert observation.status is Status.FAIL
    assert "process dialwatch-no-such-process is not running" in observation.detail


def test_only_the_running_process_is_ok():
    t = target(processes=[own_process_name()], thresholds=_all_off())
    observation = run(t, ProbeContext("pbx-host", timeout=5.0))
    assert observation.status is Status.OK, observation.detail


def _all_off() -> dict[str, None]:
    return dict.fromkeys((rule.name for rule in SERVER_RULES), None)


def test_a_reading_still_stuck_from_the_last_poll_is_not_started_again():
    # A hung NFS mount cannot be made here; mark the reading as in flight the
    # way collect() does while its thread runs.
    with local._lock:
        local._in_flight["stuck-host"] = time.monotonic() - 42
    try:
        observation = run(target(), ProbeContext("stuck-host", timeout=5.0))
    finally:
        with local._lock:
            local._in_flight.pop("stuck-host", None)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TIMEOUT
    assert "previous reading started 42s ago and has not finished" in observation.detail
    # Once the stuck reading ends, the next poll reads again.
    assert run(target(), ProbeContext("stuck-host", timeout=5.0)).error_class is not (
        ErrorClass.TIMEOUT
    )


def test_a_reading_cancelled_by_the_runner_timeout_still_releases_its_mark():
    marked: list[bool] = []

    async def main() -> None:
        # Listing processes makes the reading take milliseconds, far longer than one loop step.
        slow = target(processes=[own_process_name()])
        task = asyncio.create_task(check(slow, ProbeContext("cancelled-host", timeout=5.0)))
        await asyncio.sleep(0)  # the probe submits its reading to a thread
        marked.append("cancelled-host" in local._in_flight)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())  # returns once the default executor's threads are done
    assert marked == [True]
    assert "cancelled-host" not in local._in_flight


def test_the_reading_runs_off_the_event_loop_thread():
    seen: list[str] = []

    async def main() -> None:
        loop_thread = threading.get_ident()
        real = local.read

        def spy(t: ServerTarget) -> ServerSample:
            seen.append("loop" if threading.get_ident() == loop_thread else "other")
            return real(t)

        local.read = spy  # type: ignore[assignment]
        try:
            await check(target(), ProbeContext("pbx-host", timeout=5.0))
        finally:
            local.read = real  # type: ignore[assignment]

    asyncio.run(main())
    assert seen == ["other"]


def test_ssh_and_snmp_libraries_load_only_when_a_target_uses_them() -> None:
    import subprocess
    import sys

    code = (
        "import sys, probes, monitor.engine, web; "
        "print(sorted(m for m in ('paramiko', 'pysnmp', 'alembic') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_an_idle_cpu_between_polls_reads_zero_busy_not_a_counter_reset(monkeypatch):
    # Real /proc/stat figures where only idle moved: total minus idle steps back by
    # a rounding error (857144.7200000002 then 857144.7199999997), which once read
    # as a counter reset and left cpu_percent out of a poll.
    Times = type(psutil.cpu_times())
    zero = dict.fromkeys(Times._fields, 0.0)
    readings = iter(
        [
            Times(**{**zero, "user": 798269.56, "system": 58875.16, "idle": 4107896.53}),
            Times(**{**zero, "user": 798269.56, "system": 58875.16, "idle": 4107896.83}),
        ]
    )
    monkeypatch.setattr(local.psutil, "cpu_times", lambda: next(readings))
    t = target()
    first, second = local.read(t), local.read(t)
    assert first.cpu is not None and second.cpu is not None
    assert second.cpu.busy >= first.cpu.busy
    assert busy_percent(first.cpu.total, first.cpu.busy, second.cpu.total, second.cpu.busy) == 0.0
