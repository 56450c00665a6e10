"""The status snapshot: when a view is rebuilt, and what a crowd of requests costs.

Time is a ``ManualClock`` moved by the test; "a rebuild is running" is a build
held on a ``threading.Event``, never a sleep.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from core.clock import ManualClock
from monitor import incident_actions as actions
from monitor.store.repository import StateRepository
from tests.test_web_support import (
    STAFF,
    World,
    add_incident,
    add_targets,
    make_config,
    make_db,
    make_world,
    standard_rows,
)
from web import WebServices, create_app
from web.status_snapshot import (
    Rendered,
    SnapshotCache,
    Stamp,
    Timing,
    install,
    should_look,
    should_rebuild,
)

TIMING = Timing(check_every=2.0, max_age=30.0)


def move(clock: ManualClock, seconds: float) -> None:
    asyncio.run(clock.advance(seconds))


# -- the pure "when" ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("stamp", "now", "look"),
    [
        (None, 0.0, True),
        (Stamp(1, built_at=0.0, looked_at=0.0), 1.9, False),
        (Stamp(1, built_at=0.0, looked_at=0.0), 2.0, True),
        (Stamp(1, built_at=0.0, looked_at=10.0), 11.0, False),
    ],
    ids=["nothing-built-yet", "looked-just-now", "check-every-passed", "looked-since-built"],
)
def test_a_view_is_looked_at_no_more_than_every_check_every(
    stamp: Stamp | None, now: float, look: bool
) -> None:
    assert should_look(stamp, now, TIMING) is look


@pytest.mark.parametrize(
    ("stamp", "mark", "now", "rebuild"),
    [
        (None, 1, 0.0, True),
        (Stamp(1, built_at=0.0, looked_at=0.0), 1, 29.9, False),
        (Stamp(1, built_at=0.0, looked_at=0.0), 2, 2.0, True),
        (Stamp(1, built_at=0.0, looked_at=28.0), 1, 30.0, True),
    ],
    ids=["nothing-built-yet", "same-mark", "mark-moved", "older-than-max-age"],
)
def test_a_view_is_rebuilt_when_its_mark_moves_or_it_is_too_old(
    stamp: Stamp | None, mark: int, now: float, rebuild: bool
) -> None:
    assert should_rebuild(stamp, mark, now, TIMING) is rebuild


def test_timing_refuses_a_check_interval_longer_than_the_max_age() -> None:
    with pytest.raises(ValueError, match="check_every <= max_age"):
        Timing(check_every=60, max_age=30)


# -- the cache on a ManualClock --------------------------------------------------------
class Source:
    """A view whose mark the test moves; counts how often each is read."""

    def __init__(self) -> None:
        self.mark = 0
        self.marks_read = 0
        self.built: list[int] = []

    def read_mark(self) -> int:
        self.marks_read += 1
        return self.mark

    def build(self) -> str:
        self.built.append(self.mark)
        return f"view@{self.mark}"


def test_a_mark_that_moves_on_every_request_rebuilds_at_most_every_check_every() -> None:
    clock = ManualClock()
    cache: SnapshotCache[str] = SnapshotCache(clock, TIMING)
    src = Source()
    served = []
    for _ in range(60):  # 30 s of requests, one every 0.5 s, each after a change
        src.mark += 1
        served.append(cache.get("status", src.read_mark, src.build))
        move(clock, 0.5)
    assert len(src.built) == 15  # t = 0, 2, 4, ... 28: one per check_every, not one per request
    assert src.marks_read == 15  # the mark itself is read only when a look is due
    assert served[:5] == ["view@1"] * 4 + ["view@5"]  # stale in between, by < check_every


def test_an_unchanged_mark_serves_the_same_snapshot_until_max_age() -> None:
    clock = ManualClock()
    cache: SnapshotCache[str] = SnapshotCache(clock, TIMING)
    src = Source()
    for _ in range(29):
        cache.get("status", src.read_mark, src.build)
        move(clock, 1.0)
    assert src.built == [0] and src.marks_read == 15  # looked at every 2 s, never rebuilt
    move(clock, 1.0)  # 30 s after the build
    cache.get("status", src.read_mark, src.build)
    assert src.built == [0, 0]


def test_each_key_has_its_own_snapshot() -> None:
    cache: SnapshotCache[str] = SnapshotCache(ManualClock(), TIMING)
    en, zh = Source(), Source()
    zh.mark = 7
    assert cache.get(("status", "en"), en.read_mark, en.build) == "view@0"
    assert cache.get(("status", "zh-CN"), zh.read_mark, zh.build) == "view@7"
    assert cache.builds == 2


def test_a_failed_rebuild_serves_the_previous_snapshot_and_is_retried_later(caplog) -> None:
    clock = ManualClock()
    cache: SnapshotCache[str] = SnapshotCache(clock, TIMING)
    src = Source()
    assert cache.get("status", src.read_mark, src.build) == "view@0"

    def broken() -> str:
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    src.mark = 1
    move(clock, 2.0)
    assert cache.get("status", src.read_mark, broken) == "view@0"
    assert "could not rebuild" in caplog.text
    assert cache.get("status", src.read_mark, src.build) == "view@0"  # not retried at once
    move(clock, 2.0)
    assert cache.get("status", src.read_mark, src.build) == "view@1"


def test_a_view_that_was_never_built_reports_its_build_error() -> None:
    cache: SnapshotCache[str] = SnapshotCache(ManualClock(), TIMING)
    with pytest.raises(RuntimeError, match="no DB"):
        cache.get("status", lambda: 0, lambda: (_ for _ in ()).throw(RuntimeError("no DB")))


@contextmanager
def rebuild_held(cache: SnapshotCache[str], key: str, mark: int) -> Iterator[threading.Thread]:
    """A thread rebuilding ``key`` that stays inside its build until the block ends."""
    inside, release = threading.Event(), threading.Event()

    def slow_build() -> str:
        inside.set()
        release.wait(10)
        return f"view@{mark}"

    thread = threading.Thread(target=cache.get, args=(key, lambda: mark, slow_build))
    thread.start()
    assert inside.wait(10), "the rebuild never started"
    try:
        yield thread
    finally:
        release.set()
        thread.join(10)


def test_while_one_rebuild_runs_every_other_request_gets_the_stale_snapshot_at_once() -> None:
    clock = ManualClock()
    cache: SnapshotCache[str] = SnapshotCache(clock, TIMING)
    src = Source()
    cache.get("en", src.read_mark, src.build)
    cache.get("zh", src.read_mark, src.build)
    move(clock, 2.0)
    with rebuild_held(cache, "en", mark=1):
        # Same view, and another view that is due as well: neither starts a second build.
        assert cache.get("en", lambda: 1, src.build) == "view@0"
        assert cache.get("zh", lambda: 1, src.build) == "view@0"
        assert src.built == [0, 0]
    assert cache.get("en", src.read_mark, src.build) == "view@1"  # the held build landed
    assert cache.builds == 3


class SignallingLock:
    """A lock that says when someone has to wait for it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.someone_waits = threading.Event()

    def acquire(self, blocking: bool = True) -> bool:
        if self._lock.acquire(blocking=False):
            return True
        if not blocking:
            return False
        self.someone_waits.set()
        return self._lock.acquire()

    def release(self) -> None:
        self._lock.release()


def test_a_view_without_a_snapshot_waits_for_the_running_build_rather_than_starting_one() -> None:
    cache: SnapshotCache[str] = SnapshotCache(ManualClock(), TIMING)
    cache._lock = lock = SignallingLock()  # type: ignore[assignment]
    got: list[str] = []
    second_build: list[str] = []
    with rebuild_held(cache, "en", mark=1):
        waiter = threading.Thread(
            target=lambda: got.append(cache.get("en", lambda: 2, lambda: second_build.append("x")))
        )
        waiter.start()
        assert lock.someone_waits.wait(10), "the second request did not wait for the build"
    waiter.join(10)
    assert got == ["view@1"] and second_build == []  # it was served what the held build made
    assert cache.builds == 1


# -- the routes ---------------------------------------------------------------------
def statements(world: World) -> list[str]:
    """Every SQL statement the app runs from now on."""
    seen: list[str] = []
    sa.event.listen(world.db, "before_cursor_execute", lambda *a: seen.append(a[2]))
    return seen


@pytest.fixture
def world(tmp_path) -> World:
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    return w


@pytest.fixture
def clock(world: World) -> ManualClock:
    clock = ManualClock()
    install(world.app, SnapshotCache[Rendered](clock, TIMING))
    return clock


def test_a_crowd_on_the_status_page_costs_one_build_and_then_no_query_at_all(
    world: World, clock: ManualClock
) -> None:
    client = world.anonymous()  # customers: no login, no token to look up
    first = client.get("/status?lang=en")
    seen = statements(world)
    for _ in range(200):
        assert client.get("/status?lang=en").data == first.data
    assert seen == []  # served from the snapshot: the state DB is not asked anything
    move(clock, 2.0)
    client.get("/status?lang=en")
    assert len(seen) == 1 and "max" in seen[0].lower()  # the look: the newest event id only


def test_the_status_page_has_an_etag_and_answers_if_none_match_with_304(
    world: World, clock: ManualClock
) -> None:
    client = world.client()
    r = client.get("/status?lang=en")
    etag = r.headers["ETag"]
    assert r.status_code == 200 and etag.startswith('"')
    assert r.headers["Cache-Control"] == "public, max-age=5"
    assert set(r.headers["Vary"].split(", ")) == {"Accept-Language", "Cookie"}
    again = client.get("/status?lang=en", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    assert again.headers["ETag"] == etag and again.headers["Cache-Control"] == "public, max-age=5"
    zh = client.get("/status?lang=zh-CN", headers={"If-None-Match": etag})
    assert zh.status_code == 200 and zh.headers["ETag"] != etag  # each language its own


def test_a_published_update_reaches_the_page_at_the_next_look_with_a_new_etag(
    world: World, clock: ManualClock
) -> None:
    incident = add_incident(world.db, ["trunk-a"])
    client = world.client()
    before = client.get("/status?lang=en")
    actions.publish_customer_update(
        StateRepository(world.db), "user:alice", incident, {"en": "Carrier A is rerouting"}
    )
    held = client.get("/status?lang=en", headers={"If-None-Match": before.headers["ETag"]})
    assert held.status_code == 304  # within check_every: the snapshot still stands
    move(clock, 2.0)
    after = client.get("/status?lang=en", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and "Carrier A is rerouting" in after.get_data(as_text=True)
    assert after.headers["ETag"] != before.headers["ETag"]


def test_a_config_reload_rebuilds_the_page_at_the_next_look(tmp_path) -> None:
    holder: dict[str, Any] = {"config": make_config()}
    app = create_app(WebServices(config=lambda: holder["config"], db=make_db(tmp_path)))
    clock = ManualClock()
    install(app, SnapshotCache[Rendered](clock, TIMING))
    assert "CRM" in app.test_client().get("/status?lang=en").get_data(as_text=True)
    holder["config"] = make_config(
        components=[{"id": "crm", "name": {"zh-CN": "客服系统", "en": "Helpdesk"}, "targets": []}]
    )
    move(clock, 2.0)  # no event: the new config alone moves the mark
    html = app.test_client().get("/status?lang=en").get_data(as_text=True)
    assert "Helpdesk" in html and "CRM" not in html


def test_nothing_of_the_request_that_triggered_a_build_reaches_the_shared_page(
    world: World, clock: ManualClock
) -> None:
    # A staff member's request builds it: the header would name them (and a
    # session's page carries its CSRF token); customers must get none of that.
    built = (
        world.client("viewer")
        .get(
            "/status?lang=en&campaign=spring-sale-7731",
            headers={"Referer": "https://evil.example/x-7731", "Cookie": "lang=en; x=cookie-7731"},
        )
        .get_data(as_text=True)
    )
    assert "7731" not in built
    assert STAFF["viewer"] not in built and "csrf" not in built.lower()
    assert world.anonymous().get("/status?lang=en").get_data(as_text=True) == built


def test_a_private_status_page_is_not_cacheable_by_shared_caches(tmp_path) -> None:
    w = make_world(tmp_path, config=make_config(web={"public_status": False}))
    ok = w.client("viewer").get("/status")
    assert ok.status_code == 200 and ok.headers["Cache-Control"] == "private, max-age=5"
    assert w.anonymous().get("/status").status_code == 404  # the snapshot exists: still refused


def test_components_api_has_an_etag_and_its_snapshot_never_bypasses_the_access_check(
    tmp_path,
) -> None:
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    install(w.app, SnapshotCache[Rendered](ManualClock(), TIMING))
    viewer = w.client("viewer")
    r = viewer.get("/api/v1/components")
    assert r.status_code == 200 and r.headers["Cache-Control"] == "private, max-age=5"
    assert {c["id"] for c in r.get_json()["items"]} == {"outbound", "crm"}
    again = viewer.get("/api/v1/components", headers={"If-None-Match": r.headers["ETag"]})
    assert again.status_code == 304
    anonymous = w.anonymous().get(
        "/api/v1/components", headers={"If-None-Match": r.headers["ETag"]}
    )
    assert anonymous.status_code == 401 and "ETag" not in anonymous.headers
    assert viewer.get("/api/v1/components?x=1").status_code == 400


# -- refreshing off the request (the running appliance's cache) -----------------------
class Spawned:
    """A ``spawn`` that keeps the work until the test runs it (a thread that has not run yet)."""

    def __init__(self) -> None:
        self.work: list[Any] = []

    def __call__(self, work: Any) -> None:
        self.work.append(work)

    def run_all(self) -> None:
        work, self.work = self.work, []
        for w in work:
            w()


def test_with_a_spawn_the_request_that_finds_a_due_snapshot_is_served_the_current_one() -> None:
    clock, spawned = ManualClock(), Spawned()
    cache: SnapshotCache[str] = SnapshotCache(clock, TIMING, spawn=spawned)
    src = Source()
    assert cache.get("status", src.read_mark, src.build) == "view@0"  # the first build waits
    assert spawned.work == []
    src.mark = 1
    move(clock, 2.0)
    assert cache.get("status", src.read_mark, src.build) == "view@0"  # served at once
    assert src.built == [0] and len(spawned.work) == 1  # the rebuild is handed off
    for _ in range(50):  # while it is pending: stale, and no second refresh is started
        assert cache.get("status", src.read_mark, src.build) == "view@0"
    assert len(spawned.work) == 1
    spawned.run_all()
    assert src.built == [0, 1]
    assert cache.get("status", src.read_mark, src.build) == "view@1"
    assert spawned.work == []  # just refreshed: the next look is check_every away


def test_a_refresh_that_fails_off_the_request_keeps_the_snapshot_and_frees_the_next_look(
    caplog,
) -> None:
    clock, spawned = ManualClock(), Spawned()
    cache: SnapshotCache[str] = SnapshotCache(clock, TIMING, spawn=spawned)
    src = Source()
    cache.get("status", src.read_mark, src.build)

    def broken() -> str:
        raise sa.exc.OperationalError("SELECT", {}, Exception("database is locked"))

    src.mark = 1
    move(clock, 2.0)
    assert cache.get("status", src.read_mark, broken) == "view@0"
    spawned.run_all()
    assert "could not rebuild" in caplog.text
    move(clock, 2.0)
    assert cache.get("status", src.read_mark, src.build) == "view@0"
    spawned.run_all()  # the lock was released: this look ran and rebuilt
    assert cache.get("status", src.read_mark, src.build) == "view@1"


def test_a_spawn_that_cannot_start_a_thread_serves_the_snapshot_and_tries_again(caplog) -> None:
    clock = ManualClock()
    calls: list[int] = []

    def refuse(work: Any) -> None:
        calls.append(1)
        raise RuntimeError("can't start new thread")

    cache: SnapshotCache[str] = SnapshotCache(clock, TIMING, spawn=refuse)
    src = Source()
    cache.get("status", src.read_mark, src.build)
    move(clock, 2.0)
    assert cache.get("status", src.read_mark, src.build) == "view@0"
    assert cache.get("status", src.read_mark, src.build) == "view@0"
    assert len(calls) == 2 and "could not start" in caplog.text  # the lock is not left held


def test_the_status_page_and_components_are_rebuilt_on_a_thread_of_their_own(tmp_path) -> None:
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    clock, spawned = ManualClock(), Spawned()
    cache = install(w.app, SnapshotCache[Rendered](clock, TIMING, spawn=spawned))

    def run_elsewhere() -> None:  # outside any request or app context, as the real thread is
        t = threading.Thread(target=spawned.run_all)
        t.start()
        t.join(10)

    incident = add_incident(w.db, ["trunk-a"])
    viewer = w.client("viewer")
    page = w.anonymous().get("/status?lang=en")
    components = viewer.get("/api/v1/components")
    actions.publish_customer_update(
        StateRepository(w.db), "user:alice", incident, {"en": "Carrier A is rerouting"}
    )
    move(clock, 2.0)
    assert w.anonymous().get("/status?lang=en").data == page.data  # the noticing request
    assert viewer.get("/api/v1/components").data == components.data  # the look is taken
    assert len(spawned.work) == 1  # one refresh at a time, for all views
    run_elsewhere()
    assert "Carrier A is rerouting" in w.anonymous().get("/status?lang=en").get_data(as_text=True)
    viewer.get("/api/v1/components")  # now the components' own look
    assert len(spawned.work) == 1
    run_elsewhere()
    assert cache.builds == 4  # both views built twice: the second builds did not fail
    again = viewer.get("/api/v1/components")
    assert again.status_code == 200 and again.get_json() == components.get_json()
