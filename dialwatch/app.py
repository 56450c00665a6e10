"""``dialwatch run``: one process with the engine on an asyncio loop and the web on waitress.

The scheduler runs here and only here (never in a WSGI worker), so every job
runs once. Signals: SIGHUP reloads the config (an invalid one is rejected and
the old one keeps running), SIGTERM/SIGINT drain in-flight probes and exit.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core import __version__
from core.net.address import is_loopback
from core.secret_box import SecretBox
from dialwatch import startup
from dialwatch.appliance_audit import ApplianceAudit
from dialwatch.options import parse_listen, resolve_data_dir
from dialwatch.schema import Config
from monitor.config import ConfigError, LoadedConfig, load_config_isolated
from monitor.dispatcher import Dispatcher
from monitor.engine import Engine
from monitor.health import HealthState
from monitor.logs import secret_mask, setup_logging
from monitor.points import Enricher, FieldTypes
from monitor.retention import RetentionJob
from monitor.sinks.base import MetricSink
from monitor.staff.setup_code import SetupCode
from monitor.staff.users import count_users
from monitor.store.db import StateDBError, open_database
from monitor.store.repository import StateRepository
from monitor.store.retention import register_state_history
from monitor.tallies import tallies_subscriber
from monitor.uptime import scope_following
from notify import vapid
from notify.roster import unknown_users
from notify.service import Notifications
from runbooks.failover.service import FailoverService
from runbooks.service import Runbooks
from runbooks.steps.base import StepServices

log = logging.getLogger("dialwatch")


class Appliance:
    """The running appliance: engine, sinks, web server, and the reload path they share.

    Event subscribers (notifications, rules, runbooks) register with
    ``self.dispatcher`` before ``run()``; the engine starts and stops it.
    """

    def __init__(
        self, config_path: str, loaded: LoadedConfig, data_dir: Path, listen: tuple[str, int]
    ) -> None:
        self.config_path = config_path
        self.data_dir = data_dir
        self.listen = listen
        self.db = open_database(loaded.config.storage.database_url, data_dir)
        log.info(startup.state_db_line(self.db.url))
        self.repo = StateRepository(self.db)
        # The audit log's own entries, and the fault log the engine's parts report to.
        self.audit = ApplianceAudit(self.repo, config_path, mask=secret_mask.mask)
        self.metrics_query = None
        sinks = self._build_sinks(loaded)
        url = self.db.url
        state_db = (
            Path(url.database) if url.get_backend_name() == "sqlite" and url.database else None
        )
        # Each field keeps the type it first had, across restarts too: InfluxDB
        # rejects a later write that changes it, so start from what is stored.
        enricher = Enricher(field_types=FieldTypes(self.embedded.store.field_types()))
        self.dispatcher = Dispatcher(self.repo, faults=self.audit.faults)
        self.dispatcher.add(tallies_subscriber())  # lifetime counts that outlive retention
        self.engine = Engine(
            loaded,
            self.repo,
            data_dir,
            sinks,
            state_db_path=state_db,
            enricher=enricher,
            dispatcher=self.dispatcher,
            faults=self.audit.faults,
        )
        # One retention job for every store with history: reads on a worker
        # thread, deletes on the engine's DB writer thread (in order with its writes).
        self.retention = RetentionJob(
            lambda: self.engine.config.storage.retention,
            read=_in_worker,
            write=self.engine.writer.run,
            faults=self.audit.faults,
        )
        register_state_history(
            self.retention, self.repo, scope_following(lambda: self.engine.config)
        )
        self.box = SecretBox.from_file(data_dir / "keys" / "appliance.key")
        # Made at install (`dialwatch vapid-key`), or here at the first start without it:
        # the webpush channel signs with it.
        vapid.load_or_create(vapid.key_path(data_dir))
        # Paging: its subscriber turns events into deliveries (exactly once, in the
        # cursor's transaction); its sender sends them.
        self.notifications = Notifications(
            self.repo,
            self.box,
            lambda: self.engine.config,
            clock=self.engine.clock,
            faults=self.audit.faults,
            listen=listen,
            data_dir=data_dir,
        )
        self.dispatcher.add(self.notifications.paging.subscriber())
        self.dispatcher.add(self.notifications.customers.subscriber())  # status page subscribers
        # A paging channel off or degraded makes the appliance's own check warn.
        self.engine.alert_sources.append(self.notifications.alerts)
        self.failover = FailoverService(
            self.repo,
            lambda: self.engine.config,
            self._health_of,
            clock=self.engine.clock,
            faults=self.audit.faults,
        )
        self.dispatcher.add(self.failover.subscriber())
        # Runbooks: rules queue runs (exactly once, in the cursor's transaction); the
        # engine executes them, one task per run, on the engine's loop.
        self.runbooks = Runbooks(
            self.repo,
            lambda: self.engine.config,
            clock=self.engine.clock,
            services=StepServices(
                shared=self.engine.shared,
                health_of=self._health_of,
                repo=self.repo,
                # notify steps go out through paging's outbox and fallback channels
                notify=lambda to, subject, text: self.notifications.tell(
                    to, subject, text, at=self.engine.clock.time()
                ),
                data_dir=data_dir,
            ),
            faults=self.audit.faults,
            mask=secret_mask.mask,
        )
        self.dispatcher.add(self.runbooks.subscriber())
        self.failover.wake_runbooks = self.runbooks.wake  # its pause/resume runs
        self.web = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()

    def _build_sinks(self, loaded: LoadedConfig) -> list[MetricSink]:
        """The embedded store (always: the dashboard reads it) plus the ``metrics:`` sinks."""
        from monitor.query_select import build_metrics_query
        from monitor.sinks import build_sinks
        from monitor.sinks.embedded import EmbeddedSink

        storage = loaded.config.storage
        self.embedded = EmbeddedSink.from_config(storage, self.data_dir)
        sinks: list[MetricSink] = [self.embedded]
        self.metrics_query = build_metrics_query(storage, self.data_dir, loaded.config.metrics)
        sinks.extend(build_sinks(loaded.config.metrics, self.data_dir))
        log.info(
            startup.sinks_line(
                [f"embedded store {self.embedded.store.path}"]
                + [f"{c.sink_name}: {c.describe()}" for c in loaded.config.metrics]
            )
        )
        return sinks

    # -- reload ----------------------------------------------------------
    async def reload(
        self, actor: str = "system", address: str = "", via: str = "SIGHUP"
    ) -> list[str]:
        """Load and validate the config file again; apply it if valid. Returns the errors.

        Audited either way (``config.reload``, with the config hash) as ``actor``.
        """
        async with self._reload_lock:
            loop = asyncio.get_running_loop()
            previous = self.engine.loaded
            try:
                loaded = await loop.run_in_executor(
                    None, load_config_isolated, self.config_path, Config
                )
            except ConfigError as exc:
                errors = list(exc.errors)
                for line in errors:
                    log.error("reload rejected: %s", line)
                log.error(
                    "config reload rejected (%d errors); the running config stays", len(errors)
                )
                await self.engine.writer.run(
                    lambda: self.audit.reloaded(
                        previous, None, errors, actor=actor, address=address, via=via
                    )
                )
                return errors
            secret_mask.update(loaded.secret_values())
            await self.engine.apply_config(loaded)
            self.notifications.apply(loaded.config)
            self._check_people()
            long_lived()
            await self.engine.writer.run(
                lambda: self.audit.reloaded(previous, loaded, actor=actor, address=address, via=via)
            )
            return []

    def reload_from_thread(self, actor: str = "system", address: str = "") -> list[str]:
        """For the web's POST /api/v1/reload (called from a waitress thread); ``actor`` and
        ``address``: who asked, for the audit entry."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(
            self.reload(actor, address, via="the API"), self._loop
        ).result(timeout=60)

    def _check_people(self) -> None:
        """People whose ``user:`` is not a console user: said at start and reload."""
        from monitor.staff.users import list_users

        with self.db.connect() as conn:
            names = [u.name for u in list_users(conn)]
        for line in unknown_users(self.engine.config, names):
            log.warning("%s", line)

    # -- web -------------------------------------------------------------
    def _start_web(self) -> None:
        from web import create_app, status_snapshot
        from web.server import serve
        from web.services import WebServices

        host, port = self.listen
        box = self.box
        # Made at install (`dialwatch vapid-key`), or here at the first start without it.
        push_key = vapid.load_or_create(vapid.key_path(self.data_dir))
        setup = SetupCode(self.data_dir / "setup-code")
        services = WebServices(
            config=lambda: self.engine.config,
            db=self.db,
            metrics=self.metrics_query,
            reload=self.reload_from_thread,
            version=__version__,
            listen_host=host,
            listen_port=port,
            repo=self.repo,
            secret_box=box,
            secret_key=box.derive_key("web csrf cookie"),
            setup=setup,
            faults=self.audit.faults,
            notifications=self.notifications,
            runbooks=self.runbooks,
            vapid_key=push_key,
        )
        app = create_app(services)
        # Visitors are served the current status snapshot while a due rebuild runs
        # on a thread of its own (web.status_snapshot).
        status_snapshot.install(
            app, status_snapshot.SnapshotCache(spawn=status_snapshot.in_a_thread)
        )
        self.web = serve(app, host, port)
        url = f"http://{host if ':' not in host else f'[{host}]'}:{self.web.port}"
        log.info("web listening on %s", url)
        with self.db.connect() as conn:
            has_users = count_users(conn) > 0
        if has_users:
            setup.consume()  # a code left from before the first admin existed
        else:
            code = setup.ensure()
            base = self.engine.config.web.base_url or url
            log.warning(startup.setup_line(base, code, setup.path, self.config_path, self.data_dir))

    def _health_of(self, target_id: str) -> HealthState | None:
        runtime = self.engine.targets.get(target_id)
        return runtime.state if runtime is not None else None

    # -- run -------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stop.set)
        self._loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))
        await self.engine.start()
        await self.engine.writer.run(self.audit.log_head, "start")
        await self.engine.writer.run(self.audit.started, self.engine.loaded, __version__)
        await self.notifications.start()
        await self.failover.start()
        await self.runbooks.start()
        self._check_people()
        retention = asyncio.create_task(
            self.retention.run_forever(self.engine.clock), name="retention"
        )
        audit_jobs = asyncio.create_task(
            self.audit.run_forever(self.engine.writer.run), name="audit"
        )
        self._start_web()
        long_lived()
        await self._stop.wait()
        log.info("stopping: draining probes")
        if self.web is not None:
            self.web.close()
        retention.cancel()  # a batch already on the DB thread finishes; no new one starts
        audit_jobs.cancel()
        await asyncio.gather(retention, audit_jobs, return_exceptions=True)
        await self.runbooks.stop()
        await self.failover.stop()
        await self.notifications.stop()
        await self.engine.stop()
        # After the engine: the faults of its stop too; its writer thread is gone now.
        await _in_worker(self.audit.stopped)
        if self.metrics_query is not None:
            self.metrics_query.close()
        self.repo.close()
        self.db.dispose()


def long_lived() -> None:
    """Move every object alive now (the config, the targets' runtimes, the app) out of the
    cyclic garbage collector's reach.

    A full collection walks every tracked object and stops every thread while it
    does: at 10,000 targets one took 60-170 ms every 4-7 s, and each one stalled
    every web request in flight (bench/status_crowd.py). What exists once the
    appliance has started (or reloaded) lives until the next reload, so walking it
    again finds nothing; refcounting still frees whatever of it is dropped. At a
    reload the frozen objects are unfrozen and collected first, so what the old
    config left in reference cycles is freed, not kept for ever.
    """
    gc.unfreeze()
    gc.collect()  # one full collection per start or reload, then none of this again
    gc.freeze()


async def _in_worker(fn: Callable[..., Any], *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(None, fn, *args)


def _check_listen(host: str, base_url: str | None, allowed_hosts: list[str]) -> str | None:
    """Refuse a non-loopback listener (from --listen) that names no host for the console."""
    if not is_loopback(host) and not base_url and not allowed_hosts:
        return (
            f"listening on {host} (not loopback) needs web.base_url (or web.allowed_hosts) "
            "in the config, so requests naming another host (DNS rebinding) are refused"
        )
    return None


def run_appliance(
    config_path: str, data_arg: str | None, listen: tuple[str, int] | None, log_level: str
) -> int:
    try:
        loaded = load_config_isolated(config_path, Config)
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 2
    data_dir = resolve_data_dir(data_arg, loaded.config.storage.data_dir)
    # Everything the appliance writes (state DB, logs, keys, spool) is its own: 0600
    # files in a 0700 directory.
    os.umask(0o077)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        if data_dir.stat().st_uid == os.getuid():
            data_dir.chmod(0o700)
    except OSError as exc:
        print(f"cannot create the data directory {data_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    if not os.access(data_dir, os.W_OK):
        print(f"the data directory {data_dir} is not writable", file=sys.stderr)
        return 2
    secret_mask.update(loaded.secret_values())
    log_file = setup_logging(data_dir, log_level)
    if listen is None:
        try:
            listen = parse_listen(loaded.config.web.listen)
        except argparse.ArgumentTypeError:
            print(
                f"web.listen: must be HOST:PORT like 127.0.0.1:8080, not {loaded.config.web.listen!r}",
                file=sys.stderr,
            )
            return 2
    web = loaded.config.web
    problem = _check_listen(listen[0], web.base_url, web.allowed_hosts)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    log.info("dialwatch %s starting (pid %d)", __version__, os.getpid())
    log.info(startup.config_line(config_path, loaded))
    log.info(startup.targets_line(loaded))
    log.info(startup.data_line(data_dir, log_file))
    try:
        appliance = Appliance(config_path, loaded, data_dir, listen)
    except StateDBError as exc:
        log.error("%s", exc)
        return 2
    asyncio.run(appliance.run())
    return 0
