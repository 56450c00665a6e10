"""The ``metrics:`` config section: the issue's sketch loads, mistakes get clear
errors, tokens stay hidden, and build_sinks gives working sinks."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.observation import MetricPoint
from monitor.config.errors import ConfigError
from monitor.config.loader import load_config
from monitor.sinks import build_sinks
from monitor.sinks.config import InfluxV1SinkConfig, InfluxV2SinkConfig
from monitor.sinks.influx_v1 import InfluxV1Sink
from monitor.sinks.influx_v2 import InfluxV2Sink
from tests.peers.influxdb import InfluxServer, influxdb_fixture  # noqa: F401 - fixture

SKETCH = """\
metrics:
  - kind: influxdb-v1
    url: http://127.0.0.1:8086
    database: dialwatch        # created if missing and allowed, else a clear error
  - kind: influxdb
    url: https://influx.example:8086
    org: ops
    bucket: dialwatch
    token: ${INFLUX_TOKEN}
"""


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    return load_config(path, env={"INFLUX_TOKEN": "tok-123456"} | (env or {}))


def test_the_config_sketch_from_the_issue_loads_with_its_defaults(tmp_path: Path) -> None:
    v1, v2 = load(tmp_path, SKETCH).config.metrics
    assert isinstance(v1, InfluxV1SinkConfig) and isinstance(v2, InfluxV2SinkConfig)
    assert (v1.sink_name, v1.database, v1.create_database, v1.gzip) == (
        "influxdb-v1",
        "dialwatch",
        True,
        False,
    )
    assert (v2.sink_name, v2.org, v2.bucket, v2.token, v2.gzip) == (
        "influxdb",
        "ops",
        "dialwatch",
        "tok-123456",
        True,
    )
    assert (v2.batch_size, v2.flush_interval, int(v2.spool_max_bytes)) == (5000, 1.0, 1024**3)


def test_printing_the_config_never_shows_the_token(tmp_path: Path) -> None:
    loaded = load(tmp_path, SKETCH + "    retry_max: 10s\n")
    literal = InfluxV1SinkConfig(
        kind="influxdb-v1", url="http://x", database="d", username="u", password="pw-987654"
    )
    for shown in (
        repr(loaded.config),
        str(loaded.config.metrics),
        repr(literal),
        str(loaded.redacted()),
    ):
        assert "tok-123456" not in shown and "pw-987654" not in shown


ERRORS = [
    (
        "database missing",
        "  - kind: influxdb-v1\n    url: http://h:8086\n",
        "2: metrics[0].database: required",
    ),
    (
        "url not http",
        "  - kind: influxdb-v1\n    url: h:8086\n    database: d\n",
        "3: metrics[0].url: must be an http:// or https:// URL",
    ),
    (
        "unknown kind",
        "  - kind: influx\n    url: http://h\n",
        "2: metrics[0].kind: unknown kind 'influx'; known kinds: influxdb-v1, influxdb",
    ),
    (
        "token missing",
        "  - kind: influxdb\n    url: http://h\n    org: o\n    bucket: b\n",
        "2: metrics[0].token: required",
    ),
    (
        "unknown key",
        "  - kind: influxdb-v1\n    url: http://h\n    database: d\n    db: x\n",
        "metrics[0].db",
    ),
    (
        "password without user",
        "  - kind: influxdb-v1\n    url: http://h\n    database: d\n    password: x\n",
        "password needs a username",
    ),
    (
        "spool size not a size",
        "  - kind: influxdb-v1\n    url: http://h\n    database: d\n    spool_max_bytes: lots\n",
        "metrics[0].spool_max_bytes",
    ),
    (
        "two sinks with one name",
        "  - kind: influxdb-v1\n    url: http://h\n    database: d\n  - kind: influxdb-v1\n    url: http://i\n    database: e\n",
        "metrics: two metric sinks are named 'influxdb-v1': give each its own `name`",
    ),
]


@pytest.mark.parametrize(("body", "expected"), [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_config_mistake_gets_an_error_naming_file_line_and_key(
    tmp_path: Path, body: str, expected: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load(tmp_path, "metrics:\n" + body)
    assert expected in str(error.value)
    assert str(tmp_path / "site.yaml") in str(error.value)


def test_build_sinks_gives_each_sink_its_own_spool_under_the_data_dir(tmp_path: Path) -> None:
    text = (
        SKETCH
        + "  - kind: influxdb-v1\n    name: backup\n    url: http://127.0.0.1:8087\n    database: d2\n"
    )
    sinks = build_sinks(load(tmp_path, text).config.metrics, tmp_path / "data")
    try:
        assert [(type(s), s.name) for s in sinks] == [
            (InfluxV1Sink, "influxdb-v1"),
            (InfluxV2Sink, "influxdb"),
            (InfluxV1Sink, "backup"),
        ]
        assert sorted(p.name for p in (tmp_path / "data" / "spool").iterdir()) == [
            "backup",
            "influxdb",
            "influxdb-v1",
        ]
    finally:
        for sink in sinks:
            sink.close()


@pytest.mark.peer
def test_a_sink_built_from_config_writes_to_real_influxdb(
    influxdb: InfluxServer, tmp_path: Path
) -> None:
    text = f"metrics:\n  - kind: influxdb-v1\n    url: {influxdb.url}\n    database: ops\n    flush_interval: 50ms\n"
    (sink,) = build_sinks(load(tmp_path, text).config.metrics, tmp_path / "data")
    sink.start()
    sink.submit(
        [MetricPoint("sip", {"rtt_ms": 3.5}, {"target": "trunk-a"}, 1_750_000_000_000_000_000)]
    )
    sink.close()
    assert influxdb.select("SELECT rtt_ms FROM sip GROUP BY target", "ops") == [
        {"time": 1_750_000_000_000_000_000, "rtt_ms": 3.5, "target": "trunk-a"}
    ]
