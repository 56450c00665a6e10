"""The retention job prunes login sessions that ended or expired long ago, never a live one."""

from __future__ import annotations

import asyncio
from datetime import UTC

import sqlalchemy as sa
from sqlalchemy import Engine

from monitor.config.models import RetentionConfig
from monitor.retention import RetentionJob
from monitor.staff import sessions, users
from monitor.store.models import StaffSession
from monitor.store.repository import StateRepository
from monitor.store.retention import register_state_history, staff_sessions_pruner
from monitor.uptime import UptimeScope

DAY = 86400.0
T0 = 1_800_000_000.0
POLICY = sessions.SessionPolicy(idle=8 * 3600.0, max_age=DAY)


def _job(repo: StateRepository, **staff_sessions: object) -> RetentionJob:
    unlimited = {"max_age": None, "max_rows": None}
    kinds = [k for k in RetentionConfig.model_fields if k not in ("every", "batch")]
    config = RetentionConfig.model_validate(
        {**dict.fromkeys(kinds, unlimited), "staff_sessions": staff_sessions}
    )
    job = RetentionJob(lambda: config)
    scope = UptimeScope(tz=UTC, components={}, keep_days=400)
    register_state_history(job, repo, lambda: scope)
    return job


def _left(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(StaffSession.__table__.c.id)).scalars())


def test_sessions_that_ended_or_expired_before_the_cutoff_go_and_live_ones_stay(
    db: Engine,
) -> None:
    repo = StateRepository(db)
    alice = users.add_user(repo, "test", "alice", "viewer", "a long test passphrase", at=T0)

    def start(at: float, kiosk: bool = False) -> str:
        value = sessions.start(repo, alice.id, stage="full", policy=POLICY, kiosk=kiosk, at=at)
        return sessions.session_key(value)

    logged_out = start(T0)
    sessions.end(repo, logged_out, "user:alice", at=T0 + 3600)
    expired = start(T0)  # its day ran out at T0 + 1 day
    logged_out_late = start(T0 + 9 * DAY)
    sessions.end(repo, logged_out_late, "user:alice", at=T0 + 9 * DAY + 60)
    wall = start(T0, kiosk=True)  # a wall screen: a month
    live = start(T0 + 10 * DAY)

    report = asyncio.run(_job(repo, max_age="5d").run_once(T0 + 10 * DAY))

    assert report.failed == [] and report.deleted["staff_sessions"] == 2
    assert _left(db) == {logged_out_late, wall, live}
    assert expired not in _left(db) and logged_out not in _left(db)


def test_the_count_limit_keeps_the_newest_ended_sessions(db: Engine) -> None:
    repo = StateRepository(db)
    bob = users.add_user(repo, "test", "bob", "viewer", "a long test passphrase", at=T0)
    keys = []
    for n in range(4):
        value = sessions.start(repo, bob.id, stage="full", policy=POLICY, at=T0 + n)
        keys.append(sessions.session_key(value))
        sessions.end(repo, keys[-1], "user:bob", at=T0 + n + 10)
    live = sessions.session_key(
        sessions.start(repo, bob.id, stage="full", policy=POLICY, at=T0 + 100)
    )

    report = asyncio.run(_job(repo, max_rows=2, max_age=None).run_once(T0 + 200))

    assert report.deleted["staff_sessions"] == 2
    assert _left(db) == {keys[2], keys[3], live}


def test_with_no_limits_nothing_is_planned(db: Engine) -> None:
    unlimited = RetentionConfig.model_validate(
        {"staff_sessions": {"max_age": None, "max_rows": None}}
    )
    assert staff_sessions_pruner(StateRepository(db)).plan(unlimited.staff_sessions, T0) is None
