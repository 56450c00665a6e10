"""Alembic environment: migrate the connection ``monitor.store.db`` hands over.

Dialwatch never runs Alembic from the command line against a configured URL;
``migrate_to_head`` opens the engine (with its SQLite pragmas) and passes a
connection in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context

from monitor.store.models import Base

connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run migrations through monitor.store.db.migrate_to_head(), which passes a connection"
    )

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
