"""SQL CDR window: count the calls of the last ``window`` in the dialer's CDR table.

One query per poll through SQLAlchemy (PostgreSQL, MariaDB/MySQL, SQLite).
``aggregate: sql`` (default) lets the database group the window's rows by
trunk, disposition, hangup cause and "abandoned", so a poll moves a few dozen
rows however busy the center is; ``aggregate: rows`` fetches the window's
rows and counts them here. bench/cdr_window.py compares the two.

Engines are pooled per DSN in ``ctx.shared`` (built once; closed on engine
stop). Every query runs under a statement timeout in the database itself
(PostgreSQL ``statement_timeout``, MariaDB ``max_statement_time``, MySQL
``max_execution_time``, SQLite a progress handler), so a slow query is
cancelled at the server rather than left running after the probe gave up.
"""

from __future__ import annotations

import asyncio
import time
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection, Engine, make_url

from core.observation import ErrorClass
from probes.base import ProbeContext
from probes.dialer.cdr import BadRow, CallReader, SourceError, Tally, WindowSample
from probes.dialer.config import DialerTarget, SqlSource
from probes.dialer.kpi import Outcome

SHARED_PREFIX = "dialer.sql:"
TIMEOUT_SHARE = 0.9
"""Share of the probe's timeout the database gets; the rest is for connecting and counting."""
TIMEOUT_MARGIN = 0.5
"""...and at least this many seconds of it, so the server's cancel arrives before ours."""


def statement_budget(timeout: float) -> float:
    """Seconds the database may spend on the window query within a probe ``timeout``."""
    return max(0.2, min(timeout * TIMEOUT_SHARE, timeout - TIMEOUT_MARGIN))


def window_bounds(now: float, window: float, tz: zoneinfo.ZoneInfo) -> tuple[datetime, datetime]:
    """[start, end] of the window as naive datetimes on the CDR clock (Asterisk writes local time).

    Around a DST fall-back the local hour repeats; the window then covers
    both copies of that hour's overlap — a documented, bounded over-count.
    """
    start = datetime.fromtimestamp(now - window, tz).replace(tzinfo=None)
    end = datetime.fromtimestamp(now, tz).replace(tzinfo=None)
    return start, end


def cdr_table(source: SqlSource) -> sa.TableClause:
    schema, _, name = source.table.rpartition(".")
    cols = source.columns
    names = {cols.calldate, cols.disposition, cols.trunk, cols.billsec}
    if cols.hangupcause:
        names.add(cols.hangupcause)
    if source.abandon is not None:
        names.add(source.abandon.column)
    return sa.table(name, *(sa.column(n) for n in sorted(names)), schema=schema or None)


def _abandon_expr(source: SqlSource, t: sa.TableClause) -> sa.ColumnElement[Any]:
    rule = source.abandon
    if rule is None:
        return sa.literal(0)
    marker = sa.func.lower(sa.cast(t.c[rule.column], sa.String))
    condition = marker.in_([v.strip().lower() for v in rule.values])
    if rule.max_billsec is not None:
        condition = sa.and_(condition, t.c[source.columns.billsec] <= rule.max_billsec)
    return sa.case((condition, 1), else_=0)


HEX_DIGITS = "0123456789abcdefABCDEF"
MIN_SUFFIX = 8
"""Asterisk's per-call suffix is 8 hex digits (``%08x``); shorter endings (``trunk-b``) are names."""


def channel_key(channel: sa.ColumnElement[Any], dialect: str) -> sa.ColumnElement[Any]:
    """The channel without Asterisk's per-call suffix (``PJSIP/trunk-a-0000001b`` -> ``PJSIP/trunk-a-``).

    Grouping by this collapses a trunk's calls into a few groups; the trunk
    name is then cut out of one member of each group in Python, with the
    same regular expression as ``aggregate: rows``. Measured on PostgreSQL,
    a regular expression per row was 2-6x slower than this (bench/RESULTS.md).
    Channels without a ``-<8 or more hex digits>`` ending are left whole.
    """
    if dialect in ("postgresql", "sqlite"):
        trimmed = sa.func.rtrim(channel, HEX_DIGITS)
        suffix = sa.func.length(channel) - sa.func.length(trimmed)
        return sa.case((sa.and_(trimmed.like("%-"), suffix >= MIN_SUFFIX), trimmed), else_=channel)
    if dialect in ("mysql", "mariadb"):
        # No character-set rtrim there; an anchored replace (MariaDB 10.0.5+, MySQL 8.0+).
        return sa.func.regexp_replace(channel, f"-[0-9a-fA-F]{{{MIN_SUFFIX},}}$", "-")
    return channel


def aggregate_query(
    source: SqlSource, start: datetime, end: datetime, dialect: str = "sqlite"
) -> sa.Select[Any]:
    """GROUP BY channel key, disposition, cause, abandoned -> one member's channel, calls,
    rows with billsec, billsec sum."""
    t = cdr_table(source)
    cols = source.columns
    key = channel_key(t.c[cols.trunk], dialect)
    cause = t.c[cols.hangupcause] if cols.hangupcause else sa.null()
    abandoned = _abandon_expr(source, t).label("abandoned")
    keys: list[Any] = [key, t.c[cols.disposition], abandoned]
    if cols.hangupcause:
        keys.append(cause)
    return (
        sa.select(
            sa.func.min(t.c[cols.trunk]).label("channel"),
            t.c[cols.disposition],
            cause.label("cause") if cols.hangupcause else sa.null().label("cause"),
            abandoned,
            sa.func.count().label("calls"),
            sa.func.count(t.c[cols.billsec]).label("with_billsec"),
            sa.func.sum(t.c[cols.billsec]).label("billsec"),
        )
        .where(t.c[cols.calldate] >= start, t.c[cols.calldate] <= end)
        .group_by(*keys)
    )


def rows_query(source: SqlSource, start: datetime, end: datetime) -> sa.Select[Any]:
    """The window's rows, only the columns the KPIs need."""
    t = cdr_table(source)
    cols = source.columns
    return sa.select(
        t.c[cols.trunk],
        t.c[cols.disposition],
        t.c[cols.billsec],
        t.c[cols.hangupcause] if cols.hangupcause else sa.null(),
        t.c[source.abandon.column] if source.abandon is not None else sa.null(),
    ).where(t.c[cols.calldate] >= start, t.c[cols.calldate] <= end)


def tally_aggregates(rows: Sequence[Sequence[Any]], reader: CallReader) -> tuple[Tally, int]:
    """Counts from aggregate_query's rows; returns the tally and how many CDR rows they stand for."""
    tally = Tally()
    seen = 0
    for channel, disposition, cause, abandoned, calls, with_billsec, billsec in rows:
        calls, with_billsec = int(calls), int(with_billsec)
        seen += calls
        if with_billsec < calls:
            tally.skip("", "no billsec", calls - with_billsec)
        if with_billsec == 0:
            continue
        try:
            # Billsec is checked as the group's sum; "abandoned" was decided by the database.
            call = reader.read(channel, disposition, billsec, cause, None)
        except BadRow as exc:
            tally.skip("", str(exc), with_billsec)
            continue
        marker = bool(abandoned) and call.outcome is Outcome.ANSWERED
        tally.count(
            replace(call, abandoned=marker),
            calls=with_billsec,
            billsec_total=float(billsec or 0),
        )
    return tally, seen


def tally_rows(rows: Sequence[Sequence[Any]], reader: CallReader) -> Tally:
    tally = Tally()
    for channel, disposition, billsec, cause, marker in rows:
        try:
            tally.count(reader.read(channel, disposition, billsec, cause, marker))
        except BadRow as exc:
            tally.skip("", str(exc))
    return tally


def build_engine(dsn: str, timeout: float) -> Engine:
    """An engine for ``dsn`` with connect and read timeouts for its driver."""
    url = make_url(dsn)
    backend = url.get_backend_name()
    connect_args: dict[str, Any] = {}
    if backend == "postgresql":
        connect_args["connect_timeout"] = max(1, round(timeout))
        # A server that vanishes mid-query (no RST) would otherwise hold the worker thread
        # until the kernel gives up, many minutes later.
        connect_args["tcp_user_timeout"] = int(max(1.0, timeout) * 1000)
    elif backend in ("mysql", "mariadb"):
        connect_args["connect_timeout"] = max(1, round(timeout))
        # A backstop for a server that stops answering mid-query.
        connect_args["read_timeout"] = max(2, round(timeout) + 2)
    elif backend == "sqlite":
        connect_args["timeout"] = timeout
    if backend == "sqlite":
        return sa.create_engine(url, connect_args=connect_args)
    return sa.create_engine(
        url, connect_args=connect_args, pool_pre_ping=True, pool_size=2, max_overflow=2
    )


def shared_engine(ctx: ProbeContext, dsn: str) -> Engine:
    key = SHARED_PREFIX + dsn
    engine = ctx.shared.get(key)
    if engine is None:
        engine = build_engine(dsn, ctx.timeout)
        ctx.shared.set(key, engine, close=engine.dispose)
    return engine


def _limit_statement_time(conn: Connection, seconds: float) -> Callable[[], None]:
    """Ask the database to cancel this connection's queries after ``seconds``; returns an undo."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        # set_config(..., true) is SET LOCAL: it ends with the transaction.
        conn.execute(
            sa.select(sa.func.set_config("statement_timeout", f"{int(seconds * 1000)}", True))
        )
        return lambda: None
    if dialect in ("mysql", "mariadb"):
        if getattr(conn.dialect, "is_mariadb", False):
            conn.exec_driver_sql(f"SET SESSION max_statement_time = {seconds:.3f}")
            return lambda: conn.exec_driver_sql("SET SESSION max_statement_time = 0")
        conn.exec_driver_sql(f"SET SESSION max_execution_time = {int(seconds * 1000)}")
        return lambda: conn.exec_driver_sql("SET SESSION max_execution_time = 0")
    if dialect == "sqlite":
        raw = conn.connection.driver_connection
        deadline = time.monotonic() + seconds
        raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)
        return lambda: raw.set_progress_handler(None, 0)
    return lambda: None


@dataclass(frozen=True)
class SqlResult:
    tally: Tally
    rows_read: int


def query_window(
    engine: Engine, source: SqlSource, start: datetime, end: datetime, budget: float
) -> SqlResult:
    """Run the window query (blocking; called in a worker thread)."""
    reader = CallReader.from_config(source.trunk_pattern, source.abandon)
    with engine.connect() as conn:
        undo = _limit_statement_time(conn, budget)
        try:
            if source.aggregate == "sql":
                rows = conn.execute(aggregate_query(source, start, end, conn.dialect.name)).all()
                tally, seen = tally_aggregates(rows, reader)
                return SqlResult(tally, seen)
            rows = conn.execute(rows_query(source, start, end)).all()
            return SqlResult(tally_rows(rows, reader), len(rows))
        finally:
            try:
                undo()
            finally:
                conn.rollback()


def describe_db_error(exc: BaseException, dsn: str, budget: float) -> tuple[str, ErrorClass]:
    """A database failure as a human sentence and the fixed error vocabulary."""
    where = _where(dsn)
    text = str(getattr(exc, "orig", None) or exc)
    first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    low = text.lower()
    if isinstance(exc, sa_exc.NoSuchModuleError | sa_exc.ArgumentError):
        return f"cannot use the CDR database URL: {first}", ErrorClass.PROTOCOL
    if any(
        s in low
        for s in ("statement timeout", "max_statement_time", "max_execution_time", "interrupted")
    ):
        return (
            f"the CDR query on {where} did not finish within {budget:.1f}s and was cancelled",
            ErrorClass.TIMEOUT,
        )
    if any(
        s in low
        for s in ("password authentication failed", "access denied", "no password supplied",
                  "authentication failed", "role \"")
    ):  # fmt: skip
        return f"could not log in to the CDR database {where}: {first}", ErrorClass.AUTH
    if "connection refused" in low or "can't connect" in low and "111" in low:
        return f"the CDR database {where} refused the connection", ErrorClass.REFUSED
    if "timeout expired" in low or "timed out" in low:
        return f"no answer from the CDR database {where} (timed out)", ErrorClass.TIMEOUT
    if "could not translate host name" in low or "name or service not known" in low:
        return f"could not resolve the CDR database host ({where})", ErrorClass.RESOLVE
    if isinstance(exc, sa_exc.ProgrammingError | sa_exc.DatabaseError) and not isinstance(
        exc, sa_exc.OperationalError
    ):
        return f"the CDR database {where} refused the query: {first}", ErrorClass.RESPONSE
    if (
        isinstance(exc, sa_exc.OperationalError) and "no such" in low
    ):  # SQLite: no such table/column
        return f"the CDR database {where} refused the query: {first}", ErrorClass.RESPONSE
    return f"the CDR database {where} failed: {first}", ErrorClass.UNREACHABLE


def _where(dsn: str) -> str:
    try:
        url = make_url(dsn)
    except sa_exc.ArgumentError:
        return "(unreadable URL)"
    if url.get_backend_name() == "sqlite":
        return url.database or "(in memory)"
    host = url.host or "localhost"
    return f"{host}:{url.port}/{url.database}" if url.port else f"{host}/{url.database}"


async def collect(
    target: DialerTarget, ctx: ProbeContext, now: float | None = None
) -> WindowSample:
    source = target.source
    assert isinstance(source, SqlSource)
    tz = zoneinfo.ZoneInfo(source.timezone or ctx.site.timezone)
    start, end = window_bounds(time.time() if now is None else now, target.window, tz)
    budget = statement_budget(ctx.timeout)
    try:
        engine = shared_engine(ctx, source.dsn)
        result = await asyncio.wait_for(
            asyncio.to_thread(query_window, engine, source, start, end, budget), ctx.timeout
        )
    except TimeoutError:
        raise SourceError(
            f"no answer from the CDR database {_where(source.dsn)} within {ctx.timeout:g}s",
            ErrorClass.TIMEOUT,
        ) from None
    except sa_exc.SQLAlchemyError as exc:
        detail, error_class = describe_db_error(exc, source.dsn, budget)
        raise SourceError(detail, error_class) from None
    tally = result.tally
    return WindowSample(
        trunks=tally.trunks,
        window_seconds=target.window,
        skipped=tally.skipped,
        skipped_example=tally.skipped_example,
        read_rows=result.rows_read,
    )
