"""Customer notices, live: events in, one thread per (subscriber, component), notices out.

``CustomerNotices.handle`` is a ``DbSubscriber`` (``monitor.dispatcher``): in
the transaction that moves its cursor it turns each event into changes of the
threads (``notify.customer_policy``) of every active subscriber of the
components it concerns, exactly once:

- a target's ``transition`` re-reads the health of each component it is in
  (``monitor.components.component_health``): ``down`` or ``degraded`` is
  trouble, anything else (up, maintenance, unknown) is not;
- a ``customer_update`` (published by staff or a runbook) is an update for
  every component of the incident's members.

``tick`` (from the sender's side, every second or so) asks each thread whose
time has come what is due and queues the notices in the outbox as messages
written in the subscriber's language (``notify.customer_messages``): the
component's name, the published cause, ETA and update text — what the status
page shows, never a target id, an address or an internal note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict
from typing import Any

from sqlalchemy import Connection, insert, select, update

from monitor.components import component_health, members
from monitor.dispatcher import DbSubscriber
from monitor.events import Event, EventKind
from monitor.health import Health
from monitor.redact import redact, sensitive_strings
from monitor.store import queries
from monitor.store.models import CustomerMaintenanceMark, CustomerThread
from monitor.store.repository import StateRepository
from notify import customer_messages, outbox, subscribers
from notify.customer_maintenance import Due as MaintenanceDue
from notify.customer_maintenance import due as maintenance_due
from notify.customer_maintenance import occurrences as maintenance_occurrences
from notify.customer_policy import Notice, Rules, Thread, due, next_due, ok, trouble
from notify.customer_policy import update as with_update
from notify.customer_settings import CustomersConfig
from notify.outbox import Notice as OutboxNotice
from notify.subscribers import Keys, SubscriberRow

log = logging.getLogger(__name__)

EVENTS = frozenset({EventKind.TRANSITION, EventKind.CUSTOMER_UPDATE})
_THREAD = CustomerThread.__table__
TROUBLE = frozenset({Health.DOWN, Health.DEGRADED})
MAINTENANCE_EVERY = 30.0
"""Seconds between looks at the scheduled maintenance windows (a notice is at most this late)."""
_MARK = CustomerMaintenanceMark.__table__
TICK_BATCH = 500
"""Threads one tick handles: the transaction holds the one writer lock meanwhile."""


def _thread(state: Mapping[str, Any]) -> Thread:
    held = tuple(Notice(n["kind"], n["at"], n.get("ref", "")) for n in state.get("held", []))
    return Thread(state.get("trouble_since"), bool(state.get("told")), state.get("clear_at"), held)


def _state(thread: Thread) -> dict[str, Any]:
    return {**asdict(thread), "held": [asdict(n) for n in thread.held]}


class CustomerNotices:
    """Turns events into customer notices (see the module docstring)."""

    def __init__(
        self,
        config: Callable[[], Any],
        keys: Keys,
        base_url: Callable[[], str],
        *,
        wake: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self.keys = keys
        self.base_url = base_url
        self.wake = wake

    def settings(self) -> CustomersConfig:
        return getattr(self.config(), "customers", None) or CustomersConfig()

    def rules(self, component_id: str | None = None) -> Rules:
        config = self.config()
        component = next((c for c in config.components if c.id == component_id), None)
        return self.settings().rules(config.site.timezone, component)

    def subscriber(self, name: str = "notify.customers") -> DbSubscriber:
        return DbSubscriber(name, self.handle, kinds=EVENTS, after_commit=self.wake)

    # -- events ------------------------------------------------------------------------
    def handle(self, repo: StateRepository, event: Event) -> None:
        with repo.transaction() as conn:
            if event.kind == EventKind.TRANSITION and event.target_id is not None:
                self._transition(conn, event.target_id, event.at)
            elif event.kind == EventKind.CUSTOMER_UPDATE and event.incident_id is not None:
                self._update(conn, event)

    def _components_of(self, target_id: str) -> list[Any]:
        config = self.config()
        targets = list(config.targets)
        return [c for c in config.components if target_id in members(c, targets)]

    def _transition(self, conn: Connection, target_id: str, at: float) -> None:
        config = self.config()
        targets = list(config.targets)
        for component in self._components_of(target_id):
            rules = self.rules(component.id)
            healths = queries.health_of(conn, members(component, targets)).values()
            in_trouble = component_health(healths) in TROUBLE
            for sub in subscribers.active_for(conn, component.id):
                thread = self._load(conn, sub.id, component.id)
                changed = trouble(thread, at) if in_trouble else ok(thread, at, rules)
                if changed != thread:
                    self._save(conn, sub.id, component.id, changed, rules)

    def _update(self, conn: Connection, event: Event) -> None:
        incident = queries.incident(conn, event.incident_id)  # type: ignore[arg-type]
        if incident is None:
            return
        seen: set[str] = set()
        for target_id in incident.member_ids:
            for component in self._components_of(target_id):
                if component.id in seen:
                    continue
                seen.add(component.id)
                rules = self.rules(component.id)
                ref = f"{event.incident_id}:{event.payload.get('update_id', '')}"
                for sub in subscribers.active_for(conn, component.id):
                    thread = self._load(conn, sub.id, component.id)
                    notice = Notice("update", event.at, ref)
                    self._save(conn, sub.id, component.id, with_update(thread, notice), rules)

    def _load(self, conn: Connection, subscriber_id: int, component_id: str) -> Thread:
        row = conn.execute(
            select(_THREAD.c.state).where(
                _THREAD.c.subscriber_id == subscriber_id, _THREAD.c.component_id == component_id
            )
        ).first()
        return _thread(row.state) if row is not None else Thread()

    def _save(
        self, conn: Connection, subscriber_id: int, component_id: str, thread: Thread, rules: Rules
    ) -> None:
        values = {"state": _state(thread), "check_at": next_due(thread, rules)}
        where = (_THREAD.c.subscriber_id == subscriber_id) & (
            _THREAD.c.component_id == component_id
        )
        if conn.execute(update(_THREAD).where(where).values(**values)).rowcount == 0:
            conn.execute(insert(_THREAD).values(subscriber_id=subscriber_id,
                                                component_id=component_id, **values))  # fmt: skip

    # -- time --------------------------------------------------------------------------
    def tick(self, repo: StateRepository, now: float) -> int:
        """Queue what is due now; returns how many notices were queued."""
        queued = 0
        self._incidents: dict[str, Any] = {}  # per tick: one read per component, not per notice
        self._hidden: list[str] | None = None  # per tick: the config's strings no customer sees
        with repo.transaction() as conn:
            rows = conn.execute(
                select(_THREAD).where(_THREAD.c.check_at <= now).order_by(_THREAD.c.check_at)
                .limit(TICK_BATCH)
            ).all()  # fmt: skip
            for row in rows:
                rules = self.rules(row.component_id)
                thread = _thread(row.state)
                notices, after = due(thread, now, rules)
                try:
                    sub = subscribers.get(conn, row.subscriber_id)
                except LookupError:
                    conn.execute(update(_THREAD).where(
                        (_THREAD.c.subscriber_id == row.subscriber_id)
                        & (_THREAD.c.component_id == row.component_id)).values(check_at=None))  # fmt: skip
                    continue
                if sub.state == "active":
                    for notice in notices:
                        queued += self._queue(conn, sub, row.component_id, notice, now)
                self._save(conn, row.subscriber_id, row.component_id, after, rules)
            queued += self._maintenance(conn, now)
        if queued:
            self.wake()
        return queued

    # -- scheduled maintenance ---------------------------------------------------------
    def _maintenance(self, conn: Connection, now: float) -> int:
        """Queue the maintenance notices due (``notify.customer_maintenance``); at most
        every ``MAINTENANCE_EVERY`` seconds (cron windows cost a computation each)."""
        last = getattr(self, "_maintenance_at", None)
        if last is not None and 0 <= now - last < MAINTENANCE_EVERY:
            return 0
        self._maintenance_at = now
        config = self.config()
        settings = self.settings()
        leads = sorted(settings.maintenance_notice, reverse=True)
        horizon = (leads[0] if leads else 0.0) + MAINTENANCE_EVERY
        by_id = {t.id: t for t in config.targets}
        targets = list(config.targets)
        queued = 0
        for component in config.components:
            windows = [w for i in members(component, targets) for w in by_id[i].maintenance]
            if not windows:
                continue
            rules = self.rules(component.id)
            quiet = rules.quiet is not None and rules.quiet.inside(now)
            for o in maintenance_occurrences(windows, now, horizon, config.site.timezone):
                marks = conn.execute(select(_MARK.c.stage).where(
                    _MARK.c.component_id == component.id, _MARK.c.window_start == o.start
                )).scalars()  # fmt: skip
                found = maintenance_due(o, leads, now, set(marks), quiet=quiet)
                if found is None:
                    continue
                conn.execute(insert(_MARK), [
                    {"component_id": component.id, "window_start": o.start, "stage": m, "at": now}
                    for m in found.marks
                ])  # fmt: skip
                reason = self._redacted(o.reason) or ""  # the same for every subscriber
                for sub in subscribers.active_for(conn, component.id):
                    queued += self._queue_maintenance(conn, sub, component, found, reason, now)
        return queued

    def _queue_maintenance(
        self,
        conn: Connection,
        sub: SubscriberRow,
        component: Any,
        found: MaintenanceDue,
        reason: str,
        now: float,
    ) -> int:
        config = self.config()
        channel = self.settings().channel_for(sub.channel)
        if channel is None:
            return 0
        language, name = self._words_for(sub, component)
        written = customer_messages.maintenance(
            language, found.stage, component=name, start=found.occurrence.start,
            end=found.occurrence.end, reason=reason, timezone=config.site.timezone,
            channel=sub.channel, **self._links(sub, now),
        )  # fmt: skip
        return self._put(conn, sub, channel, written, now)

    def _redacted(self, text: str | None) -> str | None:
        """``text`` scrubbed like the status page (``monitor.redact``), with the config's
        sensitive strings worked out once per tick, not once per notice."""
        if not text:
            return text
        hidden = getattr(self, "_hidden", None)
        if hidden is None:
            hidden = self._hidden = sensitive_strings(self.config())
        return redact(text, hidden)

    def _words_for(self, sub: SubscriberRow, component: Any) -> tuple[str, str]:
        """The subscriber's language (the site's when the component has no name in it) and
        the component's name in it."""
        language = sub.language if sub.language in component.name else self.config().site.language
        return language, component.name.get(language) or next(iter(component.name.values()))

    def _links(self, sub: SubscriberRow, now: float) -> dict[str, str]:
        base = self.base_url()
        return {
            "manage": f"{base}/status/manage/{self.keys.token(sub.id, 'manage', now)}",
            "unsubscribe": f"{base}/status/unsubscribe/{self.keys.token(sub.id, 'unsubscribe', now)}",
        }

    def _put(
        self, conn: Connection, sub: SubscriberRow, channel: str, written: Any, now: float
    ) -> int:
        outbox.add(conn, f"subscriber:{sub.id}", [OutboxNotice("customer", None)], [channel], now,
                   subject=written.subject, text=written.text)  # fmt: skip
        return 1

    def _queue(
        self, conn: Connection, sub: SubscriberRow, component_id: str, notice: Notice, now: float
    ) -> int:
        config = self.config()
        channel = self.settings().channel_for(sub.channel)
        component = next((c for c in config.components if c.id == component_id), None)
        if channel is None or component is None:
            return 0
        language, name = self._words_for(sub, component)
        cause = eta = summary = None
        incident = self._incident_of(conn, component)
        if incident is not None:
            cause, eta = incident.cause, incident.eta
            summary = (incident.summary or {}).get(language)
        if notice.kind == "update":
            incident_id, _, update_id = notice.ref.partition(":")
            found = queries.customer_updates(conn, [int(incident_id)]).get(int(incident_id), ())
            texts = [u for u in found if str(u.id) == update_id]
            if texts:
                summary = texts[0].text.get(language) or next(iter(texts[0].text.values()), None)
        # The status page's own scrubbing, as a second line of defence: a cause typed as
        # "carrier sip:10.9.8.7 not answering" reaches no customer with the address.
        cause, summary = self._redacted(cause), self._redacted(summary)
        written = customer_messages.notice(
            language, notice.kind, component=name, cause=cause, eta=eta, summary=summary,
            timezone=config.site.timezone, channel=sub.channel, **self._links(sub, now),
        )  # fmt: skip
        return self._put(conn, sub, channel, written, now)

    def _incident_of(self, conn: Connection, component: Any) -> queries.IncidentRow | None:
        cache = getattr(self, "_incidents", None)
        if cache is not None and component.id in cache:
            return cache[component.id]
        ids = set(members(component, list(self.config().targets)))
        found = next((i for i in queries.open_incidents(conn) if ids & set(i.member_ids)), None)
        if cache is not None:
            cache[component.id] = found
        return found
