"""Alembic migrations of the state DB, packaged so an installed wheel can migrate itself.

``monitor.store.db.migrate_to_head`` runs them; there is no ``alembic.ini``.
To write a new revision after changing ``monitor/store/models.py``::

    .venv/bin/python -m monitor.store.migrations revision "add run table"

which autogenerates ``versions/NNNN_add_run_table.py`` against a scratch
SQLite database at head; read and fix it before committing.
"""
