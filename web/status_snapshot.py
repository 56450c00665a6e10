"""Snapshots of the public read views: built once, served to every visitor until something changes.

Customers open the status page exactly when their calls fail, so its cost
must not grow with the number of visitors or of targets. A view (the status
page in one language, the components JSON) is built once and its bytes, with
their ETag, are handed to every request until it is stale:

- The view is *looked at* at most every ``Timing.check_every`` seconds: a
  request in between is served the snapshot without touching the state DB.
- Looking reads the view's *mark*, a cheap value that changes whenever what
  the view shows changes (the newest event id, see ``queries.last_change``;
  and the config). A new mark, or a snapshot older than ``Timing.max_age``
  (relative times and "the last 7 days" move on their own), means rebuild.
- One look or rebuild runs at a time, for all views. Requests arriving while
  it runs get the snapshot they would have got before (stale by at most a few
  seconds); only a view that has no snapshot yet makes its requests wait,
  for that one build.
- With a ``spawn`` (the running appliance gives one), the look and rebuild
  run on a thread of their own and the request that noticed the snapshot was
  due is served the current one at once: no visitor waits for a rebuild,
  which at 10,000 targets took 0.1-0.8 s of wall time beside 50 busy clients
  (bench/status_crowd.py). Without one (tests), the noticing request does it
  inline, so a test sees the new snapshot on that very request.

``should_look`` and ``should_rebuild`` are the pure "when" (tested with a
``ManualClock``); ``SnapshotCache`` is the thread-safe holder around them.
Nothing here knows who may see a view: the routes decide access before they
ask for a snapshot, and choose their own Cache-Control.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Generic, TypeVar

from flask import Flask, Response, request

from core.clock import SYSTEM_CLOCK, Clock

log = logging.getLogger(__name__)

V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Timing:
    """How stale a snapshot may get (seconds of the cache's clock)."""

    check_every: float = 2.0
    """Seconds between looks at the mark: also the most often one view is rebuilt."""
    max_age: float = 30.0
    """A snapshot this old is rebuilt even with the same mark ("5 minutes ago" moves on)."""

    def __post_init__(self) -> None:
        if not 0 < self.check_every <= self.max_age:
            raise ValueError(
                f"need 0 < check_every <= max_age, not {self.check_every} and {self.max_age}"
            )


@dataclass(frozen=True, slots=True)
class Stamp:
    """What a snapshot was built from and when it was built and last looked at."""

    mark: Hashable
    built_at: float
    looked_at: float


def should_look(stamp: Stamp | None, now: float, timing: Timing) -> bool:
    """Whether a request at ``now`` should read the mark (else: serve the snapshot as it is)."""
    return stamp is None or now - stamp.looked_at >= timing.check_every


def should_rebuild(stamp: Stamp | None, mark: Hashable, now: float, timing: Timing) -> bool:
    """Whether the snapshot must be rebuilt, now that the mark has been read."""
    return stamp is None or mark != stamp.mark or now - stamp.built_at >= timing.max_age


@dataclass(frozen=True, slots=True)
class Rendered:
    """A built view: the response body and its (strong) ETag."""

    body: bytes
    etag: str

    @classmethod
    def of(cls, body: bytes) -> Rendered:
        # A digest of the bytes themselves: a rebuild that changed nothing keeps
        # the ETag, so the browsers' If-None-Match still get their 304.
        return cls(body, hashlib.blake2b(body, digest_size=16).hexdigest())


@dataclass(frozen=True, slots=True)
class _Entry(Generic[V]):
    value: V
    stamp: Stamp


class SnapshotCache(Generic[V]):
    """Snapshots by key (the view and whatever it varies by: the language...).

    Keys must come from a small fixed set (never from raw request text), since
    each one is kept for the life of the app.
    """

    def __init__(
        self,
        clock: Clock = SYSTEM_CLOCK,
        timing: Timing | None = None,
        spawn: Callable[[Callable[[], None]], None] | None = None,
    ) -> None:
        self.clock = clock
        self.timing = timing or Timing()
        self.spawn = spawn
        """Runs a due look or rebuild off the request (``in_a_thread``); None: inline."""
        self.builds = 0
        """How many times a view was built (the tests read it)."""
        self._entries: dict[Hashable, _Entry[V]] = {}
        self._lock = threading.Lock()  # the one look-or-rebuild at a time, for all keys

    def get(self, key: Hashable, mark: Callable[[], Hashable], build: Callable[[], V]) -> V:
        """The snapshot of ``key``: as it is, or rebuilt by ``build`` when ``mark()`` moved.

        A failed look or build is logged and the stale snapshot served (tried again
        after ``check_every``); with no snapshot yet, the error reaches the caller.
        """
        entry = self._entries.get(key)
        if entry is not None and not should_look(entry.stamp, self.clock.monotonic(), self.timing):
            return entry.value
        if entry is None:
            self._lock.acquire()  # nothing to serve yet: wait for the one build
        elif not self._lock.acquire(blocking=False):
            return entry.value  # another request is looking or rebuilding: serve this one stale
        elif self.spawn is not None:
            try:
                self.spawn(lambda: self._refresh_and_release(key, mark, build))
            except Exception:  # no thread to be had: refresh later, serve what there is
                self._lock.release()
                log.exception("could not start the %s snapshot refresh", key)
            return entry.value
        try:
            return self._refresh(key, mark, build)
        finally:
            self._lock.release()

    def _refresh_and_release(
        self, key: Hashable, mark: Callable[[], Hashable], build: Callable[[], V]
    ) -> None:
        try:
            self._refresh(key, mark, build)
        except Exception:  # _refresh raises only with no snapshot, which never comes here
            log.exception("could not refresh the %s snapshot", key)
        finally:
            self._lock.release()  # a Lock (not an RLock): the spawned thread may release it

    def _refresh(self, key: Hashable, mark: Callable[[], Hashable], build: Callable[[], V]) -> V:
        entry = self._entries.get(key)
        now = self.clock.monotonic()
        if entry is not None and not should_look(entry.stamp, now, self.timing):
            return entry.value  # built by the request we waited for
        try:
            # The mark is read *before* the build: a change committed during the
            # build moves the mark past the one stored, so the next look rebuilds.
            current = mark()
            if entry is not None and not should_rebuild(entry.stamp, current, now, self.timing):
                self._entries[key] = _Entry(entry.value, Stamp(current, entry.stamp.built_at, now))
                return entry.value
            value = build()
        except Exception:
            if entry is None:
                raise
            log.exception("could not rebuild the %s snapshot; serving the previous one", key)
            self._entries[key] = _Entry(
                entry.value, Stamp(entry.stamp.mark, entry.stamp.built_at, now)
            )
            return entry.value
        self.builds += 1
        self._entries[key] = _Entry(value, Stamp(current, now, now))
        return value


def in_a_thread(work: Callable[[], None]) -> None:
    """``spawn`` for the running appliance: ``work`` on a daemon thread of its own."""
    threading.Thread(target=work, name="snapshot-refresh", daemon=True).start()


_EXTENSION = "dialwatch.snapshots"
_INSTALL = threading.Lock()


def snapshots_of(app: Flask) -> SnapshotCache[Rendered]:
    """The app's snapshot cache (made on first use, on the system clock)."""
    cache = app.extensions.get(_EXTENSION)
    if cache is None:
        with _INSTALL:
            cache = app.extensions.setdefault(_EXTENSION, SnapshotCache())
    return cache


def install(app: Flask, cache: SnapshotCache[Rendered]) -> SnapshotCache[Rendered]:
    """Give the app this cache (a test's, on a ``ManualClock``), replacing any other."""
    app.extensions[_EXTENSION] = cache
    return cache


def conditional_response(
    rendered: Rendered, mimetype: str, cache_control: str, vary: Iterable[str] = ()
) -> Response:
    """The snapshot as a response: 304 (no body) when the request's If-None-Match has its ETag."""
    if request.if_none_match.contains_weak(rendered.etag):
        response = Response(status=304)
    else:
        response = Response(rendered.body, mimetype=mimetype)
    response.set_etag(rendered.etag)
    response.headers["Cache-Control"] = cache_control
    response.vary.update(vary)
    return response
