"""The one writer of the state DB: a single thread, so every write keeps its order.

Transitions and incident changes (the incident keeper), checkpoints of the
latest observations, probe state, and the retention job's deletes all go
through ``StoreWriter``: one thread means writes never race each other nor
deadlock on SQLite's one writer, and a transition queued before a checkpoint
is committed before it. Rows are built here, on the writer thread, from
immutable snapshots the loop takes cheaply (``RowSnapshot``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from core.observation import Observation
from monitor.health import HealthState
from monitor.store.repository import StateRepository

log = logging.getLogger(__name__)

WRITE_SLICE = 1000
"""Targets per transaction when a checkpoint or a probe-state save covers many."""


class RowSnapshot(NamedTuple):
    target_id: str
    kind: str
    state: HealthState  # frozen
    last: Observation | None  # frozen
    last_metrics: dict[str, Any]  # replaced, never mutated, by observe()
    probes_run: int
    probes_failed: int
    probes_errored: int
    digest: str


def state_row(snap: RowSnapshot) -> dict[str, Any]:
    """A ``target_state`` row (any thread: everything in ``snap`` is immutable)."""
    s, last = snap.state, snap.last
    return {
        "target_id": snap.target_id,
        "kind": snap.kind,
        "health": s.health.value,
        "since": s.since if s.since is not None else time.time(),
        "flapping": s.flapping,
        "affected_by": s.affected_by,
        "machine": s.to_dict(),
        "last_status": last.status.value if last else None,
        "last_detail": last.detail if last else None,
        "last_latency": last.latency if last else None,
        "last_observed_at": last.time if last else None,
        "last_metrics": snap.last_metrics,
        "probes_run": snap.probes_run,
        "probes_failed": snap.probes_failed,
        "probes_errored": snap.probes_errored,
        "config_hash": snap.digest,
    }


class StoreWriter:
    """The state DB's writer thread, with the engine's bulk writes."""

    def __init__(self, repo: StateRepository) -> None:
        self.repo = repo
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb")

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the writer thread, in order with every other write; its result."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, fn, *args)

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` on the writer thread without waiting; a failure is logged."""

        def done(future: Any) -> None:
            if future.exception() is not None:
                log.error("state DB write failed: %s", future.exception())

        self._thread.submit(fn, *args).add_done_callback(done)

    def checkpoint_rows(self, snapshots: Sequence[RowSnapshot]) -> int:
        """Writer thread: upsert the rows of ``snapshots``, ``WRITE_SLICE`` per transaction.

        In slices: the rows and driver parameters of 10,000 targets at once
        were a ~20 MB peak every checkpoint, and peaks are what the process
        keeps as resident memory (bench/sip_probe_throughput).
        """
        written = 0
        for start in range(0, len(snapshots), WRITE_SLICE):
            chunk = snapshots[start : start + WRITE_SLICE]
            written += self.repo.checkpoint([state_row(snap) for snap in chunk])
        return written

    async def save_probe_states(self, states: Mapping[str, Mapping[str, Any]]) -> None:
        """Save one slice of probe memory (already copied on the loop)."""
        await self.run(self.repo.save_probe_states, states)

    def close(self) -> None:
        """Wait for queued writes, then stop the thread."""
        self._thread.shutdown(wait=True)
