"""The ``http`` probe against a local HTTP/HTTPS server (Python's http.server with ssl)
with generated certificates: status, body match, auth, redirects, certificate checks."""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from pydantic import ValidationError

from core.observation import ErrorClass, Observation, Status
from probes import PROBES
from probes.base import ProbeContext
from probes.http import HttpTarget, check, same_host_redirect, status_matches
from tests.peers.https import LocalWebServer, TestPki, serve


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    return TestPki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def web(pki: TestPki) -> Iterator[dict[str, LocalWebServer]]:
    """Local servers: plain http, https with a good certificate, and the bad-certificate ones."""
    with ExitStack() as stack:
        yield {
            "http": stack.enter_context(serve()),
            "good": stack.enter_context(serve(pki.leaf("good"))),
            "warn": stack.enter_context(serve(pki.leaf("warn", days_left=10))),
            "expired": stack.enter_context(serve(pki.leaf("expired", days_left=-5))),
            "wrong-name": stack.enter_context(
                serve(pki.leaf("wrong-name", dns_names=("billing.example",), ips=()))
            ),
            "unknown-ca": stack.enter_context(serve(pki.leaf("unknown-ca", rogue=True))),
        }


def http(url: str, **fields: object) -> HttpTarget:
    return HttpTarget.model_validate({"id": "crm-api", "kind": "http", "url": url, **fields})


def run(target: HttpTarget, timeout: float = 3.0) -> Observation:
    return asyncio.run(check(target, ProbeContext("crm-api", timeout=timeout)))


def https(web, pki: TestPki, server: str, path: str = "/ok", **fields: object) -> Observation:
    fields.setdefault("ca_file", str(pki.ca_file))
    return run(http(web[server].url(path, host="localhost"), **fields))


def test_http_is_registered_with_its_model():
    assert PROBES["http"].model is HttpTarget


@pytest.mark.peer
def test_a_plain_http_page_is_ok_with_status_and_response_time(web):
    observation = run(http(web["http"].url("/ok")))
    assert observation.status is Status.OK, observation.detail
    assert observation.detail.startswith("HTTP 200 in ")
    (point,) = observation.metrics
    assert point.measurement == "http"
    assert point.fields["status_code"] == 200 and isinstance(point.fields["status_code"], int)
    assert isinstance(point.fields["response_ms"], float)
    assert "cert_days" not in point.fields
    assert observation.latency is not None and observation.latency > 0


@pytest.mark.peer
def test_an_https_page_reports_its_certificate_days(web, pki):
    observation = https(web, pki, "good")
    assert observation.status is Status.OK, observation.detail
    assert "; certificate expires in 9" in observation.detail
    (point,) = observation.metrics
    assert 89 < point.fields["cert_days"] <= 90
    assert isinstance(point.fields["cert_days"], float)


@pytest.mark.peer
@pytest.mark.parametrize(
    ("path", "fields", "status", "detail_part"),
    [
        ("/status/503", {}, Status.FAIL, ": expected 2xx, 3xx"),
        ("/status/404", {"expect_status": [200, 204]}, Status.FAIL, ": expected 200, 204"),
        ("/status/404", {"expect_status": ["4xx"]}, Status.OK, "HTTP 404 in "),
        ("/status/204", {"expect_status": [204]}, Status.OK, "HTTP 204 in "),
        ("/ok", {"expect_status": [201]}, Status.FAIL, "HTTP 200 in "),
    ],
    ids=[
        "503-fails-by-default",
        "404-not-listed",
        "4xx-class-listed",
        "204-listed",
        "200-not-listed",
    ],
)
def test_the_status_code_is_judged_against_expect_status(
    web, path: str, fields: dict, status: Status, detail_part: str
):
    observation = run(http(web["http"].url(path), **fields))
    assert observation.status is status, observation.detail
    assert detail_part in observation.detail
    if status is Status.FAIL:
        assert observation.error_class is ErrorClass.RESPONSE
    (point,) = observation.metrics
    assert point.fields["status_code"] == int(observation.detail.split()[1])


@pytest.mark.peer
@pytest.mark.parametrize(
    ("path", "fields", "status", "detail_part"),
    [
        ("/ok", {"body_contains": "all systems nominal"}, Status.OK, ""),
        ("/ok", {"body_contains": "maintenance"}, Status.FAIL,
         "the body does not contain 'maintenance' (whole body read)"),
        ("/ok", {"body_regex": r"CRM:\s+all \w+ nominal"}, Status.OK, ""),
        ("/ok", {"body_regex": r"^error"}, Status.FAIL, "the body does not match /^error/"),
        ("/big", {"body_contains": "END-OF-BIG-BODY"}, Status.FAIL, "(first 1 MiB read)"),
        ("/big", {"body_contains": "xxxx"}, Status.OK, ""),
    ],
    ids=["contains", "does-not-contain", "regex-matches", "regex-does-not-match",
         "text-past-the-first-mib-is-not-read", "text-in-the-first-mib-of-a-big-body"],
)  # fmt: skip
def test_the_body_is_matched_within_the_first_mib(
    web, path: str, fields: dict, status: Status, detail_part: str
):
    observation = run(http(web["http"].url(path), **fields))
    assert observation.status is status, observation.detail
    assert detail_part in observation.detail
    if status is Status.FAIL:
        assert observation.error_class is ErrorClass.RESPONSE


@pytest.mark.peer
def test_head_requests_send_head(web):
    server = web["http"]
    server.requests.clear()
    observation = run(http(server.url("/ok"), method="HEAD"))
    assert observation.status is Status.OK
    assert [r.method for r in server.requests] == ["HEAD"]


@pytest.mark.peer
def test_configured_headers_are_sent(web):
    server = web["http"]
    server.requests.clear()
    run(http(server.url("/ok"), headers={"X-Api-Key": "k-123", "Accept": "application/json"}))
    (seen,) = server.requests
    assert seen.headers["X-Api-Key"] == "k-123"
    assert seen.headers["Accept"] == "application/json"
    assert "Cookie" not in seen.headers


@pytest.mark.peer
@pytest.mark.parametrize(
    ("auth", "expected_header"),
    [
        ({"basic": {"user": "noc", "password": "s3cret"}},
         "Basic " + base64.b64encode(b"noc:s3cret").decode()),
        ({"bearer_token": "tok-42"}, "Bearer tok-42"),
    ],
    ids=["basic", "bearer"],
)  # fmt: skip
def test_auth_is_sent_and_accepted_by_a_server_that_checks_it(web, auth: dict, expected_header):
    server = web["http"]
    server.expect_authorization = expected_header
    assert run(http(server.url("/secret"), auth=auth)).status is Status.OK
    without = run(http(server.url("/secret")))
    assert without.status is Status.FAIL
    assert "HTTP 401" in without.detail


@pytest.mark.peer
def test_a_ca_file_that_disappeared_after_loading_fails_with_a_sentence(web, pki, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca_file.read_bytes())
    target = http(web["good"].url("/ok", host="localhost"), ca_file=str(ca))
    assert run(target).status is Status.OK
    ca.unlink()
    observation = run(target)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TLS
    assert observation.detail == f"cannot read CA file {ca} (No such file or directory)"


def test_auth_secrets_do_not_show_in_the_target_repr():
    target = http(
        "https://crm.example/api",
        auth={"basic": {"user": "noc", "password": "s3cret"}},
    )
    bearer = http("https://crm.example/api", auth={"bearer_token": "tok-42"})
    assert "s3cret" not in repr(target) and "tok-42" not in repr(bearer)


@pytest.mark.peer
def test_a_redirect_is_judged_as_the_answer_when_not_following(web):
    server = web["http"]
    observation = run(http(server.url("/redirect?to=/ok"), expect_status=[200]))
    assert observation.status is Status.FAIL
    assert observation.detail.endswith(": expected 200; it redirects to /ok")


@pytest.mark.peer
def test_a_redirect_is_ok_by_default_and_says_where_it_points(web):
    observation = run(http(web["http"].url("/redirect?to=/login")))
    assert observation.status is Status.OK
    assert observation.detail.startswith("HTTP 302 in ")
    assert observation.detail.endswith(" ms; redirects to /login")


@pytest.mark.peer
def test_a_same_host_redirect_is_followed_when_asked(web):
    server = web["http"]
    server.requests.clear()
    observation = run(
        http(server.url("/redirect?to=/ok"), follow_redirects=True, body_contains="nominal")
    )
    assert observation.status is Status.OK, observation.detail
    assert [r.path for r in server.requests] == ["/redirect?to=/ok", "/ok"]
    assert f"from {server.url('/ok')}" in observation.detail


@pytest.mark.peer
def test_a_redirect_to_another_host_is_refused(web):
    server = web["http"]
    other = web["good"].url("/ok", host="localhost")  # a different host name, and a real server
    server.requests.clear()
    web["good"].requests.clear()
    observation = run(http(server.url(f"/redirect?to={other}"), follow_redirects=True))
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.RESPONSE
    assert observation.detail == (
        f"redirected to another host ({other}); only same-host redirects are followed"
    )
    assert web["good"].requests == []


@pytest.mark.peer
def test_a_redirect_loop_stops_after_five_redirects(web):
    server = web["http"]
    server.requests.clear()
    observation = run(http(server.url("/loop"), follow_redirects=True))
    assert observation.status is Status.FAIL
    assert observation.detail == f"more than 5 redirects; last to {server.url('/loop')}"
    assert len(server.requests) == 6


@pytest.mark.parametrize(
    ("current", "location", "expected"),
    [
        ("http://crm.example/a", "/b", "http://crm.example/b"),
        ("http://crm.example/a", "https://CRM.example/b", "https://CRM.example/b"),
        ("http://crm.example/a", "https://evil.example/", "another host"),
        ("https://crm.example/a", "http://crm.example/b", "from https to plain http"),
        ("http://crm.example/a", "file:///etc/passwd", "a file: URL"),
    ],
    ids=["relative", "upgrade-to-https", "other-host", "downgrade", "file-url"],
)
def test_same_host_redirect_allows_only_the_same_host_over_http_or_https(
    current: str, location: str, expected: str
):
    try:
        result = same_host_redirect(current, location)
    except Exception as exc:  # Refused
        result = str(exc)
    assert expected in result


@pytest.mark.peer
def test_a_certificate_near_expiry_warns(web, pki):
    observation = https(web, pki, "warn")
    assert observation.status is Status.WARN
    assert observation.error_class is ErrorClass.THRESHOLD
    assert "certificate expires in 10.0 days (warn below 14 days)" in observation.detail
    (point,) = observation.metrics
    assert point.fields["status_code"] == 200


@pytest.mark.peer
def test_a_wrong_status_outranks_a_certificate_warning(web, pki):
    observation = https(web, pki, "warn", "/status/500")
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.RESPONSE
    assert "expected 2xx, 3xx; certificate expires in 10.0 days" in observation.detail


@pytest.mark.peer
@pytest.mark.parametrize(
    ("server", "fields", "expected"),
    [
        ("expired", {}, "certificate expired on "),
        ("wrong-name", {}, "certificate is not valid for localhost (it covers billing.example)"),
        ("unknown-ca", {}, "certificate is signed by an unknown CA CN=Rogue Test CA"),
        ("good", {"ca_file": None}, "certificate is signed by an unknown CA CN=Dialwatch Test CA"),
    ],
    ids=["expired", "wrong-name", "unknown-ca", "private-ca-without-ca-file"],
)
def test_a_certificate_that_fails_verification_fails_with_a_sentence(
    web, pki, server: str, fields: dict, expected: str
):
    web[server].requests.clear()
    observation = https(web, pki, server, **fields)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TLS
    assert observation.detail.startswith(expected), observation.detail
    assert observation.metrics == ()
    assert web[server].requests == []  # nothing was sent over the untrusted connection


@pytest.mark.peer
def test_verify_off_gets_the_page_and_still_judges_expiry(web, pki):
    observation = https(web, pki, "expired", verify=False, ca_file=None)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.THRESHOLD
    assert "certificate expired 5.0 days ago (fail below 3 days)" in observation.detail
    (point,) = observation.metrics
    assert point.fields["status_code"] == 200


@pytest.mark.peer
@pytest.mark.parametrize(
    ("warn_response_time", "status"),
    [(1e-9, Status.WARN), ("10s", Status.OK)],
    ids=["slower-than-a-nanosecond-warns", "faster-than-ten-seconds-is-ok"],
)
def test_warn_response_time_turns_a_slow_answer_into_a_warning(
    web, warn_response_time: object, status: Status
):
    observation = run(http(web["http"].url("/ok"), warn_response_time=warn_response_time))
    assert observation.status is status
    if status is Status.WARN:
        assert observation.error_class is ErrorClass.THRESHOLD
        assert ": slower than " in observation.detail


def test_a_closed_port_is_refused():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        observation = run(http(f"http://127.0.0.1:{holder.getsockname()[1]}/"))
    assert (observation.status, observation.detail, observation.error_class) == (
        Status.FAIL,
        "connection refused",
        ErrorClass.REFUSED,
    )


def test_a_server_that_never_answers_times_out():
    with socket.create_server(("127.0.0.1", 0)) as server:  # accepts, never answers
        port = server.getsockname()[1]
        observation = run(http(f"http://127.0.0.1:{port}/"), timeout=0.3)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TIMEOUT
    assert observation.detail == "no complete HTTP answer within 0.3s"


def raw_server_answer(reply: bytes) -> Observation:
    """Probe a local TCP server that reads the request and sends ``reply`` verbatim, then
    closes (empty: hangs up without a word)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        async def main() -> Observation:
            async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
                await reader.readuntil(b"\r\n\r\n")
                writer.write(reply)
                await writer.drain()
                writer.close()

            async with await asyncio.start_server(answer, sock=server):
                return await check(
                    http(f"http://127.0.0.1:{port}/", body_contains="x"),
                    ProbeContext("crm-api", timeout=3),
                )

        return asyncio.run(main())


@pytest.mark.parametrize(
    ("reply", "detail"),
    [
        (b"", "the server closed the connection without an answer"),
        (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "the answer is not valid HTTP (Bad status line: "),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this",
         "the response body was cut off ("),
    ],
    ids=["hangs-up", "not-http", "body-shorter-than-content-length"],
)  # fmt: skip
def test_a_server_that_breaks_http_is_a_protocol_failure_with_a_one_line_sentence(
    reply: bytes, detail: str
):
    observation = raw_server_answer(reply)
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.PROTOCOL
    assert observation.detail.startswith(detail), observation.detail
    assert "\n" not in observation.detail


@pytest.mark.parametrize(
    ("code", "expected", "matches"),
    [
        (200, ["2xx", "3xx"], True),
        (302, ["2xx", "3xx"], True),
        (404, ["2xx", "3xx"], False),
        (404, [404], True),
        (500, [200, "4xx"], False),
    ],
)
def test_status_matches_codes_and_classes(code: int, expected: list, matches: bool):
    assert status_matches(code, expected) is matches


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"url": "file:///etc/passwd"}, "only http:// and https:// URLs can be probed, not file:"),
        ({"url": "ftp://crm.example/"}, "only http:// and https:// URLs can be probed, not ftp:"),
        ({"url": "crm.example/health"}, "only http:// and https:// URLs can be probed, not no scheme"),
        ({"url": "https:///health"}, "the URL has no host"),
        ({"url": "https://noc:pw@crm.example/"}, "put credentials in auth"),
        ({"url": "https://crm.example:99999/"}, "port must be a number from 1 to 65535"),
        ({"method": "POST"}, "Input should be 'GET' or 'HEAD'"),
        ({"expect_status": []}, "list at least one status code"),
        ({"expect_status": [700]}, "700 is not a status code from 100 to 599"),
        ({"expect_status": ["2XX"]}, "'2XX' is not a status code or a class like 2xx"),
        ({"body_regex": "(unclosed"}, "not a valid regular expression"),
        ({"method": "HEAD", "body_contains": "x"}, "a HEAD request has no body to match"),
        ({"auth": {}}, "give exactly one of basic or bearer_token"),
        ({"auth": {"bearer_token": "t"}, "headers": {"authorization": "x"}},
         "Authorization is set by auth"),
        ({"url": "http://crm.example/", "ca_file": "/etc/hostname"},
         "ca_file applies to https:// URLs only"),
        ({"ca_file": "/nonexistent/ca.pem"}, "CA file /nonexistent/ca.pem does not exist"),
        ({"cert_expiry_days": {"warn": 1, "fail": 5}}, "warn (1) must not be below fail (5)"),
        ({"follow_redirects": "same_host"}, "Input should be a valid boolean"),
        ({"verify": False, "ca_file": "/etc/hostname"}, "ca_file has no effect with verify: false"),
    ],
    ids=["file-url", "ftp-url", "no-scheme", "no-host", "credentials-in-url", "bad-port",
         "post", "empty-status-list", "status-out-of-range", "upper-case-class", "bad-regex",
         "head-with-body-match", "empty-auth", "authorization-twice", "ca-file-on-http",
         "missing-ca-file", "warn-below-fail", "redirect-mode-word", "ca-file-without-verify"],
)  # fmt: skip
def test_bad_http_settings_are_config_errors_saying_why(fields: dict, message: str):
    with pytest.raises(ValidationError) as info:
        http(**{"url": "https://crm.example/health", **fields})
    assert message in str(info.value)
