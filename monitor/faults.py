"""Engine faults as audit entries: a probe that crashed, a sink that failed, a subscriber
or a periodic job that raised — merged, so a fault that repeats cannot flood the log.

The places that catch these (``monitor.runner``, the sinks' writer threads,
``monitor.dispatcher``, the engine's periodic jobs, the retention job) are
handed a ``Faults`` reporter and call ``report(source, error)`` beside the
log line they already write. They know nothing of the audit log; the
default reporter, ``NO_FAULTS``, does nothing.

The appliance gives them a ``FaultLog``. Audit entries are immutable rows of
a hash chain, so merging happens in memory, before anything is written
(``FaultMerger``, pure apart from its lock and the injected clock): reports
with the same source (``probe:sip``, ``sink:influxdb``, ``subscriber:rules``,
``job:checkpoint``) and error class (``ZeroDivisionError``) gather in one
bucket for ``WINDOW`` seconds from the first of them; then the bucket
becomes one ``exception`` entry with ``result="error"``, the count, the
first and last message and a few of the targets involved. A probe kind that
crashes on every poll of 10,000 targets therefore adds one entry per
ten minutes, not a million a day. A periodic job writes what is due
(``flush``) and the appliance writes whatever is left when it stops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from core.clock import SYSTEM_CLOCK, Clock

if TYPE_CHECKING:
    from monitor.store.repository import StateRepository

log = logging.getLogger(__name__)

WINDOW = 600.0
"""Seconds one entry gathers the reports of one source and error class."""
FLUSH_EVERY = 60.0
"""Seconds between looks for buckets whose window has passed."""
MAX_BUCKETS = 1000
"""Open buckets at most; reports beyond go to one ``overflow`` bucket (sources and classes
are few — probe kinds, sinks, jobs — so this is a guard against a bug, not a limit in use)."""
EXAMPLES = 5
"""Objects (targets) named in an entry; the rest are counted."""
MAX_OBJECTS_COUNTED = 100_000
MAX_MESSAGE = 500
MAX_UNWRITTEN = 1000
"""Entries kept for the next try when the state DB refused them."""
ACTOR = "engine"


class Faults(Protocol):
    """What a component that catches an unexpected error is given to report it."""

    def report(
        self,
        source: str,
        error: BaseException | str,
        *,
        object: str = "",
        error_class: str | None = None,
    ) -> None:
        """``source``: ``kind:name`` of what failed; ``object``: what it was working on
        (a target id), if anything. Never raises, never blocks for long; any thread."""
        ...


class _NoFaults:
    def report(
        self,
        source: str,
        error: BaseException | str,
        *,
        object: str = "",
        error_class: str | None = None,
    ) -> None:
        return None


NO_FAULTS: Faults = _NoFaults()
"""The reporter of a component nobody gave one: the log line alone."""


def error_class_of(error: BaseException | str, given: str | None = None) -> str:
    if given:
        return given
    return type(error).__name__ if isinstance(error, BaseException) else "error"


def message_of(error: BaseException | str) -> str:
    text = f"{type(error).__name__}: {error}" if isinstance(error, BaseException) else str(error)
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


# -- merging (pure) ------------------------------------------------------------------
@dataclass
class _Bucket:
    source: str
    error_class: str
    first_at: float
    last_at: float
    first: str
    last: str
    count: int = 0
    objects: dict[str, None] = field(default_factory=dict)
    """Distinct objects in report order (a dict keeps the order), up to MAX_OBJECTS_COUNTED."""


@dataclass(frozen=True, slots=True)
class FaultEntry:
    """One merged entry, ready to be written."""

    source: str
    error_class: str
    first_at: float
    last_at: float
    count: int
    first: str
    last: str
    examples: tuple[str, ...]
    objects: int

    def detail(self) -> str:
        span = self.last_at - self.first_at
        text = f"{self.first}"
        if self.count > 1:
            text = f"{self.count} times in {span:.0f} s; first: {self.first}"
            if self.last != self.first:
                text += f"; last: {self.last}"
        if self.examples:
            more = self.objects - len(self.examples)
            text += f"; {self.objects} object(s): {', '.join(self.examples)}"
            if more > 0:
                text += f" and {more} more"
        return text

    def audit_fields(self) -> dict[str, Any]:
        """The arguments of ``monitor.audit.record`` for this entry."""
        return {
            "at": self.first_at,
            "actor": ACTOR,
            "action": "exception",
            "result": "error",
            "object": self.source,
            "detail": f"{self.error_class}: {self.detail()}"
            if not self.first.startswith(self.error_class)
            else self.detail(),
            "count": self.count,
        }


class FaultMerger:
    """Reports in, merged entries out: one bucket per (source, error class) and window.

    Thread-safe (sinks report from their writer threads). Time comes from the
    injected clock, so a test drives the window with a ``ManualClock``.
    """

    def __init__(
        self, clock: Clock = SYSTEM_CLOCK, window: float = WINDOW, max_buckets: int = MAX_BUCKETS
    ) -> None:
        self._clock = clock
        self.window = window
        self._max_buckets = max_buckets
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._closed: list[_Bucket] = []
        """Buckets whose window passed before ``take_due`` came for them."""
        self._lock = threading.Lock()

    def report(
        self,
        source: str,
        error: BaseException | str,
        *,
        object: str = "",
        error_class: str | None = None,
    ) -> None:
        try:
            self._report(source, error, object, error_class)
        except Exception:  # a reporter must never be the next fault
            log.exception("could not note a fault of %s", source)

    def _report(self, source: str, error: BaseException | str, obj: str, given: str | None) -> None:
        now = self._clock.time()
        cls = error_class_of(error, given)
        message = message_of(error)
        key = (source, cls)
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None and now - bucket.first_at >= self.window:
                # Its window is over: it waits for take_due, and this report opens the next.
                self._closed.append(self._buckets.pop(key))
                bucket = None
            if bucket is None:
                if len(self._buckets) >= self._max_buckets:
                    key = ("overflow", "TooManyFaultSources")
                    bucket = self._buckets.get(key)
                if bucket is None:
                    bucket = _Bucket(key[0], key[1], now, now, message, message)
                    self._buckets[key] = bucket
            bucket.count += 1
            bucket.last_at = now
            bucket.last = message
            if obj and len(bucket.objects) < MAX_OBJECTS_COUNTED:
                bucket.objects.setdefault(obj, None)

    def pending(self) -> int:
        """Reports gathered and not yet taken."""
        with self._lock:
            return sum(b.count for b in (*self._buckets.values(), *self._closed))

    def take_due(self, *, everything: bool = False) -> list[FaultEntry]:
        """The buckets whose window has passed (all of them with ``everything``), as
        entries, oldest first; they are removed, so the next report opens a new one."""
        now = self._clock.time()
        with self._lock:
            due = [
                key
                for key, b in self._buckets.items()
                if everything or now - b.first_at >= self.window
            ]
            taken = [*self._closed, *(self._buckets.pop(key) for key in due)]
            self._closed = []
        return sorted(
            (_entry(b) for b in taken), key=lambda e: (e.first_at, e.source, e.error_class)
        )


def _entry(b: _Bucket) -> FaultEntry:
    names = tuple(list(b.objects)[:EXAMPLES])
    return FaultEntry(
        b.source, b.error_class, b.first_at, b.last_at, b.count, b.first, b.last, names,
        len(b.objects),
    )  # fmt: skip


# -- writing ---------------------------------------------------------------------------
Write = Callable[[list[FaultEntry]], None]
"""Writes entries in one transaction (``monitor.audit.record`` each); raises on failure."""
Runner = Callable[..., Awaitable[Any]]
"""``await runner(fn, *args)`` runs ``fn(*args)`` on a thread (the engine's DB writer)."""


def state_db_writer(repo: StateRepository) -> Write:
    """Entries written to the audit log in one transaction of ``repo``."""
    # Imported here: the reporters (runner, sinks) import this module and need no DB.
    from monitor import audit

    def write(entries: list[FaultEntry]) -> None:
        with repo.transaction() as conn:
            for entry in entries:
                audit.record(conn, **entry.audit_fields())

    return write


async def _direct(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


class FaultLog:
    """The appliance's reporter: a ``FaultMerger`` whose due entries ``flush`` writes."""

    def __init__(
        self,
        write: Write,
        clock: Clock = SYSTEM_CLOCK,
        window: float = WINDOW,
        mask: Callable[[str], str] = lambda text: text,
    ) -> None:
        """``mask``: hides secrets in messages (the log's secret mask), since an
        exception's text may carry a URL with a password in it."""
        self.merger = FaultMerger(clock, window)
        self._write = write
        self._mask = mask
        self._unwritten: list[FaultEntry] = []
        self._flush_lock = threading.Lock()

    def report(
        self,
        source: str,
        error: BaseException | str,
        *,
        object: str = "",
        error_class: str | None = None,
    ) -> None:
        cls = error_class_of(error, error_class)
        self.merger.report(source, self._mask(message_of(error)), object=object, error_class=cls)

    def flush(self, *, everything: bool = False) -> int:
        """Write the entries that are due (all with ``everything``, at stop); returns how many
        were written. When the state DB refuses them they are kept for the next flush (the
        newest ``MAX_UNWRITTEN``) and the failure is logged, never reported (no loop)."""
        with self._flush_lock:
            entries = self._unwritten + self.merger.take_due(everything=everything)
            if not entries:
                return 0
            try:
                self._write(entries)
            except Exception:
                log.exception("could not write %d exception entries to the audit log", len(entries))
                self._unwritten = entries[-MAX_UNWRITTEN:]
                return 0
            self._unwritten = []
            return len(entries)

    async def run_forever(
        self, clock: Clock = SYSTEM_CLOCK, run: Runner = _direct, every: float = FLUSH_EVERY
    ) -> None:
        """Flush every ``every`` seconds through ``run`` (the DB writer thread)."""
        while True:
            await clock.sleep(every)
            await run(self.flush)
