"""The state DB: engine setup, migrations, StateRepository and the read model
(``monitor.store.queries``) on SQLite and real PostgreSQL.

Every repository test runs twice: against SQLite in a temp dir and against a
PostgreSQL 15 cluster started by ``tests.peers.postgres`` (marked ``peer``).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import FrozenInstanceError, dataclass, fields
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, event, text
from sqlalchemy.exc import IntegrityError

from core.observation import Status
from monitor.health import HEALTH_ORDER, Health
from monitor.store import queries
from monitor.store.db import (
    MIGRATIONS_DIR,
    SQLITE_BUSY_TIMEOUT_MS,
    StateDBError,
    alembic_config,
    current_revision,
    database_url,
    head_revision,
    migrate_to_head,
    open_database,
)
from monitor.store.models import Base
from monitor.store.queries import Page, TargetFilter, like_pattern
from monitor.store.repository import (
    TARGET_STATE_COLUMNS,
    NotFound,
    StateRepository,
    TargetStateRow,
)
from tests.peers import free_port
from tests.peers.postgres import PostgresServer, postgres_server  # noqa: F401 - the fixture


# -- backends ------------------------------------------------------------------
@dataclass
class Backend:
    """Where a test's state DB lives; ``open()`` can be called again to simulate a restart."""

    name: str
    url: str | None
    data_dir: Path

    def open(self) -> Engine:
        return open_database(self.url, self.data_dir)


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.peer)]


@pytest.fixture(scope="session")
def shared_postgres_url(request: pytest.FixtureRequest) -> str:
    """One migrated PostgreSQL database for the repository tests, emptied before each.

    Creating a database takes most of a second; emptying one takes milliseconds.
    Migration tests use ``empty_backend`` (a new database each) instead.
    """
    server: PostgresServer = request.getfixturevalue("postgres_server")
    url = server.create_database()
    open_database(url, Path(".")).dispose()
    return url


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """An empty, migrated state DB."""
    if request.param == "sqlite":
        return Backend("sqlite", None, tmp_path)
    url = request.getfixturevalue("shared_postgres_url")
    engine = open_database(url, tmp_path)
    try:
        tables = ", ".join(t.name for t in Base.metadata.sorted_tables)
        with engine.begin() as conn:
            conn.exec_driver_sql(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        engine.dispose()
    return Backend("postgresql", url, tmp_path)


@pytest.fixture(params=BACKENDS)
def empty_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    """A database nothing has touched yet (not even migrations)."""
    if request.param == "sqlite":
        return Backend("sqlite", None, tmp_path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return Backend("postgresql", server.create_database(), tmp_path)


@pytest.fixture
def engine(backend: Backend) -> Iterator[Engine]:
    engine = backend.open()
    yield engine
    engine.dispose()


@pytest.fixture
def repo(engine: Engine) -> StateRepository:
    return StateRepository(engine)


@pytest.fixture
def empty_engine(empty_backend: Backend) -> Iterator[Engine]:
    """An engine on a database that ``open_database`` has just migrated for the first time."""
    engine = empty_backend.open()
    yield engine
    engine.dispose()


def state(target_id: str, health: str = "up", kind: str = "sip", **more: Any) -> dict[str, Any]:
    """A full target_state row as the engine checkpoints it."""
    return {
        "target_id": target_id,
        "kind": kind,
        "health": health,
        "since": 1_700_000_000.25,
        "flapping": False,
        "affected_by": None,
        "machine": {"history": [True, False, True], "fail_after": 2},
        "last_status": "ok",
        "last_detail": "200 OK from sip:trunk",
        "last_latency": 0.0123,
        "last_observed_at": 1_700_000_100.5,
        "last_metrics": {"sip.rtt_ms": 12.3, "sip.code": 200},
        "probes_run": 10,
        "probes_failed": 1,
        "probes_errored": 0,
        "config_hash": "abc123",
        **more,
    }


# -- engine setup ------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param(None, "sqlite:////data/state.db", id="none-means-sqlite-in-data-dir"),
        pytest.param("", "sqlite:////data/state.db", id="empty-means-sqlite-in-data-dir"),
        pytest.param(
            "postgresql://dw:pw@db:5432/dialwatch",
            "postgresql+psycopg://dw:pw@db:5432/dialwatch",
            id="postgresql-means-psycopg-3",
        ),
        pytest.param(
            "postgres://dw@db/dialwatch",
            "postgresql+psycopg://dw@db/dialwatch",
            id="postgres-alias-means-psycopg-3",
        ),
        pytest.param(
            "postgresql+psycopg://dw@db/x", "postgresql+psycopg://dw@db/x", id="explicit-kept"
        ),
        pytest.param("sqlite:////srv/s.db", "sqlite:////srv/s.db", id="sqlite-url-kept"),
    ],
)
def test_database_url_is_sqlite_in_the_data_dir_unless_a_url_is_given(
    url: str | None, expected: str
) -> None:
    assert database_url(url, Path("/data")) == expected


def test_an_unsupported_database_url_is_refused_naming_what_is_supported(tmp_path: Path) -> None:
    with pytest.raises(StateDBError, match=r"only sqlite:/// and postgresql:// are supported"):
        open_database("mysql://u:secret@db/x", tmp_path)


def test_the_refusal_does_not_show_the_password(tmp_path: Path) -> None:
    with pytest.raises(StateDBError) as err:
        open_database("mysql://u:secret@db/x", tmp_path)
    assert "secret" not in str(err.value)


def test_an_unreachable_postgresql_is_a_clear_error_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql://dw:secret@127.0.0.1:{free_port()}/dialwatch"
    with pytest.raises(StateDBError, match=r"cannot open the state DB at .*127\.0\.0\.1") as err:
        open_database(url, tmp_path)
    assert "secret" not in str(err.value)


def test_an_unwritable_sqlite_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "state.db").mkdir()  # a directory where the file should be
    with pytest.raises(StateDBError, match=r"cannot open the state DB at sqlite:///.*state\.db"):
        open_database(None, tmp_path)


def test_sqlite_state_db_is_created_in_a_missing_data_dir(tmp_path: Path) -> None:
    data_dir = tmp_path / "not" / "yet"
    engine = open_database(None, data_dir)
    engine.dispose()
    assert (data_dir / "state.db").is_file()


def test_every_sqlite_connection_uses_wal_normal_sync_busy_timeout_and_foreign_keys(
    tmp_path: Path,
) -> None:
    engine = open_database(None, tmp_path)
    try:
        # Two connections at once: the pragmas are per connection, not per file.
        with engine.connect() as first, engine.connect() as second:
            for conn in (first, second):
                assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
                assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == (
                    SQLITE_BUSY_TIMEOUT_MS
                )
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_sqlite_enforces_foreign_keys(tmp_path: Path) -> None:
    engine = open_database(None, tmp_path)
    try:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO incident_event (incident_id, at, kind, text) "
                    "VALUES (424242, 1.0, 'note', '')"
                )
            )
    finally:
        engine.dispose()


def test_the_migrations_are_packaged_inside_the_monitor_package() -> None:
    import monitor

    package_dir = Path(monitor.__file__).parent
    assert MIGRATIONS_DIR.is_relative_to(package_dir)
    for name in ("env.py", "script.py.mako", "__init__.py", "versions/__init__.py"):
        assert (MIGRATIONS_DIR / name).is_file(), name


# -- migrations --------------------------------------------------------------
def test_migrated_schema_matches_the_models(empty_engine: Engine) -> None:
    with empty_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_opening_brings_an_empty_database_to_the_head_revision(empty_engine: Engine) -> None:
    assert current_revision(empty_engine) == head_revision()


def test_the_head_revision_constant_is_alembics_head() -> None:
    # open_database skips importing Alembic when the DB is at HEAD_REVISION;
    # a new migration must update the constant or every start would migrate.
    from monitor.store.db import HEAD_REVISION

    assert head_revision() == HEAD_REVISION


def test_a_start_with_a_current_schema_does_not_import_alembic(tmp_path: Path) -> None:
    import subprocess
    import sys

    open_database(None, tmp_path).dispose()  # created and migrated
    code = (
        "import sys; from pathlib import Path; from monitor.store.db import open_database; "
        f"open_database(None, Path({str(tmp_path)!r})).dispose(); "
        "print('alembic' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_migrating_an_existing_database_again_changes_nothing(empty_backend: Backend) -> None:
    backend = empty_backend
    engine = backend.open()
    StateRepository(engine).checkpoint([state("trunk-a", "down")])
    engine.dispose()

    for _ in range(2):
        engine = backend.open()
        try:
            assert current_revision(engine) == head_revision()
            assert StateRepository(engine).load_target_states()["trunk-a"].health == "down"
            with engine.connect() as conn:
                assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []
        finally:
            engine.dispose()


def test_a_database_from_a_newer_dialwatch_is_refused_with_a_clear_error(
    empty_backend: Backend,
) -> None:
    backend = empty_backend
    engine = backend.open()
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StateDBError, match=r"revision '9999'.*newer version"):
        backend.open()


def test_migrations_downgrade_to_empty_and_upgrade_again(empty_engine: Engine) -> None:
    engine = empty_engine
    with engine.connect() as conn, conn.begin():
        command.downgrade(alembic_config(conn), "base")
    with engine.connect() as conn:
        tables = set(Base.metadata.tables)
        assert not tables & set(conn.dialect.get_table_names(conn))
    migrate_to_head(engine)
    assert current_revision(engine) == head_revision()


# -- target state --------------------------------------------------------------
def test_target_state_row_has_exactly_the_table_columns() -> None:
    assert {f.name for f in fields(TargetStateRow)} == TARGET_STATE_COLUMNS


def test_checkpoint_inserts_then_updates_many_targets(repo: StateRepository) -> None:
    rows = [state(f"t-{i:05d}", HEALTH_ORDER[i % 5]) for i in range(1200)]
    assert repo.checkpoint(rows) == 1200
    rows = [{**r, "probes_run": r["probes_run"] + 1, "last_detail": "again"} for r in rows]
    repo.checkpoint(rows)

    loaded = repo.load_target_states()
    assert len(loaded) == 1200
    assert {tid: row.as_dict() for tid, row in loaded.items()} == {r["target_id"]: r for r in rows}


def test_checkpoint_updates_only_the_columns_a_row_carries(repo: StateRepository) -> None:
    repo.checkpoint([state("trunk-a", probes_run=7)])
    repo.checkpoint(
        [{"target_id": "trunk-a", "kind": "sip", "health": "down", "since": 2_000_000_000.0}]
    )
    row = repo.load_target_states()["trunk-a"]
    assert (row.health, row.since, row.probes_run, row.last_detail) == (
        "down",
        2_000_000_000.0,
        7,
        "200 OK from sip:trunk",
    )


def test_a_partial_row_updates_a_stored_target_and_ignores_an_unknown_one(
    repo: StateRepository,
) -> None:
    repo.checkpoint([state("trunk-a")])
    repo.checkpoint(
        [{"target_id": "trunk-a", "probes_run": 99}, {"target_id": "ghost", "probes_run": 1}]
    )
    loaded = repo.load_target_states()
    assert set(loaded) == {"trunk-a"}
    assert loaded["trunk-a"].probes_run == 99


def test_checkpoint_keeps_the_last_row_when_a_target_appears_twice(
    repo: StateRepository,
) -> None:
    repo.checkpoint([state("trunk-a", "up"), state("trunk-b"), state("trunk-a", "down")])
    assert repo.load_target_states()["trunk-a"].health == "down"


@pytest.mark.parametrize(
    ("row", "message"),
    [
        pytest.param(
            {**state("trunk-a"), "colour": "red"}, r"unknown column\(s\) colour", id="unknown"
        ),
        pytest.param({"health": "up"}, r"without target_id", id="no-target-id"),
    ],
)
def test_checkpoint_rejects_a_bad_row_and_says_why(
    repo: StateRepository, row: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        repo.checkpoint([state("trunk-z"), row])
    assert repo.load_target_states() == {}


@pytest.mark.parametrize("full_row", [True, False], ids=["full-row", "partial-row"])
def test_nan_and_infinite_metrics_are_stored_as_null(repo: StateRepository, full_row: bool) -> None:
    metrics = {"sip.rtt_ms": float("nan"), "nested": [float("inf"), 1.5], "ok": 2.0}
    row = (
        state("trunk-a")
        if full_row
        else {k: state("trunk-a")[k] for k in ("target_id", "kind", "health", "since")}
    )
    repo.checkpoint([{**row, "last_metrics": metrics}])
    repo.save_probe_states({"trunk-a": {"rate": float("-inf")}})
    stored = repo.load_target_states()["trunk-a"].last_metrics
    assert stored == {"sip.rtt_ms": None, "nested": [None, 1.5], "ok": 2.0}
    assert repo.load_probe_states() == {"trunk-a": {"rate": None}}


def test_a_checkpoint_that_fails_half_way_stores_nothing(repo: StateRepository) -> None:
    with pytest.raises(IntegrityError):
        repo.checkpoint([state("trunk-a"), state("trunk-b", health=None)])
    assert repo.load_target_states() == {}


def test_delete_target_states_forgets_state_and_probe_state_but_keeps_history(
    repo: StateRepository,
) -> None:
    repo.checkpoint([state(f"t-{i}") for i in range(3)])
    repo.save_probe_states({"t-0": {"offset": 1}, "t-2": {"offset": 2}})
    repo.record_transition("t-0", 5.0, "up", "down")

    assert repo.delete_target_states(["t-0", "t-1", "never-existed"]) == 2

    assert set(repo.load_target_states()) == {"t-2"}
    assert repo.load_probe_states() == {"t-2": {"offset": 2}}
    assert [t.target_id for t in queries.transitions(repo.engine)] == ["t-0"]


# -- transitions ---------------------------------------------------------------
def test_a_transition_is_committed_at_once_with_the_targets_new_health(
    backend: Backend, repo: StateRepository
) -> None:
    repo.checkpoint([state("trunk-a", "up")])
    tid = repo.record_transition(
        "trunk-a",
        100.0,
        "up",
        "down",
        reason="2 timeouts",
        state={"kind": "sip", "health": "down", "since": 100.0},
    )
    # Another engine (as after a crash) sees both.
    other = backend.open()
    try:
        seen = StateRepository(other)
        (transition,) = queries.transitions(other, "trunk-a")
        assert (transition.id, transition.to_health, transition.reason) == (
            tid,
            "down",
            "2 timeouts",
        )
        assert seen.load_target_states()["trunk-a"].health == "down"
        assert seen.load_target_states()["trunk-a"].probes_run == 10
    finally:
        other.dispose()


def test_transitions_are_listed_newest_first_and_per_target(repo: StateRepository) -> None:
    repo.record_transition("a", 1.0, "unknown", "up")
    repo.record_transition("b", 2.0, "unknown", "up")
    repo.record_transition("a", 3.0, "up", "down")
    assert [(t.target_id, t.at) for t in queries.transitions(repo.engine)] == [
        ("a", 3.0),
        ("b", 2.0),
        ("a", 1.0),
    ]
    assert [t.at for t in queries.transitions(repo.engine, "a", limit=1)] == [3.0]


def test_writes_grouped_in_a_transaction_are_kept_together(repo: StateRepository) -> None:
    with repo.transaction():
        iid = repo.open_incident("trunk-a", "down", "Trunk A down", 10.0)
        repo.record_transition("trunk-a", 10.0, "up", "down", incident_id=iid)
        assert [i.id for i in repo.open_incidents()] == [iid]  # reads see the pending writes
    assert [t.incident_id for t in queries.transitions(repo.engine)] == [iid]

    with pytest.raises(NotFound), repo.transaction():
        second = repo.open_incident("trunk-b", "down", "Trunk B down", 20.0)
        repo.record_transition("trunk-b", 20.0, "up", "down", incident_id=second)
        with repo.transaction():  # nested: joins the outer one
            repo.recover_target(second, "not-a-member", 21.0)  # fails: all three are undone
    assert [i.id for i in repo.open_incidents()] == [iid]
    assert [t.target_id for t in queries.transitions(repo.engine)] == ["trunk-a"]


def test_a_transaction_in_one_thread_does_not_capture_another_threads_writes(
    repo: StateRepository,
) -> None:
    done = threading.Event()
    with pytest.raises(RuntimeError), repo.transaction():
        repo.add_counters({"inside": 1})
        other = threading.Thread(target=lambda: (repo.add_counters({"outside": 1}), done.set()))
        other.start()
        if repo.engine.dialect.name == "postgresql":  # SQLite: it waits for our commit
            other.join()
        raise RuntimeError("roll back")
    other.join()
    assert done.is_set()
    assert repo.counters() == {"outside": 1}


# -- incidents -----------------------------------------------------------------
def test_incident_lifecycle_keeps_members_and_timeline(repo: StateRepository) -> None:
    iid = repo.open_incident("carrier-a", "down", "Carrier A is down", 10.0)
    repo.join_incident(iid, "trunk-a1", "affected", 11.0)
    repo.join_incident(iid, "trunk-a2", "affected", 12.0)
    repo.recover_target(iid, "trunk-a1", 20.0)
    repo.join_incident(iid, "trunk-a1", "affected", 25.0)  # failed again
    repo.add_incident_event(iid, "note", 26.0, text="carrier ticket #123")

    (incident,) = repo.open_incidents()
    assert incident.id == iid
    assert incident.member_ids == ("carrier-a", "trunk-a1", "trunk-a2")
    assert [(m.role, m.joined_at, m.recovered_at) for m in incident.members] == [
        ("root", 10.0, None),
        ("affected", 11.0, None),
        ("affected", 12.0, None),
    ]

    assert repo.resolve_incident(iid, 30.0) is True
    assert repo.open_incidents() == []
    resolved = queries.incident(repo.engine, iid)
    assert resolved is not None
    assert (resolved.state, resolved.resolved_at) == ("resolved", 30.0)
    assert all(m.recovered_at is not None for m in resolved.members)
    assert [(e.kind, e.target_id) for e in queries.incident_events(repo.engine, iid)] == [
        ("opened", "carrier-a"),
        ("joined", "trunk-a1"),
        ("joined", "trunk-a2"),
        ("recovered", "trunk-a1"),
        ("joined", "trunk-a1"),
        ("note", None),
        ("resolved", None),
    ]


def test_resolving_an_incident_twice_changes_nothing_the_second_time(
    repo: StateRepository,
) -> None:
    iid = repo.open_incident("trunk-a", "down", "Trunk A down", 10.0)
    assert repo.resolve_incident(iid, 20.0) is True
    assert repo.resolve_incident(iid, 99.0) is False
    incident = queries.incident(repo.engine, iid)
    assert incident is not None and incident.resolved_at == 20.0
    assert [e.kind for e in queries.incident_events(repo.engine, iid)].count("resolved") == 1


@pytest.mark.parametrize(
    "write",
    [
        pytest.param(lambda r: r.join_incident(404, "x", "affected", 1.0), id="join"),
        pytest.param(lambda r: r.recover_target(404, "x", 1.0), id="recover"),
        pytest.param(lambda r: r.resolve_incident(404, 1.0), id="resolve"),
        pytest.param(lambda r: r.add_incident_event(404, "note", 1.0), id="add-event"),
        pytest.param(lambda r: r.set_incident_fields(404, cause="x"), id="set-fields"),
        pytest.param(lambda r: r.acknowledge_incident(404, "ops", 1.0), id="acknowledge"),
    ],
)
def test_writing_to_a_missing_incident_raises_not_found(repo: StateRepository, write: Any) -> None:
    with pytest.raises(NotFound, match="404"):
        write(repo)


def test_recovering_a_target_that_is_not_a_member_raises_not_found(
    repo: StateRepository,
) -> None:
    iid = repo.open_incident("trunk-a", "down", "Trunk A down", 10.0)
    with pytest.raises(NotFound, match="'trunk-b' is not a member"):
        repo.recover_target(iid, "trunk-b", 11.0)


def test_an_unknown_event_kind_is_refused(repo: StateRepository) -> None:
    iid = repo.open_incident("trunk-a", "down", "Trunk A down", 10.0)
    with pytest.raises(ValueError, match="unknown incident event kind 'gossip'"):
        repo.add_incident_event(iid, "gossip", 11.0)
    assert [e.kind for e in queries.incident_events(repo.engine, iid)] == ["opened"]


def test_set_incident_fields_changes_only_what_is_given(repo: StateRepository) -> None:
    iid = repo.open_incident("trunk-a", "down", "Trunk A down", 10.0)
    repo.set_incident_fields(iid, cause="fibre cut", eta=500.0, summary={"en": "Calls fail"})
    repo.set_incident_fields(iid, eta=900.0)
    incident = queries.incident(repo.engine, iid)
    assert incident is not None
    assert (incident.cause, incident.eta, incident.summary) == (
        "fibre cut",
        900.0,
        {"en": "Calls fail"},
    )
    repo.set_incident_fields(iid, cause=None, summary={"zh-CN": "外呼失败", "en": "Calls fail"})
    incident = queries.incident(repo.engine, iid)
    assert incident is not None
    assert (incident.cause, incident.eta, incident.summary) == (
        None,
        900.0,
        {"zh-CN": "外呼失败", "en": "Calls fail"},
    )


def test_an_escalating_incident_gets_a_new_severity_and_title(repo: StateRepository) -> None:
    iid = repo.open_incident("trunk-a", "degraded", "Trunk A degraded", 10.0)
    repo.set_incident_fields(iid, severity="down", title="Trunk A down")
    incident = queries.incident(repo.engine, iid)
    assert incident is not None
    assert (incident.severity, incident.title) == ("down", "Trunk A down")
    with pytest.raises(ValueError, match="severity cannot be cleared"):
        repo.set_incident_fields(iid, severity=None)


def test_an_incident_is_acknowledged_once(repo: StateRepository) -> None:
    iid = repo.open_incident("trunk-a", "down", "Trunk A down", 10.0)
    assert repo.acknowledge_incident(iid, "alice", 11.0) is True
    assert repo.acknowledge_incident(iid, "bob", 12.0) is False
    incident = queries.incident(repo.engine, iid)
    assert incident is not None
    assert (incident.acknowledged_by, incident.acknowledged_at) == ("alice", 11.0)


def test_incidents_are_paged_open_first_then_newest_and_filtered_by_state(
    repo: StateRepository,
) -> None:
    ids = [repo.open_incident(f"t-{i}", "down", f"t-{i} down", float(i)) for i in range(5)]
    repo.resolve_incident(ids[1], 10.0)
    repo.resolve_incident(ids[3], 10.0)

    page = queries.incidents_page(repo.engine, page=Page(1, 2))
    assert page.total == 5 and [r.id for r in page.items] == [ids[4], ids[2]]
    page = queries.incidents_page(repo.engine, page=Page(3, 2))
    assert [r.id for r in page.items] == [ids[1]]
    page = queries.incidents_page(repo.engine, ["resolved"])
    assert page.total == 2 and [r.id for r in page.items] == [ids[3], ids[1]]
    page = queries.incidents_page(repo.engine, ["open"])
    assert page.total == 3 and [r.id for r in page.items] == [ids[4], ids[2], ids[0]]
    assert all(r.member_ids == (r.root_target_id,) for r in page.items)


# -- the read model -------------------------------------------------------------------
@pytest.fixture
def fleet(repo: StateRepository) -> Engine:
    rows = [
        state("trunk-a", "down", "sip"),
        state("trunk-b", "up", "sip"),
        state("trunk_c", "degraded", "sip"),
        state("trunkxc", "up", "sip"),
        state("db-1", "up", "tcp"),
        state("db-2", "maintenance", "tcp"),
        state("web-1", "unknown", "http"),
        state("web-2", "down", "http"),
    ]
    repo.checkpoint(rows)
    return repo.engine


EVERY_TARGET = {"down": 2, "degraded": 1, "unknown": 1, "maintenance": 1, "up": 3}
H = Health


@pytest.mark.parametrize(
    ("flt", "page", "ids", "total", "totals"),
    [
        pytest.param(
            TargetFilter(),
            Page(),
            ["trunk-a", "web-2", "trunk_c", "web-1", "db-2", "db-1", "trunk-b", "trunkxc"],
            8,
            EVERY_TARGET,
            id="all-worst-first",
        ),
        pytest.param(
            TargetFilter(health=(H.UP,)),
            Page(),
            ["db-1", "trunk-b", "trunkxc"],
            3,
            EVERY_TARGET,
            id="health-filter-keeps-tab-counts",
        ),
        pytest.param(
            TargetFilter(health=(H.DOWN, H.DEGRADED), kind=("sip",)),
            Page(),
            ["trunk-a", "trunk_c"],
            2,
            {"down": 1, "degraded": 1, "unknown": 0, "maintenance": 0, "up": 2},
            id="several-healths-and-kind",
        ),
        pytest.param(
            TargetFilter(kind=("tcp", "http")),
            Page(),
            ["web-2", "web-1", "db-2", "db-1"],
            4,
            {"down": 1, "degraded": 0, "unknown": 1, "maintenance": 1, "up": 1},
            id="several-kinds",
        ),
        pytest.param(
            TargetFilter(q="TRUNK_"),
            Page(),
            ["trunk_c"],
            1,
            {"down": 0, "degraded": 1, "unknown": 0, "maintenance": 0, "up": 0},
            id="q-is-case-insensitive-and-underscore-is-literal",
        ),
        pytest.param(
            TargetFilter(),
            Page(2, 3),
            ["web-1", "db-2", "db-1"],
            8,
            EVERY_TARGET,
            id="second-page",
        ),
        pytest.param(TargetFilter(), Page(4, 3), [], 8, EVERY_TARGET, id="past-the-end"),
    ],
)
def test_targets_page_filters_sorts_and_counts(
    fleet: Engine,
    flt: TargetFilter,
    page: Page,
    ids: list[str],
    total: int,
    totals: dict[str, int],
) -> None:
    result = queries.targets_page(fleet, flt, page)
    assert [r.id for r in result.items] == ids
    assert result.total == total
    assert dict(result.totals) == totals
    assert list(result.totals) == list(HEALTH_ORDER)  # the tabs' order
    assert result.page == page


def test_a_text_filter_also_matches_the_ids_whose_configured_name_matches(fleet: Engine) -> None:
    result = queries.targets_page(fleet, TargetFilter(q="database"), name_matches=["db-2"])
    assert [r.id for r in result.items] == ["db-2"]
    assert result.totals[H.MAINTENANCE] == 1 and result.total == 1


def test_a_target_row_carries_its_health_and_last_observation_typed(fleet: Engine) -> None:
    row = queries.target(fleet, "trunk-a")
    assert row is not None
    assert row.health is Health.DOWN
    assert row.last_status is Status.OK
    assert dict(row.last_metrics) == {"sip.rtt_ms": 12.3, "sip.code": 200}
    assert queries.target(fleet, "ghost") is None


def test_health_of_answers_for_known_ids_only(fleet: Engine) -> None:
    assert queries.health_of(fleet, ["trunk-a", "db-2", "ghost", "trunk-a"]) == {
        "trunk-a": Health.DOWN,
        "db-2": Health.MAINTENANCE,
    }


def test_kinds_present_lists_each_stored_kind_once(fleet: Engine) -> None:
    assert queries.kinds_present(fleet) == ("http", "sip", "tcp")


def test_values_read_are_frozen(fleet: Engine, repo: StateRepository) -> None:
    row = queries.target(fleet, "trunk-a")
    iid = repo.open_incident("trunk-a", "down", "Trunk A down", 10.0)
    repo.set_incident_fields(iid, summary={"en": "Calls fail"})
    incident = queries.incident(fleet, iid)
    assert row is not None and incident is not None
    with pytest.raises(FrozenInstanceError):
        row.health = Health.UP  # type: ignore[misc]
    with pytest.raises(TypeError):
        row.last_metrics["sip.rtt_ms"] = 0  # type: ignore[index]
    with pytest.raises(TypeError):
        incident.summary["en"] = "all fine"  # type: ignore[index]
    assert isinstance(incident.members, tuple)


def test_an_incidents_members_list_the_root_first_then_in_join_order(
    repo: StateRepository,
) -> None:
    # A merge can bring in members that joined before the root's own failure was seen.
    iid = repo.open_incident("carrier-a", "down", "Carrier A is down", 10.0)
    repo.join_incident(iid, "trunk-b", "affected", 12.0)
    repo.join_incident(iid, "trunk-a", "affected", 5.0)
    repo.join_incident(iid, "trunk-c", "affected", 12.0)
    expected = ("carrier-a", "trunk-a", "trunk-b", "trunk-c")
    db = repo.engine
    incident = queries.incident(db, iid)
    assert incident is not None and incident.member_ids == expected
    assert incident.severity is Health.DOWN
    for listing in (
        queries.open_incidents(db),
        queries.incidents_page(db).items,
        queries.incidents_for_target(db, "trunk-b"),
    ):
        assert [i.member_ids for i in listing] == [expected]
    repo.resolve_incident(iid, 20.0)
    assert [i.member_ids for i in queries.resolved_since(db, 20.0)] == [expected]
    assert queries.resolved_since(db, 20.5) == ()


def test_transitions_come_back_with_health_values(repo: StateRepository) -> None:
    repo.record_transition("a", 1.0, "unknown", "degraded", reason="slow")
    (transition,) = queries.transitions(repo.engine, "a")
    assert (transition.from_health, transition.to_health) == (Health.UNKNOWN, Health.DEGRADED)
    assert transition.from_health is Health.UNKNOWN


@contextlib.contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    """The queries ``engine`` sends to the database inside the block (not BEGIN and the like)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.split(None, 1)[0].upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
            sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.mark.parametrize("incidents", [1, 40], ids=["one-incident", "forty-incidents"])
def test_a_page_of_incidents_costs_three_statements_however_many_rows_and_members(
    repo: StateRepository, incidents: int
) -> None:
    for n in range(incidents):
        iid = repo.open_incident(f"carrier-{n}", "down", f"carrier-{n} down", float(n))
        for m in range(5):
            repo.join_incident(iid, f"trunk-{n}-{m}", "affected", n + 0.5)
    queries.incidents_page(repo.engine)  # the pool's first connection is not the point
    with statements(repo.engine) as sent:
        page = queries.incidents_page(repo.engine, page=Page(1, 50))
    assert len(page.items) == incidents and all(len(i.members) == 6 for i in page.items)
    assert len(sent) == 3, sent  # the total, the page, the page's members


@pytest.mark.parametrize("targets", [1, 300], ids=["one-target", "300-targets"])
def test_a_page_of_targets_costs_two_statements_however_many_rows(
    repo: StateRepository, targets: int
) -> None:
    repo.checkpoint([state(f"t-{i:04d}", HEALTH_ORDER[i % 5]) for i in range(targets)])
    queries.targets_page(repo.engine)
    with statements(repo.engine) as sent:
        page = queries.targets_page(repo.engine, TargetFilter(q="t-"), Page(1, 1000))
    assert len(page.items) == targets
    assert len(sent) == 2, sent  # the per-health totals, the page


@pytest.mark.parametrize(
    "arguments",
    [
        pytest.param({"page": 0}, id="page-0"),
        pytest.param({"per_page": 0}, id="per-page-0"),
        pytest.param({"per_page": 100_000}, id="per-page-too-big"),
    ],
)
def test_page_arguments_out_of_range_are_refused(arguments: dict[str, int]) -> None:
    with pytest.raises(ValueError, match="must be"):
        Page(**arguments)


@pytest.mark.parametrize(
    ("text", "pattern"),
    [("trunk", "%trunk%"), ("50%", "%50\\%%"), ("a_b", "%a\\_b%"), ("c:\\x", "%c:\\\\x%")],
)
def test_like_pattern_takes_wildcards_literally(text: str, pattern: str) -> None:
    assert like_pattern(text) == pattern


def test_health_order_names_every_health_once_worst_first() -> None:
    assert sorted(HEALTH_ORDER) == sorted(Health) and len(HEALTH_ORDER) == len(Health)
    assert (HEALTH_ORDER[0], HEALTH_ORDER[-1]) == (Health.DOWN, Health.UP)


# -- probe state and counters --------------------------------------------------------
def test_probe_states_are_upserted_and_loaded(repo: StateRepository) -> None:
    repo.save_probe_states({"cdr-1": {"offset": 10, "inode": 5}, "snmp-1": {"if_in": [1, 2]}})
    repo.save_probe_states({"cdr-1": {"offset": 20, "inode": 5}})
    assert repo.load_probe_states() == {
        "cdr-1": {"offset": 20, "inode": 5},
        "snmp-1": {"if_in": [1, 2]},
    }


def test_counters_add_up_past_32_bits(repo: StateRepository) -> None:
    repo.add_counters({"probes_run": 2**31, "notifications_sent": 1})
    repo.add_counters({"probes_run": 2**31})
    assert repo.counters() == {"probes_run": 2**32, "notifications_sent": 1}


def test_concurrent_writers_and_readers_lose_no_counter_increments(
    repo: StateRepository,
) -> None:
    errors: list[BaseException] = []

    def write() -> None:
        try:
            for _ in range(25):
                repo.add_counters({"n": 1})
                repo.checkpoint([state("trunk-a")])
        except BaseException as exc:  # collected and re-raised in the test thread
            errors.append(exc)

    def read() -> None:
        try:
            for _ in range(25):
                repo.counters()
                queries.targets_page(repo.engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    threads += [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert repo.counters() == {"n": 100}


def test_two_engines_on_one_database_can_both_read_then_write(backend: Backend) -> None:
    """Two processes (say the engine and an admin command) writing at once: each
    write reads first (is the incident there?), which on SQLite needs BEGIN
    IMMEDIATE to queue on the busy timeout rather than fail with "database is locked"."""
    engines = [backend.open(), backend.open()]
    try:
        repos = [StateRepository(e) for e in engines]
        iid = repos[0].open_incident("trunk-a", "down", "Trunk A down", 1.0)
        errors: list[BaseException] = []

        def write(repo: StateRepository, who: str) -> None:
            try:
                for n in range(40):
                    repo.add_incident_event(iid, "note", 2.0 + n, text=who)
                    repo.set_incident_fields(iid, eta=float(n))
            except BaseException as exc:  # collected and re-raised in the test thread
                errors.append(exc)

        threads = [threading.Thread(target=write, args=(r, f"w{i}")) for i, r in enumerate(repos)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        notes = [e.text for e in queries.incident_events(engines[1], iid) if e.kind == "note"]
        assert sorted(notes) == ["w0"] * 40 + ["w1"] * 40
    finally:
        for e in engines:
            e.dispose()


def test_an_open_read_does_not_block_a_checkpoint_and_keeps_its_snapshot(
    backend: Backend, repo: StateRepository
) -> None:
    repo.checkpoint([state("trunk-a", "up")])
    reader = backend.open()
    try:
        with reader.connect() as conn, conn.begin():
            query = text("SELECT health FROM target_state WHERE target_id = 'trunk-a'")
            assert conn.execute(query).scalar_one() == "up"
            repo.checkpoint([state("trunk-a", "down")])  # would wait or fail if readers blocked it
            if backend.name == "sqlite":  # PostgreSQL's default READ COMMITTED sees new commits
                assert conn.execute(query).scalar_one() == "up"
        assert repo.load_target_states()["trunk-a"].health == "down"
    finally:
        reader.dispose()


# -- restarts --------------------------------------------------------------------
def test_everything_survives_a_restart_identical(backend: Backend) -> None:
    engine = backend.open()
    repo = StateRepository(engine)
    repo.checkpoint(
        [state("carrier-a", "down"), state("trunk-a1", "down", affected_by="carrier-a")]
    )
    iid = repo.open_incident("carrier-a", "down", "Carrier A is down", 100.0)
    repo.join_incident(iid, "trunk-a1", "affected", 101.5)
    repo.set_incident_fields(iid, cause="fibre cut", eta=4000.0, summary={"en": "Calls fail"})
    repo.record_transition("carrier-a", 100.0, "up", "down", incident_id=iid)
    repo.save_probe_states({"carrier-a": {"cseq": 41, "rates": {"in": 1.5}}})
    repo.add_counters({"probes_run": 1234, "incidents_opened": 1})
    before = (
        repo.load_target_states(),
        repo.open_incidents(),
        queries.incident_events(engine, iid),
        queries.transitions(engine),
        repo.load_probe_states(),
        repo.counters(),
    )
    engine.dispose()

    engine = backend.open()
    try:
        repo = StateRepository(engine)
        after = (
            repo.load_target_states(),
            repo.open_incidents(),
            queries.incident_events(engine, iid),
            queries.transitions(engine),
            repo.load_probe_states(),
            repo.counters(),
        )
    finally:
        engine.dispose()
    assert after == before
    assert after[1][0].member_ids == ("carrier-a", "trunk-a1")
    assert after[0]["trunk-a1"].as_dict() == state("trunk-a1", "down", affected_by="carrier-a")
