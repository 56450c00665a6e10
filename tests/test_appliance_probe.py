"""The ``appliance`` probe: Dialwatch judging its own engine.

The engine's side is the ``EngineStats`` contract; ``Facts`` below is a plain
implementation of it (numbers set by the test), with a real temporary data
directory and a real state DB file, and real ``BatchingSink`` subclasses for
the sink health it reports.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.observation import ErrorClass, MetricPoint, Status
from core.vitals import SinkHealth
from monitor.sinks.base import BatchingSink, SinkError
from probes import PROBES
from probes.appliance import ApplianceConfig, ApplianceTarget, EngineStats, check
from probes.base import ProbeContext

MIB = 1024 * 1024


@dataclass
class Facts:
    """The engine's numbers as the appliance check sees them (the EngineStats contract)."""

    data_dir: Path
    lag: float = 0.05
    late: float = 0.0
    failed: float = 0.0
    errored: float = 0.0
    state_db: Path | None = None
    sinks: list[BatchingSink] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    alerts: dict[str, str] = field(default_factory=dict)

    def scheduler_lag_seconds(self) -> float:
        return self.lag

    def late_per_second(self) -> float:
        return self.late

    def failed_per_second(self) -> float:
        return self.failed

    def errored_per_second(self) -> float:
        return self.errored

    def state_db_bytes(self) -> int | None:
        return self.state_db.stat().st_size if self.state_db else None

    def sink_health(self) -> Sequence[SinkHealth]:
        return [sink.health() for sink in self.sinks]

    def probe_errors(self) -> dict[str, str]:
        return self.errors

    def part_alerts(self) -> dict[str, str]:
        return self.alerts


class WorkingSink(BatchingSink):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.written: list[MetricPoint] = []

    def write_batch(self, points: list[MetricPoint]) -> None:
        self.written.extend(points)


class RefusingSink(BatchingSink):
    """A sink whose server refuses every write, as an InfluxDB that is down would."""

    def write_batch(self, points: list[MetricPoint]) -> None:
        raise SinkError("connection refused by 127.0.0.1:8086")


def flushed(sink: BatchingSink) -> BatchingSink:
    sink.submit([MetricPoint("x", {"v": 1.0})])
    sink.close()  # no writer thread was started: close() writes what is queued, once
    return sink


@pytest.fixture
def facts(tmp_path: Path) -> Facts:
    db = tmp_path / "state.db"
    db.write_bytes(b"\0" * (3 * MIB))
    return Facts(data_dir=tmp_path, state_db=db)


def appliance(**fields: object) -> ApplianceTarget:
    return ApplianceTarget.model_validate({"id": "dialwatch", "kind": "appliance", **fields})


def run(target: ApplianceTarget, facts: Facts | None, section: ApplianceConfig | None = None):
    extra: dict[str, object] = {}
    if facts is not None:
        extra["engine"] = facts
    if section is not None:
        extra["appliance_config"] = section
    return asyncio.run(check(target, ProbeContext("dialwatch", timeout=5.0, extra=extra)))


def test_the_test_engine_satisfies_the_contract(facts: Facts):
    assert isinstance(facts, EngineStats)
    assert PROBES["appliance"].model is ApplianceTarget


def test_a_healthy_engine_is_ok_and_reports_its_numbers(facts: Facts):
    facts.failed = 0.5
    facts.sinks = [flushed(WorkingSink("influx"))]
    observation = run(appliance(), facts)
    assert observation.status is Status.OK, observation.detail
    assert observation.error_class is None
    assert observation.detail.startswith("scheduler lag 0.05 s, 0.5/s failing, ")
    main = next(p for p in observation.metrics if p.measurement == "appliance")
    assert main.tags == {}
    assert main.fields["scheduler_lag_seconds"] == 0.05
    assert main.fields["failed_per_second"] == 0.5
    assert main.fields["state_db_bytes"] == 3 * MIB
    assert main.fields["sinks_down"] == 0
    assert 0 < main.fields["data_free_bytes"] <= shutil.disk_usage(facts.data_dir).total
    assert {k: type(v) for k, v in main.fields.items()} == {
        "scheduler_lag_seconds": float,
        "late_per_second": float,
        "failed_per_second": float,
        "errored_per_second": float,
        "sinks_down": int,
        "data_free_bytes": int,
        "data_free_percent": float,
        "state_db_bytes": int,
    }
    sink = next(p for p in observation.metrics if p.measurement == "appliance_sink")
    assert sink.tags == {"sink": "influx"}
    assert isinstance(sink.fields["write_seconds"], float) and sink.fields["write_seconds"] >= 0
    assert sink.fields == {
        "up": 1,
        "queued": 0,
        "points_written": 1,
        "points_dropped": 0,
        "spool_bytes": 0,
        "spool_oldest_age_s": 0.0,
        "write_seconds": sink.fields["write_seconds"],
        "points_spooled": 0,
        "points_evicted": 0,
        "points_quarantined": 0,
    }


@pytest.mark.parametrize(
    ("change", "target_fields", "status", "detail"),
    [
        ({"lag": 3.0}, {}, Status.WARN, "scheduler lag at 3 s (warn above 2 s)"),
        ({"lag": 12.5}, {}, Status.FAIL, "scheduler lag at 12.5 s (fail above 10 s)"),
        (
            {"lag": 1.0},
            {"max_scheduler_lag": "500ms", "lag_fail_factor": 4},
            Status.WARN,
            "scheduler lag at 1 s (warn above 0.5 s)",
        ),
        ({"errored": 0.25}, {}, Status.WARN, "probes erroring at 0.25/s (warn above 0/s)"),
        ({"errored": 0.25}, {"max_errored_per_second": 1}, Status.OK, None),
        ({}, {"max_state_db_mb": 2}, Status.WARN, "state DB at 3 MB (warn above 2 MB)"),
    ],
    ids=[
        "lag-over-the-limit-warns",
        "lag-over-five-times-the-limit-fails",
        "target-fields-override-the-lag-limit",
        "probes-erroring-warns",
        "errors-under-a-raised-limit-are-fine",
        "state-db-over-its-size-warns",
    ],
)
def test_engine_trouble_is_judged_against_the_limits(
    facts: Facts, change: dict, target_fields: dict, status: Status, detail: str | None
):
    for key, value in change.items():
        setattr(facts, key, value)
    observation = run(appliance(**target_fields), facts)
    assert observation.status is status
    if detail is None:
        assert observation.error_class is None
    else:
        assert observation.detail == detail
        assert observation.error_class is ErrorClass.THRESHOLD


def test_limits_come_from_the_appliance_section_when_the_target_sets_none(facts: Facts):
    facts.lag = 0.5
    section = ApplianceConfig(max_scheduler_lag=0.1, max_state_db_mb=1)
    observation = run(appliance(), facts, section)
    assert observation.status is Status.WARN
    assert observation.detail == (
        "scheduler lag at 0.5 s (warn above 0.1 s); state DB at 3 MB (warn above 1 MB)"
    )


def test_low_free_space_in_the_data_directory_fails_naming_it(facts: Facts):
    free_mb = shutil.disk_usage(facts.data_dir).free // MIB
    observation = run(appliance(min_free_disk_mb=free_mb * 1000), facts)
    assert observation.status is Status.FAIL
    assert observation.detail.startswith(f"data directory {facts.data_dir} free at ")
    assert observation.detail.endswith(f"(fail below {free_mb * 1000} MB)")


def test_free_space_limit_from_the_section_applies(facts: Facts):
    free_mb = shutil.disk_usage(facts.data_dir).free // MIB
    section = ApplianceConfig(min_free_disk_mb=free_mb * 1000)
    assert run(appliance(), facts, section).status is Status.FAIL
    # ...and the target's own field wins over the section.
    assert run(appliance(min_free_disk_mb=0), facts, section).status is Status.OK


def test_a_missing_data_directory_fails(facts: Facts, tmp_path: Path):
    facts.data_dir = tmp_path / "gone"
    observation = run(appliance(), facts)
    assert observation.status is Status.FAIL
    assert observation.detail == f"data directory {tmp_path / 'gone'} does not exist"
    main = next(p for p in observation.metrics if p.measurement == "appliance")
    assert "data_free_bytes" not in main.fields


def test_a_sink_that_is_down_warns_with_its_own_message(facts: Facts):
    facts.sinks = [flushed(WorkingSink("embedded")), flushed(RefusingSink("influx"))]
    observation = run(appliance(), facts)
    assert observation.status is Status.WARN
    assert observation.detail == "sink influx down: connection refused by 127.0.0.1:8086"
    sinks = {p.tags["sink"]: p.fields for p in observation.metrics if p.tags.get("sink")}
    assert sinks["influx"]["up"] == 0
    assert sinks["influx"]["points_dropped"] == 1
    assert sinks["embedded"]["up"] == 1
    main = next(p for p in observation.metrics if p.measurement == "appliance")
    assert main.fields["sinks_down"] == 1


class QuarantiningSink(WorkingSink):
    """Up, but it set points aside after a 400, as the InfluxDB sinks do."""

    def health(self) -> SinkHealth:
        return dataclasses.replace(
            super().health(),
            points_quarantined=3,
            alert="3 points quarantined: field type conflict (see quarantine/influx)",
        )


def test_a_sink_that_is_up_but_raised_an_alert_warns_with_it(facts: Facts):
    facts.sinks = [flushed(QuarantiningSink("influx"))]
    observation = run(appliance(), facts)
    assert observation.status is Status.WARN
    assert observation.detail == (
        "sink influx: 3 points quarantined: field type conflict (see quarantine/influx)"
    )
    [sink] = [p.fields for p in observation.metrics if p.tags.get("sink")]
    assert sink["points_quarantined"] == 3 and sink["up"] == 1


def test_targets_whose_probe_could_not_run_are_named(facts: Facts):
    facts.errored = 0.1
    facts.errors = {
        f"trunk-{i}": f"the probe for trunk-{i} could not run: probe crashed: KeyError: 'x'"
        for i in range(5)
    }
    observation = run(appliance(max_errored_per_second=1.0), facts)
    assert observation.status is Status.WARN
    assert observation.detail == (
        "the probe for trunk-0 could not run: probe crashed: KeyError: 'x'; "
        "the probe for trunk-1 could not run: probe crashed: KeyError: 'x'; "
        "the probe for trunk-2 could not run: probe crashed: KeyError: 'x'; "
        "and 2 more probes could not run"
    )


def test_worst_problem_wins_and_every_problem_is_named(facts: Facts):
    facts.lag = 30.0
    facts.errored = 1.0
    facts.sinks = [flushed(RefusingSink("influx"))]
    observation = run(appliance(), facts)
    assert observation.status is Status.FAIL
    assert observation.detail == (
        "scheduler lag at 30 s (fail above 10 s); probes erroring at 1/s (warn above 0/s); "
        "sink influx down: connection refused by 127.0.0.1:8086"
    )


def test_a_state_db_that_is_not_a_local_file_is_not_judged(facts: Facts):
    facts.state_db = None
    observation = run(appliance(max_state_db_mb=1), facts)
    assert observation.status is Status.OK
    main = next(p for p in observation.metrics if p.measurement == "appliance")
    assert "state_db_bytes" not in main.fields


def test_without_the_engine_the_check_is_an_error_not_a_failure():
    observation = run(appliance(), None)
    assert observation.status is Status.ERROR
    assert "runs only inside the engine" in observation.detail


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"lag_fail_factor": 1}, "greater than 1"),
        ({"max_scheduler_lag": "soon"}, "must be a duration like 10s"),
        ({"min_free_disk_mb": -1}, "greater than or equal to 0"),
        ({"max_lag": "1s"}, "Extra inputs are not permitted"),
    ],
    ids=["fail-factor-must-exceed-one", "lag-is-a-duration", "free-space-not-negative", "typo"],
)
def test_bad_appliance_config_is_an_error(fields: dict, message: str):
    with pytest.raises(ValidationError) as info:
        appliance(**fields)
    assert message in str(info.value)


def test_a_paging_channel_in_trouble_makes_the_appliance_warn_with_its_sentence(facts: Facts):
    facts.alerts = {
        "channel:sms": "channel sms is degraded: its last 3 attempts failed (last: HTTP 503)",
        "channel:ding": "channel ding is disabled: its config does not load: ...",
    }
    observation = run(appliance(), facts)
    assert observation.status is Status.WARN
    assert observation.error_class is ErrorClass.THRESHOLD
    assert "channel sms is degraded: its last 3 attempts failed" in observation.detail
    assert "channel ding is disabled" in observation.detail
    facts.alerts = {}
    assert run(appliance(), facts).status is Status.OK
