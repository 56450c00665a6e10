"""The sender: claims due deliveries from the outbox, sends them, records every attempt.

One asyncio task on the engine's loop. Each round it claims the due
deliveries (inside one transaction: each becomes ``sending`` with an
``in_flight`` attempt, the message rendered and fixed at its first
attempt), then sends each on a worker thread of its own pool (channels
block, bounded by their timeouts; ``notify.channels.base``) and writes the
outcome: sent, or failed and what next (``notify.fallback``). A channel
that raises anything but ``DeliveryError`` is a transient failure of that
attempt; nothing a channel does stops the sender.

It wakes when paging commits new deliveries (``wake``), when the next
delivery is due, and at least every ``poll_every`` seconds. ``start`` first
recovers attempts left ``in_flight`` by a crash (``outbox.recover``).

Each sent or finally failed delivery is a line on the timeline of every
incident it is about and an entry in the audit log.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import Connection

from core.clock import Clock, SystemClock
from monitor import audit
from monitor.faults import NO_FAULTS, Faults
from monitor.store.models import DELIVERY_FAILED
from monitor.store.repository import StateRepository
from notify import outbox
from notify.channels.base import Channel, DeliveryError, Message, Receipt, shortened
from notify.fallback import RateLimit, RetryPolicy, after_failure, rate_wait

log = logging.getLogger(__name__)

BATCH = 100
SUBSCRIBER = "subscriber:"
"""The recipient ids of status page subscribers (``notify.service``)."""
POLL_EVERY = 5.0
TICK_EVERY = 0.5
"""A round started only because a send finished runs ``tick`` at most this often (s):
a fan-out of thousands of notices finishes hundreds of sends a second, and paging's
and the customers' clocks need no finer grain than this."""
DEFAULT_RETRY = RetryPolicy()
DEFAULT_RATE = RateLimit()


class Recipient(Protocol):
    """What the sender needs of a person (``notify.people.PersonConfig``)."""

    id: str
    name: str | None
    email: str | None
    phone: str | None
    user: str | None
    language: str


@dataclass(frozen=True, slots=True)
class Rendered:
    subject: str
    text: str
    html: str | None
    language: str


Render = Callable[[Connection, outbox.DeliveryRow, Recipient], Rendered]
"""Writes a delivery's message for its person (``notify.messages``), inside the claim."""


@dataclass(frozen=True, slots=True)
class Claimed:
    delivery: outbox.DeliveryRow
    attempt_id: int
    message: Message | None
    """None: the delivery's channel or person is missing; the attempt fails at once."""
    problem: str = ""


class Sender:
    def __init__(
        self,
        repo: StateRepository,
        *,
        channels: Mapping[str, Channel],
        people: Callable[[str], Recipient | None],
        render: Render,
        clock: Clock | None = None,
        retry: RetryPolicy = DEFAULT_RETRY,
        rate: RateLimit = DEFAULT_RATE,
        concurrency: int = 8,
        poll_every: float = POLL_EVERY,
        faults: Faults = NO_FAULTS,
        disabled: Mapping[str, str] | None = None,
        tick: Callable[[float], object] | None = None,
        degraded_after: int = 3,
        extra_data: Callable[[outbox.DeliveryRow], dict[str, Any]] | None = None,
        on_gone: Callable[[Connection, str, str, float], None] | None = None,
    ) -> None:
        self.repo = repo
        self.on_gone = on_gone
        """Told (in the failure's transaction) of a recipient whose last channel refused
        for good: a status page subscriber is retired then."""
        self.extra_data = extra_data
        """More for a message's ``data`` by delivery (a subscriber's unsubscribe link)."""
        self.channels = dict(channels)
        self.disabled = dict(disabled or {})
        """Channel id → why it is off (its config was refused); attempts on it fail permanently."""
        self.people = people
        self.tick = tick
        self.degraded_after = degraded_after
        """A channel whose last this-many attempts failed is an appliance fault (degraded)."""
        """Runs first in every round, on the outbox thread (paging's clock: ``Paging.tick``)."""
        self.render = render
        self.clock = clock or SystemClock()
        self.retry = retry
        self.rate = rate
        self.poll_every = poll_every
        self.faults = faults
        self.concurrency = concurrency
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="dw-send")
        self._db = ThreadPoolExecutor(1, thread_name_prefix="dw-outbox")
        self._slots = asyncio.Semaphore(concurrency)
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._called = True
        """Someone committed deliveries or the loop's timer ran out: the next round ticks."""
        self._ticked_at: float | None = None
        self._sent_pending: deque[tuple[Claimed, Receipt, float]] = deque()
        """Sends finished, outcomes not yet written: appended on the loop, drained on the
        outbox thread (a deque's append and popleft are safe across threads)."""
        self.interrupted: list[outbox.AttemptRow] = []
        """The attempts a crash left in flight, found at start (sent again, named here)."""
        self.degraded: dict[str, str] = {}
        """Channel id → the sentence, while its last ``degraded_after`` attempts all failed
        (cleared by its next success): read by the appliance's own health check."""

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.recover()
        if self.interrupted:
            log.warning(
                "%d delivery attempt(s) were in flight when the appliance stopped; "
                "sending them again with the same ids: %s",
                len(self.interrupted),
                ", ".join(f"delivery {a.delivery_id} on {a.channel_id}" for a in self.interrupted),
            )
        self._task = asyncio.create_task(self._run(), name="notify-sender")

    def wake(self) -> None:
        """New deliveries are committed. Safe from any thread."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._call)

    def _call(self) -> None:
        self._called = True
        self._wake.set()

    async def stop(self, grace: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait([self._task], timeout=grace)
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=grace)
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._db.shutdown(wait=True)
        self._loop = None

    async def _in_db(self, fn: Callable[..., Any], *args: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._db, fn, *args)

    def _recover(self) -> list[outbox.AttemptRow]:
        with self.repo.transaction() as conn:
            return outbox.recover(conn, self.clock.time())

    # -- the loop ------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            next_at: float | None = None
            now = self.clock.time()
            tick = (
                self._called
                or self._ticked_at is None
                or not 0 <= now - self._ticked_at < TICK_EVERY
            )
            self._called = False
            try:
                next_at = await self.round(tick=tick)
            except Exception as exc:  # the outbox itself failed: report, look again later
                log.exception("the delivery outbox could not be read")
                self.faults.report("notify:sender", f"{type(exc).__name__}: {exc}")
            wait = self.poll_every
            if not tick and self._ticked_at is not None:  # the skipped tick is owed soon
                next_at = min(next_at or math.inf, self._ticked_at + TICK_EVERY)
            if next_at is not None:
                wait = max(0.0, min(wait, next_at - self.clock.time()))
            try:
                async with self.clock.timeout(wait):
                    await self._wake.wait()
            except TimeoutError:
                self._called = True

    async def round(self, *, tick: bool = True) -> float | None:
        """Claim what is due and start sending it; returns when the next pending one is due.
        (The loop's one step; tests call it with a manual clock, then ``settle``.)
        ``tick``: run ``self.tick`` first (the loop skips it in rounds that only a finished
        send started, ``TICK_EVERY``)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        # Claim only what can be sent now: an attempt is written "in flight" when claimed,
        # so after a crash at most ``concurrency`` attempts are in doubt.
        free = self.concurrency - len(self._inflight)
        if free <= 0:
            return None
        claimed, next_at = await self._in_db(self._claim, free, tick)
        for item in claimed:
            await self._slots.acquire()
            task = asyncio.create_task(self._deliver(item))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        return next_at

    async def next_due(self) -> float | None:
        """When the next pending delivery is due (None: nothing is pending)."""

        def read() -> float | None:
            with self.repo.reading() as conn:
                return outbox.next_due_at(conn)

        return await self._in_db(read)

    async def settle(self) -> None:
        """Wait until every send started so far has its outcome recorded."""
        while self._inflight:
            await asyncio.wait(set(self._inflight))

    async def recover(self) -> list[outbox.AttemptRow]:
        """Attempts a crash left in flight → interrupted, their deliveries due again."""
        self.interrupted = await self._in_db(self._recover)
        return self.interrupted

    def _claim(self, limit: int = BATCH, tick: bool = True) -> tuple[list[Claimed], float | None]:
        """Due deliveries → sending, each with its in-flight attempt (one transaction)."""
        now = self.clock.time()
        if tick and self.tick is not None:
            self._ticked_at = now
            try:
                self.tick(now)
            except Exception as exc:  # paging's trouble must not stop sending
                log.exception("paging could not look at the clock")
                self.faults.report("notify:paging", f"{type(exc).__name__}: {exc}")
        claimed: list[Claimed] = []
        with self.repo.transaction() as conn:
            due = outbox.due(conn, now, limit)
            # Only a first attempt waits for the rate limit (a retry or fallback is owed).
            fresh = [d.person_id for d in due if d.tries == 0 and d.channel_index == 0]
            sent = outbox.sent_since_many(conn, fresh, now - self.rate.window)
            for delivery in due:
                wait = None
                if delivery.tries == 0 and delivery.channel_index == 0:
                    wait = rate_wait(sent.get(delivery.person_id, []), now, self.rate)
                if wait is not None:
                    outbox.postpone(conn, delivery.id, wait)
                    continue
                claimed.append(self._begin(conn, delivery, now))
            next_at = outbox.next_due_at(conn)
        return claimed, next_at

    def _begin(self, conn: Connection, delivery: outbox.DeliveryRow, now: float) -> Claimed:
        person = self.people(delivery.person_id)
        channel_id = delivery.channel
        problem = ""
        if person is None:
            problem = f"no person '{delivery.person_id}' in the config (any more)"
        elif channel_id in self.disabled:
            problem = f"channel '{channel_id}' is disabled: {self.disabled[channel_id]}"
        elif channel_id not in self.channels:
            problem = f"no channel '{channel_id}' in the config (any more)"
        rendered = None
        if person is not None and delivery.subject is None:
            try:
                r = self.render(conn, delivery, person)
                rendered = (r.subject, r.text, r.html, r.language)
            except Exception as exc:  # a broken template must not hold the outbox
                log.exception("delivery %d could not be rendered", delivery.id)
                problem = f"the message could not be written: {type(exc).__name__}: {exc}"
        attempt_id = outbox.begin_attempt(conn, delivery, now, rendered)
        if problem or person is None:
            return Claimed(delivery, attempt_id, None, problem)
        subject, text, html, language = rendered or (
            delivery.subject or "",
            delivery.text or "",
            delivery.html,
            delivery.language or person.language,
        )
        message = Message(
            delivery_id=f"dw-{delivery.id}",
            subject=subject,
            text=text,
            html=html,
            language=language,  # type: ignore[arg-type]
            name=person.name,
            email=person.email,
            phone=person.phone,
            data=_facts(delivery) | (self.extra_data(delivery) if self.extra_data else {}),
            **_user(person),
        )
        return Claimed(delivery, attempt_id, message)

    async def _deliver(self, item: Claimed) -> None:
        try:
            channel_id = item.delivery.channel or ""
            if item.message is None:
                error = DeliveryError(item.problem, permanent=True)
                await self._in_db(self._failed, item, error)
                return
            loop = asyncio.get_running_loop()
            channel = self.channels[channel_id]
            try:
                receipt = await loop.run_in_executor(self._pool, channel.send, item.message)
            except DeliveryError as exc:
                await self._in_db(self._failed, item, exc)
                return
            except Exception as exc:  # a channel bug is that attempt's transient failure
                log.exception(
                    "channel %s raised while sending delivery %d", channel_id, item.delivery.id
                )
                reason = f"the channel failed unexpectedly: {type(exc).__name__}: {exc}"
                await self._in_db(
                    self._failed, item, DeliveryError(shortened(reason), permanent=False)
                )
                return
            self._sent_pending.append((item, receipt, self.clock.time()))
            await self._in_db(self._record_sent)
        except Exception as exc:
            log.exception("delivery %d: its outcome could not be recorded", item.delivery.id)
            self.faults.report("notify:sender", f"{type(exc).__name__}: {exc}")
        finally:
            self._slots.release()
            self._wake.set()

    def _record_sent(self) -> None:
        """Every send that finished since the last call, in one transaction (on the outbox
        thread): under a burst one commit carries many outcomes, and a send whose own call
        finds the list empty was recorded by an earlier call, which ran first."""
        done = []
        while self._sent_pending:
            done.append(self._sent_pending.popleft())
        if not done:
            return
        try:
            with self.repo.transaction() as conn:
                outbox.attempts_sent(conn, [
                    (i.delivery.id, i.attempt_id, now, r.provider_id, r.answer)
                    for i, r, now in done
                ])  # fmt: skip
                customers: dict[tuple[str, str], list[int]] = {}
                for item, receipt, now in done:
                    d = item.delivery
                    if d.person_id.startswith(SUBSCRIBER) and not _incidents(d):
                        customers.setdefault((d.channel or "", d.kind), []).append(d.id)
                        continue
                    line = f"notified {d.person_id} via {d.channel} ({d.kind})"
                    after = {"channel": d.channel, "answer": receipt.answer}
                    self._record(conn, d, now, line, "ok", after)
                for (channel, kind), ids in customers.items():
                    # A fan-out to thousands of subscribers is one entry per commit, not one
                    # per address: each delivery and attempt stays in the outbox by its id.
                    audit.record(conn, at=done[-1][2], actor="engine", action="delivery",
                                 object=f"delivery:{ids[0]}", count=len(ids),
                                 after={"kind": kind, "channel": channel, "deliveries": ids},
                                 detail=f"notified {len(ids)} status page subscriber(s) "
                                        f"via {channel} ({kind})")  # fmt: skip
        except Exception:
            self._sent_pending.extendleft(reversed(done))  # the next call tries them again
            raise
        for item, _receipt, _now in done:
            self.degraded.pop(item.delivery.channel or "", None)

    def _failed(self, item: Claimed, error: DeliveryError) -> None:
        now = self.clock.time()
        d = item.delivery
        then = after_failure(
            channel_index=d.channel_index,
            channels=len(d.channels),
            tries=d.tries,
            permanent=error.permanent,
            now=now,
            policy=self.retry,
            retry_after=error.retry_after,
        )
        error_class = error.error_class.value if error.error_class is not None else None
        with self.repo.transaction() as conn:
            outbox.attempt_failed(
                conn,
                d.id,
                item.attempt_id,
                now,
                reason=error.reason,
                permanent=error.permanent,
                error_class=error_class,
                answer="",
                then=then.as_tuple(),
            )
            if then.state == DELIVERY_FAILED:
                line = (
                    f"could not notify {d.person_id}: every channel failed (last: {error.reason})"
                )
                self._record(conn, d, now, line, "failed", {"reason": error.reason})
                if error.permanent and self.on_gone is not None:
                    # The address refused for good (a bounce, a push endpoint gone).
                    self.on_gone(conn, d.person_id, error.reason, now)
            recent = outbox.channel_outcomes(conn, d.channel or "", self.degraded_after)
        if then.state == DELIVERY_FAILED:
            self.faults.report(
                "notify:delivery", f"delivery {d.id} to {d.person_id} failed on every channel"
            )
        # Reported on every failure while it lasts; the fault log merges the repeats.
        if len(recent) >= self.degraded_after and all(o == "failed" for o in recent):
            sentence = (
                f"channel {d.channel} is degraded: its last {len(recent)} attempts failed "
                f"(last: {error.reason})"
            )
            self.degraded[d.channel or ""] = sentence
            self.faults.report(f"channel:{d.channel}", sentence)

    def _record(
        self,
        conn: Connection,
        d: outbox.DeliveryRow,
        now: float,
        line: str,
        result: str,
        after: dict[str, Any],
    ) -> None:
        for incident_id in sorted({n.incident_id for n in d.notices if n.incident_id is not None}):
            self.repo.add_incident_event(incident_id, "delivery", now, None, line)
        audit.record(
            conn,
            at=now,
            actor="engine",
            action="delivery",
            result=result,  # type: ignore[arg-type]
            object=f"delivery:{d.id}",
            after={"person": d.person_id, "kind": d.kind, **after},
            detail=line,
        )


def _user(person: Recipient) -> dict[str, Any]:
    """The addresses only some recipients have: a console user, a browser's subscription."""
    found = {k: getattr(person, k, None) for k in ("user", "push_subscription")}
    return {k: v for k, v in found.items() if v is not None}


def _incidents(d: outbox.DeliveryRow) -> list[int]:
    return sorted({n.incident_id for n in d.notices if n.incident_id is not None})


def _facts(d: outbox.DeliveryRow) -> dict[str, Any]:
    incidents = _incidents(d)
    return {
        "kind": d.kind,
        # A console link for channels that open one (web push): the incident, or the list.
        "url": f"/incidents/{incidents[0]}" if len(incidents) == 1 else "/incidents",
        "incident_id": incidents[0] if len(incidents) == 1 else None,
        "incidents": ",".join(str(i) for i in incidents),
        "notices": len(d.notices),
    }
