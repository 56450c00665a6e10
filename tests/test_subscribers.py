"""Status page subscribers in a real state DB: addresses sealed and found by a keyed
digest, shown masked; confirm / manage / unsubscribe links signed; no way to learn who
is subscribed by asking again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select, text

from core.secret_box import SecretBox
from monitor.incident_actions import Conflict
from monitor.store.db import open_database
from monitor.store.models import Subscriber
from monitor.store.repository import StateRepository
from notify import subscribers as subs
from notify.channels.webpush import BrowserSubscription
from notify.subscribers import AddressRefused, Keys, TokenRefused
from tests.peers.push import PushClient

T0 = 1_800_000_000.0
COMPONENTS = ["outbound", "crm"]


@pytest.fixture
def world(tmp_path: Path) -> tuple[StateRepository, Keys]:
    repo = StateRepository(open_database(None, tmp_path))
    return repo, Keys.of(SecretBox.from_file(tmp_path / "keys" / "appliance.key"))


def ask(repo: StateRepository, keys: Keys, address: str = "Zhang.Wei@Example.CN",
        channel: str = "email", components: list[str] | None = None) -> subs.Asked:  # fmt: skip
    return subs.subscribe(repo, keys, channel, address, components or ["outbound"], "zh-CN",  # type: ignore[arg-type]
                          known=COMPONENTS, at=T0)  # fmt: skip


def test_the_address_is_sealed_found_by_digest_and_shown_masked(
    world: tuple[StateRepository, Keys],
) -> None:
    repo, keys = world
    asked = ask(repo, keys)
    assert asked.confirm and asked.subscriber.state == "pending"
    assert asked.subscriber.masked == "Z***@example.cn"
    with repo.reading() as conn:
        raw = conn.execute(text("SELECT * FROM subscriber")).mappings().one()
        assert "Zhang" not in str(dict(raw)) and "example.cn" not in raw["address_sealed"]
        assert subs.address_of(conn, keys, asked.subscriber.id) == "Zhang.Wei@example.cn"
    # The same address again, written otherwise: the same row (the domain's case is not the address).
    again = ask(repo, keys, " Zhang.Wei@EXAMPLE.cn ")
    assert again.subscriber.id == asked.subscriber.id


def test_confirming_makes_it_active_and_asking_again_tells_nothing(
    world: tuple[StateRepository, Keys],
) -> None:
    repo, keys = world
    asked = ask(repo, keys)
    token = keys.token(asked.subscriber.id, "confirm", T0)
    subscriber_id = keys.read(token, "confirm", T0 + 3600)
    assert subs.confirm(repo, subscriber_id, at=T0 + 3600).state == "active"
    assert subs.confirm(repo, subscriber_id, at=T0 + 3601).state == "active"  # a second click
    # Someone else asks for the same address with other components: nothing changes, and
    # the answer (a mail to that address) is the manage link, not a confirmation.
    other = ask(repo, keys, components=["crm"])
    assert not other.confirm and other.subscriber.components == ("outbound",)
    with repo.reading() as conn:
        assert [s.id for s in subs.active_for(conn, "outbound")] == [subscriber_id]
        assert subs.active_for(conn, "crm") == []


def test_links_are_signed_for_one_purpose_and_the_confirm_link_expires(
    world: tuple[StateRepository, Keys],
) -> None:
    repo, keys = world
    sid = ask(repo, keys).subscriber.id
    confirm = keys.token(sid, "confirm", T0)
    with pytest.raises(TokenRefused, match="expired"):
        keys.read(confirm, "confirm", T0 + 25 * 3600)
    with pytest.raises(TokenRefused, match="for something else"):
        keys.read(confirm, "unsubscribe", T0)
    forged = confirm.replace(f"{sid}.", f"{sid + 1}.", 1)
    with pytest.raises(TokenRefused, match="not one of ours"):
        keys.read(forged, "confirm", T0)
    never = keys.token(sid, "unsubscribe", T0)
    assert keys.read(never, "unsubscribe", T0 + 10 * 365 * 86400) == sid  # RFC 8058: always works


def test_unsubscribe_manage_retire_export_and_erase(world: tuple[StateRepository, Keys]) -> None:
    repo, keys = world
    sid = ask(repo, keys, "+86 138 0013 8000", channel="sms").subscriber.id
    subs.confirm(repo, sid, at=T0)
    assert subs.set_components(
        repo, sid, ["crm", "outbound"], known=COMPONENTS, at=T0
    ).components == ("crm", "outbound")
    with pytest.raises(AddressRefused, match="no component 'billing'"):
        subs.set_components(repo, sid, ["billing"], known=COMPONENTS, at=T0)
    with repo.reading() as conn:
        exported = subs.export(conn, keys, sid)
        assert exported["address"] == "+8613800138000" and exported["channel"] == "sms"
        assert subs.get(conn, sid).masked == "+86 138****8000"
    assert subs.unsubscribe(repo, sid, at=T0 + 5).state == "unsubscribed"
    assert subs.unsubscribe(repo, sid, at=T0 + 6).ended_at == T0 + 5  # once
    with pytest.raises(Conflict, match="has ended"):
        subs.set_components(repo, sid, ["crm"], known=COMPONENTS, at=T0)
    mail = ask(repo, keys, "li@example.cn").subscriber.id
    retired = subs.retire(repo, mail, "550 5.1.1 no such user", at=T0)
    assert (retired.state, retired.failures, retired.reason) == (
        "retired",
        1,
        "550 5.1.1 no such user",
    )
    subs.erase(repo, mail)
    with repo.reading() as conn:
        assert [r.id for r in conn.execute(select(Subscriber.id))] == [sid]


@pytest.mark.parametrize(
    ("channel", "address", "words"),
    [
        ("email", "not an address", "not an e-mail address"),
        ("email", "a@b", "not an e-mail address"),
        ("email", "x@example.cn<script>", "not an e-mail address"),
        ("sms", "12345", "not a valid phone number"),
        ("sms", "+86 10 6552 9988", "text messages need a mobile number"),
    ],
)
def test_junk_is_refused_with_a_sentence(
    world: tuple[StateRepository, Keys], channel: str, address: str, words: str
) -> None:
    repo, keys = world
    with pytest.raises(AddressRefused, match=words):
        ask(repo, keys, address, channel=channel)


def test_components_must_be_on_the_page(world: tuple[StateRepository, Keys]) -> None:
    repo, keys = world
    with pytest.raises(AddressRefused, match="choose at least one component"):
        subs.subscribe(repo, keys, "email", "a@example.cn", [], "en", known=COMPONENTS, at=T0)


def test_sms_codes_confirm_are_capped_per_number_per_day_and_stop_unsubscribes(
    world: tuple[StateRepository, Keys],
) -> None:
    repo, keys = world
    sid = ask(repo, keys, "13800138000", channel="sms").subscriber.id
    codes = [subs.issue_code(repo, keys, sid, at=T0 + n, per_day=10) for n in range(10)]
    with pytest.raises(subs.LimitReached, match="too many codes to this number today"):
        subs.issue_code(repo, keys, sid, at=T0 + 60, per_day=10)  # the 11th in a day
    assert subs.issue_code(repo, keys, sid, at=T0 + 86400 + 1, per_day=10)  # a day later
    late = codes[-1]
    with pytest.raises(TokenRefused, match="not the code we sent|expired"):
        subs.check_code(repo, keys, sid, late, at=T0 + 86400 + 2)  # an old code
    fresh = subs.issue_code(repo, keys, sid, at=T0 + 2 * 86400, per_day=10)
    wrong = "000000" if fresh != "000000" else "111111"
    for _ in range(subs.CODE_TRIES):
        with pytest.raises(TokenRefused, match="not the code we sent"):
            subs.check_code(repo, keys, sid, wrong, at=T0 + 2 * 86400 + 1)
    with pytest.raises(TokenRefused, match="too many wrong codes"):
        subs.check_code(repo, keys, sid, fresh, at=T0 + 2 * 86400 + 2)
    fresh = subs.issue_code(repo, keys, sid, at=T0 + 2 * 86400 + 3, per_day=10)
    assert subs.check_code(repo, keys, sid, f" {fresh} ", at=T0 + 2 * 86400 + 4).state == "active"
    with pytest.raises(TokenRefused, match="expired"):
        subs.check_code(repo, keys, sid, fresh, at=T0 + 2 * 86400 + 5)  # used up
    assert not subs.stop_by_reply(repo, keys, "+8613800138000", "hello", at=T0)
    assert subs.stop_by_reply(repo, keys, "+86 138 0013 8000", "退订", at=T0)
    with repo.reading() as conn:
        assert subs.get(conn, sid).state == "unsubscribed"


def browser(endpoint: str) -> BrowserSubscription:
    return BrowserSubscription(endpoint, PushClient().p256dh, PushClient().auth)


def test_a_push_endpoint_of_a_known_push_service_is_taken_active_at_once(
    world: tuple[StateRepository, Keys],
) -> None:
    repo, keys = world
    endpoint = "https://fcm.googleapis.com/fcm/send/abc123"
    row = subs.subscribe_push(repo, keys, browser(endpoint), ["outbound"], "en",
                              known=COMPONENTS, at=T0)  # fmt: skip
    assert (row.masked, row.state, row.confirmed_at) == (
        "push via fcm.googleapis.com",
        "active",
        T0,
    )
    with repo.reading() as conn:
        _row, opened = subs.opened(conn, keys, row.id)
        assert BrowserSubscription.from_json(opened).endpoint == endpoint
        assert subs.find_push(conn, keys, endpoint) == row
        assert subs.find_push(conn, keys, endpoint + "x") is None
    with pytest.raises(ValueError, match="subscribe_push"):
        ask(repo, keys, endpoint, channel="webpush")


@pytest.mark.parametrize(
    ("endpoint", "words"),
    [
        ("http://push.example/x", "https://"),
        ("https://10.0.0.5/push/abc", "not an allowed push service"),
        ("https://evil.example.cn/fcm/send/x", "not an allowed push service"),
        ("https://a:b@fcm.googleapis.com/x", "https://"),
        ("ftp://fcm.googleapis.com/x", "https://"),
    ],
)
def test_a_push_endpoint_elsewhere_is_refused(
    world: tuple[StateRepository, Keys], endpoint: str, words: str
) -> None:
    repo, keys = world
    with pytest.raises(AddressRefused, match=words):
        subs.subscribe_push(repo, keys, browser(endpoint), ["outbound"], "en",
                            known=COMPONENTS, at=T0)  # fmt: skip
