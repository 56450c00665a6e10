"""The dialer probe's SQL CDR window against real PostgreSQL 15, MariaDB and SQLite.

Each test loads generated CDRs whose true counts the generator knows
(tests/test_dialer_cdrs.py) and compares the probe's points with them, in
both counting modes (``aggregate: sql`` in the database, ``aggregate: rows``
here). Failures (server down, wrong password, missing table, a query that
runs too long) must come back as ``fail`` observations with a sentence, and
the next poll must work.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from core.config import SiteConfig
from core.observation import ErrorClass, Observation, Status
from core.shared import SharedResources
from probes import PROBES
from probes.base import ProbeContext
from probes.dialer import DialerTarget, check
from probes.dialer.kpi import Counts
from tests.peers import free_port
from tests.peers.mariadb import MariaDbServer, mariadb_server  # noqa: F401
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401
from tests.test_dialer_cdrs import Generated, cdr_table, generate_cdrs, load_cdrs

CDR_TZ = "Asia/Shanghai"  # Asterisk writes local time; the site runs on UTC
QUIET = {"abandon_rate": None, "system_loss_rate": None}
"""The generated mix crosses the default limits; tests about other things turn them off."""


def target(dsn: str, **source: Any) -> DialerTarget:
    extra = {k: source.pop(k) for k in ("thresholds", "min_attempts", "window") if k in source}
    extra.setdefault("thresholds", QUIET)
    return DialerTarget.model_validate(
        {
            "id": "dialer-cdr",
            "kind": "dialer",
            "timeout": source.pop("timeout", "5s"),
            "source": {"type": "sql", "dsn": dsn, "timezone": CDR_TZ, **source},
            **extra,
        }
    )


def run(t: DialerTarget, shared: SharedResources | None = None) -> Observation:
    async def go() -> Observation:
        own = shared is None
        ctx = ProbeContext(
            target_id=t.id, timeout=t.timeout, shared=shared or SharedResources(), site=SiteConfig()
        )
        try:
            return await check(t, ctx)
        finally:
            if own:
                await ctx.shared.aclose()

    return asyncio.run(go())


def observed(obs: Observation) -> tuple[Counts, dict[str, Counts]]:
    """The counts the probe reported, overall and per trunk, read back from its points."""

    def counts(fields: Any) -> Counts:
        return Counts(
            attempts=fields["attempts"],
            answered=fields["answered"],
            callee_lost=fields["callee_lost"],
            system_lost=fields["system_lost"],
            abandoned=fields["abandoned"],
        )

    overall = next(p for p in obs.metrics if p.measurement == "dialer")
    trunks = {
        p.tags["trunk"]: counts(p.fields) for p in obs.metrics if p.measurement == "dialer_trunk"
    }
    return counts(overall.fields), trunks


def without_billsec(c: Counts) -> Counts:
    return Counts(c.attempts, c.answered, c.callee_lost, c.system_lost, c.abandoned)


def assert_matches(obs: Observation, generated: Generated, with_cause: bool = True) -> None:
    expected = generated.expected if with_cause else generated.expected_without_cause
    overall, trunks = observed(obs)
    assert trunks == {name: without_billsec(c) for name, c in expected.items()}
    total = generated.total(with_cause)
    assert overall == without_billsec(total)
    fields = next(p for p in obs.metrics if p.measurement == "dialer").fields
    assert fields["acd"] == pytest.approx(total.billsec / total.answered, abs=1e-3)
    assert fields["asr"] == pytest.approx(100 * total.answered / total.attempts, abs=1e-3)
    assert fields["abandon_rate"] == pytest.approx(100 * total.abandoned / total.answered, abs=1e-3)
    assert fields["calls_per_minute"] == pytest.approx(total.attempts / 15, abs=1e-3)


# -- databases -------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], str]:
    """A factory of empty databases (SQLAlchemy URLs) of one engine."""
    if request.param == "sqlite":
        names = iter(range(1000))
        return lambda: f"sqlite:///{tmp_path / f'cdr{next(names)}.db'}"
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        return server.create_database
    maria: MariaDbServer = request.getfixturevalue("mariadb_server")
    return maria.create_database


pytestmark = pytest.mark.peer


@pytest.mark.parametrize("aggregate", ["sql", "rows"])
def test_the_window_counts_match_the_generated_truth_per_trunk(
    database: Callable[[], str], aggregate: str
):
    dsn = database()
    generated = generate_cdrs(11, 600, now=time.time(), tz=CDR_TZ, outside=80)
    load_cdrs(dsn, generated)
    obs = run(target(dsn, aggregate=aggregate, columns={"hangupcause": "hangupcause"}))
    assert obs.status is not Status.ERROR, obs.detail
    assert_matches(obs, generated)
    assert "600 attempts in the last 15 min" in obs.detail


@pytest.mark.parametrize("aggregate", ["sql", "rows"])
def test_without_a_cause_column_the_disposition_decides(
    database: Callable[[], str], aggregate: str
):
    dsn = database()
    generated = generate_cdrs(12, 300, now=time.time(), tz=CDR_TZ)
    load_cdrs(dsn, generated, with_cause=False)
    obs = run(target(dsn, aggregate=aggregate))
    assert_matches(obs, generated, with_cause=False)


def test_rows_without_billsec_are_skipped_and_counted_in_a_sentence(database: Callable[[], str]):
    dsn = database()
    generated = generate_cdrs(13, 200, now=time.time(), tz=CDR_TZ, bad_rows=3)
    load_cdrs(dsn, generated)
    obs = run(target(dsn, columns={"hangupcause": "hangupcause"}, thresholds=QUIET))
    assert_matches(obs, generated)
    assert obs.status is Status.WARN and obs.error_class is ErrorClass.PROTOCOL
    assert "3 CDR rows skipped (missing or unreadable fields; first: no billsec)" in obs.detail
    assert next(p for p in obs.metrics if p.measurement == "dialer").fields["skipped_rows"] == 3


def test_a_wrong_cdr_timezone_puts_the_calls_outside_the_window(database: Callable[[], str]):
    dsn = database()
    generated = generate_cdrs(14, 100, now=time.time(), tz=CDR_TZ, outside=0)
    load_cdrs(dsn, generated)
    obs = run(target(dsn, timezone="UTC"))
    assert obs.status is Status.OK
    assert observed(obs)[0].attempts == 0
    assert obs.detail == "no call attempts in the last 15 min"
    fields = next(p for p in obs.metrics if p.measurement == "dialer").fields
    assert "loss_rate" not in fields and "asr" not in fields


def test_a_trunk_losing_its_calls_to_the_network_fails_by_name(database: Callable[[], str]):
    dsn = database()
    engine = sa.create_engine(dsn)
    generated = generate_cdrs(15, 300, now=time.time(), tz=CDR_TZ, outside=0)
    load_cdrs(dsn, generated)
    # Add 40 congested calls on a trunk of their own: 100% system loss there.
    table = cdr_table(sa.MetaData())
    when = datetime.fromtimestamp(time.time() - 120, ZoneInfo(CDR_TZ)).replace(tzinfo=None)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {
                    "calldate": when,
                    "dstchannel": f"PJSIP/trunk-dead-{i:08x}",
                    "billsec": 0,
                    "disposition": "CONGESTION",
                    "hangupcause": 34,
                    "lastapp": "Dial",
                }
                for i in range(40)
            ],  # fmt: skip
        )
    engine.dispose()
    limits = {"system_loss_rate": {"warn": None, "fail": 50}, "abandon_rate": None}
    obs = run(target(dsn, columns={"hangupcause": "hangupcause"}, thresholds=limits))
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.THRESHOLD
    assert obs.detail.startswith(
        "trunk trunk-dead system loss rate at 100% (fail above 50%) over 40 attempts; 340 attempts"
    )


# -- failures ------------------------------------------------------------------


def test_a_database_nobody_listens_on_is_refused_in_a_sentence():
    port = free_port()
    obs = run(target(f"postgresql+psycopg://u:secretpw@127.0.0.1:{port}/cdr"))
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.REFUSED
    assert obs.detail == f"the CDR database 127.0.0.1:{port}/cdr refused the connection"
    assert "secretpw" not in obs.detail


def test_a_wrong_mariadb_password_is_an_auth_failure(mariadb_server: MariaDbServer):  # noqa: F811
    dsn = mariadb_server.create_database()
    load_cdrs(dsn, generate_cdrs(16, 10, now=time.time(), tz=CDR_TZ))
    name = dsn.rsplit("/", 1)[1]
    obs = run(target(mariadb_server.url(name, password="wrong-pw")))
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.AUTH
    assert obs.detail.startswith(
        f"could not log in to the CDR database 127.0.0.1:{mariadb_server.port}/{name}: "
    )
    assert "Access denied" in obs.detail and "wrong-pw" not in obs.detail


def test_a_wrong_postgres_user_is_an_auth_failure(postgres_server: PostgresServer):  # noqa: F811
    dsn = postgres_server.create_database().replace("dialwatch@", "nobody_here@")
    obs = run(target(dsn))
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.AUTH
    assert 'role "nobody_here" does not exist' in obs.detail


def test_a_missing_table_fails_and_the_next_poll_works_once_it_exists(database: Callable[[], str]):
    dsn = database()
    shared = SharedResources()
    t = target(dsn)
    first = run(t, shared)
    assert first.status is Status.FAIL and first.error_class is ErrorClass.RESPONSE
    assert first.detail.startswith("the CDR database ") and "refused the query" in first.detail
    generated = generate_cdrs(17, 50, now=time.time(), tz=CDR_TZ)
    load_cdrs(dsn, generated, with_cause=False)
    second = run(t, shared)
    assert second.status is Status.OK, second.detail
    assert_matches(second, generated, with_cause=False)
    asyncio.run(shared.aclose())


def test_a_slow_postgres_query_is_cancelled_by_the_server(postgres_server: PostgresServer):  # noqa: F811
    dsn = postgres_server.create_database()
    load_cdrs(dsn, generate_cdrs(18, 10, now=time.time(), tz=CDR_TZ))
    engine = sa.create_engine(dsn)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE VIEW slow_cdr AS SELECT cdr.* FROM cdr, (SELECT pg_sleep(30)) s"
        )
    started = time.monotonic()
    obs = run(target(dsn, table="slow_cdr", timeout="2s"))
    # Outcome, not speed: 10 s is generous for a 2 s timeout and well short of
    # the 30 s the view sleeps, so passing it means the query was cut short.
    assert time.monotonic() - started < 10
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.TIMEOUT
    assert "did not finish within 1.5s and was cancelled" in obs.detail
    with engine.connect() as conn:
        running = conn.exec_driver_sql(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%%slow_cdr%%' "
            "AND state = 'active' AND pid <> pg_backend_pid()"
        ).scalar()
    engine.dispose()
    assert running == 0


def test_a_slow_mariadb_query_is_cancelled_by_the_server(mariadb_server: MariaDbServer):  # noqa: F811
    dsn = mariadb_server.create_database()
    load_cdrs(dsn, generate_cdrs(19, 10, now=time.time(), tz=CDR_TZ))
    engine = sa.create_engine(dsn)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE VIEW slow_cdr AS SELECT * FROM cdr WHERE SLEEP(30) = 0")
    engine.dispose()
    obs = run(target(dsn, table="slow_cdr", timeout="2s"))
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.TIMEOUT, obs.detail
    assert "did not finish within 1.5s and was cancelled" in obs.detail


def test_a_connection_killed_between_polls_is_replaced(postgres_server: PostgresServer):  # noqa: F811
    dsn = postgres_server.create_database()
    generated = generate_cdrs(20, 100, now=time.time(), tz=CDR_TZ)
    load_cdrs(dsn, generated, with_cause=False)
    shared = SharedResources()
    t = target(dsn)
    assert_matches(run(t, shared), generated, with_cause=False)
    admin = sa.create_engine(dsn)
    with admin.begin() as conn:
        killed = conn.exec_driver_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).scalar()
    admin.dispose()
    assert killed >= 1
    assert_matches(run(t, shared), generated, with_cause=False)
    asyncio.run(shared.aclose())


def test_dialer_is_registered_with_its_model():
    assert PROBES["dialer"].model is DialerTarget


TRICKY_CHANNELS = {
    "PJSIP/cafe-0000000a": "cafe",  # a trunk name made of hex digits
    "PJSIP/cafe-0000ff0b": "cafe",
    # No per-call suffix: the default pattern takes the hex-looking "a"/"b" for one.
    "PJSIP/trunk-a": "trunk",
    "PJSIP/trunk-b": "trunk",
    "PJSIP/gateway": "unknown",
    "SIP/carrier-x-00a1": "carrier-x",  # a short suffix still matches the pattern
    "SIP/carrier-x-00a2": "carrier-x",
    "DAHDI/1-1": "1",
    "IAX2/peer-9-000000ff": "peer-9",
    "Local/200@dialer-00000001;2": "unknown",
    "": "unknown",
}


@pytest.mark.parametrize("aggregate", ["sql", "rows"])
def test_trunk_names_come_out_the_same_in_the_database_and_here(
    database: Callable[[], str], aggregate: str
):
    dsn = database()
    load_cdrs(dsn, Generated())  # an empty cdr table
    table = cdr_table(sa.MetaData())
    when = datetime.fromtimestamp(time.time() - 120, ZoneInfo(CDR_TZ)).replace(tzinfo=None)
    engine = sa.create_engine(dsn)
    with engine.begin() as conn:
        conn.execute(
            table.insert(),
            [
                {"calldate": when, "dstchannel": channel, "billsec": 10, "disposition": "ANSWERED"}
                for channel in TRICKY_CHANNELS
            ],
        )
    engine.dispose()
    obs = run(target(dsn, aggregate=aggregate))
    expected: dict[str, int] = {}
    for trunk in TRICKY_CHANNELS.values():
        expected[trunk] = expected.get(trunk, 0) + 1
    assert {name: c.attempts for name, c in observed(obs)[1].items()} == expected


@pytest.fixture
def silent_listener():
    """A TCP port that accepts connections and never says a word (a hung database server)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.parametrize(
    "scheme", ["postgresql+psycopg://u:pw@127.0.0.1:{port}/cdr", "mysql+pymysql://u:pw@127.0.0.1:{port}/cdr"],
    ids=["postgresql", "mariadb"],
)  # fmt: skip
def test_a_database_that_never_answers_times_out_in_a_sentence(silent_listener: int, scheme: str):
    started = time.monotonic()
    obs = run(target(scheme.format(port=silent_listener), timeout="2s"))
    assert time.monotonic() - started < 10  # hang guard only: the listener never answers
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.TIMEOUT, obs.detail
    assert obs.detail.startswith(f"no answer from the CDR database 127.0.0.1:{silent_listener}/cdr")
