"""Configuration models shared by the loader, the engine and the probes.

Every model is strict (an unknown key is an error) and frozen. Each probe kind
defines its own target model in ``probes/<kind>.py`` by subclassing
``TargetBase``; ``probes.PROBES`` lists them, and the loader builds the
``targets`` union from that registry.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    IPvAnyNetwork,
    PositiveInt,
    field_validator,
    model_validator,
)

from core.config import LANGUAGES, Bool, Duration, StrictModel, TagKey, TargetId
from core.net.address import is_loopback, split_host_port

DAY = 86400.0


class RetentionPolicy(StrictModel):
    """How much of one kind of history the state DB keeps: by age, by count, or both.

    A row goes when it is older than ``max_age`` or beyond the newest
    ``max_rows`` of its kind, whichever deletes more; ``null`` turns that
    limit off. Each kind below has its own defaults.
    """

    max_age: Duration | None = None
    """Rows older than this are deleted; ``null``: no age limit."""
    max_rows: PositiveInt | None = None
    """At most this many rows are kept (the newest); ``null``: no count limit."""


class TransitionsRetention(RetentionPolicy):
    """Health transitions: the raw log the uptime days are rolled up from.

    A configured target's newest transition before the cutoff is kept whatever
    its age: it is the health the target had then, where its next uptime day starts.
    """

    max_age: Duration | None = 90 * DAY
    """Transitions older than this are deleted (after their days are rolled up)."""
    max_rows: PositiveInt | None = 1_000_000
    """At most this many transitions are kept (~140–200 bytes each with indexes: ~150 MB)."""


class EventsRetention(RetentionPolicy):
    """The event outbox (``event``): what subscribers were handed.

    An event no subscriber has had yet is never deleted, whatever its age or
    the count (the lowest subscriber cursor holds it; a warning names the
    subscriber that is behind).
    """

    max_age: Duration | None = 30 * DAY
    """Events older than this are deleted once every subscriber has had them."""
    max_rows: PositiveInt | None = 1_000_000
    """At most this many events are kept (~110–250 bytes each, by payload)."""


class IncidentTimelinesRetention(RetentionPolicy):
    """The timeline lines (``incident_event``) of resolved incidents; an open incident keeps all of its own."""

    max_age: Duration | None = 180 * DAY
    """Timelines of incidents resolved longer ago than this are deleted (the incident itself stays)."""
    max_rows: PositiveInt | None = 1_000_000
    """At most this many timeline lines are kept (~70–100 bytes each); the oldest lines of
    resolved incidents go first."""


class IncidentsRetention(RetentionPolicy):
    """Resolved incidents, with their members and what is left of their timeline; open ones are never deleted."""

    max_age: Duration | None = 400 * DAY
    """Incidents resolved longer ago than this are deleted: a year of reports, plus a month."""
    max_rows: PositiveInt | None = 100_000
    """At most this many resolved incidents are kept (~140 bytes each, ~85 per member)."""


class UptimeRetention(RetentionPolicy):
    """Daily uptime per target and per component (the status page shows 90 days)."""

    max_age: Duration | None = 400 * DAY
    """Days older than this are deleted; keep it longer than the status page's 90 days."""
    max_rows: PositiveInt | None = 5_000_000
    """At most this many target-days and component-days are kept (~75 bytes each; 10,000
    targets: 500 days, ~375 MB)."""


class SilencesRetention(RetentionPolicy):
    """Silences (notifications held back for a target or an incident) that have ended:
    run out (``ends_at``) or lifted early (``lifted_at``); an active one is never deleted."""

    max_age: Duration | None = 400 * DAY
    """Silences that ended longer ago than this are deleted (kept as long as incidents:
    they explain who was not told of one)."""
    max_rows: PositiveInt | None = 100_000
    """At most this many ended silences are kept (~90–120 bytes each, more with a long reason)."""


class ManualMaintenanceRetention(RetentionPolicy):
    """Maintenance windows started by hand that have ended: run out (``ends_at``) or
    ended early (``ended_at``); an open one is never deleted."""

    max_age: Duration | None = 400 * DAY
    """Windows that ended longer ago than this are deleted (kept as long as incidents and
    uptime days: they explain a day's maintenance time)."""
    max_rows: PositiveInt | None = 100_000
    """At most this many ended windows are kept (~90–120 bytes each, more with a long reason)."""


class StaffSessionsRetention(RetentionPolicy):
    """Login sessions (``staff_session``) that have ended: logged out, ended by an admin,
    or past their absolute expiry; a live one is never deleted."""

    max_age: Duration | None = 30 * DAY
    """Sessions that ended longer ago than this are deleted (the audit log keeps every
    login and logout for as long as it keeps anything)."""
    max_rows: PositiveInt | None = 100_000
    """At most this many ended sessions are kept (~250–500 bytes each, by user agent)."""


class RunbookRunsRetention(RetentionPolicy):
    """Runbook runs that have ended (succeeded, failed, aborted, rejected, rolled back,
    dropped) with every attempt of their steps; an active or interrupted run is never
    deleted."""

    max_age: Duration | None = 400 * DAY
    """Runs that ended longer ago than this are deleted (kept as long as incidents: they
    say what was done about one)."""
    max_rows: PositiveInt | None = 100_000
    """At most this many ended runs are kept (each with its steps' output, up to 64 KiB
    a step)."""


class AuditRetention(RetentionPolicy):
    """The audit log (``audit_entry``): who did what, with what result.

    Only the oldest entries go, as a run of the chain from its start, and the
    hash of the last one deleted is kept as the chain's anchor, so
    ``dialwatch audit verify`` still checks what remains. An entry whose hash
    does not hold is never deleted: pruning stops there, and the log says so.
    """

    max_age: Duration | None = 365 * DAY
    """Entries older than this are deleted."""
    max_rows: PositiveInt | None = None
    """At most this many entries are kept; ``null`` (the default): no count limit, so nobody
    can push evidence out of the log by making entries (failed logins, say)."""


class RetentionConfig(StrictModel):
    """What the retention job keeps of the state DB's history, and how it deletes.

    One job, run every ``every``, rolls up the uptime days, then deletes of
    each kind what its policy no longer keeps, ``batch`` rows per transaction
    (docs/storage.md, "Retention"). Each kind takes ``max_age`` and
    ``max_rows``; ``null`` turns that limit off.
    """

    transitions: TransitionsRetention = Field(default_factory=TransitionsRetention)
    """Health transitions."""
    events: EventsRetention = Field(default_factory=EventsRetention)
    """The event outbox, once every subscriber has had its events."""
    incident_timelines: IncidentTimelinesRetention = Field(
        default_factory=IncidentTimelinesRetention
    )
    """Timelines of resolved incidents."""
    incidents: IncidentsRetention = Field(default_factory=IncidentsRetention)
    """Resolved incidents."""
    uptime: UptimeRetention = Field(default_factory=UptimeRetention)
    """Daily uptime of targets and components."""
    silences: SilencesRetention = Field(default_factory=SilencesRetention)
    """Silences that have ended."""
    manual_maintenance: ManualMaintenanceRetention = Field(
        default_factory=ManualMaintenanceRetention
    )
    """Maintenance windows started by hand that have ended."""
    audit: AuditRetention = Field(default_factory=AuditRetention)
    """The audit log."""
    staff_sessions: StaffSessionsRetention = Field(default_factory=StaffSessionsRetention)
    """Login sessions that have ended or expired."""
    runbook_runs: RunbookRunsRetention = Field(default_factory=RunbookRunsRetention)
    """Runbook runs that have ended, with their steps."""
    every: Duration = 3600.0
    """How often the job runs (the first run is a minute after start)."""
    batch: int = Field(default=1000, ge=10, le=100_000)
    """Rows deleted per transaction: the engine's own writes wait at most one batch."""


class StorageConfig(StrictModel):
    """Where state and the embedded metrics live."""

    data_dir: str | None = None
    """Data directory; ``--data`` and ``DIALWATCH_DATA`` win over this."""
    database_url: str | None = None
    """SQLAlchemy URL of the state DB; default ``sqlite:///<data_dir>/state.db``."""
    raw_retention: Duration = 3 * 3600.0
    """How long raw points are kept in the embedded metrics store."""
    rollup_1m_retention: Duration = 30 * 86400.0
    """How long 1-minute rollups are kept."""
    rollup_1h_retention: Duration = 365 * 86400.0
    """How long 1-hour rollups are kept."""
    max_bytes: int = 2 * 1024**3
    """Disk budget for the embedded metrics store; oldest raw data goes first."""
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    """How long the state DB keeps transitions, events, incidents, uptime days, silences,
    maintenance windows and the audit log."""


class WebConfig(StrictModel):
    """The web server: staff console, API and public status page.

    Every staff page and API call needs a login session or an API token
    (``dialwatch token create``), on any listener; the status page,
    ``/healthz`` and static files are public.
    """

    listen: str = "127.0.0.1:8080"
    """HOST:PORT the web server listens on."""
    token: str | None = None
    """Removed: a config file that sets it is rejected (``monitor.config.removed``) with a
    pointer to ``dialwatch token create``; staff log in. Always unset when loaded from a
    file (the field stays while ``monitor.redact`` still reads it)."""
    public_status: Bool = True
    """Serve the public status page to anyone; ``false``: staff only."""
    base_url: str | None = None
    """The address staff and customers use, e.g. ``https://noc.example.cn``: requests
    must name its host, and browsers' Origin must match it. Required (or
    ``allowed_hosts``) when ``listen`` is not a loopback address."""
    allowed_hosts: list[str] = Field(default_factory=list)
    """Host names (``name`` or ``name:port``) the console answers to besides
    ``base_url``'s. On a loopback listener the default is 127.0.0.1, ::1 and
    localhost with the listening port."""
    trusted_proxies: list[IPvAnyNetwork] = Field(default_factory=list)
    """Reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed (for
    the audit address, login rate limits and Secure cookies); from anyone else
    those headers are ignored."""
    require_2fa_for: list[Literal["viewer", "operator", "admin"]] = Field(default_factory=list)
    """Roles that must use a second factor (TOTP) to log in, e.g. ``[admin]``."""
    session_idle: Duration = 8 * 3600.0
    """A login session ends after this long without a request (wall screens excepted)."""
    session_max_age: Duration = 24 * 3600.0
    """A login session ends this long after login, however busy."""

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host name")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or a fragment")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _hosts_off_loopback(self) -> WebConfig:
        try:
            host, _port = split_host_port(self.listen)
        except ValueError:
            return self  # the listen check elsewhere says what is wrong
        if not is_loopback(host) and self.base_url is None and not self.allowed_hosts:
            raise ValueError(
                f"web.listen {self.listen} is not a loopback address: set web.base_url "
                "(or web.allowed_hosts) to the address people use, so requests naming "
                "another host (DNS rebinding) are refused"
            )
        return self


class ComponentConfig(StrictModel):
    """A line on the public status page, made of targets."""

    id: TargetId
    """Unique name of the component (same form as a target id)."""
    name: dict[str, str]
    """Per language: ``{zh-CN: 外呼线路, en: Outbound calling}``. Every language the pages
    offer (zh-CN and en) is required: the status page has a switch between them."""
    description: dict[str, str] = Field(default_factory=dict)
    """Per language, one line under the name on the status page; a language left out
    shows the other one."""
    targets: list[TargetId] = Field(default_factory=list)
    """Target ids that make up this component."""
    selector: dict[TagKey, str] = Field(default_factory=dict)
    """Tag selector: every target whose tags include all of these."""
    notify: Literal["auto", "manual"] | None = None
    """How its subscribers are told (``customers.notify`` when left out): ``auto``, after
    ``notify_delay`` of trouble; ``manual``, only when staff publish a customer update."""
    notify_delay: Duration | None = None
    """``auto``: how long the trouble lasts before the first notice (``customers.delay``
    when left out)."""

    @field_validator("name")
    @classmethod
    def _name_in_every_language(cls, value: dict[str, str]) -> dict[str, str]:
        _known_languages(value)
        missing = [lang for lang in LANGUAGES if not value.get(lang, "").strip()]
        if missing:
            raise ValueError(
                f"needs a name in every language the pages offer ({', '.join(LANGUAGES)}); "
                f"missing: {', '.join(missing)}"
            )
        return value

    @field_validator("description")
    @classmethod
    def _description_languages(cls, value: dict[str, str]) -> dict[str, str]:
        return _known_languages(value)


def _known_languages(texts: dict[str, str]) -> dict[str, str]:
    unknown = [key for key in texts if key not in LANGUAGES]
    if unknown:
        raise ValueError(
            f"unknown language {', '.join(map(repr, unknown))}; allowed: {', '.join(LANGUAGES)}"
        )
    return texts
