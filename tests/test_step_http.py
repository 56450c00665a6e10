"""The ``http`` runbook step against a real HTTP server on loopback that records each request."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from core.clock import SYSTEM_CLOCK
from runbooks.steps.base import StepContext, StepFailed, StepResult, StepServices
from runbooks.steps.http import HttpStep, HttpStepConfig
from tests.peers.http_api import Answer, Api, http_api
from tests.peers.https import TestPki, serve


@pytest.fixture
def api() -> Iterator[Api]:
    with http_api() as server:
        yield server


def config(**fields: Any) -> HttpStepConfig:
    return HttpStepConfig.model_validate({"kind": "http", **fields})


def context(timeout: float = 5.0, services: StepServices | None = None) -> StepContext:
    return StepContext(
        run_id=1,
        runbook_id="pause-campaign",
        position=0,
        target_id=None,
        incident_id=None,
        started_by="test",
        deadline=SYSTEM_CLOCK.monotonic() + timeout,
        clock=SYSTEM_CLOCK,
        services=services or StepServices(),
        log=lambda _line: None,
    )


def run(step_config: HttpStepConfig, timeout: float = 5.0) -> StepResult:
    return asyncio.run(HttpStep(step_config).run(context(timeout)))


def failure(step_config: HttpStepConfig, timeout: float = 5.0) -> StepFailed:
    with pytest.raises(StepFailed) as caught:
        run(step_config, timeout)
    return caught.value


def test_a_post_sends_its_method_headers_and_json_body(api: Api) -> None:
    api.routes[("POST", "/campaigns/7/pause")] = Answer.of({"state": "paused", "id": 7})
    result = run(
        config(
            method="POST",
            url=api.url("/campaigns/7/pause"),
            headers={"X-Operator": "noc-1"},
            json={"reason": "trunk-a down", "seats": 40},
            username="ops",
            password="pa55-word",
        )
    )
    [seen] = api.seen
    assert seen.method == "POST"
    assert seen.path == "/campaigns/7/pause"
    assert seen.headers["x-operator"] == "noc-1"
    assert seen.headers["content-type"] == "application/json"
    assert json.loads(seen.body) == {"reason": "trunk-a down", "seats": 40}
    assert seen.headers["authorization"] == "Basic " + base64.b64encode(b"ops:pa55-word").decode()
    assert result.data == {"status": 200, "json": {"state": "paused", "id": 7}}
    assert result.output.startswith("HTTP 200 OK\n")
    assert '"state": "paused"' in result.output
    assert "HTTP 200" in result.summary


def test_a_text_body_goes_as_text_and_a_content_type_header_wins(api: Api) -> None:
    api.routes[("PUT", "/carrier")] = Answer(204, b"")
    result = run(
        config(
            method="PUT",
            url=api.url("/carrier"),
            body="carrier=backup-b\n",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
    )
    [seen] = api.seen
    assert seen.body == b"carrier=backup-b\n"
    assert seen.headers["content-type"] == "application/x-www-form-urlencoded"
    assert result.data == {"status": 204, "json": None}
    assert result.output == "HTTP 204 No Content"


@pytest.mark.parametrize(
    ("expect_status", "status", "passes"),
    [
        pytest.param(None, 201, True, id="default-takes-any-2xx"),
        pytest.param(None, 302, False, id="default-refuses-a-3xx"),
        pytest.param(202, 202, True, id="one-status-matches"),
        pytest.param(202, 200, False, id="one-status-is-exact"),
        pytest.param([200, 409], 409, True, id="a-list-may-hold-a-4xx"),
    ],
)
def test_the_expected_status_decides(
    api: Api, expect_status: Any, status: int, passes: bool
) -> None:
    api.routes[("GET", "/state")] = Answer.of({"ok": True}, status)
    step = config(url=api.url("/state"), expect_status=expect_status)
    if passes:
        assert run(step).data["status"] == status
    else:
        assert f"HTTP {status}" in failure(step).reason


def test_expect_json_passes_when_every_path_holds_its_value(api: Api) -> None:
    api.routes[("GET", "/campaigns/7")] = Answer.of(
        {"data": {"state": "paused", "dialing": False, "lines": 0}, "trunks": [{"id": "b"}]}
    )
    result = run(
        config(
            url=api.url("/campaigns/7"),
            expect_json={
                "data.state": "paused",
                "data.dialing": False,
                "data.lines": 0,
                "trunks[0].id": "b",
            },
        )
    )
    assert result.data["json"]["data"]["state"] == "paused"


def test_expect_json_names_the_path_and_both_values_when_one_differs(api: Api) -> None:
    api.routes[("GET", "/campaigns/7")] = Answer.of({"data": {"state": "running", "lines": 0}})
    failed = failure(config(url=api.url("/campaigns/7"), expect_json={"data.state": "paused"}))
    assert failed.reason.endswith('data.state is "running", expected "paused"')
    assert failed.retry is False
    assert '"running"' in failed.output


def test_expect_json_tells_true_from_one_and_reports_a_missing_key(api: Api) -> None:
    api.routes[("GET", "/c")] = Answer.of({"data": {"dialing": 1}})
    assert (
        "is 1, expected true"
        in failure(config(url=api.url("/c"), expect_json={"data.dialing": True})).reason
    )
    missing = failure(config(url=api.url("/c"), expect_json={"data.state": "paused"}))
    assert "data has no 'state'" in missing.reason
    assert missing.retry is False


def test_expect_json_on_an_answer_that_is_not_json_fails(api: Api) -> None:
    api.routes[("GET", "/c")] = Answer(200, b"<html>login</html>", "text/html")
    failed = failure(config(url=api.url("/c"), expect_json={"state": "paused"}))
    assert "not JSON (text/html)" in failed.reason


def test_a_4xx_is_not_retried_and_says_the_answers_words(api: Api) -> None:
    api.routes[("POST", "/campaigns/9/pause")] = Answer.of(
        {"error": "campaign 9 does not exist"}, 404
    )
    failed = failure(config(method="POST", url=api.url("/campaigns/9/pause"), json={}))
    assert failed.retry is False
    assert "HTTP 404 Not Found" in failed.reason
    assert "campaign 9 does not exist" in failed.reason
    assert failed.output.startswith("HTTP 404 Not Found\n")


def test_a_5xx_and_a_429_may_be_retried(api: Api) -> None:
    api.routes[("GET", "/busy")] = Answer(503, b"dialer restarting", "text/plain")
    api.routes[("GET", "/slow-down")] = Answer(429, b"", "text/plain")
    busy = failure(config(url=api.url("/busy")))
    assert busy.retry is True
    assert "HTTP 503 Service Unavailable, expected 2xx: dialer restarting" in busy.reason
    assert failure(config(url=api.url("/slow-down"))).retry is True


def test_a_hanging_server_is_given_up_on_at_the_deadline(api: Api) -> None:
    api.routes[("POST", "/hang")] = Answer(hang=True)
    start = time.monotonic()
    failed = failure(config(method="POST", url=api.url("/hang"), json={}), timeout=0.5)
    assert time.monotonic() - start < 3
    assert failed.retry is True
    assert "did not answer within" in failed.reason


def test_a_closed_port_fails_as_connection_refused_and_may_be_retried() -> None:
    with http_api() as gone:
        url = gone.url("/x")
    failed = failure(config(url=url))
    assert "connection refused" in failed.reason
    assert failed.retry is True


def test_a_redirect_to_another_host_is_refused(api: Api) -> None:
    with http_api() as elsewhere:
        api.routes[("GET", "/old")] = Answer(302, b"", headers={"Location": elsewhere.url("/x")})
        failed = failure(config(url=api.url("/old")))
        assert elsewhere.seen == []
    assert "another host, scheme or port; not followed" in failed.reason
    assert failed.retry is False


def test_a_get_follows_a_redirect_on_the_same_server(api: Api) -> None:
    api.routes[("GET", "/old")] = Answer(301, b"", headers={"Location": "/new"})
    api.routes[("GET", "/new")] = Answer.of({"state": "paused"})
    result = run(config(url=api.url("/old"), expect_json={"state": "paused"}))
    assert [s.path for s in api.seen] == ["/old", "/new"]
    assert "/new" in result.summary


def test_a_post_is_never_redirected_even_on_the_same_server(api: Api) -> None:
    api.routes[("POST", "/pause")] = Answer(302, b"", headers={"Location": "/login"})
    failed = failure(config(method="POST", url=api.url("/pause"), json={}))
    assert [s.path for s in api.seen] == ["/pause"]
    assert f"HTTP 302 Found, expected 2xx: redirected to {api.url('/login')}" in failed.reason
    assert "a POST is not followed" in failed.reason
    assert failed.retry is False


def test_the_password_is_kept_out_of_plan_and_reasons(api: Api) -> None:
    api.routes[("POST", "/echo")] = Answer(400, b"bad login ops/pa55-word-7", "text/plain")
    step = config(
        method="POST",
        url=api.url("/echo") + "?user=ops&pass=pa55-word-7",
        headers={"X-Api-Key": "key-123456", "Accept": "application/json"},
        json={"campaign": 7},
        username="ops",
        password="pa55-word-7",
    )
    plan = "\n".join(HttpStep(step).plan())
    assert "pa55-word-7" not in plan
    assert "key-123456" not in plan
    assert "pass=***" in plan
    assert "basic auth as 'ops'" in plan
    assert "Accept: application/json" in plan
    assert '"campaign": 7' in plan
    assert "password='***'" in repr(step)
    failed = failure(step)
    assert "pa55-word-7" not in failed.reason + failed.output
    assert "bad login ops/***" in failed.reason


def test_the_plan_says_method_url_body_and_what_is_expected() -> None:
    step = config(
        method="POST",
        url="https://dialer.example/api/campaigns/7/pause",
        json={"reason": "trunk down"},
        expect_status=[200, 202],
        expect_json={"state": "paused"},
    )
    assert HttpStep(step).plan() == [
        "http POST https://dialer.example/api/campaigns/7/pause",
        '  json: {"reason": "trunk down"}',
        "  expect status 200 or 202",
        '  expect state = "paused"',
    ]


def test_the_pool_comes_from_the_engine_shared_resources(api: Api) -> None:
    api.routes[("GET", "/a")] = Answer.of({})
    services = StepServices()
    asyncio.run(HttpStep(config(url=api.url("/a"))).run(context(services=services)))
    assert services.shared.get("http.pool:True:None") is not None


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        pytest.param({"url": "ftp://h/x"}, "http:// or https://", id="not-http"),
        pytest.param({"url": "http://u:p@h/x"}, "not in the URL", id="credentials-in-url"),
        pytest.param(
            {"method": "POST", "url": "http://h/", "body": "a", "json": {}},
            "not both",
            id="body-and-json",
        ),
        pytest.param({"url": "http://h/", "body": "a"}, "GET request has no body", id="get-body"),
        pytest.param({"url": "http://h/", "password": "x"}, "without username", id="lone-password"),
        pytest.param(
            {"url": "http://h/", "expect_json": {"a..b": 1}}, "a key must come first", id="bad-path"
        ),
        pytest.param(
            {"url": "http://h/", "expect_json": {"items[*].id": 1}}, "one value", id="wildcard"
        ),
        pytest.param(
            {"url": "http://h/", "headers": {"X-A": "1\r\nX-B: 2"}}, "line break", id="header-crlf"
        ),
        pytest.param(
            {"url": "http://h/", "expect_status": 99}, "greater than or equal", id="status"
        ),
        pytest.param({"url": "http://h/{{ params.x"}, "template", id="template-syntax"),
    ],
)
def test_a_bad_config_is_refused_with_a_reason(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as error:
        config(**fields)
    assert words in str(error.value)


def test_a_templated_url_is_checked_once_rendered() -> None:
    step = config(url="{{ params.api }}/pause")
    assert HttpStep(step).plan()[0] == "http GET {{ params.api }}/pause"
    rendered = step.model_copy(update={"url": "file:///etc/passwd"})
    failed = failure(rendered)
    assert "must be an http:// or https:// URL" in failed.reason
    assert failed.retry is False


def test_tls_is_checked_against_ca_file_and_an_untrusted_server_is_not_retried(
    tmp_path: Path,
) -> None:
    pki = TestPki(tmp_path)
    with serve(pki.leaf("dialer")) as site:
        untrusted = failure(config(url=site.url()))
        trusted = run(config(url=site.url(), ca_file=str(pki.ca_file)))
    assert "TLS with https://127.0.0.1" in untrusted.reason
    assert untrusted.retry is False
    assert trusted.data["status"] == 200
