"""Subscribing on the public status page by e-mail, against the real app, the appliance's
notifications service over the state DB and a real SMTP server (aiosmtpd) on loopback.

subscribe → the confirmation mail in the page's language → the confirm page and its
button → active; asking again answers the same and mails the manage link; the RFC 8058
one-click POST unsubscribes with no cookie and no CSRF token; bad links, abuse limits,
junk addresses, CSRF and escaping.
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
from tests.peers.smtp import Accepting, Received, smtp_server
from tests.test_web_access import CSRF
from tests.test_web_support import BASE_CONFIG, World, make_config, make_world
from web.rate_limit import WindowLimit, network_of

T0 = 1_800_000_000.0
BASE = "https://status.example.cn"
SENT_EN = "Check your inbox"
SENT_ZH = "请查收邮件"


@dataclasses.dataclass
class Site:
    world: World
    notes: Notifications
    mail: Accepting
    now: list[float]

    def send(self) -> list[Received]:
        """Run the sender once; the mails received so far."""

        async def go() -> None:
            await self.notes.sender.round()
            await self.notes.sender.settle()

        asyncio.run(go())
        return self.mail.received

    def row(self, subscriber_id: int) -> subscribers.SubscriberRow:
        with self.notes.repo.reading() as conn:
            return subscribers.get(conn, subscriber_id)

    def only(self) -> subscribers.SubscriberRow:
        with self.notes.repo.reading() as conn:
            [row] = subscribers.listed(conn)
        return row


def appliance_config(port: int, limits: dict[str, int] | None = None) -> ApplianceConfig:
    return ApplianceConfig.model_validate(
        {
            **BASE_CONFIG,
            "web": {"base_url": BASE},
            "channels": [{"id": "mail", "kind": "email", "from": "Status <status@example.cn>",
                          "smtp": {"host": "127.0.0.1", "port": port, "tls": "none"}}],
            "customers": {"email_channel": "mail", "limits": limits or {}},
        }
    )  # fmt: skip


def make_site(tmp_path: Path, port: int, accepting: Accepting, **limits: int) -> Site:
    config = appliance_config(port, limits)
    now = [T0]
    w = make_world(tmp_path, config=config, clock=lambda: now[0], with_staff=False)
    notes = Notifications(
        StateRepository(w.db),
        SecretBox.from_file(tmp_path / "keys" / "appliance.key"),
        lambda: config,
        clock=ManualClock(T0),
        faults=w.app.extensions["dialwatch"].faults,
        listen=("127.0.0.1", 8080),
    )
    w.app.extensions["dialwatch"] = dataclasses.replace(
        w.app.extensions["dialwatch"], notifications=notes
    )
    return Site(w, notes, accepting, now)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    accepting = Accepting()
    with smtp_server(accepting) as smtp:
        yield make_site(tmp_path, smtp.port, accepting)


def token_of(client: FlaskClient, path: str) -> str:
    found = CSRF.search(client.get(path).get_data(as_text=True))
    assert found, f"no CSRF field on {path}"
    return found.group(1)


def subscribe(
    client: FlaskClient,
    address: str,
    components: list[str],
    lang: str = "en",
    **headers: str,
) -> Any:
    csrf = token_of(client, f"/status/subscribe?lang={lang}")
    return client.post(
        f"/status/subscribe?lang={lang}",
        data={"csrf_token": csrf, "address": address, "component": components},
        headers=headers,
    )


def body_of(mail: Received) -> str:
    return mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def link_in(mail: Received, purpose: str) -> str:
    found = re.search(rf"{re.escape(BASE)}/status/{purpose}/(\S+)", body_of(mail))
    assert found, body_of(mail)
    return found.group(1)


def html(response: Any) -> str:
    return response.get_data(as_text=True)


# -- the status page and the form --------------------------------------------------------
def test_the_status_page_offers_each_component_by_name_and_leads_to_the_form(site: Site) -> None:
    client = site.world.anonymous()
    en, zh = html(client.get("/status?lang=en")), html(client.get("/status?lang=zh-CN"))
    assert 'action="/status/subscribe"' in en and 'method="get"' in en
    assert 'name="component" value="outbound"> Outbound calling' in en
    assert 'name="component" value="crm"> CRM' in en
    assert 'value="outbound"> 外呼线路' in zh and "邮件通知订阅" in zh
    assert "csrf" not in en.lower()  # the shared snapshot carries no visitor's token

    form = client.get("/status/subscribe?lang=en&component=crm")
    page = html(form)
    assert form.status_code == 200 and form.headers["Cache-Control"] == "no-store"
    assert CSRF.search(page) and 'name="address"' in page
    assert 'value="crm" checked' in page and 'value="outbound" checked' not in page


def test_without_notifications_there_is_no_form_and_the_routes_say_so(tmp_path: Path) -> None:
    w = make_world(tmp_path, with_staff=False)  # no notifications service, no customers:
    client = w.anonymous()
    assert 'id="subscribe"' not in html(client.get("/status?lang=en"))
    r = client.get("/status/subscribe?lang=en")
    assert r.status_code == 503
    assert "Subscriptions are not available on this status page." in html(r)
    assert client.get("/status/confirm/1.confirm.0.x?lang=zh-CN").status_code == 503
    r = client.post("/status/unsubscribe/1.unsubscribe.0.x", data="List-Unsubscribe=One-Click")
    assert r.status_code == 503 and "本状态页暂不提供订阅" in html(r)


def test_a_private_status_page_has_no_form_for_strangers(tmp_path: Path) -> None:
    config = make_config(web={"public_status": False})
    w = make_world(tmp_path, config=config, with_staff=False)
    assert w.anonymous().get("/status/subscribe").status_code == 404


# -- subscribe, confirm ------------------------------------------------------------------
def test_subscribe_confirm_mail_in_the_page_language_then_the_button_confirms(site: Site) -> None:
    client = site.world.anonymous()
    r = subscribe(client, "Wang.Li@Example.CN", ["outbound", "crm"], lang="zh-CN")
    assert r.status_code == 200 and SENT_ZH in html(r)
    assert r.headers["Cache-Control"] == "no-store"
    row = site.only()
    assert (row.state, row.language, row.components) == ("pending", "zh-CN", ("outbound", "crm"))

    [mail] = site.send()
    assert mail.rcpt_tos == ["Wang.Li@example.cn"]
    assert mail.message["Subject"] == "Test Center：请确认订阅"
    body = body_of(mail)
    assert "外呼线路、客户系统" in body and "24 小时内有效" in body
    token = link_in(mail, "confirm")

    page = client.get(f"/status/confirm/{token}?lang=zh-CN")  # what a mail scanner does
    assert page.status_code == 200 and "确认订阅" in html(page)
    assert f'action="/status/confirm/{token}"' in html(page)
    assert site.row(row.id).state == "pending"  # opening the link confirms nothing

    csrf = CSRF.search(html(page)).group(1)  # type: ignore[union-attr]
    done = client.post(f"/status/confirm/{token}?lang=zh-CN", data={"csrf_token": csrf})
    assert done.status_code == 200 and "订阅成功" in html(done)
    assert site.row(row.id).state == "active"
    assert 'href="/status/manage/' in html(done)


def test_asking_again_answers_the_same_page_and_mails_the_manage_link(site: Site) -> None:
    client = site.world.anonymous()
    first = subscribe(client, "li@example.cn", ["outbound"])
    [confirmation] = site.send()
    subscribers.confirm(site.notes.repo, site.only().id, at=T0)

    again = subscribe(site.world.anonymous(), "li@example.cn", ["crm"])
    assert again.status_code == first.status_code == 200
    assert html(again) == html(first)  # nobody learns who is subscribed
    [_, manage] = site.send()
    assert manage.message["Subject"] == "Test Center: your subscription"
    assert "subscribed already" in body_of(manage)
    assert site.only().components == ("outbound",)  # unchanged until the owner acts
    assert site.only().state == "active"

    token = link_in(manage, "manage")
    page = client.get(f"/status/manage/{token}?lang=en")
    assert page.status_code == 200
    assert 'value="outbound" checked' in html(page) and 'value="crm" checked' not in html(page)
    csrf = CSRF.search(html(page)).group(1)  # type: ignore[union-attr]
    saved = client.post(
        f"/status/manage/{token}?lang=en",
        data={"csrf_token": csrf, "action": "save", "component": ["crm"]},
    )
    assert saved.status_code == 200 and "Saved." in html(saved)
    assert site.only().components == ("crm",)
    none = client.post(
        f"/status/manage/{token}?lang=en", data={"csrf_token": csrf, "action": "save"}
    )
    assert none.status_code == 400 and "Choose at least one component." in html(none)
    gone = client.post(
        f"/status/manage/{token}?lang=en", data={"csrf_token": csrf, "action": "unsubscribe"}
    )
    assert gone.status_code == 200 and "You are unsubscribed" in html(gone)
    assert site.only().state == "unsubscribed"
    ended = client.get(f"/status/manage/{token}?lang=en")
    assert ended.status_code == 409 and "This subscription has ended" in html(ended)


# -- unsubscribe -------------------------------------------------------------------------
def test_the_one_click_post_of_a_mail_client_unsubscribes(site: Site) -> None:
    subscribe(site.world.anonymous(), "li@example.cn", ["outbound"])
    [mail] = site.send()
    subscribers.confirm(site.notes.repo, site.only().id, at=T0)
    assert mail.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link = str(mail.message["List-Unsubscribe"]).strip("<>")
    path = link.removeprefix(BASE)
    assert path.startswith("/status/unsubscribe/")

    browser = site.world.anonymous()
    page = browser.get(path + "?lang=en")
    assert page.status_code == 200 and f'action="{path}"' in html(page)
    assert site.only().state == "active"  # opening the link changes nothing

    mail_client = site.world.anonymous()  # no cookie, no CSRF token, a webmail's Origin
    r = mail_client.post(
        path,
        data="List-Unsubscribe=One-Click",
        content_type="application/x-www-form-urlencoded",
        headers={"Origin": "https://mail.example.com"},
    )
    assert r.status_code == 200
    assert site.only().state == "unsubscribed"
    assert mail_client.post(path, data="List-Unsubscribe=One-Click").status_code == 200  # again


@pytest.mark.parametrize(
    ("path", "sentence"),
    [
        ("/status/confirm/{id}.confirm.{exp}.{bad}", "This link is not one of ours."),
        ("/status/confirm/{unsubscribe}", "This link is for something else."),
        ("/status/manage/{confirm}", "This link is for something else."),
        ("/status/manage/nonsense", "This link is not one of ours."),
        ("/status/unsubscribe/{id}.unsubscribe.0.{bad}", "This link is not one of ours."),
        ("/status/unsubscribe/<img src=x onerror=alert(1)>", "This link is not one of ours."),
    ],
    ids=["forged-mac", "confirm-with-unsubscribe", "manage-with-confirm", "junk", "forged-one-click",
         "markup"],
)  # fmt: skip
def test_a_bad_link_is_a_400_with_the_reason(site: Site, path: str, sentence: str) -> None:
    subscribe(site.world.anonymous(), "li@example.cn", ["outbound"])
    keys, sid = site.notes.subscriber_keys, site.only().id
    url = path.format(
        id=sid, exp=int(T0 + 3600), bad="0" * 32,
        unsubscribe=keys.token(sid, "unsubscribe", T0), confirm=keys.token(sid, "confirm", T0),
    )  # fmt: skip
    client = site.world.anonymous()
    csrf = token_of(client, "/status/subscribe")  # past the CSRF check: the link is refused
    posted = client.post(url + "?lang=en", data={"csrf_token": csrf})
    for r in (client.get(url + "?lang=en"), posted):
        assert r.status_code == 400 and sentence in html(r), (r.status_code, html(r))
        assert "<img" not in html(r)
    assert site.only().state == "pending"


def test_an_expired_confirm_link_is_refused_in_the_page_language(site: Site) -> None:
    subscribe(site.world.anonymous(), "li@example.cn", ["outbound"])
    [mail] = site.send()
    token = link_in(mail, "confirm")
    site.now[0] = T0 + 25 * 3600
    r = site.world.anonymous().get(f"/status/confirm/{token}?lang=zh-CN")
    assert r.status_code == 400 and "此链接已过期" in html(r)


# -- abuse limits ------------------------------------------------------------------------
def test_the_fourth_request_for_one_address_in_an_hour_is_429(site: Site) -> None:
    for _ in range(3):
        assert subscribe(site.world.anonymous(), "li@example.cn", ["outbound"]).status_code == 200
    r = subscribe(site.world.anonymous(), "li@EXAMPLE.cn", ["crm"])  # the same address
    assert r.status_code == 429 and "Too many requests" in html(r)
    assert int(r.headers["Retry-After"]) == 3601
    assert len(site.send()) == 3  # the refused one mailed nothing
    site.now[0] = T0 + 3600  # the hour has passed
    assert subscribe(site.world.anonymous(), "li@example.cn", ["outbound"]).status_code == 200


def test_one_network_is_limited_and_an_ipv6_slash_64_is_one_network(tmp_path: Path) -> None:
    accepting = Accepting()
    with smtp_server(accepting) as smtp:
        site = make_site(tmp_path, smtp.port, accepting, per_network_per_hour=2)

        def ask(address: str, remote: str) -> int:
            client = site.world.anonymous()
            csrf = token_of(client, "/status/subscribe?lang=en")
            return client.post(
                "/status/subscribe?lang=en",
                data={"csrf_token": csrf, "address": address, "component": "crm"},
                environ_overrides={"REMOTE_ADDR": remote},
            ).status_code

        assert ask("a@example.cn", "2001:db8:1:2::1") == 200
        assert ask("b@example.cn", "2001:db8:1:2:ffff:ffff:ffff:fffe") == 200
        assert ask("c@example.cn", "2001:db8:1:2::77") == 429  # the same /64
        assert ask("c@example.cn", "2001:db8:1:3::1") == 200  # the next /64
        assert ask("d@example.cn", "198.51.100.7") == 200
        assert ask("e@example.cn", "198.51.100.7") == 200
        assert ask("f@example.cn", "198.51.100.7") == 429
        assert ask("f@example.cn", "198.51.100.8") == 200


def test_a_refused_form_does_not_count_against_the_address(site: Site) -> None:
    client = site.world.anonymous()
    for _ in range(5):
        r = subscribe(client, "li@example.cn", [])
        assert r.status_code == 400 and "Choose at least one component." in html(r)
    assert subscribe(client, "li@example.cn", ["nope"]).status_code == 400
    assert subscribe(client, "li@example.cn", ["crm"]).status_code == 200


# -- bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("lang", "sentence"),
    [("zh-CN", "这不是有效的电子邮件地址。"), ("en", "This is not an e-mail address.")],
)
def test_a_junk_address_is_400_with_the_sentence_beside_the_form(
    site: Site, lang: str, sentence: str
) -> None:
    r = subscribe(site.world.anonymous(), "not an address", ["crm"], lang=lang)
    page = html(r)
    assert r.status_code == 400 and sentence in page
    assert 'value="not an address"' in page and 'value="crm" checked' in page  # kept to fix
    assert CSRF.search(page)  # the form again, ready to send
    assert site.send() == []


def test_what_a_customer_types_never_reaches_the_page_as_markup(site: Site) -> None:
    typed = '"><script>alert(1)</script>@example.cn'
    r = subscribe(site.world.anonymous(), typed, ["crm"])
    page = html(r)
    assert r.status_code == 400
    assert "<script>alert(1)" not in page
    assert "&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@example.cn" in page
    r = subscribe(site.world.anonymous(), "li@example.cn", ['crm"><script>x</script>'])
    assert r.status_code == 400 and "<script>x" not in html(r)


# -- CSRF and Origin ---------------------------------------------------------------------
def test_the_form_routes_refuse_a_post_without_the_csrf_token(site: Site) -> None:
    keys, client = site.notes.subscriber_keys, site.world.anonymous()
    client.get("/status/subscribe")  # a cookie, but no token in the post
    r = client.post("/status/subscribe", data={"address": "li@example.cn", "component": "crm"})
    assert r.status_code == 400 and "CSRF" in html(r)
    assert site.send() == []
    asked = subscribers.subscribe(site.notes.repo, keys, "email", "li@example.cn", ["crm"],
                                  "en", known=["crm"], at=T0)  # fmt: skip
    sid = asked.subscriber.id
    confirm = client.post(f"/status/confirm/{keys.token(sid, 'confirm', T0)}", data={})
    assert confirm.status_code == 400
    assert site.row(sid).state == "pending"
    subscribers.confirm(site.notes.repo, sid, at=T0)
    manage = f"/status/manage/{keys.token(sid, 'manage', T0)}"
    assert client.post(manage, data={"action": "unsubscribe"}).status_code == 400
    assert site.row(sid).state == "active"


def test_a_cross_site_post_to_the_form_is_refused(site: Site) -> None:
    client = site.world.anonymous()
    r = subscribe(client, "li@example.cn", ["crm"], Origin="https://evil.example")
    assert r.status_code == 403
    assert site.send() == []


# -- the limit itself --------------------------------------------------------------------
def test_the_window_limit_counts_every_key_or_none() -> None:
    now = [0.0]
    limit = WindowLimit(lambda: now[0], window=60.0)
    assert limit.take({"a": 2, "n": 3}) == 0.0
    now[0] = 10.0
    assert limit.take({"a": 2, "n": 3}) == 0.0
    assert limit.take({"a": 2, "n": 3}) == 50.0  # "a" is full until its first one is 60 s old
    assert limit.take({"b": 2, "n": 3}) == 0.0  # the refused one did not count against "n"
    assert limit.take({"c": 2, "n": 3}) == 50.0
    limit.give_back(["b", "n"])
    assert limit.take({"c": 2, "n": 3}) == 0.0
    now[0] = 60.0
    assert limit.take({"a": 2}) == 0.0


@pytest.mark.parametrize(
    ("address", "network"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1%eth0", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("not-an-ip", "not-an-ip"),
    ],
)
def test_a_client_is_counted_by_its_network(address: str, network: str) -> None:
    assert network_of(address) == network
