"""Paging end to end: ``dialwatch run`` as a process, a SIPp trunk that dies, real receivers.

The trunk is a real SIPp answering OPTIONS; it is killed (the SIP probe
sees no answer: the target goes down, an incident opens) and later started
again on the same port (the incident resolves).

The person on call has e-mail first (a real SMTP server that refuses the
recipient) and a webhook second (a local receiver that checks the HMAC
signature): the e-mail fails permanently, the webhook delivers at once.
Nobody acknowledges, so level 2 pages the next person after its delay; the
first person acknowledges through the link in their message (GET shows the
confirm page, the POST acknowledges); escalation stops; the target comes
back and everyone paged hears it is resolved. Every attempt is in the
outbox with its outcome.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.store.db import open_database
from notify import outbox
from tests.peers import free_port
from tests.peers.sipp import sipp_options_uas
from tests.peers.smtp import Refusing, smtp_server
from tests.peers.webhook import Request, webhook_receiver

ROOT = Path(__file__).resolve().parent.parent
SECRET = "0123456789abcdef0123456789"


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def body(r: Request) -> dict[str, object]:
    return json.loads(r.body)


def config(path: Path, trunk: str, smtp: int, hook: str) -> None:
    path.write_text(
        f"""\
site: {{name: 外呼中心, timezone: Asia/Shanghai, language: zh-CN}}
appliance: {{interval: 24h}}
targets:
  - {{id: trunk-a, kind: sip, uri: "{trunk}", transport: udp, interval: 1s, timeout: 300ms,
      fail_after: 1, recover_after: 1, tags: {{role: trunk}}}}
channels:
  - {{id: mail, kind: email, from: "NOC <noc@example.cn>", smtp: {{host: 127.0.0.1, port: {smtp}, tls: none}}}}
  - {{id: hook, kind: webhook, url: "{hook}", secret: "{SECRET}", allow_private: true}}
people:
  - {{id: zhang, user: zhang, name: 张伟, email: zhang@example.cn, contact: [mail, hook]}}
  - {{id: chen, user: chen, name: 陈刚, contact: [hook]}}
escalations:
  - id: trunks
    levels:
      - {{notify: [person:zhang]}}
      - {{after: 4s, notify: [person:chen]}}
rules:
  - {{id: trunk-down, when: {{event: opened, tags: {{role: trunk}}}}, escalate: trunks}}
""",
        encoding="utf-8",
    )


def acknowledge_through_the_link(link: str, web_port: int) -> str:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(link, timeout=10).read().decode()
    assert "确认事件" in page  # the confirm page; nothing is acknowledged by opening it
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    form = urllib.parse.urlencode({"csrf_token": token[1]}).encode()
    request = urllib.request.Request(
        link, data=form, headers={"Origin": f"http://127.0.0.1:{web_port}"}, method="POST"
    )
    return opener.open(request, timeout=10).read().decode()


@pytest.mark.e2e
def test_a_trunk_down_pages_falls_back_escalates_is_acknowledged_by_link_and_resolves(
    tmp_path: Path,
) -> None:
    web_port = free_port()
    refusing = Refusing()
    trunk = contextlib.ExitStack()
    uas = trunk.enter_context(sipp_options_uas(tmp_path))
    with smtp_server(refusing) as smtp, webhook_receiver(SECRET) as hook:
        cfg = tmp_path / "dialwatch.yaml"
        config(cfg, uas.uri, smtp.port, hook.url())
        data = tmp_path / "data"
        log = (tmp_path / "app.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dialwatch.cli", "run", "--config", str(cfg),
             "--data", str(data), "--listen", f"127.0.0.1:{web_port}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            time.sleep(0)  # the target is up while the appliance starts
            wait_for("the web server", lambda: _answers(web_port))
            uas.process.kill()  # the carrier's trunk dies
            first = wait_for("zhang's page on the webhook", lambda: hook.requests[:1])
            page = body(first[0])  # type: ignore[index]
            assert first[0].signed  # type: ignore[index]
            assert refusing.asked >= 1  # e-mail was tried first and refused (550)
            assert "trunk-a" in str(page["subject"])
            link = re.search(r"(http://127\.0\.0\.1:\d+/ack/\S+)", str(page["text"]))
            assert link is not None and ".zhang." in link[1]
            # Nobody acknowledged: level 2 pages chen after 4 s.
            second = wait_for(
                "chen's page", lambda: [r for r in hook.requests if ".chen." in body(r)["text"]]
            )  # type: ignore[operator]
            assert second
            answer = acknowledge_through_the_link(link[1], web_port)
            assert "已确认" in answer
            # chen hears that zhang acknowledged.
            wait_for(
                "the acknowledged notice",
                lambda: [r for r in hook.requests if "已确认" in str(body(r)["subject"])],
            )
            trunk.close()
            trunk.enter_context(sipp_options_uas(tmp_path, port=uas.port))  # the trunk is back
            wait_for(
                "the resolved notices",
                lambda: len([r for r in hook.requests if "已恢复" in str(body(r)["subject"])]) >= 2,
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            trunk.close()
    engine = open_database(None, data)
    try:
        with engine.connect() as conn:
            views = outbox.of_incident(conn, 1)
    finally:
        engine.dispose()
    first_delivery = views[0]
    assert first_delivery.delivery.person_id == "zhang"
    assert [(a.channel_id, a.outcome, a.permanent) for a in first_delivery.attempts] == [
        ("mail", "failed", True),
        ("hook", "sent", False),
    ]
    assert "550" in first_delivery.attempts[0].reason
    kinds = sorted((v.delivery.person_id, v.delivery.kind) for v in views)
    assert ("chen", "escalated") in kinds and ("chen", "acknowledged") in kinds
    assert ("zhang", "resolved") in kinds and ("chen", "resolved") in kinds
    assert ("zhang", "acknowledged") not in kinds  # who acknowledged is not told of it


def _answers(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
        return True
    except OSError:
        return False
