"""What the web app reads: the services the engine hands to ``create_app``.

The app never starts threads or a scheduler; it only reads these. Tests build
one with a temporary SQLite state DB and a fixed config.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy

from monitor.config.schema import Config


@dataclass(frozen=True)
class WebServices:
    """Everything the web app needs from the running appliance."""

    config: Callable[[], Config]
    """The current config; called per request because a reload can replace it."""
    db: sqlalchemy.Engine
    """The state DB (tables in ``monitor/store/models.py``); read-only from here, and
    only through the read model ``monitor.store.queries``."""
    metrics: object | None = None
    """Embedded metrics query interface with
    ``series(target_id, measurement, field, start, end, max_points=300)``; None: no charts."""
    reload: Callable[[], list[str]] | None = None
    """Reloads the config; returns config errors (empty list = reloaded). None: not available."""
    version: str = "0.0.0"
    listen_host: str = "127.0.0.1"
    """The address the web server listens on; loopback means no token is needed."""
