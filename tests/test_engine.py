"""The engine end to end in-process: real TCP listeners as targets, a real SQLite state DB.

Time is a ManualClock the harness moves a scheduler tick at a time, letting the
engine settle (probes observed, the state DB written) after each: bounds are in
clock seconds and exact, and a loaded machine only makes a scenario slower,
never different.
"""

from __future__ import annotations

import asyncio
import socket
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from core.clock import ManualClock
from monitor.config import load_config
from monitor.engine import Engine
from monitor.health import Health
from monitor.metrics_query import EmbeddedMetricsQuery
from monitor.scheduler import TICK
from monitor.sinks.base import MetricSink
from monitor.sinks.embedded import EmbeddedSink
from monitor.store import queries
from monitor.store.db import open_database
from monitor.store.metrics import MetricsStore
from monitor.store.repository import StateRepository
from probes.appliance import APPLIANCE_TARGET_ID
from tests.peers import free_port

INTERVAL = 1.0
TIMEOUT = 0.2
FAIL_AFTER = RECOVER_AFTER = 2
DETECT = INTERVAL * FAIL_AFTER + TIMEOUT + INTERVAL
"""Clock seconds from a target failing to its ``down``: interval × fail_after + timeout,
plus one interval because the first failing probe waits for its slot."""
RECOVER = INTERVAL * RECOVER_AFTER + INTERVAL
"""Clock seconds from a target answering again to its ``up``, slot alignment included."""
START = float(int(time.time()) // 60 * 60)
"""The clock's start: the current minute, so the embedded metrics store keeps the
points raw; a whole second, so every target's slots fall the same way every run."""


class Listener:
    """A TCP port we can open and close to make a target come and go."""

    def __init__(self) -> None:
        self.port = free_port()
        self.sock: socket.socket | None = None

    def open(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


@pytest.fixture
def listeners() -> Callable[[], Listener]:
    made: list[Listener] = []

    def make() -> Listener:
        listener = Listener()
        listener.open()
        made.append(listener)
        return listener

    yield make
    for listener in made:
        listener.close()


def write_config(path: Path, targets: str) -> Path:
    path.write_text(
        textwrap.dedent(
            """\
            site: {name: test-site, timezone: Asia/Shanghai}
            targets:
            """
        )
        + textwrap.indent(textwrap.dedent(targets), "  "),
        encoding="utf-8",
    )
    return path


def tcp_target(target_id: str, port: int, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        - id: {target_id}
          kind: tcp
          address: 127.0.0.1:{port}
          interval: {INTERVAL * 1000:g}ms
          timeout: {TIMEOUT * 1000:g}ms
          fail_after: {FAIL_AFTER}
          recover_after: {RECOVER_AFTER}
        """
    ) + textwrap.indent(textwrap.dedent(extra), "  ")


class Harness:
    """Runs an Engine on its own loop inside a test, on a ManualClock."""

    def __init__(
        self,
        config_path: Path,
        data_dir: Path,
        sinks: Sequence[MetricSink] = (),
        clock: ManualClock | None = None,
    ) -> None:
        self.config_path = config_path
        self.data_dir = data_dir
        self.clock = clock or ManualClock(START)
        self.db = open_database(None, data_dir)
        self.repo = StateRepository(self.db)
        self.engine = Engine(load_config(config_path), self.repo, data_dir, sinks, clock=self.clock)

    async def tick(self) -> None:
        await self.clock.advance(TICK)
        await self.engine.settle()

    async def until(self, predicate: Callable[[], bool], within: float, what: str) -> float:
        """Move the clock until ``predicate`` holds; fail after ``within`` clock seconds.
        Returns the clock seconds it took."""
        started = self.clock.monotonic()
        while not predicate():
            if self.clock.monotonic() - started >= within:
                raise AssertionError(f"{what}: not within {within:g}s of clock time")
            await self.tick()
        return self.clock.monotonic() - started

    async def run_for(self, seconds: float) -> None:
        ticks = round(seconds / TICK)
        for _ in range(ticks):
            await self.tick()

    def health(self, target_id: str) -> Health:
        return self.engine.targets[target_id].state.health

    async def close(self) -> None:
        await self.engine.stop(drain_timeout=2)
        self.repo.close()
        self.db.dispose()


def test_a_target_that_stops_answering_opens_an_incident_and_recovery_resolves_it(
    tmp_path: Path, listeners: Callable[[], Listener]
) -> None:
    crm = listeners()
    cfg = write_config(tmp_path / "site.yaml", tcp_target("crm-db", crm.port))

    async def scenario() -> None:
        h = Harness(cfg, tmp_path / "data")
        await h.engine.start()
        try:
            await h.until(lambda: h.health("crm-db") is Health.UP, RECOVER, "crm-db up")
            crm.close()
            await h.until(lambda: h.health("crm-db") is Health.DOWN, DETECT, "down")
            [incident] = h.repo.open_incidents()  # written as it opened
            assert incident.root_target_id == "crm-db"
            assert "crm-db" in incident.title
            crm.open()
            await h.until(lambda: h.health("crm-db") is Health.UP, RECOVER, "recovered")
            assert not h.repo.open_incidents()
            resolved = queries.incident(h.db, incident.id)
            assert resolved is not None and resolved.state == "resolved"
            assert resolved.resolved_at is not None and resolved.resolved_at > resolved.opened_at
            kinds = [e.kind for e in queries.incident_events(h.db, incident.id)]
            assert kinds[0] == "opened" and "resolved" in kinds
            newest_first = queries.transitions(h.db, "crm-db")
            history = [(t.from_health, t.to_health) for t in reversed(newest_first)]
            assert history == [("unknown", "up"), ("up", "down"), ("down", "up")]
        finally:
            await h.close()

    asyncio.run(scenario())


def test_a_child_of_a_down_parent_joins_the_parents_incident_instead_of_opening_its_own(
    tmp_path: Path, listeners: Callable[[], Listener]
) -> None:
    router = listeners()
    pbx = listeners()
    cfg = write_config(
        tmp_path / "site.yaml",
        tcp_target("edge-router", router.port)
        + tcp_target("pbx", pbx.port, "depends_on: [edge-router]\n"),
    )

    async def scenario() -> None:
        h = Harness(cfg, tmp_path / "data")
        await h.engine.start()
        try:
            await h.until(
                lambda: h.health("pbx") is Health.UP and h.health("edge-router") is Health.UP,
                RECOVER,
                "both up",
            )
            router.close()
            await h.until(lambda: h.health("edge-router") is Health.DOWN, DETECT, "router down")
            pbx.close()
            await h.until(lambda: h.health("pbx") is Health.DOWN, DETECT, "pbx down")
            incidents = h.repo.open_incidents()
            assert len(incidents) == 1
            assert set(incidents[0].member_ids) == {"edge-router", "pbx"}
            assert h.engine.targets["pbx"].state.affected_by == "edge-router"
        finally:
            await h.close()

    asyncio.run(scenario())


def test_restart_keeps_the_open_incident_and_does_not_duplicate_it(
    tmp_path: Path, listeners: Callable[[], Listener]
) -> None:
    sbc = listeners()
    cfg = write_config(tmp_path / "site.yaml", tcp_target("sbc", sbc.port))
    data = tmp_path / "data"
    clock = ManualClock(START)  # one clock for both runs: time goes on across the restart

    async def first_run() -> int:
        h = Harness(cfg, data, clock=clock)
        await h.engine.start()
        try:
            await h.until(lambda: h.health("sbc") is Health.UP, RECOVER, "up")
            sbc.close()
            await h.until(lambda: bool(h.repo.open_incidents()), DETECT, "incident")
            return h.repo.open_incidents()[0].id
        finally:
            await h.close()

    async def second_run(incident_id: int) -> None:
        h = Harness(cfg, data, clock=clock)
        await h.engine.start()
        try:
            # restored before any probe ran
            assert h.health("sbc") is Health.DOWN
            assert [i.id for i in h.engine.incidents] == [incident_id]
            await h.run_for(4 * INTERVAL)
            assert h.engine.targets["sbc"].probes_run >= 4  # several more failures...
            assert [i.id for i in h.repo.open_incidents()] == [incident_id]  # ...same incident
            sbc.open()
            await h.until(lambda: not h.repo.open_incidents(), RECOVER, "resolved after restart")
        finally:
            await h.close()

    incident_id = asyncio.run(first_run())
    asyncio.run(second_run(incident_id))


def test_reload_with_one_target_added_keeps_the_health_of_the_others(
    tmp_path: Path, listeners: Callable[[], Listener]
) -> None:
    a, b, c = listeners(), listeners(), listeners()
    cfg = write_config(tmp_path / "site.yaml", tcp_target("a", a.port) + tcp_target("b", b.port))

    async def scenario() -> None:
        h = Harness(cfg, tmp_path / "data")
        await h.engine.start()
        try:
            b.close()
            await h.until(
                lambda: h.health("a") is Health.UP and h.health("b") is Health.DOWN,
                DETECT,
                "a up, b down",
            )
            before = {tid: h.engine.targets[tid].state for tid in ("a", "b")}
            write_config(
                cfg, tcp_target("a", a.port) + tcp_target("b", b.port) + tcp_target("c", c.port)
            )
            changes = await h.engine.apply_config(load_config(cfg))
            assert changes == {"added": ["c"], "changed": [], "removed": []}
            for tid in ("a", "b"):
                assert h.engine.targets[tid].state.since == before[tid].since
                assert h.engine.targets[tid].state.health == before[tid].health
            # probed at the next dispatch (run_soon), not at its first slot
            await h.until(lambda: h.health("c") is Health.UP, TICK, "c up")
            assert len(h.repo.open_incidents()) == 1  # b's, not a new one
        finally:
            await h.close()

    asyncio.run(scenario())


def test_the_appliance_checks_itself_even_when_the_config_does_not_list_it(
    tmp_path: Path, listeners: Callable[[], Listener]
) -> None:
    a = listeners()
    cfg = write_config(tmp_path / "site.yaml", tcp_target("a", a.port))

    async def scenario() -> None:
        h = Harness(cfg, tmp_path / "data")
        await h.engine.start()
        try:
            assert APPLIANCE_TARGET_ID in h.engine.targets
            rt = h.engine.targets[APPLIANCE_TARGET_ID]
            obs = await h.engine.probe_once(rt)
            assert obs.status.value in ("ok", "warn"), obs.detail
        finally:
            await h.close()

    asyncio.run(scenario())


def test_a_target_in_a_maintenance_window_fails_without_opening_an_incident(
    tmp_path: Path, listeners: Callable[[], Listener]
) -> None:
    gone = Listener()  # never opened: connection refused
    window = "maintenance:\n  - {start: '2000-01-01T00:00:00', end: '2999-01-01T00:00:00', reason: carrier works}\n"
    cfg = write_config(tmp_path / "site.yaml", tcp_target("sbc", gone.port, window))

    async def scenario() -> None:
        h = Harness(cfg, tmp_path / "data")
        await h.engine.start()
        try:
            await h.until(lambda: h.health("sbc") is Health.MAINTENANCE, INTERVAL, "maintenance")
            runs = h.engine.targets["sbc"].probes_run
            await h.run_for(4.5 * INTERVAL)  # four slots, the last one finished
            assert h.engine.targets["sbc"].probes_run == runs + 4  # four more failing probes
            assert h.health("sbc") is Health.MAINTENANCE
            assert h.repo.open_incidents() == []
            [transition] = queries.transitions(h.db, "sbc")
            assert "carrier works" in transition.reason
        finally:
            await h.close()

    asyncio.run(scenario())


def test_a_child_that_fails_just_before_its_parent_is_merged_into_the_parents_incident(
    tmp_path: Path, listeners: Callable[[], Listener]
) -> None:
    router = listeners()
    pbx = listeners()
    cfg = write_config(
        tmp_path / "site.yaml",
        tcp_target("edge-router", router.port)
        + tcp_target("pbx", pbx.port, "depends_on: [edge-router]\n"),
    )

    async def scenario() -> None:
        h = Harness(cfg, tmp_path / "data")
        await h.engine.start()
        try:
            await h.until(
                lambda: h.health("pbx") is Health.UP and h.health("edge-router") is Health.UP,
                RECOVER,
                "both up",
            )
            pbx.close()  # the child's probes notice first...
            await h.until(lambda: h.health("pbx") is Health.DOWN, DETECT, "pbx down")
            [own] = h.repo.open_incidents()
            assert own.root_target_id == "pbx"
            router.close()  # ...then its parent's
            await h.until(lambda: h.health("edge-router") is Health.DOWN, DETECT, "router down")
            [incident] = h.repo.open_incidents()  # the merge is written with the parent's incident
            assert incident.root_target_id == "edge-router"
            assert set(incident.member_ids) == {"edge-router", "pbx"}
            merged = queries.incident(h.db, own.id)
            assert merged is not None and merged.state == "resolved"
            assert any("merged into" in e.text for e in queries.incident_events(h.db, own.id))
            assert h.engine.targets["pbx"].state.affected_by == "edge-router"
            router.open()
            pbx.open()
            await h.until(
                lambda: not h.repo.open_incidents(), RECOVER, "resolved when both are back"
            )
        finally:
            await h.close()

    asyncio.run(scenario())


def test_every_observation_stores_a_status_point_and_every_transition_a_health_event(
    tmp_path: Path, listeners: Callable[[], Listener]
) -> None:
    crm = listeners()
    cfg = write_config(tmp_path / "site.yaml", tcp_target("crm-db", crm.port))
    data = tmp_path / "data"
    sink = EmbeddedSink(MetricsStore(data / "metrics.db"), flush_interval=0.1)

    clock = ManualClock(START)

    async def scenario() -> None:
        h = Harness(cfg, data, [sink], clock=clock)
        await h.engine.start()
        try:
            await h.until(lambda: h.health("crm-db") is Health.UP, RECOVER, "up")
            crm.close()
            await h.until(lambda: h.health("crm-db") is Health.DOWN, DETECT, "down")
        finally:
            await h.close()  # flushes the sink

    asyncio.run(scenario())
    query = EmbeddedMetricsQuery(data / "metrics.db")
    try:
        latest = query.latest("crm-db")
        assert latest["probe"][0]["fields"]["status"] == 2  # fail
        assert latest["tcp"][0]["fields"]["connect_ms"] > 0  # from the last ok
        event = latest["health"][0]["fields"]
        assert (event["from"], event["to"], event["health"]) == ("up", "down", 2)
        assert "connection refused" in event["reason"]
        end = clock.time() + 1  # health points carry the transition's (clock) time
        [series] = query.series("crm-db", "health", "health", end - 60, end)
        assert [v for _, v in series.points] == [0, 2]  # unknown→up, up→down
    finally:
        query.close()


def test_a_crashing_probe_makes_its_target_unknown_and_the_appliance_names_it(
    tmp_path: Path, listeners: Callable[[], Listener], monkeypatch: pytest.MonkeyPatch
) -> None:
    import probes
    from probes.base import ProbeKind

    async def crash(target: object, ctx: object) -> None:
        raise KeyError("no such field")

    kind = probes.PROBES["tcp"]
    monkeypatch.setitem(probes.PROBES, "tcp", ProbeKind("tcp", kind.model, crash, kind.summary))
    a = listeners()
    cfg = write_config(tmp_path / "site.yaml", tcp_target("crm-db", a.port))

    async def scenario() -> None:
        h = Harness(cfg, tmp_path / "data")
        await h.engine.start()
        try:
            rt = h.engine.targets["crm-db"]
            await h.engine.probe_once(rt)
            assert rt.last is not None and rt.last.status.value == "error"
            assert h.health("crm-db") is Health.UNKNOWN
            obs = await h.engine.probe_once(h.engine.targets[APPLIANCE_TARGET_ID])
            assert obs.status.value == "warn"
            assert "the probe for crm-db could not run" in obs.detail
            assert "KeyError" in obs.detail
        finally:
            await h.close()

    asyncio.run(scenario())


def test_a_full_sink_queue_drops_and_counts_instead_of_blocking() -> None:
    from core.observation import MetricPoint
    from monitor.sinks.base import BatchingSink

    class Slow(BatchingSink):
        def write_batch(self, points: list[MetricPoint]) -> None:
            raise AssertionError("never started")

    sink = Slow("slow", batch_size=10, max_queued=25)
    points = [MetricPoint("m", {"v": float(i)}) for i in range(10)]
    # The sink's writer is never started: a submit that waited for room would never return.
    offer = threading.Thread(target=lambda: [sink.submit(points) for _ in range(4)], daemon=True)
    offer.start()  # 40 points offered, room for 25
    offer.join(timeout=30)  # hang guard only: returning at all is the point
    assert not offer.is_alive(), "submit blocked on a full queue"
    health = sink.health()
    assert (health.queued, health.points_dropped) == (25, 15)
