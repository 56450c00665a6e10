"""core.net.http: the one blocking HTTP client, against a real HTTP server on loopback."""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import urllib3

from core.net import http
from core.observation import ErrorClass
from tests.peers import free_port
from tests.peers.https import TestPki, serve


class _Handler(BaseHTTPRequestHandler):
    seen: list[tuple[str, str, bytes]] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def _reply(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _route(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.seen.append((self.command, self.path, body))
        path = self.path.split("?")[0]
        if path == "/ok":
            self._reply(200, b"hello")
        elif path == "/whoami":
            self._reply(200, (self.headers.get("Authorization") or "").encode())
        elif path == "/big":
            self._reply(200, b"x" * 5000)
        elif path == "/big-error":
            self._reply(500, b"e" * 5000)
        elif path == "/see-other":
            self._reply(303, headers={"Location": "/ok"})
        elif path == "/elsewhere":
            self._reply(302, headers={"Location": "http://192.0.2.1/ok"})
        elif path == "/loop":
            self._reply(302, headers={"Location": "/loop"})
        elif path == "/silent":
            time.sleep(2)  # the client gives up first (its deadline), then the write fails
            with contextlib.suppress(OSError):
                self._reply(200, b"late")
        else:
            self._reply(404, b"no")

    do_GET = do_POST = _route  # noqa: N815


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def pool() -> Iterator[urllib3.PoolManager]:
    manager = urllib3.PoolManager()
    yield manager
    manager.clear()


def _get(pool: urllib3.PoolManager, url: str, **kw: object) -> http.HttpAnswer:
    args = {"deadline": time.monotonic() + 5, "max_bytes": 1000, **kw}
    return http.request(pool, "GET", url, **args)  # type: ignore[arg-type]


def test_an_answer_of_any_status_is_returned_not_raised(server: str, pool) -> None:
    ok = _get(pool, f"{server}/ok")
    missing = _get(pool, f"{server}/nothing-here")
    assert (ok.status, ok.body) == (200, b"hello")
    assert (missing.status, missing.body) == (404, b"no")


def test_a_see_other_after_a_post_is_followed_as_a_get_on_the_same_origin(
    server: str, pool
) -> None:
    _Handler.seen.clear()
    answer = http.request(
        pool,
        "POST",
        f"{server}/see-other",
        body=b"{}",
        deadline=time.monotonic() + 5,
        max_bytes=100,
    )
    assert answer.status == 200 and answer.url == f"{server}/ok"
    assert [(m, p) for m, p, _ in _Handler.seen] == [("POST", "/see-other"), ("GET", "/ok")]


def test_a_redirect_to_another_host_is_not_followed(server: str, pool) -> None:
    with pytest.raises(http.HttpFailure) as caught:
        _get(pool, f"{server}/elsewhere")
    assert caught.value.error_class is ErrorClass.RESPONSE
    assert "another host, scheme or port; not followed" in caught.value.detail


def test_redirects_can_be_refused_altogether(server: str, pool) -> None:
    answer = _get(pool, f"{server}/see-other", redirects="none")
    assert answer.status == 303


def test_a_redirect_loop_ends_with_a_sentence(server: str, pool) -> None:
    with pytest.raises(http.HttpFailure, match="redirected more than 3 times"):
        _get(pool, f"{server}/loop")


def test_a_success_larger_than_max_bytes_fails_and_an_error_body_is_cut(server: str, pool) -> None:
    with pytest.raises(http.HttpFailure, match="larger than 1000 bytes"):
        _get(pool, f"{server}/big")
    error = _get(pool, f"{server}/big-error")
    assert (error.status, len(error.body), error.truncated) == (500, 1000, True)


def test_the_query_never_shows_in_a_message(server: str, pool) -> None:
    with pytest.raises(http.HttpFailure) as caught:
        _get(pool, f"{server}/elsewhere?token=s3cret")
    assert "s3cret" not in caught.value.detail


def test_a_refused_connection_is_classed_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    manager = urllib3.PoolManager()
    with pytest.raises(http.HttpFailure) as caught:
        _get(manager, f"http://127.0.0.1:{port}/ok")
    assert caught.value.error_class is ErrorClass.REFUSED
    assert "connection refused" in caught.value.detail


def test_a_silent_server_is_cut_off_at_the_deadline(server: str, pool) -> None:
    with pytest.raises(http.HttpFailure) as caught:
        _get(pool, f"{server}/silent", deadline=time.monotonic() + 0.3)
    assert caught.value.error_class is ErrorClass.TIMEOUT


def test_an_expired_deadline_sends_nothing(server: str, pool) -> None:
    _Handler.seen.clear()
    with pytest.raises(http.HttpFailure, match="in time"):
        _get(pool, f"{server}/ok", deadline=time.monotonic() - 1)
    assert _Handler.seen == []


def test_basic_auth_sends_the_name_and_password_in_utf8(server: str, pool) -> None:
    header = http.basic_auth("写入", "pässwörd:含冒号")
    answer = _get(pool, f"{server}/whoami", headers={"Authorization": header})
    scheme, _, encoded = answer.body.decode().partition(" ")
    assert scheme == "Basic"
    assert base64.b64decode(encoded).decode("utf-8") == "写入:pässwörd:含冒号"


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listen queue is full: the kernel drops further SYNs, so a connect hangs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    waiting = []
    for _ in range(4):
        queued = socket.socket()
        queued.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            queued.connect(("127.0.0.1", port))
        waiting.append(queued)
    yield port
    for queued in waiting:
        queued.close()
    listener.close()


def test_a_connect_timeout_gives_up_on_a_silent_host_before_the_deadline(
    full_backlog: int, pool
) -> None:
    with pytest.raises(http.HttpFailure) as caught:
        _get(pool, f"http://127.0.0.1:{full_backlog}/ok", connect_timeout=0.2)
    assert caught.value.error_class is ErrorClass.TIMEOUT
    assert caught.value.detail.endswith("/ok within 0.2s")  # not the deadline's 5 s


def test_a_transport_failure_carries_urllib3s_exception_and_a_verdict_of_its_own_none(
    server: str,
) -> None:
    manager = urllib3.PoolManager()
    with pytest.raises(http.HttpFailure) as refused:
        _get(manager, f"http://127.0.0.1:{free_port()}/ok")  # nothing listens
    assert isinstance(refused.value.cause, urllib3.exceptions.NewConnectionError)
    with pytest.raises(http.HttpFailure) as too_big:
        _get(manager, f"{server}/big")
    assert too_big.value.cause is None


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_a_new_pool_trusts_the_system_cas_or_only_ca_file_or_checks_nothing(
    tmp_path: Path,
) -> None:
    pki = TestPki(tmp_path)
    with serve(pki.leaf("crm")) as site:
        with pytest.raises(http.HttpFailure) as untrusted:
            _get(http.new_pool(verify=True, ca_file=None), site.url())
        trusted = _get(http.new_pool(verify=True, ca_file=str(pki.ca_file)), site.url())
        unchecked = _get(http.new_pool(verify=False, ca_file=None), site.url())
    assert untrusted.value.error_class is ErrorClass.TLS
    assert isinstance(untrusted.value.cause, urllib3.exceptions.SSLError)
    assert (trusted.status, unchecked.status) == (200, 200)


def test_a_keep_alive_connection_stays_usable_after_a_redirect_and_a_cut_error_body() -> None:
    # An HTTP/1.1 server keeps the connection open: an answer left unread on it
    # (a redirect's body, the rest of a long error page) broke the next request.
    from tests.peers.http_api import Answer, http_api

    with http_api() as api:
        api.routes[("GET", "/old")] = Answer(301, b"moved", headers={"Location": "/new"})
        api.routes[("GET", "/new")] = Answer(200, b"here")
        api.routes[("GET", "/long-error")] = Answer(500, b"e" * 5000)
        manager = urllib3.PoolManager(maxsize=1)
        try:
            moved = _get(manager, api.url("/old"))
            cut = _get(manager, api.url("/long-error"))
            after = _get(manager, api.url("/new"))
        finally:
            manager.clear()
    assert (moved.status, moved.body) == (200, b"here")
    assert cut.status == 500 and cut.truncated
    assert (after.status, after.body) == (200, b"here")
