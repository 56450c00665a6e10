"""The ``dialer`` target model: where the calls come from, the window, the thresholds.

``source`` is a union told apart by its ``type`` key (``sql``: a CDR table
read through SQLAlchemy; ``csv``: Asterisk's ``Master.csv`` followed like
``tail -F``). Sources that read something else (AMI, HTTP) add their own
model to the union and their entry to ``probes.dialer.SOURCES``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from core.config import (
    Duration,
    FieldValueError,
    Interval,
    StrictModel,
    TargetBase,
    Timeout,
    Timezone,
)
from probes.dialer.queue_config import AmiSource, HttpSource
from probes.dialer.queues import QUEUE_RULES
from probes.thresholds import Limit, Rule, resolve

DIALER_RULES: tuple[Rule, ...] = (
    Rule("loss_rate", "{subject} loss rate", "%", doc="attempts not connected ÷ attempts (呼损率)"),
    Rule(
        "system_loss_rate",
        "{subject} system loss rate",
        "%",
        Limit(warn=5, fail=15),
        doc="attempts lost to the network or the system ÷ attempts",
    ),
    Rule(
        "callee_loss_rate",
        "{subject} no-answer/busy rate",
        "%",
        doc="attempts lost to no answer, busy or rejection ÷ attempts",
    ),
    Rule("asr", "{subject} ASR", "%", lower_is_worse=True, doc="answered ÷ attempts"),
    Rule("acd", "{subject} ACD", "s", lower_is_worse=True, doc="mean billsec of answered calls"),
    Rule(
        "abandon_rate",
        "{subject} abandon rate",
        "%",
        Limit(warn=2, fail=3),
        doc="answered calls dropped before an agent was connected ÷ answered",
    ),
    Rule(
        "calls_per_minute",
        "{subject} call rate",
        "calls/min",
        lower_is_worse=True,
        doc="attempts ÷ window minutes (overall only)",
    ),
)
"""Every metric ``thresholds:`` accepts, with its default limits. Rates are percent (0–100)."""

DEFAULT_TRUNK_PATTERN = r"^(?:PJSIP|SIP|IAX2|DAHDI)/(.+)-[0-9a-fA-F]+$"
"""``PJSIP/trunk-a-0000001b`` -> ``trunk-a``: technology, the endpoint name, Asterisk's per-call suffix."""

MASTER_CSV_FIELDS: tuple[str, ...] = (
    "accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
    "lastdata", "start", "answer", "end", "duration", "billsec", "disposition", "amaflags",
    "uniqueid", "userfield",
)  # fmt: skip
"""Column order of Asterisk's ``cdr_csv`` (``Master.csv``); ``uniqueid`` and ``userfield``
are written only with ``loguniqueid``/``loguserfield`` (on by default in ``cdr.conf``)."""


class CdrColumns(StrictModel):
    """Which column holds what. Defaults follow Asterisk's ``cdr`` table."""

    calldate: str = "calldate"
    """When the call started (the window is over this column)."""
    disposition: str = "disposition"
    """``ANSWERED``, ``NO ANSWER``, ``BUSY``, ``FAILED``, ``CONGESTION`` (also ``CHANUNAVAIL``, ``CANCEL``)."""
    trunk: str = "dstchannel"
    """The channel the trunk name is taken from (with ``trunk_pattern``)."""
    billsec: str = "billsec"
    """Seconds from answer to hangup."""
    hangupcause: str | None = None
    """Q.850 cause (or SIP status) column, if the dialer writes one; it refines the disposition."""


class AbandonRule(StrictModel):
    """How an answered CDR row shows that no agent was ever connected.

    An answered row is abandoned when its ``column`` holds one of ``values``
    (compared without case) and, if ``max_billsec`` is set, it lasted at most
    that many seconds. The default reads Asterisk's own columns: the call's
    last application was ``Queue`` and it ended within 5 s — the callee
    answered, waited in the queue and hung up. If the dialer marks drops
    itself, point at that column instead: ``{column: userfield, values: [DROP], max_billsec: null}``.
    """

    column: str = "lastapp"
    """The column to read."""
    values: list[str] = Field(default_factory=lambda: ["Queue"], min_length=1)
    """Values of ``column`` that mean "waiting for an agent" (or "dropped")."""
    max_billsec: float | None = 5.0
    """Only rows that lasted at most this many seconds; ``null`` for any length."""


class CdrSourceBase(StrictModel):
    """What every CDR source shares: columns, the CDR clock, trunk names, abandon rule."""

    timezone: Timezone | None = None
    """IANA zone the CDR clock writes in (Asterisk writes local time); default the site's ``timezone``."""
    trunk_pattern: str = DEFAULT_TRUNK_PATTERN
    """Regular expression on the trunk column; its first group is the trunk name. Rows that
    do not match count under trunk ``unknown``. It must not take the name from Asterisk's
    per-call suffix (``-0000001b``): ``aggregate: sql`` counts calls differing only in it together."""
    abandon: AbandonRule | None = Field(default_factory=AbandonRule)
    """How an answered row shows it was dropped before an agent; ``null``: abandon rate not measured."""

    @field_validator("trunk_pattern")
    @classmethod
    def _pattern(cls, value: str) -> str:
        try:
            compiled = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from None
        if compiled.groups < 1:
            raise ValueError("needs a group for the trunk name, e.g. ^PJSIP/(.+)-[0-9a-f]+$")
        return value


def hide_password(dsn: str) -> str:
    """The DSN with its password (if any) shown as ``***``."""
    scheme, sep, rest = dsn.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return dsn
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*(\.[A-Za-z_][A-Za-z0-9_$]*)?$")


class SqlSource(CdrSourceBase):
    """A CDR table in a database, read through SQLAlchemy each poll."""

    type: Literal["sql"]
    dsn: str
    """SQLAlchemy URL (``postgresql+psycopg://user:pw@host/asteriskcdrdb``,
    ``mysql+pymysql://…``, ``sqlite:///…``). Write it as ``${file:…}`` or ``${ENV}`` so the
    password stays a secret."""
    table: str = "cdr"
    """The CDR table (``schema.table`` allowed)."""
    columns: CdrColumns = Field(default_factory=CdrColumns)
    """Column mapping; defaults are Asterisk's ``cdr`` table."""
    aggregate: Literal["sql", "rows"] = "sql"
    """``sql``: the database counts (GROUP BY) and returns a few rows; ``rows``: fetch the
    window's rows and count them here (same numbers, more traffic and CPU)."""

    def __repr_args__(self) -> Any:
        # A DSN written literally in the YAML carries its password; repr() ends up in logs.
        for name, value in super().__repr_args__():
            yield name, (hide_password(value) if name == "dsn" and value != "***" else value)

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        if not _IDENTIFIER.match(value):
            raise ValueError("must be a table name like cdr or asterisk.cdr")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: CdrColumns) -> CdrColumns:
        for name, column in value.model_dump().items():
            if column is not None and not _IDENTIFIER.match(column):
                raise ValueError(f"{name}: {column!r} is not a column name")
        return value


class CsvSource(CdrSourceBase):
    """Asterisk's ``Master.csv`` (or any CSV in that shape), followed across rotation and restarts."""

    type: Literal["csv"]
    path: str
    """The CSV file, e.g. ``/var/log/asterisk/cdr-csv/Master.csv``."""
    fields: list[str] = Field(default_factory=lambda: list(MASTER_CSV_FIELDS), min_length=1)
    """Column names in file order; default Asterisk's ``Master.csv`` order."""
    columns: CdrColumns = Field(default_factory=lambda: CdrColumns(calldate="start"))
    """Which of ``fields`` holds what (``calldate`` is ``start`` in ``Master.csv``)."""
    time_format: str = "%Y-%m-%d %H:%M:%S"
    """``strptime`` format of ``calldate``."""
    backfill_bytes: int = Field(64 * 1024 * 1024, ge=0)
    """On the first poll (no saved offset) read at most this much of the file's end."""
    max_read_bytes: int = Field(64 * 1024 * 1024, ge=4096)
    """Read at most this much per poll (a backlog is caught up over several polls)."""

    @model_validator(mode="after")
    def _columns_in_fields(self) -> CsvSource:
        known = set(self.fields)
        wanted = [c for c in self.columns.model_dump().values() if c is not None]
        if self.abandon is not None:
            wanted.append(self.abandon.column)
        missing = sorted({c for c in wanted if c not in known})
        if missing:
            raise FieldValueError(
                "columns", f"{', '.join(missing)} not among fields ({', '.join(self.fields)})"
            )
        return self


Source = Annotated[SqlSource | CsvSource | AmiSource | HttpSource, Field(discriminator="type")]


class DialerTarget(TargetBase):
    """Call outcomes of a dialer over a sliding window, overall and per trunk (CDR based)."""

    kind: Literal["dialer"]
    interval: Interval = 60.0
    timeout: Timeout = 10.0
    source: Source
    """Where the calls come from: ``{type: sql, dsn: …}`` or ``{type: csv, path: …}``."""
    window: Duration = 900.0
    """Length of the sliding window the KPIs are computed over."""
    min_attempts: int = Field(20, ge=1)
    """Rates of a trunk (or overall) are judged only with at least this many attempts."""
    max_trunks: int = Field(32, ge=1, le=256)
    """At most this many trunks get their own series (most attempts first); the rest are ``other``."""
    thresholds: dict[str, Limit | None] = Field(default_factory=dict, validate_default=True)
    """Per metric ``{warn: N, fail: N}`` (rates in percent); ``null`` turns one off. Names and
    defaults: docs/probes/dialer.md."""

    @field_validator("thresholds")
    @classmethod
    def _thresholds(
        cls, value: dict[str, Limit | None], info: ValidationInfo
    ) -> dict[str, Limit | None]:
        # Queue sources (AMI, HTTP) judge queue metrics, not the CDR window's.
        queue_source = isinstance(info.data.get("source"), AmiSource | HttpSource)
        return dict(resolve(value, QUEUE_RULES if queue_source else DIALER_RULES))
