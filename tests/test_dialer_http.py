"""The dialer probe's HTTP source, against a local HTTP(S) server standing in for a dialer's
API (tests/peers/dialer_http.py): JSON picked by paths, and VICIdial's non-agent API."""

from __future__ import annotations

import asyncio
import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.observation import ErrorClass, MetricPoint, Observation, Status
from monitor.config import load_config
from probes.base import ProbeContext
from probes.dialer import DialerTarget, check
from probes.dialer.http_source import from_vicidial, to_seconds
from probes.dialer.jsonpath import PathMissing, PathSyntaxError, find, parse
from probes.dialer.live import STATE_KEY
from tests.peers.dialer_http import (
    VICIDIAL_PATH,
    DialerApi,
    Reply,
    VicidialGroup,
    self_signed,
    serve,
)

TOKEN = "tok-9f8e7d6c5b4a"

QUEUES_JSON = {
    "status": "ok",
    "data": {
        "generated_at": "2026-11-23T16:20:00+08:00",
        "queues": [
            {
                "name": "sales",
                "waiting": 3,
                "oldest_wait": "01:05",
                "agents": {"logged_in": 12, "ready": 2, "incall": 8, "paused": 2},
                "stats": {"calls_today": 1450},
            },
            {
                "name": "renewals",
                "waiting": 0,
                "oldest_wait": 0,
                "agents": {"logged_in": 4, "ready": 3, "incall": 1, "paused": 0},
                "stats": {"calls_today": 210},
            },
        ],
    },
}
FIELDS = {
    "calls_waiting": "waiting",
    "longest_wait": "oldest_wait",
    "agents_logged_in": "agents.logged_in",
    "agents_available": "agents.ready",
    "agents_on_call": "agents.incall",
    "agents_paused": "agents.paused",
    "calls_total": "stats.calls_today",
}


@pytest.fixture
def api() -> Iterator[DialerApi]:
    with serve() as server:
        yield server


class Poller:
    """Polls on one event loop, like the engine's runner."""

    def __init__(self, timeout: float = 2.0) -> None:
        self.runner = asyncio.Runner()
        self.ctx = ProbeContext("dialer-api", timeout)

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


def json_target(url: str, thresholds: dict[str, Any] | None = None, **source: Any) -> DialerTarget:
    return DialerTarget.model_validate(
        {
            "id": "dialer-api",
            "kind": "dialer",
            "timeout": source.pop("timeout", "2s"),
            "source": {
                "type": "http",
                "url": url,
                "token": TOKEN,
                "queues": "data.queues[*]",
                "fields": FIELDS,
                **source,
            },
            "thresholds": thresholds or {},
        }
    )


def point(obs: Observation, measurement: str, **tags: str) -> MetricPoint:
    found = [p for p in obs.metrics if p.measurement == measurement and dict(p.tags) == tags]
    assert len(found) == 1, (measurement, tags, obs.metrics)
    return found[0]


def serve_json(api: DialerApi, document: Any = QUEUES_JSON, path: str = "/api/queues") -> str:
    api.routes[path] = Reply(body=json.dumps(document).encode())
    return api.url(path)


# -- JSON ------------------------------------------------------------------------------


def test_json_queues_are_picked_out_by_their_paths(api: DialerApi, poller: Poller) -> None:
    obs = poller.poll(json_target(serve_json(api)))
    assert obs.status is Status.WARN, obs.detail  # sales' oldest caller waited 65 s (> 30 s)
    assert point(obs, "dialer_queue", queue="sales").fields == {
        "calls_waiting": 3,
        "longest_wait": 65.0,
        "agents_logged_in": 12,
        "agents_available": 2,
        "agents_on_call": 8,
        "agents_paused": 2,
    }
    overall = point(obs, "dialer").fields
    assert (overall["calls_waiting"], overall["agents_logged_in"]) == (3, 16)
    assert "queue sales: longest wait at 65 s (warn above 30 s)" in obs.detail
    assert api.seen[-1].headers["Authorization"] == f"Bearer {TOKEN}"


def test_queues_keyed_by_name_take_their_names_from_the_keys(
    api: DialerApi, poller: Poller
) -> None:
    document = {"queues": {"sales": {"waiting": 1}, "support": {"waiting": 4}}}
    t = json_target(
        serve_json(api, document),
        queues="queues[*]",
        queue_name="@key",
        fields={"calls_waiting": "waiting"},
    )
    obs = poller.poll(t)
    assert point(obs, "dialer_queue", queue="support").fields == {"calls_waiting": 4}
    assert point(obs, "dialer").fields == {"calls_waiting": 5, "queues": 2}


def test_a_document_without_queues_is_one_whole(api: DialerApi, poller: Poller) -> None:
    document = {"realtime": {"inqueue": 7, "agents": [{"n": 1}], "ready_agents": 0}}
    t = json_target(
        serve_json(api, document),
        queues=None,
        fields={"calls_waiting": "realtime.inqueue", "agents_available": "realtime.ready_agents"},
        thresholds={"agents_available": {"fail": 1}},
    )
    obs = poller.poll(t)
    assert point(obs, "dialer_queue", queue="all").fields == {
        "calls_waiting": 7,
        "agents_available": 0,
    }
    assert obs.status is Status.FAIL
    assert "queue all: agents available at 0 (fail below 1)" in obs.detail


def test_calls_per_minute_come_from_a_counter_between_polls(api: DialerApi, poller: Poller) -> None:
    url = serve_json(api)
    t = json_target(url, thresholds={"longest_wait": None})
    poller.poll(t)
    poller.ctx.state[STATE_KEY]["time"] -= 300  # five minutes ago
    later = json.loads(json.dumps(QUEUES_JSON))
    later["data"]["queues"][0]["stats"]["calls_today"] += 100
    later["data"]["queues"][1]["stats"]["calls_today"] += 50
    serve_json(api, later)
    obs = poller.poll(t)
    assert point(obs, "dialer_queue", queue="sales").fields["calls_per_minute"] == pytest.approx(
        20.0, rel=0.01
    )
    assert point(obs, "dialer").fields["calls_per_minute"] == pytest.approx(30.0, rel=0.01)


@pytest.mark.parametrize(
    ("reply", "error_class", "words"),
    [
        pytest.param(Reply(503, b"upstream down"), ErrorClass.RESPONSE, "HTTP 503 Service Unavailable from http://127.0.0.1:", id="http-503"),
        pytest.param(Reply(401, b""), ErrorClass.AUTH, "HTTP 401 Unauthorized", id="http-401"),
        pytest.param(Reply(200, b"<html>login</html>", "text/html"), ErrorClass.PROTOCOL, "did not answer with JSON", id="html-not-json"),
        pytest.param(Reply(200, b'{"data": {"queue": []}}'), ErrorClass.PROTOCOL, "a configured path found nothing: data has no 'queues'", id="path-missing"),
        pytest.param(Reply(200, b'{"data": {"queues": [{"name": "s", "waiting": "many"}]}}'), ErrorClass.PROTOCOL, "data.queues[0] (calls_waiting) is 'many', not a number", id="not-a-number"),
        pytest.param(Reply(200, b'{"data": {"queues": [{"name": "s"}]}}'), ErrorClass.PROTOCOL, "data.queues[0] has no 'waiting'", id="field-missing"),
        pytest.param(Reply(drop=True), ErrorClass.PROTOCOL, "closed the connection without an answer", id="dropped"),
        pytest.param(Reply(200, b"{}", delay=1.5), ErrorClass.TIMEOUT, "did not answer within", id="too-slow"),
    ],
)  # fmt: skip
def test_a_bad_answer_fails_the_poll_with_a_sentence_and_the_next_poll_works(
    api: DialerApi, reply: Reply, error_class: ErrorClass, words: str
) -> None:
    poller = Poller(timeout=1.0)
    try:
        api.routes["/api/queues"] = reply
        t = json_target(api.url("/api/queues"), timeout="1s", fields={"calls_waiting": "waiting"})
        bad = poller.poll(t)
        assert (bad.status, bad.error_class) == (Status.FAIL, error_class), bad.detail
        assert words in bad.detail
        assert TOKEN not in bad.detail
        serve_json(api)
        good = poller.poll(t)
        assert good.status is Status.OK, good.detail
    finally:
        poller.close()


def test_nothing_listening_is_connection_refused(poller: Poller) -> None:
    with serve() as gone:
        url = gone.url("/api/queues")
    obs = poller.poll(json_target(url))
    assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.REFUSED)
    assert obs.detail.endswith("/api/queues: connection refused")


def test_basic_auth_is_sent_from_username_and_password(api: DialerApi, poller: Poller) -> None:
    t = json_target(serve_json(api), token=None, username="noc", password="pw-secret")
    poller.poll(t)
    sent = api.seen[-1].headers["Authorization"]
    assert sent == "Basic " + base64.b64encode(b"noc:pw-secret").decode()


def test_the_password_and_token_never_show_in_the_config_repr() -> None:
    basic = json_target("https://d/q", token=None, username="noc", password="pw-secret")
    bearer = json_target("https://d/q")
    assert "pw-secret" not in repr(basic) and TOKEN not in repr(bearer)


def test_redirects_are_followed_only_to_the_same_host(api: DialerApi, poller: Poller) -> None:
    serve_json(api, path="/v2/queues")
    api.routes["/api/queues"] = Reply(302, headers={"Location": "/v2/queues"})
    same = poller.poll(json_target(api.url("/api/queues")))
    assert point(same, "dialer_queue", queue="sales").fields["calls_waiting"] == 3

    api.routes["/api/queues"] = Reply(
        302, headers={"Location": api.url("/v2/queues", host="localhost")}
    )
    before = len(api.seen)
    other = poller.poll(json_target(api.url("/api/queues")))
    assert (other.status, other.error_class) == (Status.FAIL, ErrorClass.RESPONSE)
    assert "redirected to http://localhost:" in other.detail and "not followed" in other.detail
    assert len(api.seen) == before + 1, "the other host was never asked"


def test_https_is_verified_against_the_given_ca(tmp_path: Path, poller: Poller) -> None:
    cert = self_signed(tmp_path)
    with serve(tls=cert) as api:
        url = serve_json(api)
        untrusted = poller.poll(json_target(url))
        assert (untrusted.status, untrusted.error_class) == (Status.FAIL, ErrorClass.TLS)
        assert "TLS with https://127.0.0.1:" in untrusted.detail
        trusted = poller.poll(json_target(url, ca_file=str(cert.cert)))
        assert point(trusted, "dialer_queue", queue="sales").fields["calls_waiting"] == 3
        unchecked = poller.poll(json_target(url, verify_tls=False))
        assert point(unchecked, "dialer").fields["calls_waiting"] == 3


# -- VICIdial --------------------------------------------------------------------------


def vicidial_target(api: DialerApi, **source: Any) -> DialerTarget:
    return DialerTarget.model_validate(
        {
            "id": "vicidial",
            "kind": "dialer",
            "source": {
                "type": "http",
                "format": "vicidial",
                "url": api.url(VICIDIAL_PATH),
                "username": api.vicidial_user,
                "password": api.vicidial_pass,
                "groups": ["SALESLINE", "SUPPORT"],
                **source,
            },
        }
    )


def test_vicidial_in_group_status_gives_one_queue_per_in_group(
    api: DialerApi, poller: Poller
) -> None:
    api.vicidial_groups = {
        "SALESLINE": VicidialGroup(31, 2, 40, 30, 4, 6, 0, 0),
        "SUPPORT": VicidialGroup(12, 0, 10, 3, 5, 2, 0, 0),
    }
    obs = poller.poll(vicidial_target(api))
    assert obs.status is Status.OK, obs.detail
    assert point(obs, "dialer_queue", queue="SALESLINE").fields == {
        "calls_waiting": 2,
        "agents_logged_in": 40,
        "agents_available": 4,  # agents_waiting: ready for a call
        "agents_on_call": 30,
        "agents_paused": 6,
    }
    asked = [s.query for s in api.seen if s.path == VICIDIAL_PATH]
    assert [q["in_groups"] for q in asked] == [["SALESLINE"], ["SUPPORT"]]
    assert all(q["stage"] == ["pipe"] and q["header"] == ["YES"] for q in asked)

    # total_calls is calls today: its growth is calls per minute.
    poller.ctx.state[STATE_KEY]["time"] -= 60
    api.vicidial_groups["SALESLINE"].total_calls += 9
    api.vicidial_groups["SUPPORT"].total_calls += 3
    again = poller.poll(vicidial_target(api))
    assert point(again, "dialer").fields["calls_per_minute"] == pytest.approx(12.0, rel=0.01)


def test_vicidial_user_group_status_is_read_by_its_own_header(
    api: DialerApi, poller: Poller
) -> None:
    api.vicidial_groups = {"AGENTS": VicidialGroup(0, 1, 9, 5, 2, 2, 0, 0)}
    obs = poller.poll(vicidial_target(api, function="user_group_status", groups=["AGENTS"]))
    fields = point(obs, "dialer_queue", queue="AGENTS").fields
    assert fields["agents_on_call"] == 5 and fields["agents_available"] == 2
    assert "calls_per_minute" not in fields  # user groups have no call counter
    assert api.seen[-1].query["user_groups"] == ["AGENTS"]


def test_a_vicidial_error_line_fails_the_poll_and_never_shows_the_password(
    api: DialerApi, poller: Poller
) -> None:
    api.vicidial_groups = {"SALESLINE": VicidialGroup(), "SUPPORT": VicidialGroup()}
    t = vicidial_target(api, password="wrong-pass-5678")
    obs = poller.poll(t)
    assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.RESPONSE)
    assert "answered 'ERROR: Invalid Username/Password: |apiuser|'" in obs.detail
    assert "wrong-pass-5678" not in obs.detail and "pass=" not in obs.detail

    api.vicidial_groups.pop("SUPPORT")
    obs = poller.poll(vicidial_target(api))
    assert "for 'SUPPORT' answered 'ERROR: in_group_status INVALID SEARCH PARAMETERS" in obs.detail


def test_vicidial_lines_without_a_header_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="expected a header and a data line"):
        from_vicidial("SALESLINE|31|0|75|54|0|20|1|0\n", "SALESLINE")
    with pytest.raises(ValueError, match="7 columns, the header 9"):
        from_vicidial(
            "ingroups|total_calls|calls_waiting|agents_logged_in|agents_in_calls|agents_waiting|"
            "agents_paused|agents_in_dispo|agents_in_dial\nSALESLINE|31|0|75|54|0|20\n",
            "SALESLINE",
        )


# -- config and paths --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "words"),
    [
        pytest.param({"url": "file:///etc/passwd"}, "must be an http:// or https:// URL", id="file-url"),
        pytest.param({"url": "ftp://dialer/queues"}, "must be an http:// or https:// URL", id="ftp-url"),
        pytest.param({"url": "http://u:p@dialer/q"}, "not in the URL", id="credentials-in-url"),
        pytest.param({"fields": {}}, "needs at least calls_waiting", id="no-calls-waiting"),
        pytest.param({"fields": {"waiting": "x"}}, "unknown metric 'waiting'", id="unknown-metric"),
        pytest.param({"fields": {"calls_waiting": "queues[*].n"}}, "[*] belongs in queues", id="wildcard-in-field"),
        pytest.param({"queues": "data.queues"}, "must reach several queues with [*]", id="queues-without-wildcard"),
        pytest.param({"queues": "data..queues[*]"}, "a key must come first", id="bad-path"),
        pytest.param({"headers": {"Authorization": "x"}}, "through username/password or token", id="auth-header"),
        pytest.param({"format": "vicidial"}, "name the in-groups", id="vicidial-without-groups"),
    ],
)  # fmt: skip
def test_bad_http_source_config_is_refused_with_a_reason(
    source: dict[str, Any], words: str
) -> None:
    base = {"type": "http", "url": "https://dialer.example/api", "fields": {"calls_waiting": "w"}}
    with pytest.raises(ValidationError) as info:
        DialerTarget.model_validate({"id": "d", "kind": "dialer", "source": {**base, **source}})
    assert words in str(info.value)


def test_cdr_thresholds_are_refused_on_a_queue_source() -> None:
    with pytest.raises(ValidationError, match="allowed: agents_available, calls_per_minute"):
        DialerTarget.model_validate(
            {
                "id": "d",
                "kind": "dialer",
                "source": {"type": "http", "url": "http://d/q", "fields": {"calls_waiting": "w"}},
                "thresholds": {"asr": {"warn": 30}},
            }
        )


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("a.b", [2]),
        ("list[*].v", [1, 2]),
        ("list[-1].v", [2]),
        ('["dotted.key"]', ["x"]),
        ("obj[*]", [10, 20]),
        ("empty[*].v", []),
    ],
)
def test_paths_reach_what_they_say(path: str, expected: list[Any]) -> None:
    doc = {
        "a": {"b": 2},
        "list": [{"v": 1}, {"v": 2}],
        "dotted.key": "x",
        "obj": {"p": 10, "q": 20},
        "empty": [],
    }
    assert [m.value for m in find(doc, parse(path))] == expected


@pytest.mark.parametrize(
    ("path", "words"),
    [
        ("a.c", "a has no 'c'"),
        ("a.b.c", "a.b is a number, not an object"),
        ("list[5]", "2 elements"),
    ],
)
def test_a_path_that_finds_nothing_says_where_it_stopped(path: str, words: str) -> None:
    doc = {"a": {"b": 2}, "list": [1, 2]}
    with pytest.raises(PathMissing, match=words):
        find(doc, parse(path))


@pytest.mark.parametrize("path", ["", "a..b", "a.", "a[x]", "a b", "__import__('os')", 'a["x'])
def test_paths_are_data_not_code(path: str) -> None:
    with pytest.raises(PathSyntaxError):
        parse(path)


@pytest.mark.parametrize(
    ("value", "seconds"), [(12, 12.0), ("12.5", 12.5), ("01:05", 65.0), ("1:00:00", 3600.0)]
)
def test_waits_read_as_seconds_or_clock_times(value: Any, seconds: float) -> None:
    assert to_seconds(value, "wait") == seconds


def test_the_queue_source_examples_in_the_docs_load(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs/probes/dialer.md").read_text()
    blocks = [
        b for b in re.findall(r"(?ms)^```yaml\n(.*?)^```", doc) if re.search(r"type: (ami|http)", b)
    ]
    assert len(blocks) >= 2
    for index, block in enumerate(blocks):
        path = tmp_path / f"example-{index}.yaml"
        # The examples read secrets from files this machine does not have.
        path.write_text(re.sub(r"\$\{file:[^}]*\}", "example-secret", block), encoding="utf-8")
        loaded = load_config(path, env={})
        assert all(t.kind == "dialer" for t in loaded.config.targets)
