"""Our probe details and health reasons in the page language.

The details come from real probes on loopback and from ``describe_os_error``
itself, so a sentence changed at its source and not in ``web.vocabulary``
fails here rather than silently staying English on zh-CN pages.
"""

from __future__ import annotations

import asyncio
import errno
import re
import socket
import time
from collections.abc import Iterator

import pytest

from core.errors import describe_os_error
from probes.base import ProbeContext
from probes.tcp import TcpTarget
from probes.tcp import check as tcp_check
from tests.test_web_support import add_targets, add_transition, make_world, standard_rows
from web.vocabulary import say

CJK = re.compile(r"[\u4e00-\u9fff]")


@pytest.fixture
def world(tmp_path):
    w = make_world(tmp_path)
    add_targets(w.db, standard_rows())
    return w


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A port bound but not listening: the kernel refuses a connect to it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def tcp_detail(port: int) -> str:
    target = TcpTarget.model_validate(
        {"id": "crm-db", "kind": "tcp", "address": f"127.0.0.1:{port}"}
    )
    return asyncio.run(tcp_check(target, ProbeContext("crm-db", timeout=2.0))).detail


def said(world, text: str, lang: str) -> str:
    with world.app.test_request_context(f"/?lang={lang}"):
        return say(text)


def test_a_zh_cn_target_page_shows_a_refused_connection_in_chinese(world, refused_port) -> None:
    detail = tcp_detail(refused_port)
    assert detail == "connection refused"
    add_targets(
        world.db,
        [{"target_id": "pbx", "kind": "tcp", "health": "down", "last_status": "fail",
          "last_detail": detail}],
    )  # fmt: skip
    add_transition(
        world.db, "pbx", time.time() - 60, "up", "down",
        f"down after 2 consecutive failures: {detail}",
    )  # fmt: skip
    zh = world.client().get("/targets/pbx?lang=zh-CN").get_data(as_text=True)
    assert "<dd>连接被拒绝</dd>" in zh
    assert "连续 2 次失败，判定为故障：连接被拒绝" in zh
    assert "失败</dd>" in zh  # the observation's status
    assert "connection refused" not in zh
    en = world.client().get("/targets/pbx?lang=en").get_data(as_text=True)
    assert "<dd>connection refused</dd>" in en
    assert "down after 2 consecutive failures: connection refused" in en
    assert ">Failed</dd>" in en


def test_the_zh_cn_dashboard_shows_details_in_chinese(world, refused_port) -> None:
    add_targets(
        world.db,
        [{"target_id": "pbx", "kind": "tcp", "health": "down", "last_status": "fail",
          "last_detail": tcp_detail(refused_port)}],
    )  # fmt: skip
    zh = world.client().get("/?lang=zh-CN").get_data(as_text=True)
    assert 'title="连接被拒绝">连接被拒绝</td>' in zh
    # standard_rows' SIP trunk: a timeout after retransmissions
    assert "重传 7 次后 OPTIONS 仍无应答（4.0 秒）" in zh


def test_the_api_keeps_the_detail_as_the_probe_wrote_it(world, refused_port) -> None:
    add_targets(
        world.db,
        [{"target_id": "pbx", "kind": "tcp", "health": "down", "last_status": "fail",
          "last_detail": tcp_detail(refused_port)}],
    )  # fmt: skip
    body = world.client().get("/api/v1/targets/pbx", headers={"Accept-Language": "zh-CN"})
    body = body.get_json()
    assert "connection refused" in str(body) and not CJK.search(str(body))


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), id="resolve"),
        pytest.param(socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution"),
                     id="resolve-again"),
        pytest.param(ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), id="refused"),
        pytest.param(OSError(errno.EHOSTUNREACH, "No route to host"), id="host-unreachable"),
        pytest.param(OSError(errno.ENETUNREACH, "Network is unreachable"), id="net-unreachable"),
        pytest.param(OSError(errno.EHOSTDOWN, "Host is down"), id="host-down"),
        pytest.param(OSError(errno.ECONNRESET, "Connection reset by peer"), id="reset"),
        pytest.param(OSError(errno.ETIMEDOUT, "Connection timed out"), id="timed-out"),
    ],
)  # fmt: skip
def test_every_sentence_of_the_error_vocabulary_has_chinese_words(world, error: OSError) -> None:
    sentence, _class = describe_os_error(error)
    zh = said(world, sentence, "zh-CN")
    assert CJK.search(zh) and not re.search(r"[A-Za-z]{3,}", zh), zh
    assert said(world, sentence, "en") == sentence


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        pytest.param("connected in 0.4 ms", "连接用时 0.4 ms", id="tcp-ok"),
        pytest.param("connected in 912.0 ms (above 500 ms)", "连接用时 912.0 ms（超过 500 ms）",
                     id="tcp-slow"),
        pytest.param("no answer to TCP connect within 5s", "TCP 连接在 5 秒内没有应答",
                     id="tcp-timeout"),
        pytest.param("200 OK in 0.3 ms", "200 OK，用时 0.3 ms", id="sip-ok"),
        pytest.param("200 OK in 512.0 ms after 1 retransmission",
                     "200 OK，用时 512.0 ms（重传 1 次）", id="sip-ok-retransmitted"),
        pytest.param("answered 503 Service Unavailable to OPTIONS in 2.1 ms",
                     "OPTIONS 应答为 503 Service Unavailable，用时 2.1 ms", id="sip-error"),
        pytest.param("no answer to OPTIONS over TCP within 4.0 s",
                     "4.0 秒内 TCP 上的 OPTIONS 没有应答", id="sip-tcp-timeout"),
        pytest.param("connection refused (ICMP port unreachable: nothing listens on that port)",
                     "连接被拒绝（ICMP 端口不可达：该端口没有服务在监听）", id="sip-udp-refused"),
        pytest.param("HTTP 200 in 12.5 ms", "HTTP 200，用时 12.5 ms", id="http-ok"),
        pytest.param("no complete HTTP answer within 5s", "5 秒内没有收到完整的 HTTP 应答",
                     id="http-timeout"),
        pytest.param("no TLS handshake with 10.0.0.5:443 within 5s",
                     "5 秒内未能与 10.0.0.5:443 完成 TLS 握手", id="tls-timeout"),
        pytest.param("no answer from 10.0.0.53 within 2.5s", "10.0.0.53 在 2.5 秒内没有应答",
                     id="dns-timeout"),
        pytest.param("probe did not finish within its timeout of 5s",
                     "探测未在 5 秒的超时时间内完成", id="runner-timeout"),
        pytest.param("up after 2 successful checks: connected in 0.4 ms",
                     "连续 2 次检查成功，恢复正常：连接用时 0.4 ms", id="health-up"),
        pytest.param("down after 1 failure: connection refused", "1 次失败，判定为故障：连接被拒绝",
                     id="health-down-once"),
        pytest.param("unknown: 1 bad check so far, 2 needed to decide: connection refused",
                     "未知：已有 1 次异常检查，需 2 次才能判定：连接被拒绝", id="health-unknown"),
        pytest.param("gw-b: connection refused", "gw-b：连接被拒绝", id="a-gateway-prefix"),
        pytest.param("in maintenance: carrier works", "维护中：carrier works",
                     id="a-reason-written-by-staff-stays"),
    ],
)  # fmt: skip
def test_the_common_details_read_in_chinese(world, english: str, chinese: str) -> None:
    assert said(world, english, "zh-CN") == chinese
    assert said(world, english, "en") == english


@pytest.mark.parametrize(
    "text",
    [
        "SNMP: no instance for OID 1.3.6.1.2.1.1.3.0",
        "expected 200; got 404",
        "connection refused by the carrier's SBC",
        "",
    ],
)
def test_a_sentence_we_do_not_know_is_shown_as_written(world, text: str) -> None:
    assert said(world, text, "zh-CN") == text


def test_values_inside_a_known_sentence_are_still_escaped(world) -> None:
    add_targets(
        world.db,
        [{"target_id": "pbx", "kind": "tcp", "health": "down", "last_status": "fail",
          "last_detail": "connection failed (<script>alert(1)</script>)"}],
    )  # fmt: skip
    html = world.client().get("/targets/pbx?lang=zh-CN").get_data(as_text=True)
    assert "<script>alert" not in html
    assert "连接失败（&lt;script&gt;alert(1)&lt;/script&gt;）" in html


def _refusal(call) -> str:  # noqa: ANN001 - a zero-argument callable that must refuse
    with pytest.raises((ValueError, LookupError, RuntimeError)) as refused:
        call()
    return str(refused.value)


def test_the_monitors_refusals_read_in_chinese_on_zh_cn_pages(world) -> None:
    from monitor import incident_actions as actions
    from monitor.staff import users
    from monitor.store.repository import StateRepository
    from tests.test_web_support import STAFF, add_incident

    repo = StateRepository(world.db)
    resolved = add_incident(world.db, ["trunk-a"], state="resolved")
    busy = add_incident(world.db, ["trunk-b"])
    now = time.time()
    refusals = [
        _refusal(lambda: actions.acknowledge(repo, "user:opal", resolved)),
        _refusal(lambda: actions.acknowledge(repo, "user:opal", 999_999)),
        _refusal(lambda: actions.update(repo, "user:opal", busy, eta=now - 60, at=now)),
        _refusal(lambda: actions.declare(repo, "user:opal", ["trunk-b"], title="Carrier B down")),
        _refusal(lambda: users.disable_user(repo, "cli", STAFF["admin"])),
        _refusal(lambda: users.add_user(repo, "cli", STAFF["viewer"], "viewer", "another pass 42")),
    ]
    for text in refusals:
        zh = said(world, text, "zh-CN")
        assert CJK.search(zh) and zh != text, f"stays English on zh-CN pages: {text!r}"
        assert said(world, text, "en") == text
