"""Benchmark: the state DB's size over a simulated month at 1,000 targets with flapping, with and without retention.

Two SQLite state DBs receive the same month of health changes through the
repository's write path, as the engine writes them: each change to ``down``
opens an incident (timeline line, transition, the target's row and their
events in one transaction), each recovery resolves it; a subscriber keeps up
with the events. A share of the targets flaps all
month (down for 2–15 minutes, up for 10–90); the others have a short outage
now and then. Time is a simulated clock: nothing sleeps, a month takes minutes.

One DB runs the retention job (``monitor.retention`` with the state DB's
pruners and the uptime rollup) every simulated hour; the other keeps
everything, as before retention existed: the reference. The size of each
(file plus WAL) is printed per simulated day. The retention DB uses short
limits so that a month shows the plateau (``--transitions 7d`` and so on);
the defaults of ``storage.retention`` reach theirs after 90 to 400 days.

    .venv/bin/python bench/state_db_retention.py [--targets 1000] [--days 30] [--flapping 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from core.config import parse_duration  # noqa: E402
from monitor.config.models import RetentionConfig  # noqa: E402
from monitor.events import EventKind, NewEvent, last_event_id, record_many  # noqa: E402
from monitor.retention import RetentionJob  # noqa: E402
from monitor.store.db import open_database  # noqa: E402
from monitor.store.models import (  # noqa: E402
    EventRecord,
    Incident,
    IncidentEvent,
    IncidentTarget,
    Transition,
    UptimeDay,
)
from monitor.store.repository import StateRepository  # noqa: E402
from monitor.store.retention import register_state_history  # noqa: E402
from monitor.uptime import UptimeScope  # noqa: E402

DAY = 86400.0
START = datetime(2026, 1, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
TABLES = (Transition, EventRecord, IncidentEvent, Incident, IncidentTarget, UptimeDay)


@dataclass(frozen=True, slots=True)
class Change:
    """One change of health of one target at one instant."""

    at: float
    target_id: str
    to_health: str


def changes(targets: int, days: int, flapping: float, seed: int) -> Iterator[list[Change]]:
    """Each simulated day's changes, in time order (the same for both DBs)."""
    rng = random.Random(seed)
    flappers = set(rng.sample(range(targets), int(targets * flapping)))
    health = ["up"] * targets
    next_at = [
        START + (rng.uniform(0, 3600) if n in flappers else rng.uniform(0, 20 * DAY))
        for n in range(targets)
    ]
    for day in range(days):
        end = START + (day + 1) * DAY
        out: list[Change] = []
        for n in range(targets):
            while next_at[n] < end:
                at = next_at[n]
                health[n] = "down" if health[n] == "up" else "up"
                out.append(Change(at, f"t{n:05d}", health[n]))
                if n in flappers:
                    minutes = rng.uniform(2, 15) if health[n] == "down" else rng.uniform(10, 90)
                else:
                    minutes = (
                        rng.uniform(5, 30) if health[n] == "down" else rng.uniform(1, 20) * 1440
                    )
                next_at[n] = at + minutes * 60
        out.sort(key=lambda c: c.at)
        yield out


def state_row(target_id: str, health: str, at: float) -> dict[str, Any]:
    """The target's row as the engine writes it with each transition."""
    return {
        "target_id": target_id,
        "kind": "sip",
        "health": health,
        "since": at,
        "flapping": False,
        "affected_by": None,
        "machine": {"v": 1, "target_id": target_id, "health": health, "since": at},
        "last_status": "ok" if health == "up" else "fail",
        "last_detail": "200 OK"
        if health == "up"
        else "no answer to OPTIONS after 7 retransmissions",
        "last_latency": 0.012,
        "last_observed_at": at,
        "last_metrics": {"sip.rtt_ms": 12.0, "sip.code": 200},
        "probes_run": 1,
        "probes_failed": 0,
        "probes_errored": 0,
        "config_hash": "0" * 40,
    }


class Writer:
    """The engine's transition writes for one DB, as the incident keeper makes them:
    the incident change, its timeline line, the transition and their events."""

    def __init__(self, repo: StateRepository) -> None:
        self.repo = repo
        self.open: dict[str, int] = {}

    def write(self, c: Change) -> None:
        repo = self.repo
        from_health = "up" if c.to_health == "down" else "down"
        with repo.transaction():
            incident_id = self.open.get(c.target_id)
            if c.to_health == "down":
                incident_id = repo.open_incident(
                    c.target_id, "down", f"{c.target_id} is down", c.at
                )
                text = f"{c.target_id} is down"
            else:
                assert incident_id is not None
                repo.recover_target(incident_id, c.target_id, c.at)
                repo.resolve_incident(incident_id, c.at)
                text = f"{c.target_id} is up again"
            repo.add_incident_event(incident_id, "transition", c.at, c.target_id, text)
            transition_id = repo.record_transition(
                c.target_id,
                c.at,
                from_health,
                c.to_health,
                reason="no answer to OPTIONS after 7 retransmissions (4.0 s)"
                if c.to_health == "down"
                else "up after 2 successful checks",
                incident_id=incident_id,
                state=state_row(c.target_id, c.to_health, c.at),
            )
            payload = {"from": from_health, "to": c.to_health, "reason": text}
            change = EventKind.OPENED if c.to_health == "down" else EventKind.RESOLVED
            record_many(
                repo,
                [
                    NewEvent(
                        EventKind.TRANSITION,
                        c.at,
                        target_id=c.target_id,
                        incident_id=incident_id,
                        payload={**payload, "transition_id": transition_id},
                    ),
                    NewEvent(change, c.at, target_id=c.target_id, incident_id=incident_id),
                ],
            )
        if c.to_health == "down":
            self.open[c.target_id] = incident_id
        else:
            self.open.pop(c.target_id, None)


def size_mb(path: Path) -> float:
    total = 0
    for suffix in ("", "-wal"):
        p = path.parent / (path.name + suffix)
        if p.exists():
            total += p.stat().st_size
    return total / 1e6


def rows(repo: StateRepository) -> dict[str, int]:
    with repo.reading() as conn:
        return {
            m.__tablename__: conn.execute(
                select(func.count()).select_from(m.__table__)
            ).scalar_one()
            for m in TABLES
        }


def breakdown(path: Path) -> str:
    """MB per table (with its indexes) and free pages, from SQLite's dbstat."""
    conn = sqlite3.connect(path)
    try:
        per_table = conn.execute(
            "SELECT m.tbl_name, sum(d.pgsize) FROM dbstat d JOIN sqlite_master m "
            "ON m.name = d.name GROUP BY m.tbl_name ORDER BY 2 DESC"
        ).fetchall()
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0] * page_size
    except sqlite3.OperationalError as exc:  # SQLite built without dbstat
        return f"no breakdown ({exc})"
    finally:
        conn.close()
    parts = [f"{table} {size / 1e6:.1f}" for table, size in per_table if size >= 50_000]
    return ", ".join(parts) + f", free pages {free / 1e6:.1f} (MB)"


class TimedWrites:
    """The job's write runner: runs directly, and keeps the longest call of each kind
    (a delete batch, a slice of uptime rows): how long the engine's writer is held."""

    def __init__(self) -> None:
        self.longest: dict[str, float] = {}
        self.total = 0.0
        self.reading = 0.0

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """The job's reads (plans, a day of transitions): counted, not held against the writer."""
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            self.reading += time.perf_counter() - started

    async def __call__(self, fn: Callable[..., Any], *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            took = time.perf_counter() - started
            name = "rollup" if fn.__name__ == "write" else "delete"
            self.longest[name] = max(self.longest.get(name, 0.0), took)
            self.total += took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--flapping", type=float, default=0.1, help="share of targets that flap")
    parser.add_argument("--seed", type=int, default=9)
    parser.add_argument("--transitions", default="7d", help="storage.retention.transitions.max_age")
    parser.add_argument("--timelines", default="3d", help="... incident_timelines.max_age")
    parser.add_argument("--incidents", default="7d", help="... incidents.max_age")
    parser.add_argument("--events", default="3d", help="... events.max_age")
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()

    policy = RetentionConfig.model_validate(
        {
            "transitions": {"max_age": args.transitions},
            "incident_timelines": {"max_age": args.timelines},
            "incidents": {"max_age": args.incidents},
            "events": {"max_age": args.events},
            "batch": args.batch,
        }
    )
    print(
        f"# {args.targets} targets, {args.flapping:.0%} flapping, {args.days} simulated days; "
        f"retention: transitions {args.transitions}, events {args.events}, timelines "
        f"{args.timelines}, incidents {args.incidents}, uptime {parse_duration('400d') / DAY:.0f}d, batch {args.batch}, "
        f"run every simulated hour\n# Python {platform.python_version()}, SQLAlchemy "
        f"{sqlalchemy.__version__}, SQLite {sqlite3.sqlite_version}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start",
        flush=True,
    )
    with tempfile.TemporaryDirectory() as root:
        paths = {name: Path(root) / name / "state.db" for name in ("retention", "reference")}
        engines = {name: open_database(None, p.parent) for name, p in paths.items()}
        repos = {name: StateRepository(e) for name, e in engines.items()}
        writers = {name: Writer(r) for name, r in repos.items()}
        ids = [f"t{n:05d}" for n in range(args.targets)]
        for repo in repos.values():
            # Every target's first probe: unknown -> up, as the engine writes it at start.
            with repo.transaction():
                for t in ids:
                    tid = repo.record_transition(
                        t,
                        START,
                        "unknown",
                        "up",
                        reason="first check",
                        state=state_row(t, "up", START),
                    )
                    payload = {"from": "unknown", "to": "up", "transition_id": tid}
                    first = NewEvent(EventKind.TRANSITION, START, target_id=t, payload=payload)
                    record_many(repo, [first])
        for repo in repos.values():
            repo.start_cursor("tallies", 0, START)
        components = {f"carrier-{k}": tuple(ids[k::10]) for k in range(10)}
        scope = UptimeScope(ZoneInfo("Asia/Shanghai"), components, 400)
        timed = TimedWrites()
        job = RetentionJob(lambda: policy, write=timed, read=timed.read)
        register_state_history(job, repos["retention"], lambda: scope)

        print(
            "| day | changes | with retention, MB | reference, MB | transitions kept "
            "| events kept | timeline lines kept | incidents kept | uptime rows | job s/day "
            "| longest delete batch, ms | longest uptime write, ms |"
        )
        print(
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        )
        hour = 0
        started = time.perf_counter()
        for day, todays in enumerate(changes(args.targets, args.days, args.flapping, args.seed)):
            job_time_before = timed.total + timed.reading
            pending = iter(todays)
            upcoming = next(pending, None)
            for h in range(24):
                hour_end = START + day * DAY + (h + 1) * 3600
                while upcoming is not None and upcoming.at < hour_end:
                    for writer in writers.values():
                        writer.write(upcoming)
                    upcoming = next(pending, None)
                # A subscriber that keeps up (the tallies): its cursor at the last event.
                for repo in repos.values():
                    repo.set_cursor("tallies", last_event_id(repo.engine), hour_end)
                report = asyncio.run(job.run_once(hour_end))
                assert not report.failed, report.failed
                hour += 1
            kept = rows(repos["retention"])
            print(
                f"| {day + 1} | {len(todays)} | {size_mb(paths['retention']):.1f} "
                f"| {size_mb(paths['reference']):.1f} | {kept['transition']} "
                f"| {kept['event']} | {kept['incident_event']} | {kept['incident']} | {kept['uptime_day']} "
                f"| {timed.total + timed.reading - job_time_before:.2f} "
                f"| {timed.longest.get('delete', 0) * 1000:.0f} "
                f"| {timed.longest.get('rollup', 0) * 1000:.0f} |",
                flush=True,
            )
            timed.longest = {}
        reference = rows(repos["reference"])
        print(
            f"# reference keeps {reference['transition']} transitions, {reference['event']} events, "
            f"{reference['incident_event']} timeline lines, {reference['incident']} incidents; "
            f"{time.perf_counter() - started:.0f} s for the whole run"
        )
        for e in engines.values():
            e.dispose()
        for name, path in paths.items():
            print(f"# {name}: {breakdown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
