"""The delivery outbox: rows in the state DB for every message, written before it is sent.

Paging (``notify.paging``) adds deliveries inside the transaction that
handles an event, so an event handled is a delivery stored; the sender
(``notify.sender``) claims due ones, writes an ``in_flight`` attempt, sends,
and writes the outcome. After a crash, ``recover`` marks the attempts that
were in flight ``interrupted`` and puts their deliveries back as due: they
are sent again with the same delivery id (the e-mail's ``Message-ID``, the
webhook's ``X-Dialwatch-Delivery``), so the bound is **at most one extra
copy per attempt that was in flight**, and those attempts are named.

Grouping: a new notice for a person who has a delivery that is pending and
not yet tried joins that delivery instead of making another, so a burst
(50 trunks down in one batch, or while a person's rate window is full)
becomes one message.

All functions take the open connection of a ``StateRepository.transaction``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, bindparam, func, insert, select, update

from monitor.store.models import (
    ATTEMPT_FAILED,
    ATTEMPT_IN_FLIGHT,
    ATTEMPT_INTERRUPTED,
    ATTEMPT_SENT,
    DELIVERY_CANCELLED,
    DELIVERY_PENDING,
    DELIVERY_SENDING,
    DELIVERY_SENT,
    Delivery,
    DeliveryAttempt,
    DeliveryIncident,
)

_DELIVERY: Table = Delivery.__table__  # type: ignore[assignment]
_LINK: Table = DeliveryIncident.__table__  # type: ignore[assignment]
_ATTEMPT: Table = DeliveryAttempt.__table__  # type: ignore[assignment]

MAX_NOTICES = 200
"""Notices one message carries at most; beyond, a new delivery starts (a digest has a size)."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing a person is told: an incident opened, escalated to them, acknowledged..."""

    kind: str
    """opened | escalated | updated | acknowledged | resolved | test"""
    incident_id: int | None
    event_id: int | None = None
    level: int | None = None
    """The escalation level (1-based) that paged them, for opened / escalated."""
    by: str | None = None
    """Who acknowledged or resolved, for those notices."""

    def to_json(self) -> dict[str, Any]:
        fields = ("incident_id", "event_id", "level", "by")
        return {"kind": self.kind} | {k: v for k in fields if (v := getattr(self, k)) is not None}


def notice_of(data: dict[str, Any]) -> Notice:
    return Notice(
        str(data["kind"]),
        data.get("incident_id"),
        data.get("event_id"),
        data.get("level"),
        data.get("by"),
    )


@dataclass(frozen=True, slots=True)
class DeliveryRow:
    id: int
    person_id: str
    kind: str
    state: str
    created_at: float
    due_at: float
    sent_at: float | None
    notices: tuple[Notice, ...]
    channels: tuple[str, ...]
    channel_index: int
    tries: int
    subject: str | None
    text: str | None
    html: str | None
    language: str | None
    reason: str

    @property
    def channel(self) -> str | None:
        """The channel the next attempt uses (None: every channel has been tried)."""
        return (
            self.channels[self.channel_index] if self.channel_index < len(self.channels) else None
        )


@dataclass(frozen=True, slots=True)
class AttemptRow:
    id: int
    delivery_id: int
    channel_id: str
    started_at: float
    ended_at: float | None
    outcome: str
    permanent: bool
    error_class: str | None
    reason: str
    provider_id: str | None
    answer: str


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery with its attempts, for the API and the incident page."""

    delivery: DeliveryRow
    attempts: tuple[AttemptRow, ...] = field(default_factory=tuple)


def _row(r: Any) -> DeliveryRow:
    return DeliveryRow(
        r.id,
        r.person_id,
        r.kind,
        r.state,
        r.created_at,
        r.due_at,
        r.sent_at,
        tuple(notice_of(n) for n in r.notices or ()),
        tuple(r.channels or ()),
        r.channel_index,
        r.tries,
        r.subject,
        r.text,
        r.html,
        r.language,
        r.reason or "",
    )


def _attempt(r: Any) -> AttemptRow:
    return AttemptRow(
        r.id,
        r.delivery_id,
        r.channel_id,
        r.started_at,
        r.ended_at,
        r.outcome,
        bool(r.permanent),
        r.error_class,
        r.reason or "",
        r.provider_id,
        r.answer or "",
    )


def add(
    conn: Connection,
    person_id: str,
    notices: Sequence[Notice],
    channels: Sequence[str],
    now: float,
    *,
    group: bool = True,
    subject: str | None = None,
    text: str | None = None,
) -> int:
    """Store ``notices`` for ``person_id``: joined to their untried pending delivery when
    ``group``, else (or when there is none) a new delivery due now. Returns its id.
    ``subject`` / ``text``: the message written already (a runbook's ``notify`` step);
    it is sent as it is, never grouped."""
    if subject is not None:
        group = False
    if not notices:
        raise ValueError("a delivery needs at least one notice")
    incidents = {n.incident_id for n in notices if n.incident_id is not None}
    if group:
        d = _DELIVERY
        waiting = conn.execute(
            select(d.c.id, d.c.kind, d.c.notices)
            .where(
                d.c.person_id == person_id,
                d.c.state == DELIVERY_PENDING,
                d.c.tries == 0,
                d.c.channel_index == 0,
                d.c.subject.is_(None),
            )
            .order_by(d.c.id)
            .limit(1)
        ).first()
        if waiting is not None and len(waiting.notices) + len(notices) <= MAX_NOTICES:
            merged = [*waiting.notices, *(n.to_json() for n in notices)]
            kinds = {n["kind"] for n in merged}
            kind = waiting.kind if len(kinds) == 1 else "digest"
            conn.execute(update(d).where(d.c.id == waiting.id).values(notices=merged, kind=kind))
            _link(conn, waiting.id, incidents)
            return int(waiting.id)
    kinds = {n.kind for n in notices}
    delivery_id = conn.execute(
        insert(_DELIVERY).values(
            person_id=person_id,
            kind=notices[0].kind if len(kinds) == 1 else "digest",
            state=DELIVERY_PENDING,
            created_at=now,
            due_at=now,
            notices=[n.to_json() for n in notices],
            channels=list(channels),
            channel_index=0,
            tries=0,
            reason="",
            subject=subject,
            text=text,
        )
    ).inserted_primary_key[0]
    _link(conn, int(delivery_id), incidents)
    return int(delivery_id)


def _link(conn: Connection, delivery_id: int, incidents: Iterable[int]) -> None:
    incidents = set(incidents)
    if not incidents:  # a customer notice, a runbook's message: nothing to look up
        return
    have = set(
        conn.execute(
            select(_LINK.c.incident_id).where(_LINK.c.delivery_id == delivery_id)
        ).scalars()
    )
    rows = [{"delivery_id": delivery_id, "incident_id": i} for i in sorted(incidents - have)]
    if rows:
        conn.execute(insert(_LINK), rows)


def due(conn: Connection, now: float, limit: int) -> list[DeliveryRow]:
    """Pending deliveries due at ``now``, oldest first."""
    d = _DELIVERY
    rows = conn.execute(
        select(d)
        .where(d.c.state == DELIVERY_PENDING, d.c.due_at <= now)
        .order_by(d.c.due_at, d.c.id)
        .limit(limit)
    )
    return [_row(r) for r in rows]


def next_due_at(conn: Connection) -> float | None:
    """When the next pending delivery is due (None: nothing is pending)."""
    d = _DELIVERY
    value = conn.execute(select(func.min(d.c.due_at)).where(d.c.state == DELIVERY_PENDING))
    found = value.scalar_one_or_none()
    return None if found is None else float(found)


def sent_since_many(
    conn: Connection, person_ids: Iterable[str], since: float
) -> dict[str, list[float]]:
    """When each delivery to each of ``person_ids`` sent after ``since`` went out (rate
    limits), in one query: person id → sorted send times."""
    wanted = sorted(set(person_ids))
    found: dict[str, list[float]] = {}
    d = _DELIVERY
    for chunk in (wanted[i : i + 500] for i in range(0, len(wanted), 500)):
        rows = conn.execute(
            select(d.c.person_id, d.c.sent_at)
            .where(d.c.person_id.in_(chunk), d.c.state == DELIVERY_SENT, d.c.sent_at > since)
            .order_by(d.c.sent_at)
        )
        for person_id, at in rows:
            found.setdefault(person_id, []).append(float(at))
    return found


def postpone(conn: Connection, delivery_id: int, until: float) -> None:
    d = _DELIVERY
    conn.execute(update(d).where(d.c.id == delivery_id).values(due_at=until))


def begin_attempt(
    conn: Connection,
    delivery: DeliveryRow,
    now: float,
    rendered: tuple[str, str, str | None, str] | None = None,
) -> int:
    """Mark ``delivery`` sending and write its ``in_flight`` attempt on its current channel;
    ``rendered`` (subject, text, html, language) fixes the message at its first attempt."""
    channel = delivery.channel
    if channel is None:
        raise ValueError(f"delivery {delivery.id} has no channel left to try")
    values: dict[str, Any] = {"state": DELIVERY_SENDING}
    if rendered is not None and delivery.subject is None:
        subject, text, html, language = rendered
        values.update(subject=subject, text=text, html=html, language=language)
    d = _DELIVERY
    conn.execute(update(d).where(d.c.id == delivery.id).values(**values))
    attempt = conn.execute(
        insert(_ATTEMPT).values(
            delivery_id=delivery.id,
            channel_id=channel,
            started_at=now,
            outcome=ATTEMPT_IN_FLIGHT,
            permanent=False,
            reason="",
            answer="",
        )
    ).inserted_primary_key[0]
    return int(attempt)


def attempts_sent(
    conn: Connection, sent: Sequence[tuple[int, int, float, str | None, str]]
) -> None:
    """Record sent attempts: (delivery id, attempt id, at, provider id, answer) each, in
    two statements however many (a burst of notices commits its outcomes together)."""
    if not sent:
        return
    conn.execute(
        update(_ATTEMPT)
        .where(_ATTEMPT.c.id == bindparam("b_attempt"))
        .values(
            ended_at=bindparam("b_at"),
            outcome=ATTEMPT_SENT,
            provider_id=bindparam("b_provider"),
            answer=bindparam("b_answer"),
        ),
        [
            {"b_attempt": a, "b_at": at, "b_provider": p, "b_answer": answer}
            for _d, a, at, p, answer in sent
        ],
    )
    d = _DELIVERY
    conn.execute(
        update(d)
        .where(d.c.id == bindparam("b_delivery"))
        .values(state=DELIVERY_SENT, sent_at=bindparam("b_at"), tries=d.c.tries + 1, reason=""),
        [{"b_delivery": delivery, "b_at": at} for delivery, _a, at, _p, _answer in sent],
    )


def attempt_failed(
    conn: Connection,
    delivery_id: int,
    attempt_id: int,
    now: float,
    *,
    reason: str,
    permanent: bool,
    error_class: str | None,
    answer: str,
    then: tuple[str, int, int, float],
) -> None:
    """Record a failed attempt; ``then`` is the delivery's next (state, channel_index, tries,
    due_at), as ``notify.fallback.after_failure`` decided."""
    conn.execute(
        update(_ATTEMPT)
        .where(_ATTEMPT.c.id == attempt_id)
        .values(
            ended_at=now,
            outcome=ATTEMPT_FAILED,
            permanent=permanent,
            error_class=error_class,
            reason=reason,
            answer=answer,
        )
    )
    state, channel_index, tries, due_at = then
    d = _DELIVERY
    conn.execute(
        update(d)
        .where(d.c.id == delivery_id)
        .values(state=state, channel_index=channel_index, tries=tries, due_at=due_at, reason=reason)
    )


def cancel(conn: Connection, delivery_id: int, reason: str) -> None:
    d = _DELIVERY
    conn.execute(
        update(d)
        .where(d.c.id == delivery_id, d.c.state == DELIVERY_PENDING)
        .values(state=DELIVERY_CANCELLED, reason=reason)
    )


def recover(conn: Connection, now: float) -> list[AttemptRow]:
    """After a restart: attempts still ``in_flight`` become ``interrupted`` and their
    deliveries are due again on the same channel. Returns the interrupted attempts."""
    a = _ATTEMPT
    stuck = [_attempt(r) for r in conn.execute(select(a).where(a.c.outcome == ATTEMPT_IN_FLIGHT))]
    if stuck:
        conn.execute(
            update(a)
            .where(a.c.outcome == ATTEMPT_IN_FLIGHT)
            .values(
                outcome=ATTEMPT_INTERRUPTED,
                ended_at=now,
                reason="the appliance stopped during this attempt; sent again with the same id",
            )
        )
    d = _DELIVERY
    conn.execute(
        update(d).where(d.c.state == DELIVERY_SENDING).values(state=DELIVERY_PENDING, due_at=now)
    )
    return stuck


def get(conn: Connection, delivery_id: int) -> DeliveryRow | None:
    r = conn.execute(select(_DELIVERY).where(_DELIVERY.c.id == delivery_id)).first()
    return None if r is None else _row(r)


def attempts(conn: Connection, delivery_ids: Sequence[int]) -> dict[int, list[AttemptRow]]:
    found: dict[int, list[AttemptRow]] = {i: [] for i in delivery_ids}
    if delivery_ids:
        a = _ATTEMPT
        for r in conn.execute(
            select(a).where(a.c.delivery_id.in_(list(delivery_ids))).order_by(a.c.id)
        ):
            found[r.delivery_id].append(_attempt(r))
    return found


def of_incident(conn: Connection, incident_id: int, limit: int = 500) -> list[DeliveryView]:
    """Every delivery about ``incident_id`` with its attempts, oldest first."""
    d = _DELIVERY
    rows = [
        _row(r)
        for r in conn.execute(
            select(d)
            .join(_LINK, _LINK.c.delivery_id == d.c.id)
            .where(_LINK.c.incident_id == incident_id)
            .order_by(d.c.id)
            .limit(limit)
        )
    ]
    tried = attempts(conn, [r.id for r in rows])
    return [DeliveryView(r, tuple(tried[r.id])) for r in rows]


def recent(conn: Connection, limit: int = 100) -> list[DeliveryView]:
    """The newest deliveries with their attempts, newest first."""
    d = _DELIVERY
    rows = [_row(r) for r in conn.execute(select(d).order_by(d.c.id.desc()).limit(limit))]
    tried = attempts(conn, [r.id for r in rows])
    return [DeliveryView(r, tuple(tried[r.id])) for r in rows]


def channel_outcomes(conn: Connection, channel_id: str, last: int) -> list[str]:
    """The outcomes of the last ``last`` finished attempts on ``channel_id``, newest first."""
    a = _ATTEMPT
    return list(
        conn.execute(
            select(a.c.outcome)
            .where(a.c.channel_id == channel_id, a.c.outcome.in_([ATTEMPT_SENT, ATTEMPT_FAILED]))
            .order_by(a.c.id.desc())
            .limit(last)
        ).scalars()
    )
