"""Fixtures shared by several test modules (most peers are imported explicitly from tests.peers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from monitor.store.db import open_database
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401 - used by db

STATE_DB_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.peer)]


@pytest.fixture(params=STATE_DB_BACKENDS)
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An empty, migrated state DB of its own, on SQLite and on a real PostgreSQL
    (the event outbox, dispatcher and incident-action tests)."""
    url = None
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        url = server.create_database()
    engine = open_database(url, tmp_path)
    yield engine
    engine.dispose()
