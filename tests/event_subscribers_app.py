"""The appliance with two test subscribers, for tests/test_events_kill9.py.

``python -m tests.event_subscribers_app CONFIG DATA OUTSIDE_FILE`` runs the
real appliance (engine, dispatcher, web on a free port) with:

- ``test-db``, a DbSubscriber: one row per event it handles in the
  ``seen_by_db`` table of the state DB (no unique key, so a second handling
  of an event would show as a second row);
- ``test-outside``, an OutsideSubscriber: one line per event it handles
  appended to OUTSIDE_FILE — an effect outside the state DB, as a message is.

Both are slowed a little so that a kill lands while they are behind.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

from dialwatch.app import Appliance
from monitor.config import load_config_isolated
from monitor.dispatcher import DbSubscriber, OutsideSubscriber
from monitor.events import Event
from monitor.store.repository import StateRepository
from tests.peers import free_port

DB_DELAY = 0.001
OUTSIDE_DELAY = 0.02


def main(config: str, data: str, outside_file: str) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    appliance = Appliance(
        config, load_config_isolated(config), Path(data), ("127.0.0.1", free_port())
    )
    with appliance.repo.transaction() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS seen_by_db (event_id INTEGER NOT NULL)")

    def in_db(repo: StateRepository, event: Event) -> None:
        time.sleep(DB_DELAY)
        with repo.transaction() as conn:  # the dispatcher's transaction, joined
            conn.exec_driver_sql("INSERT INTO seen_by_db (event_id) VALUES (?)", (event.id,))

    fd = os.open(outside_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    async def outside(event: Event) -> None:
        await asyncio.sleep(OUTSIDE_DELAY)
        os.write(fd, f"{event.id}\n".encode())  # one write per line: never half a line

    appliance.dispatcher.add(DbSubscriber("test-db", in_db, start="beginning"))
    appliance.dispatcher.add(OutsideSubscriber("test-outside", outside, start="beginning"))
    asyncio.run(appliance.run())


if __name__ == "__main__":
    main(*sys.argv[1:4])
