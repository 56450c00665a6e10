"""Alembic revisions of the state DB, oldest first (``NNNN_what.py``)."""
