"""State DB tables (SQLAlchemy 2.0): health, transitions, incidents, probe state, events, uptime.

The in-memory health of every target is the truth while the engine runs;
these tables make it survive a restart. Transitions and incidents are written
at once (rare, must survive a crash); the latest observation per target is
checkpointed in batches. Schema changes go through Alembic migrations in
``monitor/store/migrations``.

Times are stored as epoch seconds (float, UTC) so SQLite and PostgreSQL agree.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

# Named constraints: Alembic's SQLite batch mode can only drop or alter a
# constraint it can name, and the names then match on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class TargetState(Base):
    """Current health and last observation of one target."""

    __tablename__ = "target_state"

    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    health: Mapped[str] = mapped_column(
        String(16), index=True
    )  # up|degraded|down|unknown|maintenance
    since: Mapped[float] = mapped_column(Float)
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    affected_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    machine: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """The health state machine's full state (flap history...), as it serialises itself."""
    last_status: Mapped[str | None] = mapped_column(String(8), nullable=True)
    last_detail: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_latency: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_observed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Flat ``{"measurement.field[tag=v]": value}`` of the last observation, for the dashboard."""
    probes_run: Mapped[int] = mapped_column(Integer, default=0)
    probes_failed: Mapped[int] = mapped_column(Integer, default=0)
    probes_errored: Mapped[int] = mapped_column(Integer, default=0)
    config_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Transition(Base):
    """A change of health of one target."""

    __tablename__ = "transition"
    __table_args__ = (Index("ix_transition_target_at", "target_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float, index=True)
    from_health: Mapped[str] = mapped_column(String(16))
    to_health: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    flapping: Mapped[bool] = mapped_column(Boolean, default=False)
    affected_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    incident_id: Mapped[int | None] = mapped_column(
        ForeignKey("incident.id"), nullable=True, index=True
    )
    """Indexed so that deleting an old incident finds the transitions pointing at it (retention)."""


INCIDENT_OPEN = "open"
INCIDENT_RESOLVED = "resolved"
INCIDENT_STATES = (INCIDENT_OPEN, INCIDENT_RESOLVED)
"""The values of ``incident.state``."""


class Incident(Base):
    """A period of trouble for one or more targets."""

    __tablename__ = "incident"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    state: Mapped[str] = mapped_column(String(16), index=True)  # open | resolved
    opened_at: Mapped[float] = mapped_column(Float, index=True)
    resolved_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    """Indexed: retention deletes resolved incidents (and their timelines) oldest first."""
    root_target_id: Mapped[str] = mapped_column(String(64))
    """The target whose failure opened it; dependants join it."""
    title: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16), default="down")  # down | degraded
    cause: Mapped[str | None] = mapped_column(Text, nullable=True)
    eta: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Expected recovery time (epoch seconds), set by staff or runbooks."""
    summary: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Customer-facing summary per language: ``{"zh-CN": "...", "en": "..."}``."""
    acknowledged_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class IncidentTarget(Base):
    """Membership of a target in an incident (root or affected)."""

    __tablename__ = "incident_target"

    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)
    role: Mapped[str] = mapped_column(String(16), default="root")  # root | affected
    joined_at: Mapped[float] = mapped_column(Float)
    recovered_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class IncidentEvent(Base):
    """One line of an incident's timeline."""

    __tablename__ = "incident_event"
    __table_args__ = (Index("ix_incident_event_incident_at", "incident_id", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id"))
    at: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(
        String(32)
    )  # opened|joined|transition|recovered|resolved|note
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    text: Mapped[str] = mapped_column(Text, default="")


class ProbeState(Base):
    """Per-target probe memory (counters for rates, file offsets) that must survive a restart."""

    __tablename__ = "probe_state"

    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    updated_at: Mapped[float] = mapped_column(Float)


class Counter(Base):
    """Appliance-wide counters restored on start (probes run, notifications sent...)."""

    __tablename__ = "counter"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    # 64-bit: "probes run" grows by ~1,000/s at 10,000 targets and would pass 2**31 in weeks.
    value: Mapped[int] = mapped_column(BigInteger, default=0)


# -- events and what incident actions record (migration 0002_event_outbox) -------
# SQLite gives a rowid (and so an autoincrement) only to an INTEGER PRIMARY KEY;
# elsewhere the event id is 64-bit, since it counts every transition for ever.
_EVENT_ID = BigInteger().with_variant(Integer, "sqlite")


class EventRecord(Base):
    """The outbox: one row per thing that happened (a transition, an incident action).

    Written in the same transaction as the change it records; subscribers read
    it in id order (``monitor.events``, ``monitor.dispatcher``). Not the
    incident timeline (``incident_event``), which is for people to read.
    No foreign keys: events outlive what they name (history is pruned by age).
    """

    __tablename__ = "event"
    # Never reuse an id, even when retention has pruned every event: a
    # subscriber's cursor would otherwise skip the new ones.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(_EVENT_ID, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    """Who did it: ``engine``, ``user:alice``, ``rule:trunk-failover``, ``cli``..."""
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class EventCursor(Base):
    """How far one subscriber has handled the events (the id of the last one)."""

    __tablename__ = "event_cursor"

    subscriber: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[float] = mapped_column(Float)


class CustomerUpdate(Base):
    """A published, customer-visible message under an incident (never internal notes)."""

    __tablename__ = "customer_update"
    __table_args__ = (Index("ix_customer_update_incident_at", "incident_id", "published_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    # Deleted with its incident (retention deletes resolved incidents by age).
    incident_id: Mapped[int] = mapped_column(ForeignKey("incident.id", ondelete="CASCADE"))
    published_at: Mapped[float] = mapped_column(Float)
    published_by: Mapped[str] = mapped_column(String(128))
    text: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """Per language: ``{"zh-CN": "...", "en": "..."}``."""


class Silence(Base):
    """Notifications about a target or an incident held back until ``ends_at``."""

    __tablename__ = "silence"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    """No foreign key: a silence outlives its incident. Pruned by the retention job
    once it has ended (``storage.retention.silences``)."""
    component_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    """Set for a component's silence (migration 0004)."""
    starts_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    lifted_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    lifted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ManualMaintenance(Base):
    """A maintenance window started by hand (config windows live in the config).

    Pruned by the retention job once it has ended (``storage.retention.manual_maintenance``).
    """

    __tablename__ = "manual_maintenance"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    starts_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """When it ends by itself; None: when someone ends it."""
    created_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class UptimeDay(Base):
    """Seconds one target or component spent in each health on one day (site timezone).

    Rolled up from transitions by the retention job before they are pruned,
    and kept longer (``storage.retention.uptime``): the status page's 90 days.
    """

    __tablename__ = "uptime_day"
    # Without rowid (SQLite): the key is the row, so 4 million target-days are
    # not stored twice (table plus key index).
    __table_args__ = {"sqlite_with_rowid": False}

    subject_kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # target | component
    subject_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    up_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    degraded_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    down_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    maintenance_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    unknown_seconds: Mapped[float] = mapped_column(Float, default=0.0)


# -- the staff console: people, their sessions and tokens, the audit log ---------
# (migration 0004_staff_console)
ROLES = ("viewer", "operator", "admin")
"""Staff roles, lowest first: each may do everything the ones before it may."""


class StaffUser(Base):
    """A person who logs into the console (``dialwatch user add``, the setup page)."""

    __tablename__ = "staff_user"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    """Login name, lower case (``monitor.staff.users.normal_name``)."""
    display_name: Mapped[str] = mapped_column(Text, default="")
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(Text)
    """An Argon2id PHC string; never a plain or reversible password."""
    password_changed_at: Mapped[float] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128))
    disabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    totp_secret: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The TOTP seed, encrypted with the appliance's key file (``core.secret_box``)."""
    totp_enabled_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """None while the second factor is off or enrolled but not yet confirmed."""
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    """The time step of the last accepted code: a code is never accepted twice."""
    recovery_codes: Mapped[list[Any]] = mapped_column(default=list)
    """SHA-256 hex of each unused recovery code; a used code is removed."""
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)


class StaffSession(Base):
    """A server-side login session; the cookie holds a random value, this row its SHA-256."""

    __tablename__ = "staff_session"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    """SHA-256 hex of the cookie value: a copy of the DB does not log anyone in."""
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    stage: Mapped[str] = mapped_column(String(16))
    """``password`` (the second factor is still to come) or ``full``."""
    created_at: Mapped[float] = mapped_column(Float)
    last_seen_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float, index=True)
    """The absolute end; idle expiry is counted from ``last_seen_at``."""
    kiosk: Mapped[bool] = mapped_column(Boolean, default=False)
    """A wall-screen session opened with a viewer token: exempt from idle expiry."""
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(Text, default="")
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class ApiToken(Base):
    """An API token: 32 random bytes shown once, stored as SHA-256 (checked on every call)."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(64), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    """The token's first characters, shown in lists so people can tell tokens apart."""
    role: Mapped[str] = mapped_column(String(16))
    """At most the owner's role; the lower of the two applies on each call."""
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_used_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """Written at most once a minute per token."""
    revoked_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


_AUDIT_ID = BigInteger().with_variant(Integer, "sqlite")


class AuditEntry(Base):
    """One line of the audit log: who did what, from where, with what result.

    Append-only and hash-chained: ``hash`` is SHA-256 over ``prev_hash`` and
    this row's fields (``monitor.audit``), so editing or deleting a row breaks
    the chain at that row.
    """

    __tablename__ = "audit_entry"
    # The audit page filters by actor or action and shows the newest first: each
    # composite index serves both the filter and the order (migration 0005,
    # bench/audit_page.py); ``at`` alone serves the unfiltered page and time ranges.
    __table_args__ = (
        Index("ix_audit_entry_actor_at", "actor", "at"),
        Index("ix_audit_entry_action_at", "action", "at"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(_AUDIT_ID, primary_key=True, autoincrement=True)
    at: Mapped[float] = mapped_column(Float, index=True)
    actor: Mapped[str] = mapped_column(String(128))
    """``user:alice``, ``token:7``, ``system``, ``rule:trunk-failover``, ``cli``..."""
    address: Mapped[str] = mapped_column(String(64), default="")
    action: Mapped[str] = mapped_column(String(64))
    object: Mapped[str] = mapped_column(Text, default="")
    result: Mapped[str] = mapped_column(String(16))
    """``ok``, ``denied``, ``failed`` or ``error``."""
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    count: Mapped[int] = mapped_column(Integer, default=1)
    """How many occurrences this entry stands for (merged exception entries)."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditAnchor(Base):
    """Where the chain starts after pruning: the hash of the last pruned entry."""

    __tablename__ = "audit_anchor"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    """Always 1: one anchor."""
    through_id: Mapped[int] = mapped_column(BigInteger)
    """The id of the last pruned entry (the first kept one has a larger id)."""
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[float] = mapped_column(Float)


# -- paging (notify/: on-call pages, the delivery outbox) -------------------------------------
PAGE_ARMED = "armed"
"""A rule with ``for:`` selected the incident; paging starts if the hold lasts."""
PAGE_PAGING = "paging"
PAGE_ACKNOWLEDGED = "acknowledged"
PAGE_ENDED = "ended"
"""Resolved, merged into another incident, or the hold broke: nothing more is sent."""


class Page(Base):
    """One incident paged under one escalation policy (a rule's ``escalate:`` action)."""

    __tablename__ = "page"
    __table_args__ = (Index("ix_page_incident_policy", "incident_id", "policy_id", unique=True),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(Integer)
    """No foreign key: the page's record outlives the incident until retention."""
    rule_id: Mapped[str] = mapped_column(String(64))
    policy_id: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str] = mapped_column(String(64))
    """The member whose hold armed the rule."""
    state: Mapped[str] = mapped_column(String(16), index=True)
    hold_since: Mapped[float] = mapped_column(Float)
    """When the target entered the health the rule selected (its ``for:`` counts from here)."""
    check_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    """When to look again: the end of the hold (armed) or the next level (paging)."""
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    made: Mapped[list[Any]] = mapped_column(default=list)
    """The notices made so far: ``[[round, level, person], ...]`` (what escalation needs)."""
    paged: Mapped[list[Any]] = mapped_column(default=list)
    """Everyone paged so far (person ids): they hear the acknowledgement and the resolution."""


DELIVERY_PENDING = "pending"
DELIVERY_SENDING = "sending"
DELIVERY_SENT = "sent"
DELIVERY_FAILED = "failed"
DELIVERY_CANCELLED = "cancelled"


class Delivery(Base):
    """One message to one person: a row in the outbox before anything is sent.

    It may carry several notices (grouped: 50 trunks failing together are one
    message); it goes through the person's channels in order, each attempt a
    ``delivery_attempt`` row.
    """

    __tablename__ = "delivery"
    __table_args__ = (
        Index("ix_delivery_state_due", "state", "due_at"),
        Index("ix_delivery_person_state", "person_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    person_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    """opened | escalated | updated | acknowledged | resolved | test"""
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float)
    due_at: Mapped[float] = mapped_column(Float)
    """Not sent before this: now, a retry's back-off, or the end of the person's rate window."""
    sent_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    notices: Mapped[list[Any]] = mapped_column(default=list)
    """What the message tells: ``[{incident_id, event_id, kind, level, target_id}, ...]``."""
    channels: Mapped[list[Any]] = mapped_column(default=list)
    """The channel ids to try, in order (the person's contact list when it was made)."""
    channel_index: Mapped[int] = mapped_column(Integer, default=0)
    tries: Mapped[int] = mapped_column(Integer, default=0)
    """Attempts on the current channel."""
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    """The rendered message, fixed at its first attempt so every resend is the same."""
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    html: Mapped[str | None] = mapped_column(Text, nullable=True)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    """Why it failed or was cancelled; the last attempt's reason while it is being retried."""


class DeliveryIncident(Base):
    """Which incidents a delivery is about (``GET /api/v1/deliveries?incident=ID``)."""

    __tablename__ = "delivery_incident"

    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), primary_key=True
    )
    incident_id: Mapped[int] = mapped_column(Integer, primary_key=True, index=True)


ATTEMPT_IN_FLIGHT = "in_flight"
ATTEMPT_SENT = "sent"
ATTEMPT_FAILED = "failed"
ATTEMPT_INTERRUPTED = "interrupted"
"""The appliance stopped during the attempt: the provider may or may not have it."""


class DeliveryAttempt(Base):
    """One try of one delivery over one channel, written before the send and after it."""

    __tablename__ = "delivery_attempt"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), index=True
    )
    channel_id: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    permanent: Mapped[bool] = mapped_column(Boolean, default=False)
    error_class: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    provider_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    answer: Mapped[str] = mapped_column(Text, default="")
    """What the provider said (``250 2.0.0 Ok: queued as ...``, ``{"errcode":310000,...}``)."""


class OncallOverride(Base):
    """Someone covers a schedule for a while ("Li covers Zhang on Friday"), made in the console."""

    __tablename__ = "oncall_override"
    __table_args__ = (Index("ix_oncall_override_schedule_ends", "schedule_id", "ends_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    schedule_id: Mapped[str] = mapped_column(String(64))
    person_id: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[float] = mapped_column(Float)
    ends_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text, default="")
    removed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    removed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class PushSubscription(Base):
    """A browser's web push subscription, made by a console user on their account page.

    Pushes for that user go to every one of their subscriptions; a push service that
    answers 404 or 410 for one means the browser dropped it, and the row is deleted.
    """

    __tablename__ = "push_subscription"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("staff_user.id", ondelete="CASCADE"), index=True
    )
    endpoint: Mapped[str] = mapped_column(String(1024), unique=True)
    """The push service URL the browser gave (``PushSubscription.endpoint``)."""
    p256dh: Mapped[str] = mapped_column(String(128))
    """The browser's P-256 public key, URL-safe base64 (``keys.p256dh``)."""
    auth: Mapped[str] = mapped_column(String(64))
    """The browser's 16-byte auth secret, URL-safe base64 (``keys.auth``)."""
    created_at: Mapped[float] = mapped_column(Float)
    last_success_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """When a push service last accepted a message for it."""
    user_agent: Mapped[str] = mapped_column(String(200), default="")
    """A label for the user's list (the browser's User-Agent, shortened)."""


class FailoverMember(Base):
    """What Dialwatch wants for one member of a trunk failover group in the proxy, and why.

    A row exists once Dialwatch took the member out (or put it back); no row means
    "active, as configured". Kept so a restart remembers which trunks it took out and
    since when, so failback still waits for stable recovery and is never skipped.
    """

    __tablename__ = "failover_member"

    group_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    target_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    wanted: Mapped[str] = mapped_column(String(16))
    """``active`` or ``inactive``."""
    changed_at: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(500), default="")
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Who approved putting it back (``failback: approve``), until it is back."""
    approved_at: Mapped[float | None] = mapped_column(Float, nullable=True)


RUN_ARMED = "armed"
"""Started by a rule with a ``for:`` that has not elapsed yet (``check_at``)."""
RUN_PENDING_APPROVAL = "pending_approval"
"""Started by a rule in ``mode: approve``: waits for a person to approve the start."""
RUN_QUEUED = "queued"
RUN_RUNNING = "running"
RUN_WAITING = "waiting"
"""A step waits for a person (``approve``, ``manual``)."""
RUN_INTERRUPTED = "interrupted"
"""The appliance stopped while a step ran: waits for an operator to resume, roll back
or abort; never re-run by itself."""
RUN_SUCCEEDED = "succeeded"
RUN_FAILED = "failed"
RUN_ABORTED = "aborted"
RUN_REJECTED = "rejected"
RUN_ROLLED_BACK = "rolled_back"
RUN_DROPPED = "dropped"
"""Armed by a rule whose hold broke before its ``for:`` elapsed: never started."""
RUN_ACTIVE_STATES = (
    RUN_ARMED,
    RUN_PENDING_APPROVAL,
    RUN_QUEUED,
    RUN_RUNNING,
    RUN_WAITING,
    RUN_INTERRUPTED,
)
"""States in which a run holds its (runbook, target): one such run at a time."""


class RunbookRun(Base):
    """One execution of a runbook: who or which rule started it, for which target and
    incident, with what parameters, and where it is."""

    __tablename__ = "runbook_run"
    __table_args__ = (Index("ix_runbook_run_runbook_target", "runbook_id", "target_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    runbook_id: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    rule_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    started_by: Mapped[str] = mapped_column(String(128))
    """``user:<name>``, ``token:<id>`` or ``rule:<id>``."""
    started_user: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """The console user behind ``started_by`` (a token's owner too); None for a rule.
    That user cannot approve the run (four eyes)."""
    state: Mapped[str] = mapped_column(String(24), index=True)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    phase: Mapped[str] = mapped_column(String(16), default="main")
    """``main`` or ``rollback``: which list of steps ``position`` is in."""
    position: Mapped[int] = mapped_column(Integer, default=0)
    """The step to run next (the one running, waiting or interrupted)."""
    created_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    check_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
    """Armed runs: when the rule's ``for:`` ends."""
    hold_since: Mapped[float | None] = mapped_column(Float, nullable=True)
    hold_health: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """Armed runs: the health the hold is in (the ``for:`` counts while it stays)."""
    requested: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """What a person asked of a running run (``abort``); the engine acts on it."""
    error: Mapped[str] = mapped_column(Text, default="")
    """Why it ended as it did (or was not started), one sentence."""
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    """Who approved or rejected the start (``mode: approve``)."""


class RunbookStep(Base):
    """One attempt of one step of a run, with its result and output (secrets masked)."""

    __tablename__ = "runbook_step"
    __table_args__ = (Index("ix_runbook_step_run", "run_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(Integer)
    phase: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer)
    step_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    state: Mapped[str] = mapped_column(String(16))
    """``running``, ``waiting``, ``succeeded``, ``failed``, ``timed_out``,
    ``interrupted``, ``skipped``."""
    started_at: Mapped[float] = mapped_column(Float)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    summary: Mapped[str] = mapped_column(String(1000), default="")
    output: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    """What the step gave later steps (``steps.<id>.data``), kept for a resume."""
    waiting_for: Mapped[str | None] = mapped_column(String(16), nullable=True)
    """``approve`` or ``manual`` while a person is asked."""
    role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    prompt: Mapped[str] = mapped_column(Text, default="")
    decision: Mapped[str | None] = mapped_column(String(16), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    decided_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    note: Mapped[str] = mapped_column(Text, default="")


SUBSCRIBER_PENDING = "pending"
"""Asked to subscribe, not confirmed yet (the e-mail link, the SMS code)."""
SUBSCRIBER_ACTIVE = "active"
SUBSCRIBER_UNSUBSCRIBED = "unsubscribed"
SUBSCRIBER_RETIRED = "retired"
"""The address bounced or the push endpoint is gone: no more notices, counted."""


class Subscriber(Base):
    """A customer who asked to hear about components of the status page.

    The address (e-mail, phone number, push endpoint) is personal data: stored sealed
    with the appliance's key file, found again by a keyed digest, shown masked.
    """

    __tablename__ = "subscriber"
    __table_args__ = (
        Index("ix_subscriber_channel_digest", "channel", "address_digest", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(16))
    """``email``, ``sms`` or ``webpush``."""
    address_sealed: Mapped[str] = mapped_column(Text)
    address_digest: Mapped[str] = mapped_column(String(64))
    """HMAC-SHA256 of the normalised address with a key derived from the key file."""
    masked: Mapped[str] = mapped_column(String(128))
    """What the console shows (``z***@example.cn``, ``+86 138****8000``)."""
    language: Mapped[str] = mapped_column(String(8))
    components: Mapped[list[Any]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[float] = mapped_column(Float)
    confirmed_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    ended_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    """When it was unsubscribed or retired."""
    reason: Mapped[str] = mapped_column(String(500), default="")
    """Why it was retired (the bounce, the push service's 410)."""
    failures: Mapped[int] = mapped_column(Integer, default=0)
    code_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """An SMS verification code waiting (keyed digest), until confirmed."""
    code_expires_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    code_tries: Mapped[int] = mapped_column(Integer, default=0)
    codes_sent: Mapped[list[Any]] = mapped_column(default=list)
    """When verification codes were sent in the last day (the per-number daily cap)."""


class CustomerMaintenanceMark(Base):
    """A maintenance notice stage sent to a component's subscribers (``notify.customer_notices``):
    kept so a restart or a second tick never sends it again."""

    __tablename__ = "customer_maintenance_mark"

    component_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[float] = mapped_column(Float, primary_key=True)
    stage: Mapped[str] = mapped_column(String(32), primary_key=True)
    """``ahead``, ``start`` or ``end``."""
    at: Mapped[float] = mapped_column(Float)


class CustomerThread(Base):
    """What one subscriber has heard about one component, and when to look again
    (``notify.customer_policy.Thread``, kept so a restart neither repeats nor forgets)."""

    __tablename__ = "customer_thread"

    subscriber_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    component_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    check_at: Mapped[float | None] = mapped_column(Float, nullable=True, index=True)
