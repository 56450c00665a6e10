"""web.server.serve: waitress in a background thread on a real loopback socket."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.test_web_support import add_targets, make_config, make_world, standard_rows
from web.server import serve

TOKEN: dict[str, str] = {}


def get(url: str) -> tuple[int, str, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN['admin']}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.headers.get_content_type(), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get_content_type(), json.loads(e.read())


def test_serve_on_port_zero_answers_on_the_real_port_and_close_frees_it(tmp_path) -> None:
    # The port is known only once bound: allow the name on any port.
    w = make_world(tmp_path, config=make_config(web={"allowed_hosts": ["127.0.0.1"]}))
    TOKEN.update(w.tokens)
    add_targets(w.db, standard_rows())
    handle = serve(w.app, "127.0.0.1", 0)
    try:
        assert handle.port > 0
        assert get(f"{handle.url}/healthz") == (200, "application/json", {"status": "ok"})
        # several waitress threads read the SQLite state DB at once
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(get, [f"{handle.url}/api/v1/targets"] * 32))
        assert {r[0] for r in results} == {200}
        assert {r[2]["total"] for r in results} == {4}
        status, ctype, body = get(f"{handle.url}/api/v1/nope")
        assert (status, ctype) == (404, "application/json") and "no such API route" in body["error"]
    finally:
        handle.close()
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", handle.port), timeout=1):
        pass
    assert not handle._thread.is_alive()
    handle.close()  # closing twice is harmless


def test_serve_on_ipv6_loopback(tmp_path) -> None:
    w = make_world(tmp_path)
    try:
        handle = serve(w.app, "::1", 0)
    except OSError as exc:  # pragma: no cover - a host without IPv6 loopback
        pytest.fail(f"cannot bind ::1 on this machine: {exc}")
    try:
        assert handle.url == f"http://[::1]:{handle.port}"
        assert get(f"{handle.url}/healthz")[0] == 200
    finally:
        handle.close()
