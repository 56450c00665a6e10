"""The appliance's wiring (dialwatch/app.py) without starting its threads."""

from __future__ import annotations

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
