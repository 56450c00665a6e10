"""Scheduled maintenance on the public status page and in ``/status.json``: the shown
components' windows running now or starting within a week, one entry per occurrence
naming every component it covers, the reason redacted like everything public."""

from __future__ import annotations

import copy
from datetime import datetime
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest

from tests.test_web_support import BASE_CONFIG, INTERNAL_URI, make_config, make_world
from web import status

TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2027, 1, 15, 12, 0, tzinfo=TZ).timestamp()  # a Friday


def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    # The status read takes the wall clock's time (web.status.read_status): pin it.
    monkeypatch.setattr(status, "time", SimpleNamespace(time=lambda: NOW))
    targets = copy.deepcopy(BASE_CONFIG["targets"])
    shared = {"cron": "0 2 * * 6", "duration": "2h", "reason": f"carrier work on {INTERNAL_URI}"}
    targets[0]["maintenance"] = [shared]  # trunk-a and trunk-b: one component, counted once
    targets[1]["maintenance"] = [shared]
    targets[2]["maintenance"] = [
        {"start": "2027-01-15T11:00", "end": "2027-01-15T13:00", "reason": "database upgrade"},
        {"start": "2027-03-01T02:00", "end": "2027-03-01T03:00"},  # beyond the week
    ]
    return make_world(tmp_path, config=make_config(targets=targets), clock=lambda: NOW,
                      with_staff=False)  # fmt: skip


def test_the_page_lists_running_and_coming_maintenance_redacted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    page = world(tmp_path, monkeypatch).anonymous().get("/status?lang=en").get_data(as_text=True)
    section = page[page.index('id="maintenance"') : page.index("Components</h2>")]
    assert "Scheduled maintenance" in section
    assert "In progress: CRM" in section and "database upgrade" in section
    assert "Outbound calling" in section and "carrier work on [redacted]" in section
    assert section.count("Outbound calling") == 1  # two members, one occurrence
    assert INTERNAL_URI not in page and "2027-03-01" not in section


def test_status_json_carries_the_same_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = world(tmp_path, monkeypatch).anonymous().get("/status.json").get_json()
    found = body["scheduled_maintenances"]
    assert [(m["components"], m["running"]) for m in found] == [
        (["crm"], True),
        (["outbound"], False),
    ]
    assert (
        found[1]["starts_at"] == "2027-01-15T18:00:00Z"
        and found[1]["reason"] == "carrier work on [redacted]"
    )


def test_without_windows_there_is_no_section(tmp_path: Path) -> None:
    w = make_world(tmp_path, with_staff=False)
    assert 'id="maintenance"' not in w.anonymous().get("/status?lang=en").get_data(as_text=True)
    assert w.anonymous().get("/status.json").get_json()["scheduled_maintenances"] == []
