"""The engine: wires scheduler → runner → health → incidents → state DB and metric sinks.

Everything runs on one asyncio loop. The in-memory ``TargetRuntime`` of each
target is the truth while running; the state DB makes it survive a restart:

- incident changes and the transitions that cause them are written at once,
  through one DB thread so writes keep their order; transitions that touch no
  incident share a transaction within ``TRANSITION_BATCH`` seconds;
- the latest observation of every target that changed is checkpointed in one
  batch every ``checkpoint_every`` seconds (2 s, longer beyond 2,000 targets);
- probe state (counters for rates, offsets) is saved every ``PROBE_STATE_EVERY``
  seconds and on stop.

A failing probe, sink or DB write never stops the engine: each is caught,
logged once per occurrence, and shows in the appliance's own health.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from core.clock import SYSTEM_CLOCK, Clock
from core.config import TargetBase
from core.observation import MetricPoint, Observation, Status
from core.shared import SharedResources
from monitor import incidents
from monitor.config import LoadedConfig
from monitor.health import FlapPolicy, Health, HealthState, Policy, Transition, step
from monitor.maintenance import MaintenanceCheck, check_maintenance
from monitor.points import Enricher
from monitor.runner import ProbeRunner
from monitor.scheduler import ProbeScheduler
from monitor.sinks.base import MetricSink
from monitor.store.repository import StateRepository
from monitor.vitals import EngineVitals
from probes import PROBES, ProbeContext

log = logging.getLogger(__name__)

TRANSITION_BATCH = 0.2
"""Seconds a transition that touches no incident may wait to share a transaction:
at start every target turns up at once, and 10,000 single-row commits starved
the event loop (bench/sip_probe_throughput)."""
CHECKPOINT_EVERY = 2.0
"""Seconds between checkpoints for up to CHECKPOINT_TARGETS targets; scaled up beyond."""
CHECKPOINT_TARGETS = 2000
PROBE_STATE_EVERY = 30.0
WRITE_SLICE = 1000
"""Targets per transaction when a checkpoint or a probe-state save covers many."""
SWITCH_INTERVAL = 0.0005
"""Seconds a thread may hold the GIL while another waits for it (Python's default: 0.005)."""


def flatten_metrics(points: Sequence[MetricPoint]) -> dict[str, Any]:
    """``{"sip.rtt_ms": 1.2, "server_disk.percent[mount=/]": 40.0}`` — the last values, for the dashboard."""
    flat: dict[str, Any] = {}
    for point in points:
        labels = ",".join(f"{k}={v}" for k, v in sorted(point.tags.items()))
        suffix = f"[{labels}]" if labels else ""
        for name, value in point.fields.items():
            # Interned: every target has the same few keys; 10,000 copies of
            # each were ~7 MB (bench/sip_probe_throughput).
            flat[sys.intern(f"{point.measurement}.{name}{suffix}")] = value
    return flat


STATUS_CODES = {Status.OK: 0, Status.WARN: 1, Status.FAIL: 2, Status.ERROR: 3}
"""``probe.status`` as an integer field: Grafana can threshold and colour it."""
HEALTH_CODES = {
    Health.UP: 0,
    Health.DEGRADED: 1,
    Health.DOWN: 2,
    Health.UNKNOWN: 3,
    Health.MAINTENANCE: 4,
}


def observation_point(obs: Observation) -> MetricPoint:
    """One ``probe`` point per observation, whatever the kind: status and latency."""
    fields: dict[str, float | int] = {"status": STATUS_CODES[obs.status]}
    if obs.latency is not None:
        fields["latency_ms"] = round(obs.latency * 1000, 3)
    return MetricPoint("probe", fields)


def transition_point(tr: Transition) -> MetricPoint:
    """One ``health`` point per transition: an event series for annotations."""
    return MetricPoint(
        "health",
        {
            "health": HEALTH_CODES[tr.to_health],
            "from": tr.from_health.value,
            "to": tr.to_health.value,
            "reason": tr.reason[:500],
            "flapping": tr.flapping,
            "affected_by": tr.affected_by or "",
        },
        time_ns=int(tr.at * 1e9),
    )


@dataclass
class TargetRuntime:
    """What the engine knows about one target while running."""

    target: TargetBase
    policy: Policy
    state: HealthState
    digest: str
    probe_state: dict[str, Any] = field(default_factory=dict)
    last: Observation | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    probes_run: int = 0
    probes_failed: int = 0
    probes_errored: int = 0
    suspect: bool = False
    dirty: bool = False
    maintenance: MaintenanceCheck | None = None
    """Cached answer of check_maintenance, valid until its ``until``."""

    def snapshot(self) -> RowSnapshot:
        """The parts of the row, as references to immutable values: cheap on the
        loop; the DB thread builds the row from it (``state_row``)."""
        return RowSnapshot(
            self.target.id,
            self.target.kind,
            self.state,
            self.last,
            self.last_metrics,
            self.probes_run,
            self.probes_failed,
            self.probes_errored,
            self.digest,
        )


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
        "ok_streak": s.ok_streak,
        "fail_streak": s.fail_streak,
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


class IncidentBook:
    """Open incidents indexed by member target.

    ``incidents.decide`` only ever looks at the incident of the transitioning
    target and of its ``affected_by`` parent; handing it those (not all open
    incidents) keeps an outage storm of thousands of incidents O(1) per
    transition instead of O(open incidents).
    """

    def __init__(self, items: Iterable[incidents.OpenIncident] = ()) -> None:
        self._by_id: dict[int, incidents.OpenIncident] = {}
        self._of: dict[str, int] = {}
        for item in items:
            self._put(item)

    def _put(self, item: incidents.OpenIncident) -> None:
        self._by_id[item.id] = item
        for target_id in item.target_ids:
            # lowest id wins, as in incidents._find, should duplicates ever exist
            if self._of.get(target_id, item.id) >= item.id:
                self._of[target_id] = item.id

    def _drop(self, incident_id: int) -> None:
        item = self._by_id.pop(incident_id, None)
        if item is not None:
            for target_id in item.target_ids:
                if self._of.get(target_id) == incident_id:
                    del self._of[target_id]

    def concerning(self, *target_ids: str | None) -> tuple[incidents.OpenIncident, ...]:
        """The open incidents these targets are members of."""
        ids = {self._of[t] for t in target_ids if t is not None and t in self._of}
        return tuple(self._by_id[i] for i in sorted(ids))

    def own(self, target_id: str) -> incidents.OpenIncident | None:
        """The incident ``target_id`` opened and is still the only member of."""
        item = self._by_id.get(self._of.get(target_id, -1))
        if item is not None and item.root_target_id == target_id and item.target_ids == {target_id}:
            return item
        return None

    def apply(self, action: incidents.Action | None, new_id: int | None = None) -> None:
        if action is None:
            return
        touched = () if isinstance(action, incidents.Open) else (action.incident_id,)
        before = tuple(self._by_id[i] for i in touched if i in self._by_id)
        for item in before:
            self._drop(item.id)
        for item in incidents.apply(before, action, new_id):
            self._put(item)

    def __iter__(self) -> Iterator[incidents.OpenIncident]:
        return iter(sorted(self._by_id.values(), key=lambda i: i.id))

    def __len__(self) -> int:
        return len(self._by_id)


class _DisplayNames(Mapping[str, str]):
    """target id → display name, looked up on access (incident titles need one or two)."""

    def __init__(self, targets: dict[str, TargetRuntime]) -> None:
        self._targets = targets

    def __getitem__(self, target_id: str) -> str:
        return self._targets[target_id].target.display_name

    def __iter__(self) -> Iterator[str]:
        return iter(self._targets)

    def __len__(self) -> int:
        return len(self._targets)


class Engine:
    """Runs every configured target's probe and keeps health, incidents and metrics."""

    def __init__(
        self,
        loaded: LoadedConfig,
        repo: StateRepository,
        data_dir: Path,
        sinks: Sequence[MetricSink] = (),
        state_db_path: Path | None = None,
        flap: FlapPolicy | None = None,
        enricher: Enricher | None = None,
        clock: Clock | None = None,
    ) -> None:
        """``clock``: None in production (the system clock, APScheduler ticking the
        scheduler); a test's ``ManualClock`` to drive slots, timeouts and the
        periodic jobs (see ``settle``)."""
        self.loaded = loaded
        self.clock = clock or SYSTEM_CLOCK
        self.repo = repo
        self.data_dir = data_dir
        self.sinks = list(sinks)
        self.state_db_path = state_db_path
        self.flap = flap or FlapPolicy()
        self.runner = ProbeRunner(concurrency=loaded.config.appliance.concurrency, clock=self.clock)
        self.scheduler = ProbeScheduler(self._fire, clock=clock)
        self.shared = SharedResources()
        self.enricher = enricher or Enricher()
        self.vitals = EngineVitals(self)
        self.targets: dict[str, TargetRuntime] = {}
        self.incidents = IncidentBook()
        self._children: dict[str, list[str]] = {}
        self.appliance_alerts: dict[str, str] = {}
        self._db = ThreadPoolExecutor(max_workers=1, thread_name_prefix="statedb")
        self._incident_lock = asyncio.Lock()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._transitions: set[asyncio.Task[Any]] = set()
        self._pending_transitions: list[tuple[Transition, RowSnapshot]] = []
        self._flush_handle: asyncio.TimerHandle | None = None
        self._background: list[asyncio.Task[Any]] = []
        self._names = _DisplayNames(self.targets)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- config ----------------------------------------------------------
    @property
    def config(self):  # noqa: ANN201 - monitor.config.schema.Config
        return self.loaded.config

    def _effective_targets(self, loaded: LoadedConfig) -> dict[str, tuple[TargetBase, str]]:
        """Configured, enabled targets plus the built-in ones of the probe kinds that
        have one (the appliance's check of itself), with their digests."""
        out = {t.id: (t, loaded.target_digest(t.id)) for t in loaded.config.targets if t.enabled}
        configured = {t.kind for t, _ in out.values()}
        for kind in PROBES.values():
            if kind.builtin is not None and kind.kind not in configured:
                builtin = kind.builtin(loaded.config)
                out[builtin.target.id] = (builtin.target, builtin.digest)
        return out

    def _runtime(self, target: TargetBase, digest: str) -> TargetRuntime:
        return TargetRuntime(
            target=target,
            policy=Policy.for_target(target, self.flap),
            state=HealthState(target_id=target.id),
            digest=digest,
        )

    @property
    def checkpoint_every(self) -> float:
        """2 s up to 2,000 targets, then longer (10 s at 10,000): a checkpoint
        serialises every changed target, and at 10,000 targets every 2 s it
        cost a quarter of a core (bench/sip_probe_throughput). Transitions and
        incidents are written at once regardless."""
        return CHECKPOINT_EVERY * max(1.0, len(self.targets) / CHECKPOINT_TARGETS)

    # -- lifecycle ---------------------------------------------------------
    async def start(self) -> None:
        """Restore state from the DB, schedule every target, start the sinks."""
        self._loop = asyncio.get_running_loop()
        effective = self._effective_targets(self.loaded)
        saved = await self._in_db(self.repo.load_target_states)
        probe_states = await self._in_db(self.repo.load_probe_states)
        for target_id, (target, digest) in effective.items():
            rt = self._runtime(target, digest)
            row = saved.get(target_id)
            if row is not None and row.kind == target.kind:
                rt.state = self._restore_state(target_id, row.machine)
                rt.probes_run, rt.probes_failed, rt.probes_errored = (
                    row.probes_run,
                    row.probes_failed,
                    row.probes_errored,
                )
                rt.last_metrics = dict(row.last_metrics or {})
            else:
                rt.dirty = True  # listed (as unknown) on the dashboard before its first probe
            rt.probe_state = dict(probe_states.get(target_id, {}))
            self.targets[target_id] = rt
        gone = [tid for tid in saved if tid not in self.targets]
        if gone:
            await self._in_db(self.repo.delete_target_states, gone)
        self.incidents = IncidentBook(
            incidents.OpenIncident.from_row(row)
            for row in await self._in_db(self.repo.open_incidents)
        )
        self._index_children()
        for sink in self.sinks:
            sink.start()
        self.scheduler.start()
        for rt in self.targets.values():
            self.scheduler.upsert(rt.target.id, rt.target.interval)
        self._background = [
            asyncio.create_task(
                self._every(self.checkpoint_every, self.checkpoint), name="checkpoint"
            ),
            asyncio.create_task(
                self._every(PROBE_STATE_EVERY, self.save_probe_states), name="probe-state"
            ),
            asyncio.create_task(self._every(5.0, self._sample_vitals), name="vitals"),
        ]
        # Config, targets and restored state live as long as the process: move
        # them out of the cyclic GC's scans, whose full passes over millions of
        # such objects stalled the loop at 10,000 targets (bench/sip_probe_throughput).
        gc.collect()
        gc.freeze()
        # The loop gives up the GIL at every socket send; a writer thread that
        # takes it then keeps it for a whole switch interval (5 ms by default)
        # before the loop gets it back. At 1,000 probes/s that wait, not CPU,
        # made probes start late (bench/sip_probe_throughput, py-spy).
        sys.setswitchinterval(SWITCH_INTERVAL)
        log.info(
            "engine started: %d targets, %d open incidents restored",
            len(self.targets),
            len(self.incidents),
        )

    def _index_children(self) -> None:
        """parent id -> ids of the targets that depend on it (for merging incidents)."""
        children: dict[str, list[str]] = {}
        for rt in self.targets.values():
            for parent in rt.target.depends_on:
                children.setdefault(parent, []).append(rt.target.id)
        self._children = children

    def _restore_state(self, target_id: str, machine: dict[str, Any]) -> HealthState:
        try:
            return HealthState.from_dict(machine)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("state of %s could not be restored (%s); starting unknown", target_id, exc)
            return HealthState(target_id=target_id)

    async def stop(self, drain_timeout: float = 10.0) -> None:
        """Stop scheduling, let in-flight probes finish (up to ``drain_timeout``), save, close."""
        if self._stopping:
            return
        self._stopping = True
        self.scheduler.shutdown()
        if self._in_flight:
            log.info("draining %d in-flight probes", len(self._in_flight))
            _, pending = await asyncio.wait(set(self._in_flight), timeout=drain_timeout)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if self._transitions:
            await asyncio.gather(*self._transitions, return_exceptions=True)
        self._flush_transitions()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.checkpoint()
        await self.save_probe_states()
        await self.shared.aclose()
        loop = asyncio.get_running_loop()
        for sink in self.sinks:
            await loop.run_in_executor(None, sink.close)
        self._db.shutdown(wait=True)
        log.info("engine stopped")

    async def settle(self) -> None:
        """Wait until every probe started so far has been observed and what it caused
        is in the state DB — for a test that moves a ``ManualClock`` and then looks.

        Probes and the DB thread work in real time: moving the clock starts them,
        this waits for them. Queued transitions are written now instead of after
        ``TRANSITION_BATCH``.
        """
        while True:
            # A round of the loop: probe tasks a dispatch just created start and register.
            await asyncio.sleep(0)
            busy = self._in_flight | self._transitions
            if not busy:
                break
            await asyncio.wait(busy)
        self._flush_transitions()
        await self._in_db(lambda: None)  # one DB thread, in order: every earlier write is done

    # -- reload ------------------------------------------------------------
    async def apply_config(self, loaded: LoadedConfig) -> dict[str, list[str]]:
        """Switch to a new, already validated config. Unchanged targets keep everything."""
        effective = self._effective_targets(loaded)
        added = [tid for tid in effective if tid not in self.targets]
        removed = [tid for tid in self.targets if tid not in effective]
        changed = [
            tid
            for tid, (_, digest) in effective.items()
            if tid in self.targets and self.targets[tid].digest != digest
        ]
        self.loaded = loaded
        for rt in self.targets.values():
            rt.maintenance = None  # windows or the site timezone may have changed
        for tid in removed:
            self.scheduler.remove(tid)
            del self.targets[tid]
            self.enricher.series_limit.forget(tid)
        for tid in changed:
            target, digest = effective[tid]
            rt = self.targets[tid]
            if rt.target.kind != target.kind:
                self.targets[tid] = self._runtime(target, digest)
            else:
                rt.target, rt.digest = target, digest
                rt.policy = Policy.for_target(target, self.flap)
            self.targets[tid].dirty = True
            self.scheduler.upsert(tid, target.interval)
        for tid in added:
            target, digest = effective[tid]
            self.targets[tid] = self._runtime(target, digest)
            self.targets[tid].dirty = True
            self.scheduler.upsert(tid, target.interval)
            self.scheduler.run_soon(tid)
        self._index_children()
        if removed:
            await self._in_db(self.repo.delete_target_states, removed)
        log.info(
            "config applied: %d added, %d changed, %d removed, %d unchanged",
            len(added),
            len(changed),
            len(removed),
            len(self.targets) - len(added) - len(changed),
        )
        return {"added": added, "changed": changed, "removed": removed}

    # -- the hot path -------------------------------------------------------
    async def _fire(self, target_id: str) -> None:
        rt = self.targets.get(target_id)
        if rt is None or self._stopping:
            return
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self.probe_once(rt)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # cancelled by stop() after the drain timeout: nothing to report
        except Exception:  # the engine must survive anything a target does
            log.exception("processing %s failed", target_id)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def probe_once(self, rt: TargetRuntime) -> Observation:
        target = rt.target
        ctx = ProbeContext(
            target_id=target.id,
            timeout=target.timeout,
            state=rt.probe_state,
            shared=self.shared,
            site=self.config.site,
            extra={"engine": self.vitals, "appliance_config": self.config.appliance},
        )
        obs = await self.runner.run(PROBES[target.kind].check, target, ctx, suspect=rt.suspect)
        await self.observe(rt, obs)
        return obs

    async def observe(self, rt: TargetRuntime, obs: Observation) -> None:
        """Feed one observation: metrics to the sinks, health, transitions, incidents."""
        target = rt.target
        rt.last = obs
        rt.suspect = obs.status is Status.FAIL
        rt.probes_run += 1
        if obs.status is Status.FAIL:
            rt.probes_failed += 1
        elif obs.status is Status.ERROR:
            rt.probes_errored += 1
        # Every result at DEBUG; at INFO only a change of health, which the
        # transition handler logs with this result's detail in its reason.
        # Guarded: the arguments would cost the hot path even when not logged.
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "%-5s %.3fs %s %s %s",
                obs.status.value.upper(),
                obs.latency or 0,
                target.kind,
                target.id,
                obs.detail,
            )

        if obs.metrics:
            # the probe's own labels only: target/kind/site tags are implied on the dashboard
            rt.last_metrics = flatten_metrics(obs.metrics)
        self._submit(rt, (*obs.metrics, observation_point(obs)), obs.time)

        # Health keeps the engine's time: in production the probe's own stamp
        # (obs.time) is the same instant, microseconds earlier; in a test it is
        # the ManualClock's time, so windows, flapping and merges follow the test.
        now = self.clock.time()
        parents_down = [
            p
            for p in target.depends_on
            if p in self.targets and self.targets[p].state.health is Health.DOWN
        ]
        window = None
        if target.maintenance:
            # Cron windows cost ~0.1 ms to evaluate; the answer holds until ``until``.
            if rt.maintenance is None or now >= rt.maintenance.until:
                rt.maintenance = check_maintenance(
                    target.maintenance, now, ZoneInfo(self.config.site.timezone)
                )
            window = rt.maintenance.window
        result = step(
            rt.state,
            obs,
            now,
            rt.policy,
            parents_down,
            None if window is None else window.reason,
        )
        rt.state = result.state
        rt.dirty = True
        if result.appliance_alert:
            self.appliance_alerts[target.id] = result.appliance_alert
        else:
            self.appliance_alerts.pop(target.id, None)
        if result.transition is not None:
            # Incident bookkeeping waits for the state DB; the probe must not
            # (in an outage storm thousands of incidents open at once and a
            # probe waiting on them would miss its next slot). The lock is
            # FIFO, so one target's transitions are still handled in order.
            task = asyncio.create_task(self._on_transition(rt, result.transition))
            self._transitions.add(task)
            task.add_done_callback(self._transitions.discard)

    def _submit(self, rt: TargetRuntime, points: Sequence[MetricPoint], at: float) -> None:
        """Tag, type and cap points, then hand them to every sink (which never blocks)."""
        enriched = self.enricher.enrich(points, rt.target, self.config.site.name, at)
        if not enriched:
            return
        for sink in self.sinks:
            try:
                sink.submit(enriched)
            except Exception:  # a sink bug must not stop health keeping
                log.exception("sink %s rejected points", getattr(sink, "name", sink))

    async def _on_transition(self, rt: TargetRuntime, tr: Transition) -> None:
        self._submit(rt, (transition_point(tr),), tr.at)
        trouble = tr.to_health in (Health.DOWN, Health.DEGRADED, Health.UNKNOWN)
        log.log(
            logging.WARNING if trouble else logging.INFO,
            "%s: %s -> %s%s: %s",
            tr.target_id,
            tr.from_health.value,
            tr.to_health.value,
            f" (affected by {tr.affected_by})" if tr.affected_by else "",
            tr.reason,
        )
        async with self._incident_lock:
            concerned = self.incidents.concerning(tr.target_id, tr.affected_by)
            action = incidents.decide(tr, concerned, rt.policy.incident_on, self._names)
            snap = rt.snapshot()  # the row itself is built on the DB thread
            if action is None:
                # Most transitions (every target's first "up" at start, recoveries
                # outside incidents) change no incident: written within
                # TRANSITION_BATCH seconds, many per transaction, without
                # holding up this target's next probe.
                self._queue_transition(tr, snap)
                return
            self._flush_transitions()  # keep DB order: queued ones go first
            try:
                incident_id = await self._in_db(self._write_transition, tr, action, snap)
            except Exception:
                log.exception("could not write the transition of %s to the state DB", tr.target_id)
                return
            self.incidents.apply(action, incident_id)
            if isinstance(action, incidents.Open):
                log.warning("incident %d opened: %s", incident_id, action.title)
                if incident_id is not None and tr.to_health is Health.DOWN:
                    await self._merge_dependants(rt, incident_id, tr.at)
            elif isinstance(action, incidents.Resolve):
                log.warning("incident %d resolved", action.incident_id)

    async def _merge_dependants(self, parent: TargetRuntime, incident_id: int, at: float) -> None:
        """Fold into the parent's new incident the dependants that went down just before it.

        When a router dies, the trunks behind it fail in the same round; with
        spread slots a child can reach ``fail_after`` before its parent and open
        its own incident. A child whose own incident opened within the parent's
        detection time (interval × (fail_after + 1) + timeout: the extra interval
        is the slot alignment of the first failing probe) was most likely taken
        down by the parent: its incident is resolved as merged and the child
        joins the parent's incident as affected.
        """
        p = parent.target
        horizon = at - (p.interval * (p.fail_after + 1) + p.timeout)
        for child_id in self._children.get(p.id, ()):
            child = self.targets.get(child_id)
            if child is None or child.state.health is not Health.DOWN:
                continue
            own = self.incidents.own(child_id)
            if own is None or child.state.since is None or child.state.since < horizon:
                continue
            text = f"merged into incident {incident_id}: {p.display_name} ({p.id}) is down"
            resolve = incidents.Resolve(own.id, child.target.id, text, at)
            join = incidents.Join(
                incident_id,
                child.target.id,
                "affected",
                f"{child.target.id} is down because {p.id} is down",
                at,
            )

            def write(
                own_id: int = own.id, child_id: str = child.target.id, text: str = text
            ) -> None:
                with self.repo.transaction():
                    self.repo.add_incident_event(own_id, "note", at, child_id, text)
                    self.repo.resolve_incident(own_id, at)
                    self.repo.join_incident(incident_id, child_id, "affected", at)

            try:
                await self._in_db(write)
            except Exception:
                log.exception(
                    "could not merge the incident of %s into %d", child.target.id, incident_id
                )
                continue
            self.incidents.apply(resolve)
            self.incidents.apply(join)
            child.state = replace(child.state, affected_by=p.id)
            child.dirty = True
            log.warning(
                "incident %d merged into %d (%s depends on %s)",
                own.id,
                incident_id,
                child.target.id,
                p.id,
            )

    def _write_transition(
        self, tr: Transition, action: incidents.Action | None, snap: RowSnapshot
    ) -> int | None:
        """DB thread: the incident change, its timeline line and the transition, in one
        transaction (a crash keeps all or none of them).

        Returns the incident the transition belongs to (the new one for Open).
        """
        with self.repo.transaction():
            return self._write_transition_in(tr, action, snap)

    def _write_transition_in(
        self, tr: Transition, action: incidents.Action | None, snap: RowSnapshot
    ) -> int | None:
        repo = self.repo
        incident_id: int | None = None
        if isinstance(action, incidents.Open):
            incident_id = repo.open_incident(
                action.root_target, action.severity, action.title, tr.at
            )
        elif action is not None:
            incident_id = action.incident_id
            if isinstance(action, incidents.Join):
                repo.join_incident(action.incident_id, action.target, action.role, tr.at)
            elif isinstance(action, incidents.Recover):
                repo.recover_target(action.incident_id, action.target, tr.at)
            elif isinstance(action, incidents.Resolve):
                repo.recover_target(action.incident_id, action.target, tr.at)
                repo.resolve_incident(action.incident_id, tr.at)
            elif isinstance(action, incidents.Note) and action.severity:
                repo.set_incident_fields(action.incident_id, severity=action.severity)
            repo.add_incident_event(
                action.incident_id, "transition", tr.at, tr.target_id, action.text
            )
        repo.record_transition(
            tr.target_id,
            tr.at,
            tr.from_health.value,
            tr.to_health.value,
            reason=tr.reason,
            flapping=tr.flapping,
            affected_by=tr.affected_by,
            incident_id=incident_id,
            state=state_row(snap),
        )
        return incident_id

    # -- persistence ---------------------------------------------------------
    def _queue_transition(self, tr: Transition, snap: RowSnapshot) -> None:
        self._pending_transitions.append((tr, snap))
        if self._flush_handle is None and self._loop is not None:
            self._flush_handle = self._loop.call_later(TRANSITION_BATCH, self._flush_transitions)

    def _flush_transitions(self) -> None:
        """Hand the queued transitions to the DB thread as one transaction (FIFO with other writes)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, self._pending_transitions = self._pending_transitions, []
        if batch:
            self._write_later(self._write_transition_batch, batch)

    def _write_transition_batch(self, batch: list[tuple[Transition, RowSnapshot]]) -> None:
        with self.repo.transaction():
            for tr, snap in batch:
                self._write_transition_in(tr, None, snap)

    def _write_later(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue a DB write on the DB thread (in order with every other write) without waiting."""

        def done(future: Any) -> None:
            if future.exception() is not None:
                log.error("state DB write failed: %s", future.exception())

        self._db.submit(fn, *args).add_done_callback(done)

    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, fn, *args)

    async def checkpoint(self) -> int:
        """Write the latest state of every target that changed since the last checkpoint."""
        dirty = [rt for rt in self.targets.values() if rt.dirty]
        if not dirty:
            return 0
        # Building 10,000 row dicts took ~0.3 s of the loop at once (a lag
        # spike every checkpoint); the snapshot is cheap, the rows are built
        # on the DB thread.
        snapshots = [rt.snapshot() for rt in dirty]
        for rt in dirty:
            rt.dirty = False
        try:
            await self._in_db(self._checkpoint_rows, snapshots)
        except Exception:
            log.exception("checkpoint of %d targets failed; will retry", len(snapshots))
            for rt in dirty:
                rt.dirty = True
            return 0
        return len(snapshots)

    def _checkpoint_rows(self, snapshots: list[RowSnapshot]) -> int:
        # In slices: the rows and driver parameters of 10,000 targets at once
        # were a ~20 MB peak every checkpoint, and peaks are what the process
        # keeps as resident memory (bench/sip_probe_throughput).
        written = 0
        for start in range(0, len(snapshots), WRITE_SLICE):
            chunk = snapshots[start : start + WRITE_SLICE]
            written += self.repo.checkpoint([state_row(snap) for snap in chunk])
        return written

    async def save_probe_states(self) -> None:
        """Save every target's probe memory, ``WRITE_SLICE`` targets per transaction
        (one slice's copies in memory at a time, not 10,000 targets' worth)."""
        with_state = [(tid, rt) for tid, rt in self.targets.items() if rt.probe_state]
        for start in range(0, len(with_state), WRITE_SLICE):
            # Copied here, on the loop: probes mutate their state dicts between
            # awaits, and the DB thread must not serialise a dict while it changes.
            states: dict[str, Any] = {}
            for tid, rt in with_state[start : start + WRITE_SLICE]:
                try:
                    states[tid] = json.loads(json.dumps(rt.probe_state))
                except (TypeError, ValueError) as exc:  # a probe bug: keep the others
                    log.error("probe state of %s is not JSON-serialisable, not saved: %s", tid, exc)
            if states:
                try:
                    await self._in_db(self.repo.save_probe_states, states)
                except Exception:
                    log.exception("saving probe state failed")
                    return

    async def _sample_vitals(self) -> None:
        self.vitals.sample()

    async def _every(self, seconds: float, fn: Callable[[], Any]) -> None:
        while True:
            await self.clock.sleep(seconds)
            try:
                await fn()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("periodic task %s failed", getattr(fn, "__name__", fn))
