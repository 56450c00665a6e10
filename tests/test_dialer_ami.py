"""The dialer probe's Asterisk AMI source, against a local AMI peer written from Asterisk's
documented manager protocol (tests/peers/ami.py — Asterisk itself is not installable here).

The queue data is set by each test; the expected numbers are worked out by
hand from that data in the tests, not read back from the peer.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from core.observation import ErrorClass, MetricPoint, Observation, Status
from core.shared import SharedResources
from probes.base import ProbeContext
from probes.dialer import DialerTarget, check
from probes.dialer.ami import build_sample
from probes.dialer.ami_client import AmiError, check_list_count, encode, parse_line
from probes.dialer.live import STATE_KEY
from tests.peers.ami import (
    DEVICE_INUSE,
    DEVICE_RINGING,
    DEVICE_UNAVAILABLE,
    AmiPeer,
    Caller,
    Member,
    Queue,
    ami_peer,
)

__all__ = ["ami_peer"]  # fixture used by name

pytestmark = pytest.mark.peer


def target(
    peer: AmiPeer, thresholds: dict[str, Any] | None = None, timeout: str = "2s", **source: Any
) -> DialerTarget:
    return DialerTarget.model_validate(
        {
            "id": "dialer-queues",
            "kind": "dialer",
            "timeout": timeout,
            "source": {
                "type": "ami",
                "host": "127.0.0.1",
                "port": peer.port,
                "username": peer.username,
                "secret": peer.secret,
                **source,
            },
            "thresholds": thresholds or {},
        }
    )


class Poller:
    """Polls on one event loop, like the engine's runner, so pooled sessions are reused."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.runner = asyncio.Runner()
        self.ctx = ProbeContext("dialer-queues", timeout)

    def poll(self, t: DialerTarget) -> Observation:
        return self.runner.run(check(t, self.ctx))

    def close(self) -> None:
        self.runner.run(self.ctx.shared.aclose())
        self.runner.close()


@pytest.fixture
def poller() -> Iterator[Poller]:
    p = Poller()
    try:
        yield p
    finally:
        p.close()


def center() -> dict[str, Queue]:
    """Two queues: sales is busy (two callers, one agent gone), support is quiet."""
    return {
        "sales": Queue(
            members=[
                Member("agent-1"),  # idle: available
                Member("agent-2", status=DEVICE_INUSE, in_call=True),  # on a call
                Member("agent-3", paused=True, paused_reason="lunch"),  # paused
                Member("agent-4", status=DEVICE_UNAVAILABLE),  # phone offline: not logged in
                Member("agent-5", status=DEVICE_RINGING),  # being rung: logged in, not available
            ],
            callers=[
                Caller("PJSIP/carrier-x-00000011", 12),
                Caller("PJSIP/carrier-x-00000012", 25),
            ],
            completed=120,
            abandoned=6,
        ),
        "support": Queue(members=[Member("agent-9")], completed=10, abandoned=0),
    }


def point(obs: Observation, measurement: str, **tags: str) -> MetricPoint:
    found = [p for p in obs.metrics if p.measurement == measurement and dict(p.tags) == tags]
    assert len(found) == 1, (measurement, tags, obs.metrics)
    return found[0]


def test_queue_numbers_come_from_queue_summary_and_queue_status(
    ami_peer: AmiPeer, poller: Poller
) -> None:
    ami_peer.queues = center()
    obs = poller.poll(target(ami_peer))
    assert obs.status is Status.OK, obs.detail
    sales = point(obs, "dialer_queue", queue="sales").fields
    assert sales == {
        "calls_waiting": 2,
        "longest_wait": 25.0,
        "agents_logged_in": 4,  # agent-4's device is unavailable
        "agents_available": 1,  # only agent-1: agent-3 is paused, agent-5 ringing
        "agents_on_call": 1,
        "agents_paused": 1,
    }
    support = point(obs, "dialer_queue", queue="support").fields
    assert support["calls_waiting"] == 0 and support["longest_wait"] == 0.0
    assert support["agents_available"] == 1
    overall = point(obs, "dialer").fields
    assert overall["calls_waiting"] == 2
    assert overall["agents_logged_in"] == 5
    assert overall["longest_wait"] == 25.0
    assert overall["queues"] == 2
    assert "2 queues: 2 calls waiting (longest 25 s), 5 agents logged in" in obs.detail


def test_every_field_keeps_its_type_so_influxdb_never_sees_a_conflict(
    ami_peer: AmiPeer, poller: Poller
) -> None:
    ami_peer.queues = center()
    obs = poller.poll(target(ami_peer))
    for p in obs.metrics:
        for name, value in p.fields.items():
            expected = float if name in ("longest_wait", "calls_per_minute") else int
            assert type(value) is expected, (p.measurement, name, value)


def test_calls_per_minute_come_from_completed_and_abandoned_between_polls(
    ami_peer: AmiPeer, poller: Poller
) -> None:
    ami_peer.queues = center()
    t = target(ami_peer)
    first = poller.poll(t)
    assert "calls_per_minute" not in point(first, "dialer").fields  # nothing to compare yet
    # Pretend the first poll was two minutes ago, then 50 + 4 more calls end in sales, 6 in support.
    poller.ctx.state[STATE_KEY]["time"] -= 120
    ami_peer.queues["sales"].completed += 50
    ami_peer.queues["sales"].abandoned += 4
    ami_peer.queues["support"].completed += 6
    second = poller.poll(t)
    sales = point(second, "dialer_queue", queue="sales").fields
    assert sales["calls_per_minute"] == pytest.approx(54 / 2, rel=0.01)
    assert point(second, "dialer").fields["calls_per_minute"] == pytest.approx(60 / 2, rel=0.01)
    assert "30 calls/min" in second.detail


def test_a_reset_counter_gives_no_rate_rather_than_a_wrong_one(
    ami_peer: AmiPeer, poller: Poller
) -> None:
    ami_peer.queues = center()
    t = target(ami_peer)
    poller.poll(t)
    poller.ctx.state[STATE_KEY]["time"] -= 60
    ami_peer.queues["sales"].completed = 3  # `queue reset stats`
    ami_peer.queues["sales"].abandoned = 0
    ami_peer.queues["support"].completed += 5
    obs = poller.poll(t)
    assert "calls_per_minute" not in point(obs, "dialer_queue", queue="sales").fields
    assert point(obs, "dialer_queue", queue="support").fields["calls_per_minute"] == pytest.approx(
        5.0, rel=0.01
    )
    assert "calls_per_minute" not in point(obs, "dialer").fields


def test_one_login_serves_every_poll(ami_peer: AmiPeer, poller: Poller) -> None:
    ami_peer.queues = center()
    t = target(ami_peer)
    for _ in range(3):
        assert poller.poll(t).status is Status.OK
    assert (ami_peer.connections, ami_peer.logins) == (1, 1)
    logins = [m for m in ami_peer.received if m.get("Action") == "Login"]
    assert logins[0]["Events"] == "off"
    ids = [m["ActionID"] for m in ami_peer.received]
    assert len(set(ids)) == len(ids), "every action has its own ActionID"


def test_a_session_asterisk_dropped_is_replaced_within_the_same_poll(
    ami_peer: AmiPeer, poller: Poller
) -> None:
    ami_peer.queues = center()
    t = target(ami_peer)
    assert poller.poll(t).status is Status.OK
    ami_peer.kick()  # Asterisk restarted: every session is gone
    obs = poller.poll(t)
    assert obs.status is Status.OK, obs.detail
    assert ami_peer.logins == 2


def test_targets_with_the_same_login_take_turns_on_one_session(ami_peer: AmiPeer) -> None:
    ami_peer.queues = center()
    shared = SharedResources()
    sales = target(ami_peer, queues=["sales"])
    support = target(ami_peer, queues=["support"])

    async def both() -> list[Observation]:
        return list(
            await asyncio.gather(
                check(sales, ProbeContext("sales", 2.0, shared=shared)),
                check(support, ProbeContext("support", 2.0, shared=shared)),
            )
        )

    with asyncio.Runner() as runner:
        first, second = runner.run(both())
        runner.run(shared.aclose())
    assert point(first, "dialer_queue", queue="sales").fields["calls_waiting"] == 2
    assert point(second, "dialer_queue", queue="support").fields["agents_logged_in"] == 1
    assert (ami_peer.connections, ami_peer.logins) == (1, 1)


def test_engine_stop_closes_the_pooled_session(ami_peer: AmiPeer) -> None:
    ami_peer.queues = center()
    p = Poller()
    p.poll(target(ami_peer))
    p.close()
    # The peer sees the close as the end of the session: a new connection logs in anew.
    q = Poller()
    try:
        assert q.poll(target(ami_peer)).status is Status.OK
    finally:
        q.close()
    assert ami_peer.logins == 2


def test_one_configured_queue_is_asked_for_by_name(ami_peer: AmiPeer, poller: Poller) -> None:
    ami_peer.queues = center()
    obs = poller.poll(target(ami_peer, queues=["support"]))
    assert [dict(p.tags) for p in obs.metrics if p.measurement == "dialer_queue"] == [
        {"queue": "support"}
    ]
    lists = [m for m in ami_peer.received if m.get("Action") in ("QueueSummary", "QueueStatus")]
    assert lists and all(m.get("Queue") == "support" for m in lists)


def test_a_configured_queue_asterisk_does_not_have_is_a_warning(
    ami_peer: AmiPeer, poller: Poller
) -> None:
    ami_peer.queues = center()
    obs = poller.poll(target(ami_peer, queues=["sales", "collections"]))
    assert obs.status is Status.WARN
    assert "Asterisk reports no queue 'collections'" in obs.detail
    assert {dict(p.tags).get("queue") for p in obs.metrics} == {None, "sales"}


def test_queues_beyond_max_queues_are_summed_as_other(ami_peer: AmiPeer, poller: Poller) -> None:
    ami_peer.queues = {
        "big": Queue(members=[Member(f"a{i}") for i in range(5)]),
        "mid": Queue(members=[Member("b1"), Member("b2")], callers=[Caller("PJSIP/x-1", 3)]),
        "small": Queue(members=[Member("c1")], callers=[Caller("PJSIP/x-2", 9)]),
    }
    obs = poller.poll(target(ami_peer, max_queues=2))
    tags = sorted(dict(p.tags)["queue"] for p in obs.metrics if p.measurement == "dialer_queue")
    assert tags == ["big", "other"]
    other = point(obs, "dialer_queue", queue="other").fields
    assert other["agents_logged_in"] == 3 and other["calls_waiting"] == 2
    assert other["longest_wait"] == 9.0
    assert point(obs, "dialer").fields["queues"] == 3


@pytest.mark.parametrize(
    ("thresholds", "status", "sentence"),
    [
        pytest.param({}, Status.OK, None, id="defaults-pass-a-25s-wait"),
        pytest.param(
            {"longest_wait": {"warn": 20}},
            Status.WARN,
            "queue sales: longest wait at 25 s (warn above 20 s)",
            id="longest-wait-warns",
        ),
        pytest.param(
            {"longest_wait": {"warn": 10, "fail": 20}},
            Status.FAIL,
            "queue sales: longest wait at 25 s (fail above 20 s)",
            id="longest-wait-fails",
        ),
        pytest.param(
            {"calls_waiting": {"warn": 1, "fail": 5}},
            Status.WARN,
            "queue sales: calls waiting at 2 (warn above 1)",
            id="calls-waiting-warns",
        ),
        pytest.param(
            {"agents_available": {"warn": 2, "fail": 1}},
            Status.WARN,
            "queue sales: agents available at 1 (warn below 2)",
            id="few-agents-available-warns-below",
        ),
        pytest.param(
            {"agents_available": {"fail": 3}, "longest_wait": None},
            Status.FAIL,
            "all queues: agents available at 2 (fail below 3)",
            id="overall-agents-available-fails",
        ),
    ],
)
def test_thresholds_on_the_queues(
    ami_peer: AmiPeer,
    poller: Poller,
    thresholds: dict[str, Any],
    status: Status,
    sentence: str | None,
) -> None:
    ami_peer.queues = center()
    obs = poller.poll(target(ami_peer, thresholds))
    assert obs.status is status, obs.detail
    if sentence is not None:
        assert sentence in obs.detail
        assert obs.error_class is ErrorClass.THRESHOLD


@pytest.mark.parametrize(
    ("mode", "error_class", "words"),
    [
        pytest.param("reject_all", ErrorClass.AUTH, "AMI login as 'dialwatch' rejected: Authentication failed", id="login-rejected"),
        pytest.param("garbage", ErrorClass.PROTOCOL, "a line that is not 'Key: Value'", id="garbage-mid-list"),
        pytest.param("drop_mid_list", ErrorClass.PROTOCOL, "closed the connection while we waited for the QueueSummary list", id="dropped-mid-list"),
        pytest.param("hang_mid_list", ErrorClass.TIMEOUT, "the QueueSummary list from AMI at", id="stalls-mid-list"),
        pytest.param("hang_after_connect", ErrorClass.TIMEOUT, "(waiting for its banner)", id="silent-after-connect"),
        pytest.param("not_ami", ErrorClass.PROTOCOL, "is not an Asterisk manager interface (it greeted with 'SSH-2.0", id="not-an-ami-port"),
    ],
)  # fmt: skip
def test_a_misbehaving_peer_fails_the_poll_with_a_sentence_and_the_next_poll_works(
    ami_peer: AmiPeer, mode: str, error_class: ErrorClass, words: str
) -> None:
    ami_peer.queues = center()
    poller = Poller(timeout=1.0)
    try:
        t = target(ami_peer, timeout="1s")
        ami_peer.mode = mode
        bad = poller.poll(t)
        assert bad.status is Status.FAIL
        assert bad.error_class is error_class
        assert words in bad.detail
        assert ami_peer.secret not in bad.detail
        ami_peer.mode = "normal"
        good = poller.poll(t)
        assert good.status is Status.OK, good.detail
        assert point(good, "dialer_queue", queue="sales").fields["calls_waiting"] == 2
    finally:
        poller.close()


def test_a_refused_list_keeps_the_session_and_says_what_the_user_lacks(
    ami_peer: AmiPeer, poller: Poller
) -> None:
    ami_peer.queues = center()
    t = target(ami_peer)
    ami_peer.mode = "deny_lists"
    obs = poller.poll(t)
    assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.RESPONSE)
    assert obs.detail == "AMI refused QueueSummary: Permission denied"
    ami_peer.mode = "normal"
    assert poller.poll(t).status is Status.OK
    assert ami_peer.logins == 1, "an Error response does not end a good session"


def test_a_wrong_secret_is_an_auth_failure_that_never_shows_the_secret(
    ami_peer: AmiPeer, poller: Poller
) -> None:
    t = DialerTarget.model_validate(
        {
            "id": "dialer-queues",
            "kind": "dialer",
            "source": {
                "type": "ami",
                "host": "127.0.0.1",
                "port": ami_peer.port,
                "username": "dialwatch",
                "secret": "not-the-secret",
            },
        }
    )
    obs = poller.poll(t)
    assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.AUTH)
    assert "not-the-secret" not in obs.detail and "not-the-secret" not in repr(t)


def test_nothing_listening_is_connection_refused(poller: Poller) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connect is refused
        peer = AmiPeer()
        peer.port = port
        obs = poller.poll(target(peer))
    assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.REFUSED)
    assert obs.detail == f"AMI at 127.0.0.1:{port}: connection refused"


# -- the pure parts ---------------------------------------------------------------------


def test_status_events_alone_are_counted_like_queue_summary_counts() -> None:
    status = [
        {"Event": "QueueParams", "Queue": "q", "Calls": "1", "Completed": "5", "Abandoned": "1"},
        {"Event": "QueueMember", "Queue": "q", "Status": "1", "Paused": "0", "InCall": "0"},
        {"Event": "QueueMember", "Queue": "q", "Status": "1", "Paused": "1", "InCall": "0"},
        {"Event": "QueueMember", "Queue": "q", "Status": "2", "Paused": "0", "InCall": "1"},
        {"Event": "QueueMember", "Queue": "q", "Status": "5", "Paused": "0", "InCall": "0"},
        {"Event": "QueueEntry", "Queue": "q", "Position": "1", "Wait": "17"},
    ]
    stats = build_sample([], status).queues["q"]
    assert (stats.calls_waiting, stats.longest_wait) == (1, 17.0)
    assert (stats.logged_in, stats.available, stats.on_call, stats.paused) == (3, 1, 1, 1)
    assert stats.calls_total == 6


@pytest.mark.parametrize(
    "event",
    [
        {"Event": "QueueSummary", "Queue": "q", "LoggedIn": "x", "Available": "1", "Callers": "0", "LongestHoldTime": "0"},
        {"Event": "QueueSummary", "LoggedIn": "1"},
    ],
    ids=["not-a-number", "no-queue-name"],
)  # fmt: skip
def test_unreadable_queue_events_are_protocol_errors(event: dict[str, str]) -> None:
    with pytest.raises(AmiError) as info:
        build_sample([event], [])
    assert info.value.error_class is ErrorClass.PROTOCOL


@pytest.mark.parametrize(
    ("line", "parsed"),
    [
        ("Queue: sales", ("Queue", "sales")),
        ("Message: Queue summary will follow", ("Message", "Queue summary will follow")),
        ("PausedReason:", ("PausedReason", "")),
        ("Location: Local/100@agents/n", ("Location", "Local/100@agents/n")),
    ],
)
def test_key_value_lines_parse(line: str, parsed: tuple[str, str]) -> None:
    assert parse_line(line) == parsed


@pytest.mark.parametrize("line", ["no colon here", ": value without key", "Two Words: x"])
def test_lines_that_are_not_key_value_are_refused(line: str) -> None:
    with pytest.raises(AmiError):
        parse_line(line)


def test_a_header_value_cannot_smuggle_another_action() -> None:
    with pytest.raises(ValueError, match="line break"):
        encode("QueueStatus", "dialwatch-1", {"Queue": "sales\r\n\r\nAction: Originate"})
    assert encode("Ping", "dialwatch-2", {}) == b"Action: Ping\r\nActionID: dialwatch-2\r\n\r\n"


def test_a_list_that_lost_events_on_the_way_is_refused() -> None:
    with pytest.raises(AmiError, match="announced 3 events but 2 arrived"):
        check_list_count("QueueStatus", {"Event": "QueueStatusComplete", "ListItems": "3"}, 2)
    check_list_count("QueueStatus", {"Event": "QueueStatusComplete", "ListItems": "2"}, 2)
    check_list_count("QueueStatus", {"Event": "QueueStatusComplete"}, 5)  # older Asterisk: no count
