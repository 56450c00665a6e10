"""Opening the state database: engine setup and migrations to head.

``open_database(url, data_dir)`` is the one entry point. Without a URL the
state lives in SQLite at ``<data_dir>/state.db``; a ``postgresql://`` URL
(psycopg 3) takes over for larger sites and HA. Either way the schema is
brought to the newest Alembic revision before the engine is handed out, using
the migrations packaged in ``monitor/store/migrations`` (so it works from an
installed wheel, with no ``alembic.ini``).

SQLite is tuned for one writer thread and many reader threads: WAL (readers
never block the writer), ``synchronous=NORMAL`` (a commit survives a crash of
the process; a power loss may lose the last few commits, never corrupt), a
busy timeout, and foreign keys on. Writers begin with ``BEGIN IMMEDIATE`` (see
``WRITE``) so two writers queue on the busy timeout instead of one failing at
once with "database is locked" when it upgrades a read to a write.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.pool import ConnectionPoolEntry

log = logging.getLogger(__name__)


class _AlembicChatter(logging.Filter):
    """Keeps Alembic's lines that say a migration runs ("Running upgrade 0001 -> 0002, ...")
    and its warnings; drops the set-up talk ("Context impl SQLiteImpl.", "Will assume
    non-transactional DDL.") that it prints on every migration context."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or str(record.msg).startswith("Running ")


# Alembic logs at INFO the plugins it sets up when imported (seven lines) and
# its context set-up on every run: noise in the appliance's start-up log.
logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
logging.getLogger("alembic.runtime.migration").addFilter(_AlembicChatter())

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
STATE_DB_FILE = "state.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
_MIGRATION_LOCK_KEY = 0x4469_616C  # "Dial": any constant shared by every Dialwatch process

WRITE = {"dialwatch_write": True}
"""Execution options for a connection that will write (``conn.execution_options(**WRITE)``).

On SQLite its transaction starts with ``BEGIN IMMEDIATE``; elsewhere it changes nothing."""


class StateDBError(Exception):
    """The state database cannot be opened or migrated; the message says why and what to do."""


def dumps_json(value: Any) -> str:
    """JSON for the state DB's JSON columns; NaN and infinities become null.

    PostgreSQL rejects ``NaN`` in a json value, and one such metric must not
    make a whole checkpoint fail (and be retried for ever).
    """
    try:
        return json.dumps(value, allow_nan=False)
    except ValueError:
        return json.dumps(_finite(value), allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def database_url(url: str | None, data_dir: Path) -> str:
    """The SQLAlchemy URL to use: the given one made explicit, or SQLite in ``data_dir``.

    ``postgresql://`` and ``postgres://`` mean psycopg 3 (the driver Dialwatch
    ships), so operators can paste the URL their DBA gave them.
    """
    if not url:
        return f"sqlite:///{Path(data_dir) / STATE_DB_FILE}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_database(url: str | None, data_dir: Path, *, migrate: bool = True) -> Engine:
    """An engine for the state DB, migrated to the newest schema (unless ``migrate=False``)."""
    full_url = database_url(url, data_dir)
    parsed = make_url(full_url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = _sqlite_engine(full_url, data_dir)
    elif backend == "postgresql":
        try:
            # pre_ping: a PostgreSQL restart or failover must not break the next write.
            engine = create_engine(full_url, pool_pre_ping=True, json_serializer=dumps_json)
        except ImportError as exc:
            raise StateDBError(
                f"a PostgreSQL state DB needs its driver ({exc}): "
                "install it with `.venv/bin/pip install 'psycopg[binary]>=3.2'`"
            ) from exc
    else:
        raise StateDBError(
            f"state DB URL {parsed.render_as_string(hide_password=True)!r}: "
            "only sqlite:/// and postgresql:// are supported"
        )
    if migrate:
        try:
            migrate_to_head(engine)
        except OperationalError as exc:
            engine.dispose()
            # The driver's own words say why (refused, auth, read-only directory...).
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise StateDBError(
                f"cannot open the state DB at {parsed.render_as_string(hide_password=True)}: "
                f"{reason}"
            ) from exc
        except Exception:
            engine.dispose()
            raise
    return engine


def _sqlite_engine(url: str, data_dir: Path) -> Engine:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, connect_args={"check_same_thread": False}, json_serializer=dumps_json
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Take BEGIN away from the sqlite3 module (it only begins before DML and
        # never BEGIN IMMEDIATE); ``_on_begin`` emits it instead.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("dialwatch_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


HEAD_REVISION = "0014_customer_maintenance_marks"
"""The newest packaged migration, kept here so a start with a current schema
needs no Alembic import (35 MB of RSS for the life of the process);
tests/test_state_db.py checks it equals Alembic's head."""


def alembic_config(connection: Connection | None = None) -> Any:
    """An Alembic config pointing at the packaged migrations (and at ``connection``, if given)."""
    from alembic.config import Config as AlembicConfig

    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # env.py reads the connection from here instead of building its own engine.
    config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest schema revision this version of Dialwatch knows (asks Alembic)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the packaged migrations have no head revision"
    return head


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _stored_revision(engine: Engine) -> str | None:
    """The revision in ``alembic_version``, read with plain SQL (None: no such table)."""
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    except (OperationalError, ProgrammingError) as exc:
        if "alembic_version" in str(exc):
            return None
        raise
    return rows[0][0] if len(rows) == 1 else None


def migrate_to_head(engine: Engine) -> None:
    """Upgrade the schema to the newest revision; a no-op when it is there already."""
    if _stored_revision(engine) == HEAD_REVISION:
        return  # the common start: no Alembic needed
    from alembic import command
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    current = current_revision(engine)
    if current is not None and current not in {s.revision for s in script.walk_revisions()}:
        raise StateDBError(
            f"the state DB is at schema revision {current!r}, which this version of Dialwatch "
            "does not know (was it opened by a newer version?); upgrade Dialwatch or point "
            "storage.database_url at another database"
        )
    if current == script.get_current_head():
        return
    log.info("state DB: migrating schema from %s to %s", current or "empty", head_revision())
    with engine.connect().execution_options(**WRITE) as conn, conn.begin():
        if engine.dialect.name == "postgresql":
            # Two appliances (an HA pair) starting at once must not both create the tables;
            # the second waits here, then finds the schema at head and does nothing.
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK_KEY})")
        command.upgrade(alembic_config(conn), "head")
