"""Scheduled maintenance told to customers: the pure rules with send times, then the
live path over a real state DB (marks survive a new ``CustomerNotices``), texts in the
subscriber's language, the reason redacted, maintenance never an outage notice."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.config import MaintenanceWindow
from dialwatch.schema import Config
from notify.customer_maintenance import END_GRACE, Occurrence, due, occurrences
from notify.customer_notices import MAINTENANCE_EVERY, CustomerNotices
from tests.test_customer_notices import World

H = 3600.0
LEADS = [24 * H, H]
TZ = "Asia/Shanghai"
START = datetime(2027, 1, 16, 2, 0, tzinfo=ZoneInfo(TZ)).timestamp()
WINDOW = Occurrence(START, START + 2 * H, "carrier upgrade")


def run(
    moments: list[float], leads: list[float] = LEADS, quiet: set[float] = frozenset()
) -> list[tuple[float, str]]:  # type: ignore[assignment]
    """Ask at each moment (as ticks would), remembering the marks; what was sent when."""
    told: set[str] = set()
    sent = []
    for now in moments:
        found = due(WINDOW, leads, now, told, quiet=now in quiet)
        if found is not None:
            told |= set(found.marks)
            sent.append((now - START, found.stage))
    return sent


def test_each_lead_then_the_start_then_the_end_once_each() -> None:
    moments = [
        START + d for d in (-48 * H, -24 * H, -24 * H + 30, -H, -H + 30, 0, 30, 2 * H, 2 * H + 30)
    ]
    assert run(moments) == [(-24 * H, "ahead"), (-H, "ahead"), (0, "start"), (2 * H, "end")]


def test_a_window_added_late_gets_one_ahead_notice_not_a_burst() -> None:
    assert run([START - 30 * 60, START - 29 * 60, START]) == [(-30 * 60, "ahead"), (0, "start")]


def test_a_window_first_seen_while_it_runs_gets_only_start_and_end() -> None:
    assert run([START + 10 * 60, START + 2 * H]) == [(10 * 60, "start"), (2 * H, "end")]


def test_no_end_notice_without_a_start_notice_or_long_after_the_end() -> None:
    assert run([START + 2 * H + 60]) == []
    told = {"start"}
    assert due(WINDOW, LEADS, START + 2 * H + END_GRACE + 1, told, quiet=False) is None


def test_no_leads_means_only_start_and_end() -> None:
    assert run([START - 24 * H, START - H, START, START + 2 * H], leads=[]) == [
        (0, "start"),
        (2 * H, "end"),
    ]


def test_quiet_hours_hold_notices_and_the_rules_pick_what_is_left() -> None:
    moments = [START - H, START - 30 * 60, START + 60]
    assert run(moments, quiet={START - H, START - 30 * 60}) == [(60, "start")]


def test_recurring_windows_give_each_occurrence_and_members_sharing_one_count_once() -> None:
    weekly = MaintenanceWindow(cron="0 2 * * 6", duration=2 * H, reason="weekly")  # Saturdays
    now = datetime(2027, 1, 15, 12, 0, tzinfo=ZoneInfo(TZ)).timestamp()  # a Friday
    found = occurrences([weekly, weekly], now, 24 * H, TZ)
    assert found == [Occurrence(START, START + 2 * H, "weekly")]
    one_off = MaintenanceWindow(start="2027-01-16T02:00", end="2027-01-16T04:00", reason="x")
    assert occurrences([one_off], now, 24 * H, TZ)[0].start == START
    assert occurrences([one_off], now, 10 * H, TZ) == []  # beyond the horizon


# -- live, over the state DB --------------------------------------------------------------
def with_window(w: World, reason: str = "carrier upgrade on sip:10.9.8.7") -> None:
    data: dict[str, Any] = w.config.model_dump(by_alias=True, exclude_unset=True)
    data["targets"][0]["maintenance"] = [
        {"start": "2027-01-16T02:00", "end": "2027-01-16T04:00", "reason": reason}
    ]
    w.config = Config.model_validate(data)


@pytest.mark.parametrize("lang", ["en", "zh-CN"])
def test_subscribers_hear_24h_1h_start_and_end_in_their_language_once(
    tmp_path: Path, lang: str
) -> None:
    w = World(tmp_path)
    other = w.subscribe("wang@example.cn", lang)
    with_window(w)
    step = MAINTENANCE_EVERY
    for at in (START - 25 * H, START - 24 * H, START - 24 * H + step, START - H, START,
               START + step, START + 2 * H, START + 2 * H + step):  # fmt: skip
        w.notices.tick(w.repo, at)
        # A restart between ticks: a new CustomerNotices on the same DB repeats nothing.
        w.notices = CustomerNotices(lambda: w.config, w.keys, lambda: "https://status.example.cn")
    mine = [(s, t) for p, s, t in w.outbox() if p == f"subscriber:{other}"]
    subjects = [s for s, _ in mine]
    if lang == "en":
        assert subjects == ["Outbound calling: scheduled maintenance."] * 2 + [
            "Outbound calling: scheduled maintenance has begun.",
            "Outbound calling: scheduled maintenance is over.",
        ]
        assert "When: 2027-01-16 02:00 to 2027-01-16 04:00 (Asia/Shanghai)" in mine[0][1]
    else:
        assert subjects == ["外呼线路：计划维护通知。"] * 2 + [
            "外呼线路：计划维护已开始。",
            "外呼线路：计划维护已结束。",
        ]
        assert "维护时间：2027-01-16 02:00 至 2027-01-16 04:00（Asia/Shanghai）" in mine[0][1]
    for _, text in mine:
        assert "10.9.8.7" not in text and "trunk-a" not in text
        assert "carrier upgrade on [redacted]" in text
        assert "https://status.example.cn/status/unsubscribe/" in text
    assert len(w.outbox()) == 8  # both subscribers, four notices each, nothing twice


def test_a_target_in_maintenance_tells_no_outage(tmp_path: Path) -> None:
    w = World(tmp_path)
    with_window(w)
    w.health("maintenance", START)
    w.notices.tick(w.repo, START)
    w.notices.tick(w.repo, START + 10 * 60)
    subjects = [s for _p, s, _t in w.outbox()]
    assert subjects == ["Outbound calling: scheduled maintenance has begun."]


def test_text_messages_say_reply_stop_instead_of_the_long_unsubscribe_link() -> None:
    from notify import customer_messages

    links = {
        "manage": "https://s.example.cn/status/manage/1.m",
        "unsubscribe": "https://s.example.cn/u/1",
    }
    sms = customer_messages.notice("zh-CN", "outage", component="外呼线路", channel="sms", **links)
    mail = customer_messages.notice("zh-CN", "outage", component="外呼线路", **links)
    assert "回复“退订”停止接收" in sms.text and links["unsubscribe"] not in sms.text
    assert links["unsubscribe"] in mail.text and "回复" not in mail.text
    en = customer_messages.maintenance("en", "start", component="Outbound", start=START, end=START + H,
                                       reason="", timezone=TZ, channel="sms", **links)  # fmt: skip
    assert "Reply STOP to stop." in en.text
