"""Subscribing by text message on the public status page, against the real app, the
appliance's notifications service over the state DB and the Twilio stand-in (a local
HTTP server that checks the Basic auth and the fields the way Twilio's Messages API
does: no real carrier can run here).

number → the code texted through the outbox → the code form → subscribed; wrong,
expired and over-tried codes; the abuse limits: the 11th code in a day for one
number is refused and sends nothing, codes per client network a day, codes in total
a day (counted in the state DB); junk numbers get a sentence in the page's language.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from core.clock import ManualClock
from core.secret_box import SecretBox
from dialwatch.schema import Config as ApplianceConfig
from monitor.store.repository import StateRepository
from notify import subscribers
from notify.service import Notifications
from tests.peers.sms import Peer, sms_peer
from tests.test_channel_sms import TWILIO_SID, TWILIO_TOKEN
from tests.test_web_access import CSRF
from tests.test_web_support import BASE_CONFIG, World, make_world

T0 = 1_800_000_000.0
NUMBER = "+8613800138000"


@dataclasses.dataclass
class Site:
    world: World
    notes: Notifications
    peer: Peer
    now: list[float]

    def send(self) -> list[dict[str, str]]:
        """Run the sender once; the texts the stand-in accepted so far (their forms)."""

        async def go() -> None:
            self.notes.sender.clock = ManualClock(self.now[0])
            await self.notes.sender.round()
            await self.notes.sender.settle()

        asyncio.run(go())
        return [g.form() for g in self.peer.got]

    def rows(self) -> list[subscribers.SubscriberRow]:
        with self.notes.repo.reading() as conn:
            return subscribers.listed(conn)


def make_site(
    tmp_path: Path, peer: Peer, extra_channels: tuple[dict[str, Any], ...] = (), **limits: int
) -> Site:
    config = ApplianceConfig.model_validate(
        {
            **BASE_CONFIG,
            "web": {"base_url": "https://status.example.cn"},
            "channels": [{"id": "text", "kind": "sms", "provider": "twilio",
                          "account_sid": TWILIO_SID, "auth_token": TWILIO_TOKEN,
                          "from": "+15005550006", "endpoint": peer.url(),
                          "allow_private": True, "timeout": "2s"}, *extra_channels],
            "customers": {"sms_channel": "text", "limits": limits},
        }
    )  # fmt: skip
    now = [T0]
    w = make_world(tmp_path, config=config, clock=lambda: now[0], with_staff=False)
    notes = Notifications(
        StateRepository(w.db), SecretBox.from_file(tmp_path / "keys" / "appliance.key"),
        lambda: config, clock=ManualClock(T0), faults=w.app.extensions["dialwatch"].faults,
        listen=("127.0.0.1", 8080),
    )  # fmt: skip
    w.app.extensions["dialwatch"] = dataclasses.replace(
        w.app.extensions["dialwatch"], notifications=notes
    )
    return Site(w, notes, peer, now)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with sms_peer("twilio", TWILIO_SID, TWILIO_TOKEN) as peer:
        yield make_site(tmp_path, peer)


def html(response: Any) -> str:
    return response.get_data(as_text=True)


def ask(client: FlaskClient, number: str, lang: str = "en", **environ: str) -> Any:
    page = client.get(f"/status/subscribe/sms?lang={lang}&component=outbound")
    assert page.status_code == 200 and 'value="outbound" checked' in html(page)
    csrf = CSRF.search(html(page)).group(1)  # type: ignore[union-attr]
    return client.post(f"/status/subscribe/sms?lang={lang}", environ_base=environ,
                       data={"csrf_token": csrf, "number": number, "component": ["outbound"]})  # fmt: skip


def enter(client: FlaskClient, answer: Any, code: str, lang: str = "en") -> Any:
    page = html(answer)
    csrf = CSRF.search(page).group(1)  # type: ignore[union-attr]
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    return client.post(f"/status/subscribe/sms/verify?lang={lang}",
                       data={"csrf_token": csrf, "token": token, "code": code})  # fmt: skip


def code_in(text: dict[str, str]) -> str:
    found = re.search(r"\b(\d{6})\b", text["Body"])
    assert found, text
    return found.group(1)


def test_the_e_mail_form_leads_to_the_text_message_form_when_a_channel_is_set(site: Site) -> None:
    page = html(site.world.anonymous().get("/status/subscribe/sms?lang=zh-CN"))
    assert 'name="number"' in page and "退订" in page and CSRF.search(page)


def test_a_number_gets_a_code_by_text_and_the_code_subscribes_it(site: Site) -> None:
    client = site.world.anonymous()
    answer = ask(client, "138 0013 8000", lang="zh-CN")
    assert answer.status_code == 200 and 'name="code"' in html(answer)
    [text] = site.send()
    assert text["To"] == NUMBER and "验证码" in text["Body"] and "退订" in text["Body"]
    [row] = site.rows()
    assert (row.channel, row.state, row.language) == ("sms", "pending", "zh-CN")
    assert "8000" in row.masked and "0013" not in row.masked
    wrong = enter(client, answer, "000000" if code_in(text) != "000000" else "111111", "zh-CN")
    assert wrong.status_code == 400 and "验证码不正确" in html(wrong)
    done = enter(client, answer, code_in(text), "zh-CN")
    assert done.status_code == 200 and "订阅成功" in html(done)
    assert site.rows()[0].state == "active"
    assert 'href="/status/manage/' in html(done)


def test_asking_again_for_a_subscribed_number_answers_the_same_and_texts_nothing(
    site: Site,
) -> None:
    client = site.world.anonymous()
    answer = ask(client, NUMBER)
    [text] = site.send()
    enter(client, answer, code_in(text))
    again = ask(client, NUMBER)
    assert again.status_code == 200 and 'name="code"' in html(again)
    assert len(site.send()) == 1  # no text spent on a subscribed number


def test_an_expired_code_and_too_many_wrong_ones_are_refused_with_a_sentence(site: Site) -> None:
    client = site.world.anonymous()
    answer = ask(client, NUMBER)
    [text] = site.send()
    for _ in range(subscribers.CODE_TRIES):
        assert (
            enter(client, answer, "999999" if code_in(text) != "999999" else "888888").status_code
            == 400
        )
    r = enter(client, answer, code_in(text))
    assert r.status_code == 400 and "Too many wrong codes: ask for a new one." in html(r)
    assert site.rows()[0].state == "pending"
    answer = ask(client, NUMBER)
    [_, text] = site.send()
    site.now[0] += subscribers.CODE_FOR + 1
    r = enter(client, answer, code_in(text))
    assert r.status_code == 400 and "This code has expired: ask for a new one." in html(r)


def test_the_eleventh_code_in_a_day_for_one_number_is_refused_and_sends_nothing(
    tmp_path: Path,
) -> None:
    with sms_peer("twilio", TWILIO_SID, TWILIO_TOKEN) as peer:
        site = make_site(tmp_path, peer, per_address_per_hour=100, per_network_per_hour=1000,
                         sms_codes_per_network_per_day=100)  # fmt: skip
        client = site.world.anonymous()
        for n in range(10):
            site.now[0] = T0 + n * 3600  # spread over the day: only the daily cap is in play
            assert ask(client, NUMBER).status_code == 200
            assert len(site.send()) == n + 1
        site.now[0] = T0 + 10 * 3600
        eleventh = ask(client, NUMBER)
        assert eleventh.status_code == 429
        assert "No more codes can be sent today: try again tomorrow." in html(eleventh)
        assert len(site.send()) == 10
        site.now[0] = T0 + 86400 + 1  # a day after the first: one more may go
        assert ask(client, NUMBER).status_code == 200
        assert len(site.send()) == 11


def test_codes_are_capped_per_client_network_and_in_total_a_day(tmp_path: Path) -> None:
    with sms_peer("twilio", TWILIO_SID, TWILIO_TOKEN) as peer:
        site = make_site(tmp_path, peer, per_network_per_hour=1000, sms_codes_per_network_per_day=2,
                         sms_codes_per_day=3)  # fmt: skip
        client = site.world.anonymous()
        one = {"REMOTE_ADDR": "198.51.100.7"}
        assert ask(client, "+8613800138001", **one).status_code == 200
        assert ask(client, "+8613800138002", **one).status_code == 200
        refused = ask(client, "+8613800138003", **one)
        assert refused.status_code == 429 and "Retry-After" in refused.headers
        other = {"REMOTE_ADDR": "203.0.113.9"}
        assert ask(client, "+8613800138003", **other).status_code == 200
        total = ask(client, "+8613800138004", **other)  # the 4th text of the day, anywhere
        assert total.status_code == 429
        assert len(site.send()) == 3


@pytest.mark.parametrize(
    ("number", "lang", "sentence"),
    [
        ("not a number", "en", "This is not a mobile number we can text."),
        ("+86 10 6552 9988", "en", "Text messages need a mobile number."),
        ("<script>alert(1)</script>", "zh-CN", "这不是可以接收短信的手机号码。"),
    ],
)
def test_junk_numbers_get_a_sentence_in_the_page_language_and_nothing_is_sent(
    site: Site, number: str, lang: str, sentence: str
) -> None:
    r = ask(site.world.anonymous(), number, lang=lang)
    assert r.status_code == 400 and sentence in html(r)
    assert "<script>alert" not in html(r)
    assert site.rows() == [] and site.send() == []


def test_a_forged_form_token_is_refused(site: Site) -> None:
    client = site.world.anonymous()
    answer = ask(client, NUMBER)
    page = html(answer).replace('name="token" value="1.', 'name="token" value="2.')
    csrf = CSRF.search(page).group(1)  # type: ignore[union-attr]
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    r = client.post("/status/subscribe/sms/verify?lang=en",
                    data={"csrf_token": csrf, "token": token, "code": "123456"})  # fmt: skip
    assert r.status_code == 400 and "This form has expired" in html(r)


def test_without_an_sms_channel_the_form_says_so(tmp_path: Path) -> None:
    w = make_world(tmp_path, with_staff=False)
    r = w.anonymous().get("/status/subscribe/sms?lang=en")
    assert r.status_code == 503 and "not available" in html(r)
