"""The outbound heartbeat: a GET to a local dead man's switch at each interval; a failed ping
is a fault and the next one still goes; private addresses are refused unless allowed."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from core.clock import ManualClock
from notify.heartbeat import ping, run_heartbeat
from notify.settings import HeartbeatConfig


class Switch:
    """A dead man's switch stand-in: counts GET /ping/<uuid>; answers ``status``."""

    def __init__(self) -> None:
        self.pings: list[str] = []
        self.status = 200


@pytest.fixture
def switch() -> Iterator[tuple[Switch, int]]:
    state = Switch()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def do_GET(self) -> None:  # noqa: N802
            state.pings.append(self.path)
            self.send_response(state.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"OK")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield state, server.server_address[1]
    server.shutdown()
    server.server_close()


class Faults:
    def __init__(self) -> None:
        self.reports: list[tuple[str, str]] = []

    def report(self, source: str, error: Any, **_: Any) -> None:
        self.reports.append((source, str(error)))


def test_one_ping_and_a_private_address_refused_without_allow_private(
    switch: tuple[Switch, int],
) -> None:
    state, port = switch
    url = f"http://127.0.0.1:{port}/ping/abc"
    assert ping(HeartbeatConfig(url=url, allow_private=True)) == "HTTP 200"
    assert state.pings == ["/ping/abc"]
    with pytest.raises(RuntimeError, match="loopback"):
        ping(HeartbeatConfig(url=url))
    assert state.pings == ["/ping/abc"]  # refused before any connection


def test_pings_go_at_each_interval_and_a_failed_one_is_a_fault(switch: tuple[Switch, int]) -> None:
    state, port = switch
    config = HeartbeatConfig(url=f"http://127.0.0.1:{port}/ping/x", every=60, allow_private=True)
    faults = Faults()

    async def scenario() -> None:
        clock = ManualClock(0)
        task = asyncio.create_task(run_heartbeat(lambda: config, clock, faults))  # type: ignore[arg-type]
        for _ in range(50):  # the first ping runs on a thread: wait for it, not for time
            if state.pings:
                break
            await asyncio.sleep(0.02)
        assert len(state.pings) == 1
        state.status = 500
        await clock.advance(60)
        for _ in range(50):
            if faults.reports:
                break
            await asyncio.sleep(0.02)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(scenario())
    assert len(state.pings) == 2
    assert faults.reports == [
        ("notify:heartbeat", f"heartbeat http://127.0.0.1:{port}/ping/x answered HTTP 500")
    ]
