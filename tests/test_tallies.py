"""Tallies: each event counted once by kind, in counters that outlive retention."""

from __future__ import annotations

import asyncio
from pathlib import Path

from monitor.dispatcher import Dispatcher
from monitor.events import EventKind, NewEvent, cursor_of, record
from monitor.store.db import open_database
from monitor.store.repository import StateRepository
from monitor.tallies import SUBSCRIBER, tallies_subscriber
from tests.test_dispatcher import FAST, until


def test_every_event_is_counted_once_by_kind_even_those_from_before_it_ran(
    tmp_path: Path,
) -> None:
    db = open_database(None, tmp_path)
    repo = StateRepository(db)

    def write(kinds: list[EventKind]) -> None:
        with repo.transaction():
            for n, kind in enumerate(kinds):
                record(repo, NewEvent(kind, float(n), incident_id=1))

    async def scenario() -> None:
        write([EventKind.OPENED, EventKind.NOTED])  # before the subscriber ever ran
        dispatcher = Dispatcher(repo, **FAST)
        dispatcher.add(tallies_subscriber())
        await dispatcher.start()
        try:
            await asyncio.to_thread(write, [EventKind.RESOLVED, EventKind.OPENED])
            await until(lambda: cursor_of(db, SUBSCRIBER) == 4, "the tallies at event 4")
        finally:
            await dispatcher.stop()
        # A restart resumes from the cursor: nothing is counted twice.
        again = Dispatcher(repo, **FAST)
        again.add(tallies_subscriber())
        await again.start()
        try:
            await asyncio.to_thread(write, [EventKind.NOTED])
            await until(lambda: cursor_of(db, SUBSCRIBER) == 5, "the tallies at event 5")
        finally:
            await again.stop()

    try:
        asyncio.run(scenario())
        assert repo.counters() == {"events.opened": 2, "events.noted": 2, "events.resolved": 1}
    finally:
        db.dispose()
