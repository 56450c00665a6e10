"""Logs a person can read: start-up says what was loaded and where it listens, Alembic keeps
quiet unless a migration runs, a probe result reaches INFO only when it changes health, and
SIGTERM ends without a traceback."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from core.observation import ErrorClass, Observation
from dialwatch import startup
from monitor.config import load_config
from monitor.engine import Engine
from monitor.health import Health
from monitor.scheduler import ProbeScheduler
from monitor.store.db import open_database
from monitor.store.repository import StateRepository
from tests.peers import free_port

REPO = Path(__file__).resolve().parent.parent
ALEMBIC_CHATTER = ("setup plugin", "Context impl", "Will assume")


def closed_port() -> int:
    return free_port()  # nothing listens: every connect is refused at once


def site_config(path: Path, port: int) -> Path:
    path.write_text(
        textwrap.dedent(
            f"""\
            site: {{name: test-site, timezone: Asia/Shanghai}}
            targets:
              - {{id: crm-db, kind: tcp, address: '127.0.0.1:{port}', interval: 1s,
                  timeout: 200ms, fail_after: 1}}
              - {{id: old-db, kind: tcp, address: '127.0.0.1:{port}', enabled: false}}
            """
        ),
        encoding="utf-8",
    )
    return path


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, output: Path) -> None:
    give_up = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"gave up waiting for {what}:\n{output.read_text()[-3000:]}")
        time.sleep(0.1)


def answers(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def run_until_sigterm(config: Path, data: Path, output: Path, wait_for_line: str) -> int:
    """``dialwatch run`` until ``wait_for_line`` is in its output, then SIGTERM; its exit code."""
    port = free_port()
    with output.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "dialwatch.cli", "run", "--config", str(config)]
            + ["--data", str(data), "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        try:
            wait_for(lambda: process.poll() is not None or answers(port), 30, "/healthz", output)
            wait_for(lambda: wait_for_line in output.read_text(), 20, wait_for_line, output)
            process.send_signal(signal.SIGTERM)
            return process.wait(30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.mark.e2e
def test_the_appliance_says_what_it_loaded_and_stops_on_sigterm_without_a_traceback(
    tmp_path: Path,
) -> None:
    config = site_config(tmp_path / "site.yaml", closed_port())
    data = tmp_path / "data"
    first = tmp_path / "first.out"
    # Stopped while its target is failing every 300 ms: probes and dispatches are in flight.
    assert run_until_sigterm(config, data, first, "crm-db: unknown -> down") == 0
    text = first.read_text()
    for line in (
        "dialwatch: dialwatch ",
        f"dialwatch: config: {config}\n",
        "dialwatch: targets: 1 (1 tcp), 1 disabled, plus the built-in appliance self-check\n",
        f"dialwatch: data directory: {data}; log file {data / 'logs' / 'dialwatch.log'}\n",
        f"dialwatch: state DB: {data / 'state.db'} (SQLite)\n",
        f"dialwatch: metric sinks: embedded store {data / 'metrics.db'}\n",
        "dialwatch: web listening on http://127.0.0.1:",
        "monitor.engine: engine stopped",
    ):
        assert line in text, f"{line!r} not in the output:\n{text}"
    assert "Traceback" not in text and "CancelledError" not in text, text
    assert not [c for c in ALEMBIC_CHATTER if c in text], text
    assert "Running upgrade  -> " in text  # a migration that runs still says so
    assert "FAIL " not in text  # the failing results are DEBUG lines; the transition is INFO+

    second = tmp_path / "second.out"
    assert run_until_sigterm(config, data, second, "engine started") == 0
    again = second.read_text()
    assert "alembic" not in again, again  # schema current: nothing from Alembic at all
    assert "Traceback" not in again, again


def test_stopping_the_scheduler_just_as_a_dispatch_falls_due_logs_no_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def fire(target_id: str) -> None:
        pass

    async def scenario() -> None:
        sched = ProbeScheduler(fire)
        sched.start()
        # APScheduler shuts down on the loop's next turn; a wake-up queued before it
        # finds the dispatch due and starts it, and the shutdown then cancels it.
        sched._scheduler.get_job("dispatch").modify(next_run_time=datetime.now(UTC))
        sched.shutdown()
        await asyncio.sleep(0.05)

    with caplog.at_level(logging.DEBUG, logger="apscheduler"):
        asyncio.run(scenario())
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_a_repeated_failure_without_a_change_of_health_is_logged_at_debug_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = site_config(tmp_path / "site.yaml", closed_port())
    config.write_text(config.read_text().replace("interval: 1s,", "interval: 1h,"))
    db = open_database(None, tmp_path / "data")
    repo = StateRepository(db)
    engine = Engine(load_config(config), repo, tmp_path / "data")
    t0 = 1_750_000_000.0

    def refused(at: float) -> Observation:
        obs = Observation.fail("connection refused", ErrorClass.REFUSED, latency=0.001)
        return Observation(obs.status, obs.detail, (), obs.latency, obs.error_class, at)

    async def scenario() -> list[logging.LogRecord]:
        await engine.start()
        try:
            rt = engine.targets["crm-db"]
            with caplog.at_level(logging.DEBUG, logger="monitor.engine"):
                await engine.observe(rt, refused(t0))  # unknown -> down (fail_after: 1)
                while not [r for r in caplog.records if "incident 1 opened" in r.getMessage()]:
                    await asyncio.sleep(0.01)  # the transition is handled in its own task
                assert rt.state.health is Health.DOWN
                caplog.clear()
                await engine.observe(rt, refused(t0 + 3600))
                await engine.observe(rt, refused(t0 + 7200))
                return [r for r in caplog.records if "crm-db" in r.getMessage()]
        finally:
            await engine.stop(drain_timeout=1)

    try:
        records = asyncio.run(scenario())
    finally:
        repo.close()
        db.dispose()
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.DEBUG, "FAIL  0.001s tcp crm-db connection refused"),
    ] * 2


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:////var/lib/dialwatch/state.db", "state DB: /var/lib/dialwatch/state.db (SQLite)"),
        (
            "postgresql+psycopg://dw:s3cret-pw@db1:5432/dialwatch",
            "state DB: postgresql+psycopg://dw:***@db1:5432/dialwatch",
        ),
    ],
    ids=["sqlite-shows-its-file", "postgresql-hides-the-password"],
)
def test_the_state_db_line_names_the_database_without_its_password(url: str, expected: str) -> None:
    assert startup.state_db_line(make_url(url)) == expected


def test_a_config_directory_is_named_with_the_files_read_from_it(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    site_config(tmp_path / "conf" / "targets.yaml", 9)
    (tmp_path / "conf" / "site.yaml").write_text("web: {listen: '127.0.0.1:8081'}\n")
    loaded = load_config(tmp_path / "conf")
    assert startup.config_line(str(tmp_path / "conf"), loaded) == (
        f"config: {tmp_path / 'conf'}/ (2 files: site.yaml, targets.yaml)"
    )
    assert startup.targets_line(loaded) == (
        "targets: 1 (1 tcp), 1 disabled, plus the built-in appliance self-check"
    )
