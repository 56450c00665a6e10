"""The dispatcher: every subscriber gets every event in order, on its own, from its cursor.

Real state DBs (SQLite, and PostgreSQL marked ``peer``); events are written from other threads, as the
engine's DB thread and the web's threads write them. Waits are on
conditions with a timeout, never on a fixed sleep.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.dispatcher import DbSubscriber, Dispatcher, LiveSubscriber, OutsideSubscriber
from monitor.events import Event, EventKind, NewEvent, cursor_of, record
from monitor.health import Health
from monitor.store.db import open_database
from monitor.store.repository import StateRepository
from tests.test_engine import DETECT, INTERVAL, RECOVER, Harness, Listener, tcp_target, write_config

FAST = {"retry_first": 0.01, "retry_most": 0.05}


@pytest.fixture
def repo(db: Engine) -> StateRepository:
    return StateRepository(db)


def write(repo: StateRepository, n: int, per_commit: int = 1) -> None:
    """``n`` events, ``per_commit`` to a transaction (call it in a thread)."""
    for start in range(0, n, per_commit):
        with repo.transaction():
            for i in range(start, min(n, start + per_commit)):
                record(repo, NewEvent(EventKind.NOTED, float(i), incident_id=1))


async def until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)


class Collector:
    """An outside subscriber that remembers the ids it was handed."""

    def __init__(self, name: str, start: str = "beginning") -> None:
        self.ids: list[int] = []
        self.subscriber = OutsideSubscriber(name, self.handle, start)  # type: ignore[arg-type]

    async def handle(self, event: Event) -> None:
        self.ids.append(event.id)


def test_every_subscriber_gets_every_event_in_id_order(repo: StateRepository) -> None:
    async def scenario() -> None:
        one, two = Collector("one"), Collector("two")
        dispatcher = Dispatcher(repo, batch=7, **FAST)
        dispatcher.add(one.subscriber)
        dispatcher.add(two.subscriber)
        await dispatcher.start()
        try:
            await asyncio.to_thread(write, repo, 50, 3)
            await until(lambda: len(one.ids) == len(two.ids) == 50, "both to get 50 events")
            assert one.ids == two.ids == sorted(one.ids)
        finally:
            await dispatcher.stop()
        assert cursor_of(repo.engine, "one") == one.ids[-1]

    asyncio.run(scenario())


def test_a_new_subscriber_starts_at_the_current_end_unless_told_the_beginning(
    repo: StateRepository,
) -> None:
    async def scenario() -> None:
        await asyncio.to_thread(write, repo, 3)
        late, everything = Collector("late", "end"), Collector("everything", "beginning")
        dispatcher = Dispatcher(repo, **FAST)
        dispatcher.add(late.subscriber)
        dispatcher.add(everything.subscriber)
        await dispatcher.start()
        try:
            await until(lambda: dispatcher.positions()["late"] == 3, "late's cursor stored")
            await asyncio.to_thread(write, repo, 2)
            await until(lambda: len(everything.ids) == 5, "all five")
            await until(lambda: len(late.ids) == 2, "the two new ones")
            assert late.ids == [4, 5]
        finally:
            await dispatcher.stop()

    asyncio.run(scenario())


def test_a_slow_subscriber_does_not_hold_up_the_others(repo: StateRepository) -> None:
    async def scenario() -> None:
        gate = asyncio.Event()
        slow_ids: list[int] = []

        async def slow(event: Event) -> None:
            slow_ids.append(event.id)
            await gate.wait()

        fast = Collector("fast")
        dispatcher = Dispatcher(repo, **FAST)
        dispatcher.add(OutsideSubscriber("slow", slow, "beginning"))
        dispatcher.add(fast.subscriber)
        await dispatcher.start()
        try:
            await asyncio.to_thread(write, repo, 20)
            await until(lambda: len(fast.ids) == 20, "the fast one to get everything")
            assert slow_ids == [1]  # still on its first
            gate.set()
            await until(lambda: len(slow_ids) == 20, "the slow one to catch up")
        finally:
            await dispatcher.stop()

    asyncio.run(scenario())


def test_a_failing_subscriber_is_retried_and_the_others_go_on(
    repo: StateRepository, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario() -> None:
        handled: list[int] = []
        failures = {"left": 3}

        async def flaky(event: Event) -> None:
            if event.id == 4 and failures["left"]:
                failures["left"] -= 1
                raise ConnectionError("SMS gateway refused the connection")
            handled.append(event.id)

        healthy = Collector("healthy")
        dispatcher = Dispatcher(repo, **FAST)
        dispatcher.add(OutsideSubscriber("flaky", flaky, "beginning"))
        dispatcher.add(healthy.subscriber)
        await dispatcher.start()
        try:
            await asyncio.to_thread(write, repo, 10, 10)
            await until(lambda: len(healthy.ids) == 10, "the healthy one")
            await until(lambda: len(handled) == 10, "the flaky one, after its retries")
            # what was handled before the failure is not handed over again
            assert handled == list(range(1, 11))
        finally:
            await dispatcher.stop()

    with caplog.at_level(logging.ERROR, logger="monitor.dispatcher"):
        asyncio.run(scenario())
    failed = [r for r in caplog.records if "event subscriber flaky failed" in r.getMessage()]
    assert len(failed) == 3
    assert "ConnectionError: SMS gateway refused the connection" in failed[0].getMessage()


def test_a_db_subscriber_handles_each_event_exactly_once_when_it_fails_mid_batch(
    repo: StateRepository,
) -> None:
    async def scenario() -> None:
        failed = {"once": False}

        def count_it(r: StateRepository, event: Event) -> None:
            r.add_counters({f"seen-{event.id}": 1})  # written, then maybe rolled back
            if event.id == 6 and not failed["once"]:
                failed["once"] = True
                raise RuntimeError("disk hiccup")

        dispatcher = Dispatcher(repo, batch=50, **FAST)
        dispatcher.add(DbSubscriber("counter", count_it, "beginning"))
        await dispatcher.start()
        try:
            await asyncio.to_thread(write, repo, 12, 12)
            await until(lambda: cursor_of(repo.engine, "counter") == 12, "the cursor at 12")
        finally:
            await dispatcher.stop()
        assert failed["once"]
        assert repo.counters() == {f"seen-{i}": 1 for i in range(1, 13)}

    asyncio.run(scenario())


def test_subscribers_resume_from_their_cursor_after_a_restart(repo: StateRepository) -> None:
    async def run(until_cursor: int) -> tuple[list[int], list[int]]:
        outside = Collector("outside")
        in_db: list[int] = []
        dispatcher = Dispatcher(repo, **FAST)
        dispatcher.add(outside.subscriber)
        dispatcher.add(DbSubscriber("in-db", lambda r, e: in_db.append(e.id), "beginning"))
        await dispatcher.start()
        try:
            await until(
                lambda: dispatcher.positions() == {"outside": until_cursor, "in-db": until_cursor},
                f"both at {until_cursor}",
            )
        finally:
            await dispatcher.stop()
        return outside.ids, in_db

    write(repo, 3)
    assert asyncio.run(run(3)) == ([1, 2, 3], [1, 2, 3])
    write(repo, 2)
    assert asyncio.run(run(5)) == ([4, 5], [4, 5])


def test_a_commit_wakes_the_dispatcher_without_waiting_for_a_poll(repo: StateRepository) -> None:
    async def scenario() -> None:
        got = Collector("got")
        dispatcher = Dispatcher(repo, poll_every=3600, **FAST)
        dispatcher.add(got.subscriber)
        await dispatcher.start()
        try:
            await until(lambda: dispatcher.positions()["got"] == 0, "started")
            await asyncio.to_thread(write, repo, 1)
            await until(lambda: got.ids == [1], "the event, long before any poll")
        finally:
            await dispatcher.stop()

    asyncio.run(scenario())


def test_events_written_by_another_process_are_found_by_polling(db: Engine, tmp_path: Path) -> None:
    async def scenario() -> None:
        got = Collector("got")
        dispatcher = Dispatcher(StateRepository(db), poll_every=0.05, **FAST)
        dispatcher.add(got.subscriber)
        await dispatcher.start()
        try:
            await until(lambda: dispatcher.positions()["got"] == 0, "started")
            # as the CLI would: its own engine, so no commit hook of ours
            other = open_database(db.url.render_as_string(hide_password=False), tmp_path)
            try:
                await asyncio.to_thread(write, StateRepository(other), 2)
            finally:
                other.dispose()
            await until(lambda: got.ids == [1, 2], "the polled events")
        finally:
            await dispatcher.stop()

    asyncio.run(scenario())


def test_a_live_subscriber_keeps_no_cursor(repo: StateRepository) -> None:
    async def scenario() -> None:
        seen: list[int] = []

        async def remember(event: Event) -> None:
            seen.append(event.id)

        await asyncio.to_thread(write, repo, 4)
        dispatcher = Dispatcher(repo, **FAST)
        dispatcher.add(LiveSubscriber("view", remember, after=2))
        await dispatcher.start()
        try:
            await until(lambda: seen == [3, 4], "the events after 2")
        finally:
            await dispatcher.stop()
        assert cursor_of(repo.engine, "view") is None

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param("Has Spaces", "subscriber name 'Has Spaces'", id="bad-name"),
        pytest.param("x" * 65, "subscriber name", id="too-long"),
        pytest.param("taken", "registered already", id="duplicate"),
    ],
)
def test_a_subscriber_needs_a_unique_plain_name(
    repo: StateRepository, name: str, message: str
) -> None:
    dispatcher = Dispatcher(repo)
    dispatcher.add(Collector("taken").subscriber)
    with pytest.raises(ValueError, match=message):
        dispatcher.add(Collector(name).subscriber)


def test_a_subscriber_can_take_only_some_kinds_and_still_moves_past_the_others(
    repo: StateRepository,
) -> None:
    def mixed() -> None:
        for i, kind in enumerate([EventKind.NOTED, EventKind.OPENED, EventKind.NOTED] * 3):
            record(repo, NewEvent(kind, float(i), incident_id=1))

    async def scenario() -> None:
        opened: list[int] = []

        async def page(event: Event) -> None:
            opened.append(event.id)

        counted: list[int] = []
        dispatcher = Dispatcher(repo, batch=2, **FAST)
        dispatcher.add(OutsideSubscriber("pager", page, "beginning", frozenset({EventKind.OPENED})))
        dispatcher.add(
            DbSubscriber(
                "count",
                lambda r, e: counted.append(e.id),
                "beginning",
                frozenset({EventKind.OPENED}),
            )
        )
        await dispatcher.start()
        try:
            await asyncio.to_thread(mixed)
            await until(lambda: dispatcher.positions() == {"pager": 9, "count": 9}, "both at 9")
            assert opened == counted == [2, 5, 8]
        finally:
            await dispatcher.stop()
        # the stored cursors are at the last event handled or beyond
        assert cursor_of(repo.engine, "pager") >= 8 and cursor_of(repo.engine, "count") >= 8

    asyncio.run(scenario())


def test_a_kind_that_does_not_exist_is_refused(repo: StateRepository) -> None:
    with pytest.raises(ValueError, match="unknown event kind 'openned'"):
        Dispatcher(repo).add(
            OutsideSubscriber("pager", Collector("x").handle, kinds=frozenset({"openned"}))  # type: ignore[arg-type]
        )


def test_a_db_subscriber_that_never_returns_does_not_hold_up_the_stop(
    repo: StateRepository,
) -> None:
    import threading

    release = threading.Event()
    entered = threading.Event()

    def hang(r: StateRepository, event: Event) -> None:
        entered.set()
        release.wait(30)

    async def scenario() -> None:
        dispatcher = Dispatcher(repo, **FAST)
        dispatcher.add(DbSubscriber("hangs", hang, "beginning"))
        await dispatcher.start()
        await asyncio.to_thread(write, repo, 1)
        await until(entered.is_set, "the subscriber to hang")
        await asyncio.wait_for(dispatcher.stop(grace=0.1), 5)

    try:
        asyncio.run(scenario())  # returns: neither the stop nor the loop's exit waits
        assert cursor_of(repo.engine, "hangs") == 0  # its transaction is still open
    finally:
        release.set()


# -- with the engine -------------------------------------------------------------------
def test_a_stuck_subscriber_delays_neither_probes_nor_incidents(tmp_path: Path) -> None:
    sbc = Listener()
    sbc.open()
    cfg = write_config(tmp_path / "site.yaml", tcp_target("sbc", sbc.port))

    async def scenario() -> None:
        h = Harness(cfg, tmp_path / "data")  # on a ManualClock the test moves
        stuck_on: list[int] = []

        async def stuck(event: Event) -> None:
            stuck_on.append(event.id)
            await asyncio.Event().wait()  # never returns

        h.engine.dispatcher.add(OutsideSubscriber("stuck", stuck, "beginning"))
        await h.engine.start()
        try:
            rt = h.engine.targets["sbc"]
            await h.until(lambda: h.health("sbc") is Health.UP, RECOVER, "sbc up")
            await until(lambda: len(stuck_on) == 1, "the subscriber to get stuck")
            sbc.close()
            await h.until(lambda: len(h.engine.incidents) == 1, DETECT, "the incident")
            ran = rt.probes_run
            await h.until(lambda: rt.probes_run >= ran + 3, 4 * INTERVAL, "probes going on")
            assert len(stuck_on) == 1
        finally:
            await h.close()

    try:
        asyncio.run(scenario())
    finally:
        sbc.close()
