"""A real InfluxDB 1.x (``influxd``) on loopback ports with a temporary data dir.

``InfluxServer`` can be stopped and started again on the same ports and data
(fault-injection tests); ``influxdb`` is the pytest fixture.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import free_port, require_binary, wait_tcp

_CONFIG = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{root}/meta"

[data]
  dir = "{root}/data"
  wal-dir = "{root}/wal"
  query-log-enabled = false

[http]
  bind-address = "127.0.0.1:{port}"
  log-enabled = false
  max-body-size = {max_body_size}

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = false
"""


class InfluxServer:
    """One influxd process; ``stop()``/``start()`` keep ports and data."""

    def __init__(self, root: Path, max_body_size: int = 25_000_000) -> None:
        self.binary = require_binary("influxd")
        self.root = root
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = root / "influxdb.conf"
        self.config.write_text(
            _CONFIG.format(
                root=root,
                port=self.port,
                rpc_port=self.rpc_port,
                max_body_size=max_body_size,
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "influxd.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [self.binary, "-config", str(self.config)], stdout=log, stderr=log
        )
        log.close()
        wait_tcp(self.port, timeout=20)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run InfluxQL over ``/query`` (POST, so CREATE/DROP work too)."""
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(f"{self.url}/query", data=data, timeout=10) as response:
            return json.loads(response.read())

    def select(self, q: str, db: str) -> list[dict[str, Any]]:
        """Rows of a SELECT as dicts (time in ns), across all series in the answer."""
        result = self.query(q, db)["results"][0]
        if "error" in result:
            raise AssertionError(result["error"])
        rows: list[dict[str, Any]] = []
        for series in result.get("series", []):
            for values in series["values"]:
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                rows.append(row)
        return rows


@pytest.fixture(name="influxdb")
def influxdb_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxServer]:
    """A fresh InfluxDB 1.x, started before the test and stopped after it."""
    server = InfluxServer(tmp_path_factory.mktemp("influxdb"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
