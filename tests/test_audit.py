"""The audit log: the hash chain under a scripted day of the console, tampering, pruning with
its anchor, merged engine exceptions, the page's query and the CSV export — on SQLite and
PostgreSQL (the ``db`` fixture)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, delete, func, insert, select, update

from core.clock import ManualClock
from core.observation import MetricPoint
from dialwatch.appliance_audit import ApplianceAudit
from monitor import audit, audit_csv
from monitor.config import load_config
from monitor.config.models import RetentionConfig
from monitor.faults import FaultLog, FaultMerger, state_db_writer
from monitor.retention import RetentionJob
from monitor.runner import ProbeRunner
from monitor.sinks.base import BatchingSink, SinkError
from monitor.staff import sessions, tokens, users
from monitor.store import queries
from monitor.store.models import AuditAnchor, AuditEntry
from monitor.store.repository import StateRepository
from monitor.store.retention import AuditPruner
from probes.base import ProbeContext

T0 = 1_790_000_000.0
DAY = 86400.0
GOOD = "correct horse battery"
POLICY = sessions.SessionPolicy()


@pytest.fixture
def repo(db: Engine) -> Iterator[StateRepository]:
    repository = StateRepository(db)
    yield repository


def record(repo: StateRepository, at: float, action: str = "note", **fields: object) -> int:
    with repo.transaction() as conn:
        return audit.record(
            conn, at=at, actor=str(fields.pop("actor", "user:alice")), action=action, **fields
        )  # type: ignore[arg-type]


def verify(repo: StateRepository) -> audit.ChainCheck:
    with repo.engine.connect() as conn:
        return audit.verify(conn)


def ids(repo: StateRepository) -> list[int]:
    with repo.engine.connect() as conn:
        return list(conn.execute(select(AuditEntry.id).order_by(AuditEntry.id)).scalars())


def login(repo: StateRepository, name: str, password: str, at: float, address: str) -> str | None:
    """A login as the console makes one: check, audit the attempt, start a session."""
    who = users.check_login(repo, name, password, at=at)
    with repo.transaction() as conn:
        audit.record(
            conn,
            at=at,
            actor=who.actor if who else "anonymous",
            address=address,
            action="login",
            object=f"user:{name}",
            result="ok" if who else "failed",
        )
    if who is None:
        return None
    return sessions.start(repo, who.id, stage="full", policy=POLICY, address=address, at=at)


def scripted_day(repo: StateRepository) -> int:
    """Logins, failures, user and token changes, logouts; returns the entries written."""
    users.add_user(repo, "cli:root", "alice", "admin", GOOD, at=T0)
    cookie = login(repo, "alice", GOOD, T0 + 10, "10.0.0.5")
    assert cookie is not None
    users.add_user(repo, "user:alice", "bob", "operator", GOOD, address="10.0.0.5", at=T0 + 20)
    assert login(repo, "bob", "not his password", T0 + 30, "10.0.0.9") is None
    bob = login(repo, "bob", GOOD, T0 + 40, "10.0.0.9")
    assert bob is not None
    info, _value = tokens.create_token(repo, "user:alice", "bob", role="viewer", at=T0 + 50)
    users.set_role(repo, "user:alice", "bob", "viewer", at=T0 + 60)
    tokens.revoke_token(repo, "user:alice", info.id, at=T0 + 70)
    sessions.end(repo, sessions.session_key(bob), "user:bob", at=T0 + 80)
    users.disable_user(repo, "user:alice", "bob", at=T0 + 90)
    sessions.end(repo, sessions.session_key(cookie), "user:alice", at=T0 + 100)
    return 11


# -- the chain ------------------------------------------------------------------------
def test_the_chain_holds_after_a_scripted_day_of_logins_and_changes(repo: StateRepository) -> None:
    written = scripted_day(repo)
    check = verify(repo)
    assert (check.checked, check.broken_at) == (written, None)
    rows, total = queries.audit_page(repo.engine, action="login")
    assert total == 3
    assert [(r.actor, r.result, r.address) for r in rows] == [
        ("user:bob", "ok", "10.0.0.9"),
        ("anonymous", "failed", "10.0.0.9"),
        ("user:alice", "ok", "10.0.0.5"),
    ]


def test_an_edited_entry_breaks_the_chain_at_that_entry(repo: StateRepository) -> None:
    scripted_day(repo)
    victim = ids(repo)[4]
    with repo.transaction() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.id == victim).values(object="user:eve"))
    check = verify(repo)
    assert check.broken_at == victim
    assert check.reason == f"entry {victim} was changed after it was written"
    assert check.checked == 4


def test_a_deleted_entry_breaks_the_chain_at_the_next_one(repo: StateRepository) -> None:
    scripted_day(repo)
    all_ids = ids(repo)
    with repo.transaction() as conn:
        conn.execute(delete(AuditEntry).where(AuditEntry.id == all_ids[3]))
    check = verify(repo)
    assert check.broken_at == all_ids[4]
    assert "deleted or inserted" in check.reason


def test_the_head_is_the_newest_entry_and_survives_pruning_everything(
    repo: StateRepository,
) -> None:
    with repo.engine.connect() as conn:
        assert audit.head(conn) == audit.Head(0, audit.GENESIS)
    last = record(repo, T0)
    with repo.engine.connect() as conn:
        head = audit.head(conn)
        assert head.id == last and str(head) == f"{last}:{audit.entry_hash_of(conn, last)}"
    assert prune(repo, T0 + 10, max_age="1s") == 1
    with repo.engine.connect() as conn:
        # Only the pruning run's own entry is left; its id follows the pruned one.
        assert audit.head(conn).id == last + 1
        assert audit.anchor(conn).through_id == last  # type: ignore[union-attr]


# -- pruning ---------------------------------------------------------------------------
def prune(repo: StateRepository, now: float, batch: int = 10, **policy: object) -> int:
    config = RetentionConfig(audit=policy or {"max_age": 365 * DAY}, batch=batch)
    job = RetentionJob(lambda: config)
    job.register("audit", AuditPruner(repo))
    report = asyncio.run(job.run_once(now))
    assert report.failed == []
    return report.deleted["audit"]


def test_pruning_keeps_the_chain_verifiable_through_its_anchor(repo: StateRepository) -> None:
    for day in range(30):
        record(repo, T0 + day * 20 * DAY, object=f"incident:{day}")
    now = T0 + 30 * 20 * DAY
    deleted = prune(repo, now)  # batches of 10: several transactions
    survivors = ids(repo)
    with repo.engine.connect() as conn:
        anchor = audit.anchor(conn)
        oldest_kept = conn.execute(select(func.min(AuditEntry.at))).scalar_one()
        entries = queries.audit_page(conn, action="audit.prune")[0]
    assert deleted == 30 - len([d for d in range(30) if T0 + d * 20 * DAY >= now - 365 * DAY])
    assert anchor is not None and anchor.through_id == deleted
    assert oldest_kept >= now - 365 * DAY
    assert verify(repo).broken_at is None
    # The run says what it did, in the chain itself.
    assert [(e.actor, e.result, e.detail) for e in entries] == [
        ("system", "ok", f"{deleted} entries deleted through entry {deleted}")
    ]
    # New entries chain on, and a second run finds nothing more.
    record(repo, now + 1)
    assert prune(repo, now + 2) == 0
    assert ids(repo) == [*survivors, survivors[-1] + 1]
    assert verify(repo).broken_at is None


def test_pruning_every_entry_leaves_an_anchor_the_next_entry_follows(
    repo: StateRepository,
) -> None:
    for i in range(5):
        record(repo, T0 + i)
    assert prune(repo, T0 + 10, max_age="1s") == 5
    # Only the run's own entry is left; the chain starts at the anchor.
    with repo.engine.connect() as conn:
        assert audit.anchor(conn).through_id == 5  # type: ignore[union-attr]
    assert prune(repo, T0 + 100, max_age="1s") == 1
    assert ids(repo) == [7]  # the second run's entry; the first run's went
    record(repo, T0 + 101)
    assert verify(repo).broken_at is None


def test_pruning_takes_only_a_prefix_so_a_late_entry_with_an_early_time_leaves_no_hole(
    repo: StateRepository,
) -> None:
    record(repo, T0)
    record(repo, T0 + 1)
    record(repo, T0 + 500 * DAY)  # recent
    late = record(repo, T0 + 2)  # written after it, stamped early (a merged exception)
    assert prune(repo, T0 + 501 * DAY) == 2
    assert ids(repo)[:2] == [3, late]
    assert verify(repo).broken_at is None


def test_pruning_by_count_keeps_the_newest(repo: StateRepository) -> None:
    for i in range(25):
        record(repo, T0 + i)
    assert prune(repo, T0 + 100, max_age=None, max_rows=10) == 15
    assert ids(repo)[:10] == list(range(16, 26))
    assert verify(repo).broken_at is None


def test_pruning_never_launders_a_changed_entry_into_the_anchor(
    repo: StateRepository, caplog: pytest.LogCaptureFixture
) -> None:
    for i in range(6):
        record(repo, T0 + i)
    with repo.transaction() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.id == 4).values(actor="user:eve"))
    with caplog.at_level(logging.ERROR):
        assert prune(repo, T0 + 400 * DAY) == 3
    assert "audit entry 4 does not hold its hash" in caplog.text
    assert ids(repo)[:3] == [4, 5, 6]
    assert verify(repo).broken_at == 4
    failed = queries.audit_page(repo.engine, action="audit.prune")[0]
    assert [(e.result, e.object) for e in failed] == [("ok", "audit:3"), ("failed", "audit:4")]


# -- merged engine exceptions ---------------------------------------------------------------
def test_a_thousand_crashes_in_ten_minutes_are_one_entry_with_their_count(
    repo: StateRepository,
) -> None:
    clock = ManualClock(T0)
    log_ = FaultLog(state_db_writer(repo), clock=clock)

    async def crashes() -> None:
        for i in range(1000):
            try:
                raise ZeroDivisionError("division by zero")
            except ZeroDivisionError as exc:
                log_.report("probe:sip", exc, object=f"trunk-{i % 3}")
            await clock.advance(0.599)
        assert log_.flush() == 0  # the window is still open
        await clock.advance(1)
        assert log_.flush() == 1

    asyncio.run(crashes())
    [entry], total = queries.audit_page(repo.engine, action="exception")
    assert total == 1
    assert (entry.actor, entry.result, entry.object, entry.count) == (
        "engine",
        "error",
        "probe:sip",
        1000,
    )
    assert entry.at == T0
    assert entry.detail.startswith(
        "1000 times in 598 s; first: ZeroDivisionError: division by zero"
    )
    assert entry.detail.endswith("3 object(s): trunk-0, trunk-1, trunk-2")
    assert verify(repo).broken_at is None


def test_faults_merge_per_source_and_error_class_and_a_new_window_starts_after() -> None:
    clock = ManualClock(T0)
    merger = FaultMerger(clock, window=600)
    merger.report("probe:sip", ValueError("a"))
    merger.report("probe:sip", KeyError("b"))
    merger.report("sink:influxdb", ValueError("c"))
    merger.report("probe:sip", ValueError("d"))
    asyncio.run(clock.advance(600))
    merger.report("probe:sip", ValueError("e"))  # after the window: the next entry's
    due = merger.take_due()
    assert [(e.source, e.error_class, e.count) for e in due] == [
        ("probe:sip", "KeyError", 1),
        ("probe:sip", "ValueError", 2),
        ("sink:influxdb", "ValueError", 1),
    ]
    assert merger.pending() == 1
    assert [e.count for e in merger.take_due(everything=True)] == [1]


def test_a_secret_in_an_exception_never_reaches_the_audit_log(repo: StateRepository) -> None:
    secret = "s3cr3t-influx-token"
    log_ = FaultLog(state_db_writer(repo), mask=lambda text: text.replace(secret, "***"))
    log_.report("sink:influxdb", ConnectionError(f"POST http://u:{secret}@db/write refused"))
    assert log_.flush(everything=True) == 1
    [entry], _ = queries.audit_page(repo.engine)
    assert secret not in entry.detail and "***" in entry.detail


def test_entries_the_db_refused_are_written_by_the_next_flush(repo: StateRepository) -> None:
    calls: list[int] = []
    write = state_db_writer(repo)

    def flaky(entries: list) -> None:  # type: ignore[type-arg]
        calls.append(len(entries))
        if len(calls) == 1:
            raise OSError("disk full")
        write(entries)

    log_ = FaultLog(flaky)
    log_.report("job:checkpoint", RuntimeError("x"))
    assert log_.flush(everything=True) == 0
    log_.report("job:probe-state", RuntimeError("y"))
    assert log_.flush(everything=True) == 2
    assert calls == [1, 2]
    assert queries.audit_page(repo.engine)[1] == 2


def test_the_runner_reports_a_probe_crash_per_kind_with_the_target() -> None:
    clock = ManualClock(T0)
    merger = FaultMerger(clock)

    class Target:
        kind = "tcp"

    async def crash(target: object, ctx: ProbeContext) -> None:
        raise KeyError("no such field")

    async def run() -> None:
        runner = ProbeRunner(concurrency=4, clock=clock, faults=merger)
        for target_id in ("crm-db", "crm-db", "billing"):
            obs = await runner.run(crash, Target(), ProbeContext(target_id, timeout=1.0))
            assert obs.status.value == "error"

    asyncio.run(run())
    [entry] = merger.take_due(everything=True)
    assert (entry.source, entry.error_class, entry.count) == ("probe:tcp", "KeyError", 3)
    assert entry.examples == ("crm-db", "billing")


def test_a_failing_sink_reports_each_failure_as_its_own_source() -> None:
    merger = FaultMerger(ManualClock(T0))

    class Down(BatchingSink):
        def write_batch(self, points: list[MetricPoint]) -> int | None:
            raise SinkError("connection refused")

    sink = Down("influxdb", batch_size=1)
    sink.faults = merger
    for _ in range(3):
        sink.submit([MetricPoint("probe", {"status": 0})])
    sink.close()  # never started: drains on this thread
    [entry] = merger.take_due(everything=True)
    assert (entry.source, entry.error_class, entry.count) == ("sink:influxdb", "SinkError", 3)
    assert entry.first == "SinkError: connection refused"


def test_a_failing_event_subscriber_is_reported_each_time_it_fails(
    repo: StateRepository,
) -> None:
    from monitor.dispatcher import Dispatcher, OutsideSubscriber
    from monitor.events import Event, EventKind, NewEvent
    from monitor.events import record as record_event

    merger = FaultMerger(ManualClock(T0))
    failures = {"left": 3}
    handled: list[int] = []

    async def flaky(event: Event) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise ConnectionError("SMS gateway refused the connection")
        handled.append(event.id)

    async def scenario() -> None:
        dispatcher = Dispatcher(repo, retry_first=0.01, retry_most=0.02, faults=merger)
        dispatcher.add(OutsideSubscriber("sms", flaky, "beginning"))
        await dispatcher.start()
        try:
            with repo.transaction():
                record_event(repo, NewEvent(EventKind.NOTED, T0, incident_id=1))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            while not handled:  # the retries are real time (10 ms apart): wait for them
                assert loop.time() < deadline, "the subscriber never got over its failures"
                await asyncio.sleep(0.01)
        finally:
            await dispatcher.stop()

    asyncio.run(scenario())
    [entry] = merger.take_due(everything=True)
    assert (entry.source, entry.error_class, entry.count) == (
        "subscriber:sms",
        "ConnectionError",
        3,
    )


def test_a_failing_pruner_is_reported_as_a_retention_fault(repo: StateRepository) -> None:
    merger = FaultMerger(ManualClock(T0))

    class Broken:
        def plan(self, policy: object, now: float) -> object:
            raise RuntimeError("no such table")

        def delete_batch(self, plan: object, limit: int) -> object:
            raise AssertionError("not reached")

    job = RetentionJob(lambda: RetentionConfig(), faults=merger)
    job.register("audit", Broken())  # type: ignore[arg-type]
    assert asyncio.run(job.run_once(T0)).failed == ["audit"]
    [entry] = merger.take_due(everything=True)
    assert (entry.source, entry.error_class) == ("retention:audit", "RuntimeError")


def test_a_crashing_probe_in_the_engine_becomes_one_merged_entry(
    repo: StateRepository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import probes
    from monitor.engine import Engine
    from probes.base import ProbeKind

    async def crash(target: object, ctx: object) -> None:
        raise KeyError("no such field")

    kind = probes.PROBES["tcp"]
    monkeypatch.setitem(probes.PROBES, "tcp", ProbeKind("tcp", kind.model, crash, kind.summary))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "targets:\n  - {id: crm-db, kind: tcp, address: '127.0.0.1:9', interval: 10s}\n",
        encoding="utf-8",
    )
    # The fault log's own clock: the engine's stands still, so its scheduler starts
    # no probe of its own and the count is exactly the probes run here.
    clock = ManualClock(T0)
    faults = FaultLog(state_db_writer(repo), clock=clock)
    (tmp_path / "data").mkdir()

    async def scenario() -> None:
        engine = Engine(
            load_config(cfg), repo, tmp_path / "data", clock=ManualClock(T0), faults=faults
        )
        await engine.start()
        try:
            rt = engine.targets["crm-db"]
            for _ in range(1000):
                await engine.probe_once(rt)
                await clock.advance(0.5)
            assert faults.flush() == 0
            await clock.advance(120)
            assert await engine.writer.run(faults.flush) == 1
        finally:
            await engine.stop(drain_timeout=1)

    asyncio.run(scenario())
    rows, total = queries.audit_page(repo.engine, action="exception", object_like="probe:tcp")
    assert total == 1 and rows[0].count == 1000
    assert "KeyError: 'no such field'" in rows[0].detail and "crm-db" in rows[0].detail


# -- the appliance's own entries ------------------------------------------------------------
def test_the_appliance_audits_its_start_and_reloads_with_the_config_hash(
    repo: StateRepository, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("targets: []\n", encoding="utf-8")
    first = load_config(cfg)
    cfg.write_text("site: {name: NOC}\ntargets: []\n", encoding="utf-8")
    second = load_config(cfg)
    own = ApplianceAudit(repo, str(cfg), clock=ManualClock(T0))
    with caplog.at_level(logging.INFO, logger="dialwatch.audit"):
        own.log_head("start")
        own.started(first, "0.1.0")
        own.reloaded(first, second, actor="user:alice", address="10.0.0.5", via="the API")
        own.reloaded(second, None, ["c.yaml:1: site.name: must be text"], via="SIGHUP")
        head = own.log_head("stop")
    rows, _ = queries.audit_page(repo.engine)
    by_action = {(r.action, r.result): r for r in rows}
    start = by_action[("appliance.start", "ok")]
    assert start.after["digest"] == first.digest  # type: ignore[index]
    reload_ok = by_action[("config.reload", "ok")]
    assert (reload_ok.actor, reload_ok.address) == ("user:alice", "10.0.0.5")
    assert reload_ok.before == {"digest": first.digest}
    assert reload_ok.after["digest"] == second.digest  # type: ignore[index]
    assert len(reload_ok.after["files"][str(cfg)]) == 64  # type: ignore[index]
    failed = by_action[("config.reload", "failed")]
    assert failed.detail == "via SIGHUP: rejected: c.yaml:1: site.name: must be text"
    assert "audit chain head (start): entry 0:" + "0" * 64 in caplog.text
    assert f"audit chain head (stop): entry {head}" in caplog.text
    assert head is not None and head.id == max(r.id for r in rows)


# -- the read side: the page and the CSV ----------------------------------------------------------
def fill(repo: StateRepository) -> None:
    rows = [
        ("user:alice", "login", "user:alice", T0),
        ("anonymous", "login", "user:bob", T0 + 10),
        ("user:alice", "user.add", "user:bob", T0 + 20),
        ("user:alice", "user.role", "user:bob", T0 + 30),
        ("engine", "exception", "probe:sip", T0 + 40),
        ("user:bob", "incident.ack", "incident:50%_off", T0 + 40),
        ("user:bob", "incident.note", "incident:500", T0 + DAY),
    ]
    for actor, action, obj, at in rows:
        record(repo, at, action, actor=actor, object=obj)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({}, [7, 6, 5, 4, 3, 2, 1], id="newest-first-ties-by-id"),
        pytest.param({"actor": "user:alice"}, [4, 3, 1], id="one-actor"),
        pytest.param({"action": "login"}, [2, 1], id="one-action"),
        pytest.param({"action": "user."}, [4, 3], id="an-action-prefix"),
        pytest.param({"object_like": "BOB"}, [4, 3, 2], id="object-ignoring-case"),
        pytest.param({"object_like": "50%"}, [6], id="percent-is-literal"),
        pytest.param({"object_like": "0_"}, [], id="underscore-is-literal"),
        pytest.param({"since": T0 + 20, "until": T0 + 40}, [4, 3], id="since-until"),
        pytest.param({"actor": "user:bob", "since": T0 + 3600}, [7], id="actor-and-since"),
        pytest.param({"actor": "nobody"}, [], id="nothing"),
    ],
)
def test_the_audit_page_filters_and_lists_newest_first(
    repo: StateRepository, filters: dict[str, object], expected: list[int]
) -> None:
    fill(repo)
    rows, total = queries.audit_page(repo.engine, **filters)  # type: ignore[arg-type]
    assert [r.id for r in rows] == expected
    assert total == len(expected)


def test_the_audit_page_pages_and_counts_every_match(repo: StateRepository) -> None:
    fill(repo)
    first, total = queries.audit_page(repo.engine, per_page=3)
    third, _ = queries.audit_page(repo.engine, page=3, per_page=3)
    assert ([r.id for r in first], [r.id for r in third], total) == ([7, 6, 5], [1], 7)
    with pytest.raises(ValueError, match="per_page must be between 1 and 1000"):
        queries.audit_page(repo.engine, per_page=5000)


def test_every_entry_is_exported_in_batches_in_page_order(repo: StateRepository) -> None:
    fill(repo)
    exported = [r.id for r in queries.audit_entries(repo.engine, batch=2)]
    assert exported == [7, 6, 5, 4, 3, 2, 1]
    assert [r.id for r in queries.audit_entries(repo.engine, actor="user:bob", batch=1)] == [7, 6]


def row(**fields: object) -> queries.AuditRow:
    base: dict[str, object] = {
        "id": 1,
        "at": T0,
        "actor": "user:alice",
        "address": "10.0.0.5",
        "action": "incident.note",
        "object": "incident:1",
        "result": "ok",
        "before": None,
        "after": None,
        "detail": "",
        "count": 1,
    }
    return queries.AuditRow(**{**base, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK(""http://evil"",""x"")'),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tTAB", "'\tTAB"),
        ("incident:1 a=b", "incident:1 a=b"),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_quoted_as_text(text: str, cell: str) -> None:
    header, line = list(audit_csv.lines([row(detail=text)]))
    assert header == ",".join(audit_csv.HEADER) + "\r\n"
    assert line.rstrip("\r\n").endswith(cell if "," not in cell else f'"{cell}"')


def test_the_csv_is_written_as_the_rows_come() -> None:
    def rows() -> Iterator[queries.AuditRow]:
        yield row(id=9, after={"role": "admin"}, object="user:bob")
        raise RuntimeError("the DB went away after one row")

    lines = audit_csv.lines(rows())
    assert next(lines).startswith("id,at,actor")
    first = next(lines)
    assert first.startswith("9,2026-09-21T") and '"{""role"": ""admin""}"' in first
    with pytest.raises(RuntimeError):
        next(lines)


def test_the_anchor_table_has_one_row_at_most(repo: StateRepository) -> None:
    for i in range(4):
        record(repo, T0 + i)
    prune(repo, T0 + 10, max_age="1s", batch=10)
    prune(repo, T0 + 20, max_age="1s", batch=10)
    with repo.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(AuditAnchor)).scalar_one() == 1
        # And an entry written straight into the table, not through record(), shows.
        conn.execute(
            insert(AuditEntry).values(
                at=T0, actor="user:eve", action="login", object="", result="ok",
                address="", detail="", count=1, prev_hash="0" * 64, hash="0" * 64,
            )
        )  # fmt: skip
        conn.commit()
    assert verify(repo).broken_at is not None


# -- the running appliance ---------------------------------------------------------------------
@pytest.mark.e2e
def test_the_running_appliance_audits_its_start_and_reloads_and_logs_its_chain_head(
    tmp_path: Path,
) -> None:
    """``dialwatch run`` as a process: its start and each reload (good and bad) are entries,
    the CLI adds a user while it runs, and the chain head it logged at stop verifies."""
    import re
    import signal
    import subprocess
    import sys
    import time

    from monitor.store.db import open_database
    from tests.peers import free_port

    cfg = tmp_path / "dialwatch.yaml"
    cfg.write_text("targets: []\n", encoding="utf-8")
    from dialwatch.schema import Config as ApplianceConfig

    # The appliance's own schema: its sections (channels:...) are part of what is hashed.
    first_digest = load_config(cfg, schema=ApplianceConfig).digest
    data = tmp_path / "data"
    output = tmp_path / "dialwatch.out"
    base = [sys.executable, "-m", "dialwatch.cli"]
    where = ["--config", str(cfg), "--data", str(data)]

    def wait_for(what: str, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not predicate():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"no {what}:\n{output.read_text()[-3000:]}")
            time.sleep(0.1)

    def actions() -> list[tuple[str, str]]:
        engine = open_database(None, data)
        try:
            rows = list(queries.audit_entries(engine))
        finally:
            engine.dispose()
        return [(r.action, r.result) for r in reversed(rows)]

    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*base, "run", *where, "--listen", f"127.0.0.1:{free_port()}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for("start entry", lambda: ("appliance.start", "ok") in actions())
        added = subprocess.run(
            [*base, "user", "add", "alice", "--role", "admin", *where],
            input=GOOD + "\n",
            text=True,
            capture_output=True,
            timeout=60,
        )
        assert added.returncode == 0, added.stderr
        cfg.write_text("site: {name: NOC}\ntargets: []\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_for("reload entry", lambda: ("config.reload", "ok") in actions())
        cfg.write_text("targets: soon\n", encoding="utf-8")
        proc.send_signal(signal.SIGHUP)
        wait_for("rejected reload entry", lambda: ("config.reload", "failed") in actions())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert actions() == [
        ("appliance.start", "ok"),
        ("user.add", "ok"),
        ("config.reload", "ok"),
        ("config.reload", "failed"),
    ]
    engine = open_database(None, data)
    try:
        rows = {r.action + r.result: r for r in queries.audit_entries(engine)}
        with engine.connect() as conn:
            head = audit.head(conn)
    finally:
        engine.dispose()
    assert rows["appliance.startok"].after["digest"] == first_digest  # type: ignore[index]
    assert rows["config.reloadok"].before == {"digest": first_digest}
    assert rows["config.reloadok"].detail == "via SIGHUP"
    assert "targets: must be a list" in rows["config.reloadfailed"].detail
    logged = re.findall(r"audit chain head \((\w+)\): entry (\d+:[0-9a-f]{64})", output.read_text())
    assert [when for when, _ in logged] == ["start", "stop"]
    assert logged[0][1] == f"0:{audit.GENESIS}" and logged[1][1] == str(head)
    cfg.write_text("targets: []\n", encoding="utf-8")  # the CLI needs a valid config too
    verified = subprocess.run(
        [*base, "audit", "verify", "--head", logged[1][1], *where],
        text=True,
        capture_output=True,
        timeout=60,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
