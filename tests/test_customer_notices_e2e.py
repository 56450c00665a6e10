"""Customer notices end to end: ``dialwatch run``, a SIPp trunk that dies, Chromium on the
status page, a real SMTP server (aiosmtpd) as the customers' mail.

Two customers subscribe to the component 外呼线路 in a real headless Chromium, one
in English and one in Chinese, from the public status page: the form, the
confirmation mail that arrives at aiosmtpd, the link, the confirm button. The
trunk (a real SIPp answering OPTIONS) is killed: an incident opens. The
component is ``notify: manual``, so nothing is sent until staff (an API token
of an operator) set the cause and the ETA and publish an update: the outage
notice carries the published text, the cause and the ETA, each in its
reader's language. A second update reaches both. The English customer then
unsubscribes in one click the way a mail client does (RFC 8058: a POST of
``List-Unsubscribe=One-Click`` to the ``List-Unsubscribe`` link, no cookie, no
CSRF token). The trunk comes back: after ``settle`` only the Chinese customer
hears it has been resolved.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from monitor.store.db import open_database
from notify import subscribers
from tests.peers import free_port
from tests.peers.chromium import chromium  # noqa: F401 - pytest fixture
from tests.peers.sipp import sipp_options_uas
from tests.peers.smtp import Accepting, smtp_server
from tests.test_paging_e2e import ROOT, _answers, wait_for

TZ = "Asia/Shanghai"
PASSWORD = "a long operator passphrase"


def config(path: Path, trunk: str, smtp: int, web: int) -> None:
    path.write_text(
        f"""\
site: {{name: 外呼中心, timezone: {TZ}, language: zh-CN}}
appliance: {{interval: 24h}}
web: {{base_url: "http://127.0.0.1:{web}"}}
targets:
  - {{id: trunk-a, kind: sip, uri: "{trunk}", transport: udp, interval: 1s, timeout: 300ms,
      fail_after: 1, recover_after: 1}}
components:
  - {{id: outbound, name: {{zh-CN: 外呼线路, en: Outbound calling}}, targets: [trunk-a],
      notify: manual}}
channels:
  - {{id: mail, kind: email, from: "外呼中心 <status@example.cn>",
      smtp: {{host: 127.0.0.1, port: {smtp}, tls: none}}}}
customers: {{email_channel: mail, settle: 2s}}
""",
        encoding="utf-8",
    )


def dialwatch(*args: str, stdin: str = "") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dialwatch.cli", *args], cwd=ROOT, input=stdin,
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    return done.stdout


def mails_to(got: Accepting, address: str) -> list[EmailMessage]:
    return [r.message for r in list(got.received) if address in r.rcpt_tos]


def text_of(mail: EmailMessage) -> str:
    part = mail.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def subscribe_in_browser(driver, url: str, lang: str, address: str) -> None:  # noqa: ANN001
    wait = WebDriverWait(driver, 15)
    driver.get(f"{url}/status?lang={lang}")
    panel = wait.until(lambda d: d.find_element(By.ID, "subscribe"))
    panel.find_element(By.CSS_SELECTOR, "input[value=outbound]").click()
    panel.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    form = wait.until(
        lambda d: d.find_element(By.CSS_SELECTOR, "input[name=address]").find_element(
            By.XPATH, "./ancestor::form"
        )
    )
    box = form.find_element(By.CSS_SELECTOR, "input[value=outbound]")
    assert box.is_selected()  # the status page's choice came along
    form.find_element(By.NAME, "address").send_keys(address)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    sent = {"en": "Check your inbox", "zh-CN": "请查收邮件"}[lang]
    wait.until(lambda d: sent in d.page_source)


def confirm_in_browser(driver, link: str) -> str:  # noqa: ANN001
    wait = WebDriverWait(driver, 15)
    driver.get(link)  # opening the link confirms nothing (mail scanners open links)
    button = wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "form button[type=submit]"))
    button.click()
    wait.until(lambda d: "/status/confirm/" in d.current_url and "manage" in d.page_source)
    return driver.find_element(By.TAG_NAME, "main").text


def api(web: int, token: str, method: str, path: str, body: dict[str, object]) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{web}/api/v1{path}", data=json.dumps(body).encode(), method=method,
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read())


def one_click(link: str) -> int:
    """What a mail client sends for ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``."""
    request = urllib.request.Request(
        link, data=urllib.parse.urlencode({"List-Unsubscribe": "One-Click"}).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"}, method="POST",
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status


@pytest.mark.e2e
@pytest.mark.peer
def test_customers_subscribe_hear_cause_eta_updates_and_resolution_and_unsubscribe_in_one_click(
    tmp_path: Path,
    chromium,  # noqa: F811 - the fixture imported above
) -> None:
    web = free_port()
    got = Accepting()
    trunk = contextlib.ExitStack()
    uas = trunk.enter_context(sipp_options_uas(tmp_path))
    en, zh_ascii = "buyer@customer.example", "caigou@kehu.example"
    with smtp_server(got) as smtp:
        cfg = tmp_path / "dialwatch.yaml"
        config(cfg, uas.uri, smtp.port, web)
        data = tmp_path / "data"
        where = ["--config", str(cfg), "--data", str(data)]
        dialwatch("user", "add", "noc", "--role", "operator", *where,
                  stdin=f"{PASSWORD}\n{PASSWORD}\n")  # fmt: skip
        token = dialwatch("token", "create", "--user", "noc", "--name", "e2e", *where).strip()
        log = (tmp_path / "app.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dialwatch.cli", "run", *where, "--listen", f"127.0.0.1:{web}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        url = f"http://127.0.0.1:{web}"
        try:
            wait_for("the web server", lambda: _answers(web))
            # Two customers, each in a browser of their own (no cookie shared).
            for address, lang, name in (
                (en, "en", "Outbound calling"),
                (zh_ascii, "zh-CN", "外呼线路"),
            ):
                chromium.delete_all_cookies()
                subscribe_in_browser(chromium, url, lang, address)
                [mail] = wait_for(
                    f"the confirmation to {address}", lambda a=address: mails_to(got, a)
                )  # type: ignore[misc]
                assert mail["Content-Language"] == lang
                link = re.search(r"(http://127\.0\.0\.1:\d+/status/confirm/\S+)", text_of(mail))
                assert link is not None
                assert name in confirm_in_browser(chromium, link[1])

            uas.process.kill()  # the carrier's trunk dies
            engine = open_database(None, data)

            def incident() -> int | None:
                with engine.connect() as conn:
                    row = conn.exec_driver_sql(
                        "SELECT id FROM incident WHERE resolved_at IS NULL").first()  # fmt: skip
                return None if row is None else int(row[0])

            incident_id = wait_for("the incident", incident)
            eta = (datetime.now(ZoneInfo(TZ)) + timedelta(hours=2)).replace(second=0, microsecond=0)
            api(web, token, "PATCH", f"/incidents/{incident_id}",
                {"cause": "carrier trunk failure", "eta": eta.isoformat()})  # fmt: skip
            assert len(mails_to(got, en)) == 1  # notify: manual, nothing is told yet
            api(web, token, "POST", f"/incidents/{incident_id}/updates",
                {"text": {"en": "Calls through carrier A fail; we are moving them to carrier B.",
                          "zh-CN": "运营商A线路故障，正在切换到运营商B。"}})  # fmt: skip
            first_en = wait_for("the outage notice (en)", lambda: mails_to(got, en)[1:])
            first_zh = wait_for("the outage notice (zh)", lambda: mails_to(got, zh_ascii)[1:])
            body_en = text_of(first_en[0])  # type: ignore[index]
            body_zh = text_of(first_zh[0])  # type: ignore[index]
            when = f"{eta:%Y-%m-%d %H:%M} ({TZ})"
            assert "Outbound calling" in str(first_en[0]["Subject"])  # type: ignore[index]
            assert "moving them to carrier B" in body_en
            assert "carrier trunk failure" in body_en and when in body_en
            assert "外呼线路" in str(first_zh[0]["Subject"])  # type: ignore[index]
            assert "正在切换到运营商B" in body_zh and when in body_zh
            for text in (body_en, body_zh):
                assert "trunk-a" not in text and uas.uri not in text  # no target ids, no address
            unsubscribe = first_en[0]["List-Unsubscribe"].strip("<>")  # type: ignore[index]
            assert first_en[0]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"  # type: ignore[index]

            api(web, token, "POST", f"/incidents/{incident_id}/updates",
                {"text": {"en": "Half of the calls are on carrier B.",
                          "zh-CN": "一半的呼叫已切换到运营商B。"}})  # fmt: skip
            wait_for("the update (en)", lambda: mails_to(got, en)[2:])
            wait_for("the update (zh)", lambda: mails_to(got, zh_ascii)[2:])
            assert "Half of the calls" in text_of(mails_to(got, en)[2])

            assert one_click(unsubscribe) == 200  # the mail client's POST
            trunk.close()
            trunk.enter_context(sipp_options_uas(tmp_path, port=uas.port))  # the trunk is back
            resolved = wait_for("the resolution (zh)", lambda: mails_to(got, zh_ascii)[3:])
            assert "已恢复" in str(resolved[0]["Subject"])  # type: ignore[index]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            trunk.close()
    # The resolution was queued for both in one tick: the one who left heard nothing.
    assert len(mails_to(got, en)) == 3
    with engine.connect() as conn:
        states = {s.masked: s.state for s in subscribers.listed(conn)}
    engine.dispose()
    assert sorted(states.values()) == ["active", "unsubscribed"]
