"""Both delivery guarantees across a kill -9 of the appliance.

The appliance runs in a subprocess (tests/event_subscribers_app.py) with a
DB-writing subscriber and an outside-effect one. Its tcp targets point at
loopback ports this test opens and closes, so the engine emits transitions
and incident events. It is killed with SIGKILL while the subscribers are
behind, started again, and once both have caught up: the DB subscriber has
handled every event exactly once, the outside one every event at least once,
none missing.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from monitor.events import cursor_of, last_event_id
from monitor.store.db import open_database
from tests.peers import free_port

TARGETS = 6
ROOT = Path(__file__).resolve().parent.parent


class Ports:
    """Loopback listeners the targets probe; open or closed together."""

    def __init__(self, n: int) -> None:
        self.ports = [free_port() for _ in range(n)]
        self.socks: list[socket.socket] = []

    def open(self) -> None:
        for port in self.ports:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(16)
            self.socks.append(sock)

    def close(self) -> None:
        for sock in self.socks:
            sock.close()
        self.socks = []


@pytest.fixture
def ports() -> Iterator[Ports]:
    p = Ports(TARGETS)
    p.open()
    yield p
    p.close()


def config(path: Path, ports: Ports) -> Path:
    targets = "".join(
        textwrap.dedent(
            f"""\
              - id: t{i}
                kind: tcp
                address: 127.0.0.1:{port}
                interval: 1s
                timeout: 150ms
                fail_after: 1
                recover_after: 1
            """
        )
        for i, port in enumerate(ports.ports)
    )
    path.write_text(
        "site: {name: test-site, timezone: Asia/Shanghai}\n"
        "appliance: {interval: 24h}\n"
        "targets:\n" + targets,
        encoding="utf-8",
    )
    return path


class App:
    def __init__(self, cfg: Path, data: Path, outside: Path) -> None:
        self.args = [
            sys.executable,
            "-m",
            "tests.event_subscribers_app",
            str(cfg),
            str(data),
            str(outside),
        ]
        self.log = data.parent / "app.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args,
            cwd=ROOT,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def stop(self, sig: int) -> int:
        assert self.process is not None
        self.process.send_signal(sig)
        code = self.process.wait(30)
        self.process = None
        return code

    def alive(self) -> None:
        if self.process is not None and self.process.poll() is not None:
            raise AssertionError(f"the app exited with {self.process.returncode}:\n{self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:] if self.log.exists() else ""


def wait_until(app: App, predicate: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        app.alive()
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}\n{app.tail()}")
        time.sleep(0.01)


def outside_ids(path: Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line) for line in path.read_text().splitlines()]


def stored(db: Engine, sql: str) -> list[int]:
    with db.connect() as conn:
        return [row[0] for row in conn.execute(text(sql))]


def test_after_a_kill_9_db_effects_are_exactly_once_and_outside_effects_at_least_once(
    tmp_path: Path, ports: Ports
) -> None:
    data = tmp_path / "data"
    outside = tmp_path / "outside.txt"
    app = App(config(tmp_path / "site.yaml", ports), data, outside)
    db = open_database(None, data)  # migrated here first; the app finds it at head
    app.start()

    def last() -> int:
        return last_event_id(db)

    def toggle() -> None:
        """Flip every target once and wait for the events it causes."""
        before = last()
        if ports.socks:
            ports.close()
        else:
            ports.open()
        # a transition per target, and an incident opened or resolved per target
        wait_until(app, lambda: last() >= before + 2 * TARGETS, "the events of a flip")

    try:
        wait_until(app, lambda: last() >= TARGETS, "every target's first transition")
        killed_behind = False
        for _ in range(6):
            toggle()
            behind = len(outside_ids(outside)) < last()
            if behind and len(outside_ids(outside)) > 0:
                app.stop(signal.SIGKILL)
                killed_behind = True
                break
        assert killed_behind, "never caught the subscribers behind: nothing was proven"
        at_kill = last()
        db_at_kill, outside_at_kill = cursor_of(db, "test-db"), cursor_of(db, "test-outside")

        app.start()
        toggle()
        toggle()
        end = last()
        assert end > at_kill
        wait_until(
            app,
            lambda: cursor_of(db, "test-db") == end and cursor_of(db, "test-outside") == end,
            f"both subscribers at event {end}",
        )
        assert app.stop(signal.SIGTERM) == 0
    finally:
        if app.process is not None:
            with contextlib.suppress(Exception):
                app.stop(signal.SIGKILL)

    events = stored(db, "SELECT id FROM event ORDER BY id")
    assert events[-1] == end
    in_db = stored(db, "SELECT event_id FROM seen_by_db ORDER BY event_id")
    assert in_db == events  # each event once: none twice, none missing
    seen_outside = outside_ids(outside)
    assert sorted(set(seen_outside)) == events  # each at least once, none missing
    again = sum(n - 1 for n in collections.Counter(seen_outside).values())
    print(
        f"{len(events)} events; killed at event {at_kill} with the cursors at "
        f"{db_at_kill} (db) and {outside_at_kill} (outside); {again} handed over again"
    )
    db.dispose()
