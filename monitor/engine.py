"""The engine: wires scheduler → runner → health → incidents → state DB and metric sinks.

Everything runs on one asyncio loop. The in-memory ``TargetRuntime`` of each
target is the truth while running; the state DB makes it survive a restart:

- incident changes and the transitions that cause them are written at once,
  with their events, through the one writer thread (``monitor.store.writer``)
  so writes keep their order (the
  incident keeper, ``monitor.incident_keeper``); transitions that touch no
  incident share a transaction within ``TRANSITION_BATCH`` seconds; the
  dispatcher (``monitor.dispatcher``) hands the events to subscribers;
- the latest observation of every target that changed is checkpointed in one
  batch every ``checkpoint_every`` seconds (2 s, longer beyond 2,000 targets);
- probe state (counters for rates, offsets) is saved every ``PROBE_STATE_EVERY``
  seconds and on stop.

A failing probe, sink or DB write never stops the engine: each is caught,
logged once per occurrence, shows in the appliance's own health, and is
reported to ``faults`` (``monitor.faults``), which the appliance turns into
merged exception entries of the audit log.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from core.clock import SYSTEM_CLOCK, Clock
from core.config import TargetBase
from core.observation import MetricPoint, Observation, Status
from core.shared import SharedResources
from monitor import events
from monitor.config import LoadedConfig
from monitor.dispatcher import Dispatcher
from monitor.faults import NO_FAULTS, Faults
from monitor.health import FlapPolicy, Health, HealthState, Policy, Transition, step
from monitor.incident_keeper import IncidentBook, IncidentKeeper
from monitor.maintenance import check_maintenance
from monitor.manual_maintenance import ManualMaintenanceBook, open_windows
from monitor.points import Enricher
from monitor.runner import ProbeRunner
from monitor.scheduler import ProbeScheduler
from monitor.sinks.base import MetricSink
from monitor.store.repository import StateRepository
from monitor.store.writer import WRITE_SLICE, StoreWriter, state_row
from monitor.target_runtime import TargetRuntime
from monitor.vitals import EngineVitals
from probes import PROBES, ProbeContext

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 2.0
"""Seconds between checkpoints for up to CHECKPOINT_TARGETS targets; scaled up beyond."""
CHECKPOINT_TARGETS = 2000
PROBE_STATE_EVERY = 30.0
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
        dispatcher: Dispatcher | None = None,
        faults: Faults = NO_FAULTS,
    ) -> None:
        """``clock``: None in production (the system clock, APScheduler ticking the
        scheduler); a test's ``ManualClock`` to drive slots, timeouts and the
        periodic jobs (see ``settle``). ``faults``: where probe crashes, sink
        failures and failed jobs are reported (besides the log)."""
        self.loaded = loaded
        self.faults = faults
        self.clock = clock or SYSTEM_CLOCK
        self.repo = repo
        self.data_dir = data_dir
        self.sinks = list(sinks)
        for sink in self.sinks:
            sink.faults = faults
        self.state_db_path = state_db_path
        self.flap = flap or FlapPolicy()
        self.runner = ProbeRunner(
            concurrency=loaded.config.appliance.concurrency, clock=self.clock, faults=faults
        )
        self.scheduler = ProbeScheduler(self._fire, clock=clock)
        self.shared = SharedResources()
        self.enricher = enricher or Enricher()
        self.vitals = EngineVitals(self)
        self.targets: dict[str, TargetRuntime] = {}
        self.appliance_alerts: dict[str, str] = {}
        self.alert_sources: list[Callable[[], Mapping[str, str]]] = []
        """Parts above the engine that the appliance check warns about (the composition
        root adds notify's channels that are off or degraded): each returns key → sentence."""
        self.writer = StoreWriter(repo)
        self.dispatcher = dispatcher or Dispatcher(repo)
        self.keeper = IncidentKeeper(
            repo,
            self.targets,
            in_db=self.writer.run,
            write_later=self.writer.submit,
            state_row=state_row,
        )
        self.manual_maintenance = ManualMaintenanceBook()
        self._in_flight: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    # -- config ----------------------------------------------------------
    @property
    def incidents(self) -> IncidentBook:
        """The open incidents the engine knows of (the keeper's book)."""
        return self.keeper.book

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
        saved = await self.writer.run(self.repo.load_target_states)
        probe_states = await self.writer.run(self.repo.load_probe_states)
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
            await self.writer.run(self.repo.delete_target_states, gone)
        # The event id first: the keeper then hears of every change made by hand
        # after it read the open incidents (one seen twice is harmless).
        seen = await self.writer.run(events.last_event_id, self.repo.engine)
        self.keeper.restore(await self.writer.run(self.repo.open_incidents))
        self.keeper.index_children()
        self.dispatcher.add(self.keeper.subscriber(seen))
        self.manual_maintenance.restore(
            await self.writer.run(open_windows, self.repo.engine, self.clock.time())
        )
        self.dispatcher.add(self.manual_maintenance.subscriber(seen))
        await self.dispatcher.start()
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
        await self.keeper.drain()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.dispatcher.stop()
        await self.checkpoint()
        await self.save_probe_states()
        await self.shared.aclose()
        loop = asyncio.get_running_loop()
        for sink in self.sinks:
            await loop.run_in_executor(None, sink.close)
        self.writer.close()
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
            busy = self._in_flight | self.keeper.busy
            if not busy:
                break
            await asyncio.wait(busy)
        self.keeper.flush()
        await self.writer.run(lambda: None)  # one DB thread, in order: every earlier write is done

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
        self.keeper.index_children()
        if removed:
            await self.writer.run(self.repo.delete_target_states, removed)
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
        except Exception as exc:  # the engine must survive anything a target does
            log.exception("processing %s failed", target_id)
            self.faults.report("engine:observe", exc, object=target_id)
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
            self.manual_maintenance.reason(target.id, now) if window is None else window.reason,
        )
        rt.state = result.state
        rt.dirty = True
        if result.appliance_alert:
            self.appliance_alerts[target.id] = result.appliance_alert
        else:
            self.appliance_alerts.pop(target.id, None)
        if result.transition is not None:
            tr = result.transition
            self._submit(rt, (transition_point(tr),), tr.at)
            self.keeper.on_transition(rt, tr)  # in its own task: the probe does not wait

    def _submit(self, rt: TargetRuntime, points: Sequence[MetricPoint], at: float) -> None:
        """Tag, type and cap points, then hand them to every sink (which never blocks)."""
        enriched = self.enricher.enrich(points, rt.target, self.config.site.name, at)
        if not enriched:
            return
        for sink in self.sinks:
            try:
                sink.submit(enriched)
            except Exception as exc:  # a sink bug must not stop health keeping
                log.exception("sink %s rejected points", getattr(sink, "name", sink))
                self.faults.report(f"sink:{getattr(sink, 'name', sink)}", exc)

    # -- persistence (through the one writer, monitor.store.writer) ------------
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
            await self.writer.run(self.writer.checkpoint_rows, snapshots)
        except Exception as exc:
            log.exception("checkpoint of %d targets failed; will retry", len(snapshots))
            self.faults.report("job:checkpoint", exc)
            for rt in dirty:
                rt.dirty = True
            return 0
        return len(snapshots)

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
                    await self.writer.save_probe_states(states)
                except Exception as exc:
                    log.exception("saving probe state failed")
                    self.faults.report("job:probe-state", exc)
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
            except Exception as exc:
                name = getattr(fn, "__name__", str(fn)).strip("_")
                log.exception("periodic task %s failed", name)
                self.faults.report(f"job:{name}", exc)
