"""Retention: one job that keeps every history table of the state DB bounded.

Each store with history registers here under the name of its policy in
``storage.retention`` (``RetentionConfig``): a ``Pruner`` that, once per run,
turns the policy into a plan of what to delete (``plan``, a read) and then
deletes it a batch at a time (``delete_batch``, one short write transaction
each). Stores whose rows are summarised before they go register a ``Rollup``
(today the daily uptime, rolled up from the transitions): every run rolls up
first and prunes after, so a transition is never deleted before the day it
belongs to is counted.

The job does no I/O itself: it is handed ``read`` and ``write`` runners.
In the appliance ``write`` is the engine's state-DB writer thread, so every
delete queues in order with the engine's own writes (one writer: nothing to
deadlock with, on SQLite or PostgreSQL) and the engine waits at most one
batch; ``read`` is a worker thread whose queries (counts, a day of
transitions) never hold the writer. Tests pass runners that call directly.

How a coming store (events, audit entries, deliveries, runs, call facts)
joins, in docs/storage.md, "Retention": a policy field in
``RetentionConfig`` with documented defaults, a ``Pruner``, and one
``register`` line where the appliance is built (``dialwatch/app.py``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol, TypeVar

from core.clock import SYSTEM_CLOCK, Clock
from monitor.config.models import RetentionConfig, RetentionPolicy
from monitor.faults import NO_FAULTS, Faults

log = logging.getLogger(__name__)

T = TypeVar("T")
Runner = Callable[..., Awaitable[Any]]
"""``await runner(fn, *args)`` runs ``fn(*args)`` somewhere (a thread) and returns its result."""

FIRST_RUN_AFTER = 60.0
"""Seconds after start before the first run: start-up restores state and probes every target."""


# -- policy (pure) ---------------------------------------------------------------
def age_cutoff(policy: RetentionPolicy, now: float) -> float | None:
    """Rows older than this go by age (None: the policy has no age limit)."""
    return None if policy.max_age is None else now - policy.max_age


def later(*cutoffs: float | None) -> float | None:
    """The cutoff that deletes the most (the latest one given; None when none is)."""
    given = [c for c in cutoffs if c is not None]
    return max(given) if given else None


def not_after(cutoff: float | None, limit: float | None) -> float | None:
    """``cutoff``, but never later than ``limit``: what a rollup has not counted yet stays.

    With ``limit`` None (nothing rolled up yet) nothing goes.
    """
    if cutoff is None or limit is None:
        return None
    return min(cutoff, limit)


# -- what stores register ----------------------------------------------------------
class Batch(NamedTuple):
    """What one ``delete_batch`` did."""

    deleted: int
    """Rows deleted (of every table the kind covers)."""
    more: bool
    """False once the plan is done; a batch may delete nothing and still have more to look at."""


class Pruner(Protocol):
    """Deletes one kind of history. ``plan`` runs on a reader, ``delete_batch`` on the writer."""

    def plan(self, policy: RetentionPolicy, now: float) -> Any | None:
        """What this run deletes under ``policy`` at ``now`` (None: nothing).

        The plan is this run's own: ``delete_batch`` may keep a cursor in it.
        """
        ...

    def delete_batch(self, plan: Any, limit: int) -> Batch:
        """Delete at most ``limit`` rows of the plan, in one short transaction."""
        ...


class Rollup(Protocol):
    """Summarises history before it is pruned. ``pending``/``compute`` read, ``write`` writes."""

    def pending(self, now: float) -> Sequence[Any]:
        """The units (days) to (re)compute at ``now``, oldest first."""
        ...

    def compute(self, unit: Any, now: float) -> Sequence[Any]:
        """The rows of one unit; computing a unit again gives the same rows (idempotent)."""
        ...

    def write(self, rows: Sequence[Any]) -> None:
        """Store (upsert) rows in one transaction."""
        ...


@dataclass
class RunReport:
    """What one run did: rows deleted per kind, units rolled up, and what failed."""

    deleted: dict[str, int] = field(default_factory=dict)
    rolled_up: dict[str, int] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)


async def _call(fn: Callable[..., T], *args: Any) -> T:
    return fn(*args)


class RetentionJob:
    """The one retention job: a registry of pruners and rollups, run every ``every``."""

    def __init__(
        self,
        config: Callable[[], RetentionConfig],
        *,
        read: Runner = _call,
        write: Runner = _call,
        faults: Faults = NO_FAULTS,
    ) -> None:
        """``faults``: where a failed rollup or pruner is reported besides the log."""
        self._config = config
        self._faults = faults
        self._read = read
        self._write = write
        self._pruners: dict[str, Pruner] = {}
        self._rollups: dict[str, Rollup] = {}

    @property
    def kinds(self) -> tuple[str, ...]:
        """Registered kinds, in the order they run."""
        return tuple(self._pruners)

    @property
    def rollups(self) -> tuple[str, ...]:
        return tuple(self._rollups)

    def register(self, kind: str, pruner: Pruner) -> None:
        """Add a kind of history; its policy is ``storage.retention.<kind>``.

        Kinds run in the order registered (register a table's children before
        the table, e.g. timelines before incidents).
        """
        policies = _policy_fields()
        if kind not in policies:
            raise ValueError(
                f"no retention policy {kind!r}: storage.retention has "
                f"{', '.join(policies)}; add a RetentionPolicy field for it to "
                "RetentionConfig (monitor/config/models.py)"
            )
        if kind in self._pruners:
            raise ValueError(f"retention kind {kind!r} is registered twice")
        self._pruners[kind] = pruner

    def register_rollup(self, name: str, rollup: Rollup) -> None:
        """Add a rollup; every rollup runs before any pruner."""
        if name in self._rollups:
            raise ValueError(f"rollup {name!r} is registered twice")
        self._rollups[name] = rollup

    async def run_once(self, now: float) -> RunReport:
        """Roll up, then prune every kind; a failing store is logged and the others still run."""
        config = self._config()
        report = RunReport()
        for name, rollup in self._rollups.items():
            try:
                report.rolled_up[name] = await self._roll_up(rollup, now, config.batch)
            except Exception as exc:
                log.exception("retention: the %s rollup failed; pruning what it covers waits", name)
                self._faults.report(f"retention:{name}", exc)
                report.failed.append(name)
        for kind, pruner in self._pruners.items():
            try:
                report.deleted[kind] = await self._prune(
                    pruner, getattr(config, kind), now, config.batch
                )
            except Exception as exc:
                log.exception("retention: pruning %s failed; it is tried again next run", kind)
                self._faults.report(f"retention:{kind}", exc)
                report.failed.append(kind)
        deleted = {k: n for k, n in report.deleted.items() if n}
        if deleted:
            log.info(
                "retention: deleted %s",
                ", ".join(f"{n} {kind}" for kind, n in deleted.items()),
            )
        return report

    async def _roll_up(self, rollup: Rollup, now: float, batch: int) -> int:
        units = await self._read(rollup.pending, now)
        for unit in units:
            rows = await self._read(rollup.compute, unit, now)
            for start in range(0, len(rows), batch):
                await self._write(rollup.write, rows[start : start + batch])
        return len(units)

    async def _prune(self, pruner: Pruner, policy: RetentionPolicy, now: float, batch: int) -> int:
        plan = await self._read(pruner.plan, policy, now)
        if plan is None:
            return 0
        total = 0
        # One transaction per batch, each queued behind whatever the engine
        # wrote meanwhile: the writer is never held longer than one batch.
        while True:
            done: Batch = await self._write(pruner.delete_batch, plan, batch)
            total += done.deleted
            if not done.more:
                return total

    async def run_forever(
        self, clock: Clock = SYSTEM_CLOCK, first_after: float = FIRST_RUN_AFTER
    ) -> None:
        """Run ``first_after`` seconds from now, then every ``storage.retention.every``
        (read again before each wait: a reload applies)."""
        await clock.sleep(first_after)
        while True:
            try:
                await self.run_once(clock.time())
            except asyncio.CancelledError:
                raise
            except Exception:  # run_once catches per store; this is a bug in the job itself
                log.exception("retention run failed")
            await clock.sleep(self._config().every)


def _policy_fields() -> tuple[str, ...]:
    out = []
    for name, info in RetentionConfig.model_fields.items():
        tp = info.annotation
        if isinstance(tp, type) and issubclass(tp, RetentionPolicy):
            out.append(name)
    return tuple(out)
