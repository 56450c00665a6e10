"""Builders shared by the web tests (this module holds no tests of its own).

A "world" is a real temporary SQLite state DB (tables from
``monitor.store.models``, no migrations), a config and the app built on them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from monitor.config.schema import Config
from monitor.staff import passwords, tokens
from monitor.store.models import (
    Base,
    Incident,
    IncidentTarget,
    StaffUser,
    TargetState,
    Transition,
)
from monitor.store.repository import StateRepository
from web import WebServices, create_app

TOKEN = "tok-9f8e7d6c5b4a"
"""A secret in the config (trunk-a's registration password): never on a public page."""
INTERNAL_URI = "sip:10.9.8.7"

BASE_CONFIG: dict[str, Any] = {
    "site": {"name": "Test Center", "timezone": "Asia/Shanghai", "language": "zh-CN"},
    "targets": [
        {
            "id": "trunk-a",
            "kind": "sip",
            "name": "Carrier A trunk",
            "uri": INTERNAL_URI,
            "tags": {"carrier": "ct", "role": "trunk"},
            "registration": {"username": "noc", "password": TOKEN},
        },
        {"id": "trunk-b", "kind": "sip", "uri": "sip:10.9.8.8:5070", "tags": {"role": "trunk"}},
        {"id": "crm-db", "kind": "tcp", "address": "10.1.1.5:5432", "name": "CRM database"},
        {"id": "router", "kind": "tcp", "address": "10.1.1.1:22"},
    ],
    "components": [
        {
            "id": "outbound",
            "name": {"zh-CN": "外呼线路", "en": "Outbound calling"},
            "description": {"en": "Calls to your customers"},
            "selector": {"role": "trunk"},
        },
        {"id": "crm", "name": {"zh-CN": "客户系统", "en": "CRM"}, "targets": ["crm-db"]},
    ],
}


def make_config(**sections: Any) -> Config:
    """BASE_CONFIG with whole top-level sections replaced."""
    return Config.model_validate({**BASE_CONFIG, **sections})


def make_db(tmp_path: Path) -> sa.Engine:
    tmp_path.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")

    @sa.event.listens_for(engine, "connect")
    def _no_fsync(dbapi_conn: Any, _record: Any) -> None:
        # A throwaway test DB needs no durability; fsyncs made each test's setup ~0.3 s.
        dbapi_conn.execute("PRAGMA synchronous=OFF")
        dbapi_conn.execute("PRAGMA journal_mode=MEMORY")

    Base.metadata.create_all(engine)
    return engine


def add_targets(db: sa.Engine, rows: Iterable[dict[str, Any]]) -> None:
    """Insert target_state rows; defaults fill what a test does not care about."""
    now = time.time()
    defaults: dict[str, Any] = {
        "kind": "sip",
        "health": "up",
        "since": now - 600,
        "flapping": False,
        "affected_by": None,
        "machine": {},
        "last_status": "ok",
        "last_detail": "200 OK",
        "last_latency": 0.0123,
        "last_observed_at": now - 5,
        "last_metrics": {},
    }
    with Session(db) as s:
        s.execute(sa.insert(TargetState), [{**defaults, **r} for r in rows])
        s.commit()


def set_health(db: sa.Engine, target_id: str, health: str, detail: str = "") -> None:
    with Session(db) as s:
        s.execute(
            sa.update(TargetState)
            .where(TargetState.target_id == target_id)
            .values(health=health, since=time.time(), last_detail=detail)
        )
        s.commit()


def add_incident(
    db: sa.Engine,
    targets: list[str],
    state: str = "open",
    opened_ago: float = 300,
    **fields: Any,
) -> int:
    now = time.time()
    with Session(db) as s:
        incident = Incident(
            state=state,
            opened_at=now - opened_ago,
            resolved_at=now - 60 if state == "resolved" else None,
            root_target_id=targets[0],
            **fields,
        )
        s.add(incident)
        s.flush()
        for i, target_id in enumerate(targets):
            s.add(
                IncidentTarget(
                    incident_id=incident.id,
                    target_id=target_id,
                    role="root" if i == 0 else "affected",
                    joined_at=now - opened_ago + i,
                )
            )
        s.commit()
        return incident.id


def add_transition(
    db: sa.Engine, target_id: str, at: float, from_h: str, to_h: str, reason: str
) -> None:
    with Session(db) as s:
        s.add(
            Transition(
                target_id=target_id, at=at, from_health=from_h, to_health=to_h, reason=reason
            )
        )
        s.commit()


STAFF_PASSWORD = "a long test passphrase"
_STAFF_HASH = passwords.hash_password(STAFF_PASSWORD)  # once per test process: Argon2 is slow
STAFF = {"admin": "root-admin", "operator": "opal", "viewer": "vera"}
"""One user per role (user name by role), each with an API token in ``World.tokens``."""


def add_staff(db: sa.Engine) -> dict[str, str]:
    """The users of STAFF (password STAFF_PASSWORD) and a token each; returns role → token."""
    repo = StateRepository(db)
    with repo.transaction() as conn:
        for role, name in STAFF.items():
            conn.execute(
                sa.insert(StaffUser).values(
                    name=name,
                    display_name="",
                    role=role,
                    password_hash=_STAFF_HASH,
                    password_changed_at=0.0,
                    created_at=0.0,
                    created_by="test",
                    recovery_codes=[],
                )
            )
    return {role: tokens.create_token(repo, "test", name)[1] for role, name in STAFF.items()}


@dataclass
class World:
    db: sa.Engine
    config: Config
    app: Flask
    tokens: dict[str, str] = field(default_factory=dict)
    reload_calls: list[int] = field(default_factory=list)

    def client(self, role: str = "admin") -> FlaskClient:
        """A client that sends ``role``'s API token with every request."""
        client = self.anonymous()
        client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {self.tokens[role]}"
        return client

    def anonymous(self) -> FlaskClient:
        """A client with no credentials (Flask's test client names the host ``localhost``)."""
        return self.app.test_client()


def make_world(
    tmp_path: Path,
    config: Config | None = None,
    listen_host: str = "127.0.0.1",
    reload: Callable[[str, str], list[str]] | None = None,
    metrics: object | None = None,
    with_staff: bool = True,
    **services: Any,
) -> World:
    db = make_db(tmp_path)
    cfg = config or make_config()
    holder = {"config": cfg}
    app = create_app(
        WebServices(
            config=lambda: holder["config"],
            db=db,
            metrics=metrics,
            reload=reload,
            version="9.9.9-test",
            listen_host=listen_host,
            **({"listen_port": 80} | services),
        )
    )
    return World(db=db, config=cfg, app=app, tokens=add_staff(db) if with_staff else {})


def standard_rows() -> list[dict[str, Any]]:
    """The four configured targets in a mix of healths."""
    return [
        {
            "target_id": "trunk-a",
            "kind": "sip",
            "health": "down",
            "last_status": "fail",
            "last_detail": "no answer to OPTIONS after 7 retransmissions (4.0 s)",
            "last_metrics": {"sip.rtt_ms": 12.5},
        },
        {
            "target_id": "trunk-b",
            "kind": "sip",
            "health": "up",
            "flapping": True,
            "last_metrics": {"sip.rtt_ms": 3.25},
        },
        {
            "target_id": "crm-db",
            "kind": "tcp",
            "health": "degraded",
            "last_status": "warn",
            "last_detail": "connect took 900 ms",
        },
        {
            "target_id": "router",
            "kind": "tcp",
            "health": "unknown",
            "affected_by": "trunk-a",
            "last_observed_at": None,
            "last_status": None,
            "last_detail": None,
            "last_latency": None,
        },
    ]


UPLOT_FILES = ("uPlot.iife.min.js", "uPlot.min.css")


def require_uplot() -> None:
    """Fail (not skip) when install.sh has not copied uPlot into web/static/vendor/."""
    vendor = Path(__file__).resolve().parent.parent / "web" / "static" / "vendor"
    missing = [f for f in UPLOT_FILES if not (vendor / f).is_file()]
    if missing:
        pytest.fail(
            f"uPlot is not installed ({', '.join(missing)} missing in {vendor}): "
            "run ./install.sh (or ./install.sh --test), which fetches it from npm",
            pytrace=False,
        )


class OnePointMetrics:
    """A metrics store holding one sample of ``sip.rtt_ms`` a minute ago (the shape of
    ``MetricsQuery.series``), for pages that only need a chart to exist."""

    def series(self, target_id, measurement, field, start, end, max_points=300, tags=None):
        class Series:
            tags = {"target": target_id}
            points = [(end - 60, 14.0)]

        return [Series()] if (measurement, field) == ("sip", "rtt_ms") else []
