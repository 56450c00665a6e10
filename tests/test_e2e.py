"""End to end: `dialwatch run` as a real process, a real SIPp trunk, the HTTP API.

Stop the SIP peer → an incident appears in /api/v1/incidents; start it again →
resolved; the status page shows the component's state; kill -9 with an open
incident and restart → the same incident, not a duplicate; SIGHUP with a target
added → the others keep their health.

A real process runs on the real clock, so the waits here are hang guards, not
measurements: how soon an outage is detected (interval × fail_after + timeout)
is asserted exactly, in clock time, by tests/test_engine.py; how fast the
appliance is, by bench/.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.peers import free_port, require_binary
from tests.peers.sipp import options_scenario

pytestmark = [pytest.mark.peer, pytest.mark.e2e]

INTERVAL = 1.0
TIMEOUT = 0.5
FAIL_AFTER = 2
HANG_GUARD = 60.0
"""Real seconds after which a wait gives up: only a hang or a lost outage takes this long."""


class Sipp:
    """SIPp answering OPTIONS on a fixed UDP port, stoppable and restartable."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("sipp")
        self.workdir = workdir
        self.port = free_port(socket.SOCK_DGRAM)
        self.scenario = workdir / f"options-{self.port}.xml"
        self.scenario.write_text(options_scenario(200, "OK"))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.workdir / f"sipp-{self.port}.log").open("ab")
        self.process = subprocess.Popen(
            [
                self.binary,
                "-sf",
                str(self.scenario),
                "-i",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-t",
                "u1",
                "-cp",
                str(free_port(socket.SOCK_DGRAM)),
                "-nostdin",
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        time.sleep(0.3)
        assert self.process.poll() is None, "sipp exited at start"

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(5)
            self.process = None


class Appliance:
    """`dialwatch run` in a subprocess, on an ephemeral port, with its own data dir."""

    def __init__(self, config: Path, data: Path) -> None:
        self.config = config
        self.data = data
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.output = data.parent / "dialwatch.out"
        self.token: str | None = None

    def _ensure_token(self) -> None:
        """An admin and an API token in the appliance's own state DB, made before it starts
        (as `dialwatch user add` / `token create` would): every API call needs one."""
        if self.token is not None:
            return
        from monitor.staff import tokens, users
        from monitor.store.db import open_database
        from monitor.store.repository import StateRepository

        engine = open_database(None, self.data)
        try:
            repo = StateRepository(engine)
            users.add_user(repo, "cli", "e2e-admin", "admin", "an e2e test passphrase")
            self.token = tokens.create_token(repo, "cli", "e2e-admin")[1]
        finally:
            engine.dispose()

    def start(self) -> None:
        self._ensure_token()
        out = self.output.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dialwatch.cli",
                "run",
                "--config",
                str(self.config),
                "--data",
                str(self.data),
                "--listen",
                f"127.0.0.1:{self.port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        wait_until(lambda: self._healthy(), HANG_GUARD, "the appliance to answer /healthz", self)

    def _healthy(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"dialwatch exited with {self.process.returncode}:\n{self.tail()}")
        try:
            return self.get("/healthz")["status"] == "ok"
        except (OSError, urllib.error.URLError):
            return False

    def get(self, path: str) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            headers={"Authorization": f"Bearer {self.token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as resp:
            body = resp.read().decode()
            return (
                json.loads(body) if resp.headers.get_content_type() == "application/json" else body
            )

    def send(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(sig)
        code = self.process.wait(20)
        self.process = None
        return code

    def tail(self) -> str:
        return self.output.read_text(errors="replace")[-3000:] if self.output.exists() else ""


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, app: Appliance | None = None
) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            log = f"\n--- dialwatch output ---\n{app.tail()}" if app else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}{log}")
        time.sleep(0.1)
    return time.monotonic() - started


def config_text(trunk_port: int, extra_targets: str = "") -> str:
    return (
        textwrap.dedent(
            f"""\
        site: {{name: 测试外呼中心, timezone: Asia/Shanghai}}
        targets:
          - id: trunk-a
            kind: sip
            uri: sip:127.0.0.1:{trunk_port}
            transport: udp
            interval: {INTERVAL:g}s
            timeout: {TIMEOUT * 1000:g}ms
            fail_after: {FAIL_AFTER}
            recover_after: 2
            tags: {{carrier: ct, role: primary}}
        """
        )
        + extra_targets
        + textwrap.dedent(
            """\
        components:
          - id: outbound-calls
            name: {zh-CN: 外呼线路, en: Outbound calling}
            targets: [trunk-a]
        """
        )
    )


@pytest.fixture
def sipp(tmp_path: Path) -> Iterator[Sipp]:
    peer = Sipp(tmp_path)
    peer.start()
    yield peer
    peer.stop()


@pytest.fixture
def appliance_factory(tmp_path: Path) -> Iterator[Callable[[Path], Appliance]]:
    made: list[Appliance] = []

    def make(config: Path) -> Appliance:
        app = Appliance(config, tmp_path / "data")
        made.append(app)
        return app

    yield make
    for app in made:
        with contextlib.suppress(Exception):
            app.stop(signal.SIGKILL)


def target(app: Appliance, target_id: str) -> dict[str, Any]:
    found = [t for t in app.get("/api/v1/targets")["items"] if t["id"] == target_id]
    return found[0] if found else {"health": None, "since": None}


def observed_at(app: Appliance, target_id: str) -> float:
    """Epoch seconds of the target's latest checkpointed observation (0 before the first)."""
    last = target(app, target_id).get("last_observation")
    return datetime.fromisoformat(last["at"]).timestamp() if last else 0.0


def open_incidents(app: Appliance) -> list[dict[str, Any]]:
    return app.get("/api/v1/incidents?state=open")["items"]


def test_a_stopped_trunk_opens_an_incident_and_its_return_resolves_it(
    tmp_path: Path, sipp: Sipp, appliance_factory: Callable[[Path], Appliance]
) -> None:
    cfg = tmp_path / "dialwatch.yaml"
    cfg.write_text(config_text(sipp.port), encoding="utf-8")
    app = appliance_factory(cfg)
    app.start()

    wait_until(lambda: target(app, "trunk-a")["health"] == "up", HANG_GUARD, "trunk-a up", app)
    up = target(app, "trunk-a")
    assert up["kind"] == "sip"
    assert up["last_observation"]["status"] == "ok"

    sipp.stop()
    wait_until(lambda: bool(open_incidents(app)), HANG_GUARD, "an open incident", app)
    [incident] = open_incidents(app)
    assert "trunk-a" in incident["targets"]
    assert incident["resolved_at"] is None

    status_page = app.get("/status?lang=en")
    assert "Outbound calling" in status_page
    assert f"127.0.0.1:{sipp.port}" not in status_page  # never internal addresses
    components = app.get("/api/v1/components")
    state = (
        components["items"][0]["state"] if isinstance(components, dict) else components[0]["state"]
    )
    assert state not in ("operational", "maintenance")

    sipp.start()
    wait_until(lambda: not open_incidents(app), HANG_GUARD, "the incident to resolve", app)
    resolved = app.get("/api/v1/incidents?state=resolved")["items"]
    assert [i["id"] for i in resolved] == [incident["id"]]
    assert resolved[0]["resolved_at"] is not None
    assert app.stop() == 0


def test_kill_9_with_an_open_incident_then_restart_keeps_the_same_incident(
    tmp_path: Path, sipp: Sipp, appliance_factory: Callable[[Path], Appliance]
) -> None:
    cfg = tmp_path / "dialwatch.yaml"
    cfg.write_text(config_text(sipp.port), encoding="utf-8")
    app = appliance_factory(cfg)
    app.start()
    wait_until(lambda: target(app, "trunk-a")["health"] == "up", HANG_GUARD, "trunk-a up", app)
    sipp.stop()
    wait_until(lambda: bool(open_incidents(app)), HANG_GUARD, "an open incident", app)
    [before] = open_incidents(app)

    app.stop(signal.SIGKILL)
    restarted = time.time()
    app.start()
    assert target(app, "trunk-a")["health"] == "down"
    wait_until(
        lambda: observed_at(app, "trunk-a") > restarted + 2 * INTERVAL,
        HANG_GUARD,
        "more failed probes after the restart",
        app,
    )
    assert target(app, "trunk-a")["last_observation"]["status"] == "fail"
    after = open_incidents(app)
    assert [i["id"] for i in after] == [before["id"]]
    assert after[0]["opened_at"] == before["opened_at"]


def test_sighup_with_a_target_added_keeps_the_others_health_and_rejects_a_bad_config(
    tmp_path: Path, sipp: Sipp, appliance_factory: Callable[[Path], Appliance]
) -> None:
    cfg = tmp_path / "dialwatch.yaml"
    cfg.write_text(config_text(sipp.port), encoding="utf-8")
    app = appliance_factory(cfg)
    app.start()
    wait_until(lambda: target(app, "trunk-a")["health"] == "up", HANG_GUARD, "trunk-a up", app)
    since = target(app, "trunk-a")["since"]

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    try:
        extra = textwrap.indent(
            textwrap.dedent(
                f"""\
                - id: crm-db
                  kind: tcp
                  address: 127.0.0.1:{listener.getsockname()[1]}
                  interval: 1s
                  timeout: 500ms
                """
            ),
            "  ",
        )
        cfg.write_text(config_text(sipp.port, extra), encoding="utf-8")
        app.send(signal.SIGHUP)
        wait_until(
            lambda: any(
                t["id"] == "crm-db" and t["health"] == "up"
                for t in app.get("/api/v1/targets")["items"]
            ),
            HANG_GUARD,
            "crm-db added and up",
            app,
        )
        assert target(app, "trunk-a")["since"] == since
        assert target(app, "trunk-a")["health"] == "up"

        # An invalid config is rejected; the running one stays.
        cfg.write_text(
            config_text(sipp.port, extra).replace("interval: 1s", "interval: soon"),
            encoding="utf-8",
        )
        app.send(signal.SIGHUP)
        wait_until(
            lambda: "reload rejected" in app.tail(), HANG_GUARD, "the rejection in the log", app
        )
        assert "interval: must be a duration like 10s" in app.tail()
        ids = {t["id"] for t in app.get("/api/v1/targets")["items"]}
        assert {"trunk-a", "crm-db"} <= ids
        assert app.process is not None and app.process.poll() is None
    finally:
        listener.close()


def test_the_console_script_prints_its_version() -> None:
    script = Path(sys.executable).with_name("dialwatch")
    if not script.exists():
        pytest.fail(
            "the dialwatch console script is not installed: run ./install.sh --test", pytrace=False
        )
    out = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0
    from core import __version__

    assert out.stdout.strip() == f"dialwatch {__version__}"


def test_a_first_start_prints_the_setup_code_and_keeps_its_files_private(
    tmp_path: Path, appliance_factory: Callable[[Path], Appliance]
) -> None:
    cfg = tmp_path / "dialwatch.yaml"
    cfg.write_text("site: {name: 测试外呼中心}\ntargets: []\n", encoding="utf-8")
    app = appliance_factory(cfg)
    app.token = "dw_no-staff-yet"  # no user made before start: the setup page is the way in
    app.start()
    code_file = app.data / "setup-code"
    wait_until(code_file.exists, HANG_GUARD, "the setup code file", app)
    code = code_file.read_text(encoding="ascii").strip()
    wait_until(lambda: code in app.tail(), HANG_GUARD, "the setup code in the log", app)
    assert f"/setup and enter the setup code {code}" in app.tail()
    assert app.stop() == 0
    # Everything the appliance wrote is its own: 0700 directories, 0600 files.
    assert stat.S_IMODE(app.data.stat().st_mode) == 0o700
    loose = [
        (str(p.relative_to(app.data)), oct(stat.S_IMODE(p.stat().st_mode)))
        for p in app.data.rglob("*")
        if stat.S_IMODE(p.stat().st_mode) & 0o077
    ]
    assert loose == []
    assert (app.data / "keys" / "appliance.key").exists() and (app.data / "state.db").exists()
    # The web push key is made at the first start too when install.sh did not make it.
    assert (app.data / "keys" / "vapid.pem").exists()
