"""The dispatcher: hands new events, in id order, to each subscriber in its own task.

It runs on the engine's loop and is woken after every commit that wrote
events (``StateRepository.on_events_committed``); it also looks every
``poll_every`` seconds, for events another process wrote (a CLI action).
Each subscriber has its own asyncio task and its own thread for state DB
work, reads the events after its own cursor, and never waits for another:
a slow subscriber falls behind alone, and one that raises is logged and
retried with back-off (1 s doubling to 60 s) while probes, the engine and
the other subscribers go on; each failure is also reported to ``faults``
(``subscriber:<name>``, merged audit entries: ``monitor.faults``). Nothing is skipped: a subscriber that keeps
failing on an event keeps retrying it.

Three kinds of subscriber, by where their effects go:

- ``DbSubscriber``: its effects are state DB writes. ``handle(repo, event)``
  runs on its thread inside one transaction with the move of its cursor, so
  each event is handled **exactly once**, across crashes too.
- ``OutsideSubscriber``: its effects leave the process (a message, an RPC).
  ``await handle(event)`` runs on the loop; the cursor moves after the
  handling, so a crash in between hands the event over again: **at least
  once**. Dedupe by ``event.id`` (it never repeats for another event).
- ``LiveSubscriber``: its effects are in memory and rebuilt from the state
  DB at start (the incident keeper's open incidents, a live view). No cursor
  is kept: it gets the events after ``after``, the id it read with its state.

A durable subscriber (the first two) resumes from its cursor. One that never
ran starts at the current end (events from before it existed are not
replayed) unless it says ``start="beginning"``; its cursor is stored at once,
so a crash before its first event loses nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from monitor.events import Event, EventKind, events_after, last_event_id, parse_kind
from monitor.faults import NO_FAULTS, Faults
from monitor.store.repository import StateRepository

log = logging.getLogger(__name__)

BATCH = 200
"""Events read (and, for a DbSubscriber, handled in one transaction) at a time."""
POLL_EVERY = 2.0
"""Seconds between looks for events no commit of ours announced (other processes)."""
RETRY_FIRST = 1.0
RETRY_MOST = 60.0
STOP_GRACE = 2.0
"""Seconds a subscriber may take to finish its current event when the engine stops."""
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")

Start = Literal["end", "beginning"]


@dataclass(frozen=True, slots=True)
class DbSubscriber:
    """Effects are state DB writes, made through ``repo`` inside the transaction that
    also moves the cursor: exactly once. Runs on its own thread; keep it short
    (on SQLite the transaction holds the one write lock)."""

    name: str
    handle: Callable[[StateRepository, Event], None]
    start: Start = "end"
    kinds: frozenset[EventKind] | None = None
    """Only these kinds (None: all), filtered in SQL."""
    after_commit: Callable[[], None] | None = None
    """Called (on its thread) after each batch's transaction has committed: a subscriber
    whose rows another task acts on (paging's deliveries, the sender) wakes it here, when
    the rows are visible, not from inside ``handle``, when they are not yet."""


@dataclass(frozen=True, slots=True)
class OutsideSubscriber:
    """Effects outside the state DB: at least once, so dedupe by ``event.id``.
    Runs on the engine's loop: await, never block (``asyncio.to_thread`` for that)."""

    name: str
    handle: Callable[[Event], Awaitable[None]]
    start: Start = "end"
    kinds: frozenset[EventKind] | None = None
    """Only these kinds (None: all), filtered in SQL."""


@dataclass(frozen=True, slots=True)
class LiveSubscriber:
    """Effects in memory, rebuilt from the state DB at start: every event after ``after``
    while the process runs, no cursor kept."""

    name: str
    handle: Callable[[Event], Awaitable[None]]
    after: int
    kinds: frozenset[EventKind] | None = None
    """Only these kinds (None: all), filtered in SQL."""


Subscriber = DbSubscriber | OutsideSubscriber | LiveSubscriber


class Dispatcher:
    """Delivers the outbox to its subscribers; ``start`` and ``stop`` on the engine loop."""

    def __init__(
        self,
        repo: StateRepository,
        *,
        batch: int = BATCH,
        poll_every: float = POLL_EVERY,
        retry_first: float = RETRY_FIRST,
        retry_most: float = RETRY_MOST,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.repo = repo
        self.faults = faults
        self.batch = batch
        self.poll_every = poll_every
        self.retry_first = retry_first
        self.retry_most = retry_most
        self._runners: dict[str, _Runner] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._unhook: Callable[[], None] | None = None
        self._stopping = asyncio.Event()

    def add(self, subscriber: Subscriber) -> None:
        """Register a subscriber (before or after ``start``); names are unique."""
        name = subscriber.name
        if not _NAME.fullmatch(name):
            raise ValueError(
                f"subscriber name {name!r}: use 1-64 lowercase letters, digits, '.', '_' or '-'"
            )
        if name in self._runners:
            raise ValueError(f"a subscriber named {name!r} is registered already")
        if isinstance(subscriber, DbSubscriber | OutsideSubscriber) and subscriber.start not in (
            "end",
            "beginning",
        ):
            raise ValueError(f"subscriber {name!r}: start must be 'end' or 'beginning'")
        for kind in subscriber.kinds or ():
            parse_kind(kind)  # a typo must not silently match nothing
        runner = _Runner(self, subscriber)
        self._runners[name] = runner
        if self._loop is not None:
            runner.start()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._unhook = self.repo.on_events_committed(self.wake)
        for runner in self._runners.values():
            runner.start()

    def wake(self) -> None:
        """New events are committed: every subscriber looks. Safe from any thread."""
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to wake
            loop.call_soon_threadsafe(self._wake_all)

    def _wake_all(self) -> None:
        for runner in self._runners.values():
            runner.wake.set()

    def positions(self) -> dict[str, int | None]:
        """Each subscriber's cursor as its task knows it (None: not started yet)."""
        return {name: r.cursor for name, r in self._runners.items()}

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Let each subscriber finish its current event (up to ``grace``), then stop them."""
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        self._stopping.set()
        self._wake_all()
        tasks = [r.task for r in self._runners.values() if r.task is not None]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for runner in self._runners.values():
            # A DbSubscriber still in its transaction ends it (commit or roll back)
            # rather than be cut off; one that never returns must not hold up the
            # engine's stop (its checkpoint and probe-state save come after this).
            try:
                await asyncio.wait_for(_joined(runner.executor), grace)
            except TimeoutError:
                log.warning(
                    "event subscriber %s did not finish; stopping without it", runner.sub.name
                )
        self._loop = None


class _Runner:
    """One subscriber's task: read after the cursor, hand over, move the cursor, repeat."""

    def __init__(self, dispatcher: Dispatcher, subscriber: Subscriber) -> None:
        self.d = dispatcher
        self.sub = subscriber
        self.cursor: int | None = None
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"events-{subscriber.name}"
        )
        self._single_until: int | None = None
        """After a DbSubscriber's batch failed: one event per transaction up to this id,
        so the events before the failing one are not held back with it."""

    def start(self) -> None:
        self.task = asyncio.get_running_loop().create_task(
            self.run(), name=f"events-{self.sub.name}"
        )

    async def _in_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def run(self) -> None:
        delay = self.d.retry_first
        stopping = self.d._stopping
        while not stopping.is_set():
            try:
                if self.cursor is None:
                    self.cursor = await self._in_thread(self._start_cursor)
                    continue
                self.wake.clear()
                batch, reach = await self._in_thread(self._read, self.cursor)
                if not batch:
                    # Filtered: nothing of its kinds up to ``reach``. Kept in memory;
                    # the stored cursor moves with the next event handled.
                    self.cursor = reach
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.d.poll_every)
                    continue
                await self._deliver(batch, reach)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "event subscriber %s failed after event %s (%s: %s); retrying in %.1fs",
                    self.sub.name,
                    self.cursor,
                    type(exc).__name__,
                    exc,
                    delay,
                    exc_info=True,
                )
                self.d.faults.report(f"subscriber:{self.sub.name}", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                delay = min(delay * 2, self.d.retry_most)
                continue
            delay = self.d.retry_first

    def _read(self, cursor: int) -> tuple[tuple[Event, ...], int]:
        """The next events, and the id up to which they are all the events it wants."""
        limit = 1 if self._single_until is not None else self.d.batch
        kinds = self.sub.kinds
        db = self.d.repo.engine
        if kinds is None:
            batch = events_after(db, cursor, limit)
            return batch, batch[-1].id if batch else cursor
        # Ids are in commit order, so every event up to ``last`` is visible now:
        # skipping past the ones of other kinds cannot miss one committed late.
        last = last_event_id(db)
        batch = events_after(db, cursor, limit, kinds, up_to=last)
        return batch, batch[-1].id if len(batch) == limit else max(cursor, last)

    def _start_cursor(self) -> int:
        sub = self.sub
        if isinstance(sub, LiveSubscriber):
            return sub.after
        repo = self.d.repo
        with repo.transaction() as conn:
            first = last_event_id(conn) if sub.start == "end" else 0
            return repo.start_cursor(sub.name, first, time.time())

    async def _deliver(self, batch: tuple[Event, ...], reach: int) -> None:
        """Hand ``batch`` over; then the cursor is at ``reach`` (the batch's last id,
        or beyond it when a kinds filter skipped later events)."""
        sub = self.sub
        if isinstance(sub, DbSubscriber):
            try:
                await self._in_thread(self._handle_in_db, sub, batch, reach)
            except Exception:
                if len(batch) > 1:
                    self._single_until = batch[-1].id
                raise
            self.cursor = reach
            if self._single_until is not None and self.cursor >= self._single_until:
                self._single_until = None
            return
        done: int | None = None
        try:
            for event in batch:
                await sub.handle(event)
                done = event.id
                if self.d._stopping.is_set():
                    break
            else:
                done = reach
        finally:
            # After a failure too (not after a cancel): what was handled is not handed
            # over again.
            if done is not None and not _cancelling():
                if isinstance(sub, OutsideSubscriber):
                    await self._in_thread(self.d.repo.set_cursor, sub.name, done, time.time())
                self.cursor = done

    def _handle_in_db(self, sub: DbSubscriber, batch: tuple[Event, ...], reach: int) -> None:
        repo = self.d.repo
        with repo.transaction():
            for event in batch:
                sub.handle(repo, event)
            repo.set_cursor(sub.name, reach, time.time())
        if sub.after_commit is not None:
            try:
                sub.after_commit()
            except Exception:  # the batch is committed; a failed wake-up is only late
                log.exception("event subscriber %s: after_commit failed", sub.name)


def _joined(executor: ThreadPoolExecutor) -> asyncio.Future[None]:
    """Done when ``executor``'s thread has finished its work. Waited for on a daemon
    thread, not the loop's default executor, which ``asyncio.run`` joins on exit."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()

    def wait() -> None:
        executor.shutdown(wait=True, cancel_futures=True)
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody waits
            loop.call_soon_threadsafe(lambda: done.done() or done.set_result(None))

    threading.Thread(target=wait, name="events-stop", daemon=True).start()
    return done


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
