"""What the appliance itself puts in the audit log, and the chain head it writes to its own log.

- its start and every config reload, with the config's hash (``LoadedConfig.digest``,
  the effective config; plus the SHA-256 of each file read, which an operator
  can compare with ``sha256sum``) — a rejected reload too, with its first errors;
- the engine's exceptions, merged per source and error class (``monitor.faults``):
  flushed every minute and once more at stop;
- the chain head (``entry id:hash``) in the appliance log at start, every hour
  and at stop: the log lives outside the DB, so someone who rewrites the whole
  table (and every hash with it) still cannot make an old head line match —
  ``dialwatch audit verify --head ID:HASH`` checks one.

A failure to write here is logged and never stops the appliance.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from core.clock import SYSTEM_CLOCK, Clock
from monitor import audit
from monitor.config import LoadedConfig
from monitor.faults import FLUSH_EVERY, FaultLog, state_db_writer
from monitor.store.repository import StateRepository

log = logging.getLogger("dialwatch.audit")

HEAD_EVERY = 3600.0
"""Seconds between chain-head lines in the appliance log."""
SYSTEM = "system"
MAX_ERRORS_KEPT = 5
"""Errors of a rejected reload written into its entry (the log has them all)."""

Runner = Callable[..., Awaitable[Any]]


def file_hashes(files: Sequence[Path]) -> dict[str, str]:
    """SHA-256 of each config file as it is on disk now (``unreadable`` if it is not)."""
    out = {}
    for path in files:
        try:
            out[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:
            out[str(path)] = "unreadable"
    return out


class ApplianceAudit:
    """The appliance's own audit entries and its fault log (``faults``, for the engine)."""

    def __init__(
        self,
        repo: StateRepository,
        config_path: str,
        clock: Clock = SYSTEM_CLOCK,
        mask: Callable[[str], str] = lambda text: text,
    ) -> None:
        self._repo = repo
        self._config_path = config_path
        self._clock = clock
        self.faults = FaultLog(state_db_writer(repo), clock=clock, mask=mask)

    # -- the chain head ------------------------------------------------------------
    def log_head(self, when: str) -> audit.Head | None:
        """Write ``audit chain head (<when>): entry ID:HASH`` to the appliance log."""
        try:
            with self._repo.reading() as conn:
                head = audit.head(conn)
                kept = audit.anchor(conn)
        except Exception:
            log.exception("could not read the audit chain head")
            return None
        start = f"; pruned through entry {kept.through_id}" if kept is not None else ""
        log.info("audit chain head (%s): entry %s%s", when, head, start)
        return head

    # -- entries -------------------------------------------------------------------
    def started(self, loaded: LoadedConfig, version: str) -> None:
        self._record(
            action="appliance.start",
            object=f"config:{self._config_path}",
            after={"digest": loaded.digest, "files": file_hashes(loaded.files)},
            detail=f"dialwatch {version}",
        )

    def reloaded(
        self,
        previous: LoadedConfig,
        loaded: LoadedConfig | None,
        errors: Sequence[str] = (),
        *,
        actor: str = SYSTEM,
        address: str = "",
        via: str = "",
    ) -> None:
        """One ``config.reload`` entry: ``ok`` with the new hash, or ``failed`` with the
        first errors (already scrubbed of secrets by the loader)."""
        before = {"digest": previous.digest}
        if loaded is None:
            shown = list(errors[:MAX_ERRORS_KEPT])
            more = len(errors) - len(shown)
            detail = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
            self._record(
                action="config.reload",
                result="failed",
                actor=actor,
                address=address,
                object=f"config:{self._config_path}",
                before=before,
                detail=(f"via {via}: " if via else "") + f"rejected: {detail}",
            )
            return
        self._record(
            action="config.reload",
            actor=actor,
            address=address,
            object=f"config:{self._config_path}",
            before=before,
            after={"digest": loaded.digest, "files": file_hashes(loaded.files)},
            detail=(f"via {via}" if via else "")
            + ("" if loaded.digest != previous.digest else "; unchanged"),
        )

    def _record(self, *, action: str, actor: str = SYSTEM, **fields: Any) -> None:
        try:
            with self._repo.transaction() as conn:
                audit.record(conn, at=self._clock.time(), actor=actor, action=action, **fields)
        except Exception:
            log.exception("could not write the %s audit entry", action)

    # -- jobs ----------------------------------------------------------------------
    async def run_forever(self, run: Runner) -> None:
        """Flush the fault log every minute and log the chain head every hour; ``run``
        runs the DB work on a thread (the engine's writer)."""
        await asyncio.gather(
            self.faults.run_forever(self._clock, run, FLUSH_EVERY),
            self._heads(run),
        )

    async def _heads(self, run: Runner) -> None:
        while True:
            await self._clock.sleep(HEAD_EVERY)
            await run(self.log_head, "hourly")

    def stopped(self) -> None:
        """At stop, after the engine: what the fault log still holds, then the head."""
        self.faults.flush(everything=True)
        self.log_head("stop")
