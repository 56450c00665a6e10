"""Every plugin family has one registry shape (core.registry), and the config is built from it:
a kind registered is a kind the config accepts and the code builds, with no list to keep in step."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import TypeAdapter, ValidationError

from core.observation import MetricPoint
from core.registry import PluginKind, config_union, registry_mismatches
from core.vitals import SinkHealth
from monitor.config.errors import ConfigError
from monitor.config.loader import load_config
from monitor.config.models import StorageConfig
from monitor.query_select import FallbackMetricsQuery, build_metrics_query
from monitor.sinks import SINKS, build_sinks
from monitor.sinks.base import MetricSink, SinkFactory
from monitor.sinks.config import InfluxV1SinkConfig, SinkConfig
from notify.channels import CHANNELS
from probes import PROBES

REGISTRIES = {"PROBES": PROBES, "SINKS": SINKS, "CHANNELS": CHANNELS}


@pytest.mark.parametrize("name", REGISTRIES)
def test_each_entry_is_filed_under_its_own_kind_with_a_summary(name: str) -> None:
    registry = REGISTRIES[name]
    assert registry_mismatches(registry) == []
    for entry in registry.values():
        assert isinstance(entry, PluginKind)
        assert entry.summary.strip(), f"{name}[{entry.kind!r}] has no summary"


def test_a_probe_entry_still_answers_to_check() -> None:
    tcp = PROBES["tcp"]
    assert tcp.check is tcp.implementation


class Quiet(SinkConfig):
    kind: Literal["quiet"]


class Loud(SinkConfig):
    kind: Literal["loud"]


FAKES = {
    "quiet": PluginKind("quiet", Quiet, SinkFactory(lambda c, d: None), "a sink"),
    "loud": PluginKind("loud", Loud, SinkFactory(lambda c, d: None), "another sink"),
}


def test_a_union_built_from_a_registry_takes_each_kind_and_names_the_known_ones() -> None:
    union = TypeAdapter(list[config_union(FAKES)])  # type: ignore[misc]
    assert [type(c) for c in union.validate_python([{"kind": "loud"}, {"kind": "quiet"}])] == [
        Loud,
        Quiet,
    ]
    with pytest.raises(ValidationError) as error:
        union.validate_python([{"kind": "noisy"}])
    assert "'quiet', 'loud'" in str(error.value)


def test_a_mismatched_entry_is_reported() -> None:
    wrong = {"quiet": PluginKind("quiet", Loud, SinkFactory(lambda c, d: None), "x")}
    assert registry_mismatches(wrong) == ["'quiet': entry kind 'quiet', Loud.kind ('loud',)"]


def test_the_metrics_section_accepts_exactly_the_registered_sink_kinds(tmp_path: Path) -> None:
    path = tmp_path / "site.yaml"
    path.write_text("metrics:\n  - kind: graphite\n    url: http://h\n")
    with pytest.raises(ConfigError) as error:
        load_config(path, env={})
    assert (
        f"{path}:2: metrics[0].kind: unknown kind 'graphite'; known kinds: {', '.join(SINKS)}"
        in error.value.errors
    )


class Recorder(MetricSink):
    """A sink kind made for this test: it keeps what it is given."""

    def __init__(self, name: str, root: Path) -> None:
        self.name = name
        self.root = root
        self.points: list[MetricPoint] = []

    def submit(self, points: Sequence[MetricPoint]) -> None:
        self.points.extend(points)

    def close(self, timeout: float = 10.0) -> None:
        pass

    def health(self) -> SinkHealth:
        return SinkHealth(name=self.name, up=True, message="ok")


def record(config: Quiet, data_dir: Path) -> Recorder:
    return Recorder(config.sink_name, data_dir)


def test_sinks_are_built_by_their_kinds_factory_without_a_branch_per_type(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SINKS, "quiet", PluginKind("quiet", Quiet, SinkFactory(record), "test"))
    (sink,) = build_sinks([Quiet(kind="quiet", name="q1")], tmp_path)
    assert isinstance(sink, Recorder) and (sink.name, sink.root) == ("q1", tmp_path)


def test_charts_read_the_first_sink_whose_kind_can_be_read_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(SINKS, "quiet", PluginKind("quiet", Quiet, SinkFactory(record), "test"))
    asked: list[tuple[Any, float]] = []

    def reader(config: Any, timeout: float) -> str:
        asked.append((config, timeout))
        return "the influx reader"

    v1 = SINKS["influxdb-v1"]
    factory = SinkFactory(v1.implementation.sink, reader)
    monkeypatch.setitem(SINKS, "influxdb-v1", PluginKind(v1.kind, v1.model, factory, v1.summary))
    influx = InfluxV1SinkConfig(kind="influxdb-v1", url="http://u:pw@h:8086", database="d")
    query = build_metrics_query(StorageConfig(), tmp_path, [Quiet(kind="quiet"), influx])
    try:
        assert isinstance(query, FallbackMetricsQuery)
        assert query.primary == "the influx reader" and asked[0][0] is influx
        assert query.name == "InfluxDB http://h:8086 (database d)"  # no credentials in logs
    finally:
        query.fallback.close()
