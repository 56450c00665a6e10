"""What the web app reads: the services the engine hands to ``create_app``.

The app never starts threads or a scheduler; it only reads these (and
writes through the staff and incident-action functions, which audit). Tests
build one with a temporary SQLite state DB and a fixed config.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy

from core.secret_box import SecretBox
from monitor.config.schema import Config
from monitor.faults import NO_FAULTS, Faults
from monitor.staff.setup_code import SetupCode
from monitor.store.repository import StateRepository
from notify.service import Notifications
from notify.vapid import VapidKey
from runbooks.service import Runbooks


@dataclass(frozen=True)
class WebServices:
    """Everything the web app needs from the running appliance."""

    config: Callable[[], Config]
    """The current config; called per request because a reload can replace it."""
    db: sqlalchemy.Engine
    """The state DB (tables in ``monitor/store/models.py``); read through the read
    model ``monitor.store.queries``."""
    metrics: object | None = None
    """Embedded metrics query interface with
    ``series(target_id, measurement, field, start, end, max_points=300)``; None: no charts."""
    reload: Callable[[str, str], list[str]] | None = None
    """``reload(actor, address)`` reloads the config and audits it (``config.reload``, with
    the config hash) as ``actor`` from ``address``; returns config errors (empty list =
    reloaded). None: not available."""
    version: str = "0.0.0"
    listen_host: str = "127.0.0.1"
    listen_port: int = 8080
    """Where the web server listens: the default allowed Host names come from it."""
    repo: StateRepository | None = None
    """Writes (logins, sessions, incident actions); None: one over ``db`` is made."""
    secret_box: SecretBox | None = None
    """Seals TOTP seeds with the appliance's key file; None: no second factor can be set up."""
    secret_key: bytes | None = None
    """Signs the CSRF cookie; None: a random one (CSRF tokens then end with the process)."""
    setup: SetupCode | None = None
    """The first-start setup code; None: no setup page (users come from the CLI)."""
    clock: Callable[[], float] = time.time
    faults: Faults = NO_FAULTS
    notifications: Notifications | None = None
    """Paging: channels, people, the outbox's "send test"; None: no paging (tests of other parts)."""
    """Where an unhandled error of a view is reported (the appliance's audit fault log)."""
    runbooks: Runbooks | None = None
    """The runbook engine, woken after a person starts or answers a run, and its dry-run
    plans; None: runs are queued and wait for an engine (tests of other parts)."""
    vapid_key: VapidKey | None = None
    """The appliance's VAPID key (``notify.vapid``) browsers subscribe to web push with;
    None: no Subscribe button."""
