"""Metric sinks: where observations' points go, besides the embedded store.

``SINKS`` is the only place a sink kind is registered, in the shape every
plugin registry has (``core.registry``, as ``probes.PROBES`` for probe kinds):
kind → its config model, its ``SinkFactory`` and a summary. The config schema
builds the ``metrics:`` union from it; ``build_sinks`` and the dashboard's
choice of chart store look kinds up here. A new sink kind is a config model, a
factory and one line below.

The embedded store is no entry: it is not configured under ``metrics:`` but
always on (the dashboard reads it), built by the appliance from ``storage:``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from core.registry import PluginKind
from monitor.sinks import influx
from monitor.sinks.base import MetricSink, SinkFactory
from monitor.sinks.config import InfluxV1SinkConfig, InfluxV2SinkConfig, SinkConfig

SinkKind = PluginKind[SinkConfig, SinkFactory]

SINKS: dict[str, SinkKind] = {
    "influxdb-v1": PluginKind(
        "influxdb-v1",
        InfluxV1SinkConfig,
        SinkFactory(influx.v1_sink, influx.v1_reader),
        "InfluxDB 1.x",
    ),
    "influxdb": PluginKind(
        "influxdb",
        InfluxV2SinkConfig,
        SinkFactory(influx.v2_sink, influx.v2_reader),
        "InfluxDB 2.x and later, or anything that takes its write API",
    ),
}


def build_sinks(configs: Sequence[SinkConfig], data_dir: Path | str) -> list[MetricSink]:
    """One sink per ``metrics:`` entry, not started yet (the engine calls ``start()``)."""
    root = Path(data_dir)
    return [SINKS[config.kind].implementation.sink(config, root) for config in configs]


__all__ = ["SINKS", "SinkKind", "build_sinks"]
