"""The dialer's queues from Asterisk's manager interface (``source: {type: ami}``).

Each poll sends two list actions on one logged-in AMI session:

- ``QueueSummary`` -> ``QueueSummary`` events (``Queue``, ``LoggedIn``,
  ``Available``, ``Callers``, ``HoldTime``, ``TalkTime``, ``LongestHoldTime``):
  Asterisk's own count of calls waiting, the longest wait, agents logged
  in and available (not paused, not busy);
- ``QueueStatus`` -> ``QueueParams`` (``Calls``, ``Completed``,
  ``Abandoned``…), ``QueueMember`` (``Status``, ``Paused``, ``InCall``…) and
  ``QueueEntry`` (``Wait``…) events: agents on a call and paused, which the
  summary does not give, and the ``Completed`` + ``Abandoned`` counters that
  become calls per minute between polls.

The session is kept in ``ctx.shared`` (one per host, port, user and secret)
and reused by the next poll; a session that timed out, sent garbage or was
dropped is closed, and the next poll — or this one, once, when a reused
session turns out dead before answering — logs in again. The protocol
client, and why it is ours rather than panoramisk, is ``ami_client``.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from core.observation import ErrorClass
from probes.base import ProbeContext
from probes.dialer.ami_client import AmiConnection, AmiError, Message, get
from probes.dialer.cdr import SourceError
from probes.dialer.config import DialerTarget
from probes.dialer.queue_config import AmiSource
from probes.dialer.queues import QueueSample, QueueStats

DEVICE_NOT_LOGGED_IN = frozenset({"4", "5"})
"""``QueueMember`` ``Status`` (Asterisk's device state): 4 INVALID, 5 UNAVAILABLE — the
member's device is gone, so Asterisk does not count it as logged in."""
DEVICE_ON_CALL = frozenset({"2", "3", "7", "8"})
"""2 INUSE, 3 BUSY, 7 RINGINUSE, 8 ONHOLD (1 NOT_INUSE and 6 RINGING are not on a call yet)."""


@dataclass
class _Slot:
    """The pooled session of one (host, port, user, secret); ``lock`` serialises polls on it."""

    conn: AmiConnection | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            await conn.close()


def _slot(source: AmiSource, ctx: ProbeContext) -> _Slot:
    # The secret is part of the key (hashed) so a target with a wrong secret never
    # rides on another target's login.
    digest = hashlib.sha256(source.secret.encode()).hexdigest()[:16]
    key = f"dialer.ami:{source.host}:{source.port}:{source.username}:{digest}"
    slot = ctx.shared.get(key)
    if slot is None:
        slot = _Slot()
        ctx.shared.set(key, slot, close=slot.close)
    return slot


def _number(message: Message, key: str, what: str) -> int:
    text = get(message, key).strip()
    try:
        return int(text)
    except ValueError:
        shown = text[:30] if text else "nothing"
        raise AmiError(
            f"{what}: {key} is {shown!r}, not a whole number", ErrorClass.PROTOCOL
        ) from None


def _flag(message: Message, key: str) -> bool:
    return get(message, key).strip().lower() in ("1", "true", "yes")


@dataclass
class _Queue:
    summary: Message | None = None
    params: Message | None = None
    members: list[Message] = field(default_factory=list)
    entries: list[Message] = field(default_factory=list)


def build_sample(
    summary: Iterable[Message], status: Iterable[Message], wanted: Iterable[str] = ()
) -> QueueSample:
    """Per-queue stats from the two lists' events (pure); AmiError for unreadable numbers.

    ``wanted``: the configured queues (empty: all). A configured queue Asterisk
    does not report is a note that makes the observation ``warn``.
    """
    queues: dict[str, _Queue] = {}

    def queue(message: Message) -> _Queue:
        name = get(message, "Queue")
        if not name:
            raise AmiError(
                f"a {get(message, 'Event') or 'queue'} event without a Queue name",
                ErrorClass.PROTOCOL,
            )
        return queues.setdefault(name, _Queue())

    for event in summary:
        if get(event, "Event") == "QueueSummary":
            queue(event).summary = event
    for event in status:
        name = get(event, "Event")
        if name == "QueueParams":
            queue(event).params = event
        elif name == "QueueMember":
            queue(event).members.append(event)
        elif name == "QueueEntry":
            queue(event).entries.append(event)

    wanted = list(wanted)
    notes: list[str] = []
    if wanted:
        missing = [n for n in wanted if n not in queues]
        if missing:
            notes.append(
                f"Asterisk reports no queue {', '.join(repr(n) for n in missing)} "
                f"(check queues.conf or the source's queues list)"
            )
        queues = {n: q for n, q in queues.items() if n in wanted}
    out = {name: _stats(name, q) for name, q in queues.items()}
    return QueueSample(out, tuple(notes), warn_notes=bool(notes))


def _stats(name: str, q: _Queue) -> QueueStats:
    what = f"queue {name}"
    logged_in_members = [m for m in q.members if get(m, "Status") not in DEVICE_NOT_LOGGED_IN]
    paused = sum(1 for m in logged_in_members if _flag(m, "Paused"))
    on_call = sum(
        1 for m in logged_in_members if _flag(m, "InCall") or get(m, "Status") in DEVICE_ON_CALL
    )
    waits = [_number(e, "Wait", f"{what} caller") for e in q.entries]
    entry_wait = float(max(waits)) if waits else None
    calls_total = None
    if q.params is not None:
        calls_total = _number(q.params, "Completed", what) + _number(q.params, "Abandoned", what)
    members_known = q.params is not None  # QueueStatus answered for this queue
    if q.summary is not None:
        s = q.summary
        waiting = _number(s, "Callers", what)
        longest = float(_number(s, "LongestHoldTime", what))
        logged_in = _number(s, "LoggedIn", what)
        available = _number(s, "Available", what)
    else:
        # Only QueueStatus knows the queue (it appeared between the two actions):
        # count like QueueSummary does.
        waiting = _number(q.params, "Calls", what) if q.params is not None else len(q.entries)
        longest = entry_wait if entry_wait is not None else 0.0
        logged_in = len(logged_in_members)
        available = sum(
            1
            for m in logged_in_members
            if get(m, "Status") in ("0", "1") and not _flag(m, "Paused") and not _flag(m, "InCall")
        )
    if entry_wait is not None and entry_wait > longest:
        longest = entry_wait  # the entries were read a moment later
    return QueueStats(
        calls_waiting=waiting,
        longest_wait=longest if waiting else 0.0,
        logged_in=logged_in,
        available=available,
        on_call=on_call if members_known else None,
        paused=paused if members_known else None,
        calls_total=calls_total,
    )


def _queue_filter(source: AmiSource) -> Mapping[str, str]:
    # Asterisk filters one queue by name; for several, ask for all and filter here.
    return {"Queue": source.queues[0]} if len(source.queues) == 1 else {}


async def _connect(source: AmiSource, remaining: float) -> AmiConnection:
    deadline = time.monotonic() + remaining
    conn = await AmiConnection.open(source.host, source.port, remaining)
    try:
        await conn.login(source.username, source.secret, max(0.05, deadline - time.monotonic()))
    except BaseException:
        await conn.close()
        raise
    return conn


async def _read(conn: AmiConnection, source: AmiSource, deadline: float) -> QueueSample:
    headers = _queue_filter(source)
    summary = await conn.event_list("QueueSummary", headers, max(0.05, deadline - time.monotonic()))
    status = await conn.event_list("QueueStatus", headers, max(0.05, deadline - time.monotonic()))
    return build_sample(summary.events, status.events, source.queues)


async def collect(target: DialerTarget, ctx: ProbeContext) -> QueueSample:
    """One snapshot of the queues; SourceError with a sentence when AMI cannot give it."""
    source = target.source
    assert isinstance(source, AmiSource)
    deadline = time.monotonic() + ctx.timeout
    slot = _slot(source, ctx)
    try:
        async with asyncio.timeout(ctx.timeout):
            await slot.lock.acquire()
    except TimeoutError:
        raise SourceError(
            f"another poll held the AMI session to {source.host}:{source.port} "
            f"for the whole {ctx.timeout:g}s timeout",
            ErrorClass.TIMEOUT,
        ) from None
    try:
        reused = slot.conn is not None and not slot.conn.broken
        if not reused:
            await slot.close()
            slot.conn = await _connect(source, max(0.05, deadline - time.monotonic()))
        try:
            return await _read(slot.conn, source, deadline)
        except AmiError as exc:
            if not exc.broken:
                raise
            await slot.close()
            if not reused or exc.error_class is ErrorClass.TIMEOUT:
                raise
            # Asterisk drops idle sessions on reload or restart: a reused session that
            # died gets one fresh login within what is left of the timeout.
            slot.conn = await _connect(source, max(0.05, deadline - time.monotonic()))
            return await _read(slot.conn, source, deadline)
    except AmiError as exc:
        if exc.broken:
            await slot.close()
        raise SourceError(exc.detail, exc.error_class) from None
    except BaseException:
        # Cancelled by the runner mid-conversation: the session's state is unknown.
        if slot.conn is not None:
            slot.conn.abort()
            slot.conn = None
        raise
    finally:
        slot.lock.release()
