"""A real VictoriaMetrics on a loopback port with a temporary storage dir.

It accepts the InfluxDB v2 write API and keeps duplicate samples, so reading
back through ``/api/v1/export`` shows whether anything was sent twice.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import free_port, require_binary, stop_process, wait_tcp


class VictoriaMetricsServer:
    """One victoria-metrics process; ``stop()``/``start()`` keep the port and data."""

    def __init__(self, root: Path, tls: tuple[Path, Path] | None = None) -> None:
        """``tls``: (certificate, key) PEM files to serve HTTPS with."""
        self.binary = require_binary("victoria-metrics")
        self.root = root
        self.port = free_port()
        self.tls = tls
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.context = ssl.create_default_context(cafile=str(tls[0])) if tls else None
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.root / "victoria-metrics.log", "ab")  # noqa: SIM115 - owned by the process
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"-httpListenAddr=127.0.0.1:{self.port}",
                f"-storageDataPath={self.root / 'data'}",
                "-retentionPeriod=100y",
                "-search.disableCache",
                "-search.latencyOffset=0s",
                *(
                    ["-tls", f"-tlsCertFile={self.tls[0]}", f"-tlsKeyFile={self.tls[1]}"]
                    if self.tls
                    else []
                ),
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        wait_tcp(self.port, timeout=20)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, 15)
            self.proc = None

    def flush(self) -> None:
        """Make just-written samples searchable (VictoriaMetrics buffers them ~1 s)."""
        urllib.request.urlopen(
            f"{self.url}/internal/force_flush", timeout=10, context=self.context
        ).close()

    def export(self, match: str = '{__name__!=""}') -> list[dict[str, Any]]:
        """Every series matching ``match`` with all its samples (duplicates included)."""
        self.flush()
        query = urllib.parse.urlencode({"match[]": match, "start": "0"})
        with urllib.request.urlopen(
            f"{self.url}/api/v1/export?{query}", timeout=30, context=self.context
        ) as response:
            return [json.loads(line) for line in response.read().splitlines() if line.strip()]


@pytest.fixture(name="victoriametrics")
def victoriametrics_fixture(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[VictoriaMetricsServer]:
    """A fresh VictoriaMetrics, started before the test and stopped after it."""
    server = VictoriaMetricsServer(tmp_path_factory.mktemp("victoriametrics"))
    server.start()
    try:
        yield server
    finally:
        server.stop()
