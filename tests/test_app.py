"""The appliance's wiring (dialwatch/app.py) without starting its threads."""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.observation import MetricPoint
from dialwatch.app import Appliance
from monitor.config import load_config
from monitor.points import FieldType


def test_field_types_survive_a_restart_so_influxdb_never_sees_a_type_change(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("targets: []\n", encoding="utf-8")
    data = tmp_path / "data"

    first = Appliance(str(cfg), load_config(cfg), data, ("127.0.0.1", 0))
    first.embedded.store.write([MetricPoint("sip", {"rtt_ms": 1.5}, {"target": "t"}, 1)])
    first.embedded.close()
    first.repo.close()
    first.db.dispose()

    second = Appliance(str(cfg), load_config(cfg), data, ("127.0.0.1", 0))
    try:
        assert second.engine.enricher.field_types.get("sip", "rtt_ms") is FieldType.FLOAT
        [point] = second.engine.enricher.field_types.apply([MetricPoint("sip", {"rtt_ms": 2})])
        assert point.fields["rtt_ms"] == 2.0 and isinstance(point.fields["rtt_ms"], float)
    finally:
        second.embedded.close()
        second.repo.close()
        second.db.dispose()


def test_the_appliance_registers_the_state_db_history_with_one_retention_job(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "storage:\n  retention:\n    transitions: {max_age: 1d}\n"
        "targets:\n  - {id: db, kind: tcp, address: '192.0.2.1:5432'}\n"
        "components:\n  - {id: calls, name: {zh-CN: 呼叫, en: Calls}, targets: [db]}\n",
        encoding="utf-8",
    )
    appliance = Appliance(str(cfg), load_config(cfg), tmp_path / "data", ("127.0.0.1", 0))
    try:
        assert appliance.retention.rollups == ("uptime",)
        assert appliance.retention.kinds == (
            "transitions",
            "events",
            "incident_timelines",
            "incidents",
            "uptime",
            "silences",
            "manual_maintenance",
            "audit",
            "staff_sessions",
            "runbook_runs",
        )
        # One run through the appliance's own runners: reads on a worker thread,
        # deletes on the engine's DB writer thread.
        t0 = 1_780_000_000.0
        repo = appliance.repo
        repo.checkpoint([{"target_id": "db", "kind": "tcp", "health": "up", "since": t0}])
        for n in range(5):
            repo.record_transition("db", t0 + n * 86400.0, "down", "up")
        report = asyncio.run(appliance.retention.run_once(t0 + 5 * 86400.0))
        assert report.failed == [] and report.deleted["transitions"] == 3
        assert report.rolled_up == {"uptime": 6}
    finally:
        appliance.embedded.close()
        appliance.repo.close()
        appliance.db.dispose()


def test_a_paging_channel_that_is_off_makes_the_appliances_own_check_warn(
    tmp_path: Path,
) -> None:
    from dialwatch.schema import Config as ApplianceConfig

    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "channels:\n  - {id: ding, kind: dingtalk, webhook: not-a-url}\n",
        encoding="utf-8",
    )
    loaded = load_config(cfg, schema=ApplianceConfig)
    appliance = Appliance(str(cfg), loaded, tmp_path / "data", ("127.0.0.1", 0))
    try:
        alerts = appliance.engine.vitals.part_alerts()
        assert list(alerts) == ["channel:ding"]
        assert "channel ding is disabled: its config does not load" in alerts["channel:ding"]
    finally:
        appliance.embedded.close()
        appliance.repo.close()
        appliance.db.dispose()
