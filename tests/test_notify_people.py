"""The ``people:``, ``schedules:`` and ``escalations:`` models, and ``check_references``.

The sections are not in the production schema yet: the tests load them
through a schema of their own (``OnCallConfig`` below, the way
tests/rule_actions.py adds an action kind), so each error is checked as the
loader prints it, with file, line and key path.
"""

from __future__ import annotations

import datetime as dt
import textwrap
from pathlib import Path

import pytest
from pydantic import Field

from monitor.config import ConfigError, load_config
from monitor.config.schema import Config
from notify.people import (
    EscalationConfig,
    PersonConfig,
    ScheduleConfig,
    check_references,
    reference_problems,
)


class OnCallConfig(Config):
    """Monitor's schema with the three sections this package adds."""

    people: list[PersonConfig] = Field(default_factory=list)
    schedules: list[ScheduleConfig] = Field(default_factory=list)
    escalations: list[EscalationConfig] = Field(default_factory=list)


ISSUE_EXAMPLE = """\
people:
  - {id: zhang, user: zhang, name: 张伟, email: zhang@example.cn, phone: "+8613800138000", language: zh-CN, contact: [push, ding, sms, mail]}
  - {id: li, user: li, name: 李娜, email: li@example.cn, phone: "+8613900139000", contact: [ding, sms]}
  - {id: chen, user: chen, name: 陈刚, phone: "+8613700137000", contact: [sms, mail]}
schedules:
  - {id: noc, timezone: Asia/Shanghai, rotation: {every: 1w, handoff: "mon 09:00", members: [zhang, li]}}
escalations:
  - id: trunks
    levels:
      - {notify: [schedule:noc]}
      - {after: 5m, notify: [person:chen]}
    repeat: 1
"""
CHANNELS = ["mail", "sms", "ding", "push"]
USERS = {"zhang", "li", "chen"}


def load(tmp_path: Path, text: str) -> OnCallConfig:
    path = tmp_path / "oncall.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    config = load_config(path, env={}, schema=OnCallConfig).config
    assert isinstance(config, OnCallConfig)
    return config


def load_errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "oncall.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={}, schema=OnCallConfig)
    prefix = f"{path}:"
    return [e.removeprefix(prefix) for e in raised.value.errors]


def test_the_issues_example_loads_with_every_value_read(tmp_path: Path) -> None:
    config = load(tmp_path, ISSUE_EXAMPLE)
    zhang, li, chen = config.people
    assert (zhang.id, zhang.user, zhang.name, zhang.phone) == (
        "zhang",
        "zhang",
        "张伟",
        "+8613800138000",
    )
    assert zhang.contact == ["push", "ding", "sms", "mail"]
    assert (li.language, chen.email) == (None, None)
    (noc,) = config.schedules
    assert noc.timezone == "Asia/Shanghai"
    assert noc.display_name == "noc"
    assert (noc.rotation.period_days, noc.rotation.handoff_weekday) == (7, 0)
    assert noc.rotation.handoff_time == dt.time(9, 0)
    assert noc.rotation.start is None
    (trunks,) = config.escalations
    assert [level.after for level in trunks.levels] == [None, 300.0]
    assert trunks.levels[0].targets() == [("schedule", "noc")]
    assert trunks.levels[1].targets() == [("person", "chen")]
    assert (trunks.repeat, trunks.cycle_gap) == (1, 300.0)
    assert (
        check_references(config.people, config.schedules, config.escalations, CHANNELS, USERS) == []
    )


def test_layers_start_and_written_forms_are_normalised(tmp_path: Path) -> None:
    config = load(
        tmp_path,
        """\
        schedules:
          - id: noc
            name: NOC 值班
            timezone: Europe/Berlin
            rotation: {every: 3d, handoff: "9:30", members: [anna, ben], start: 2026-12-01}
            layers:
              - rotation: {every: 2w, handoff: "Fri 18:00", members: [carl]}
                days: [mon, fri]
                hours: "18:00 - 09:00"
              - rotation: {every: 1d, handoff: "00:00", members: [dora]}
        escalations:
          - id: solo
            levels: [{after: 1m, notify: [person:anna, schedule:noc]}]
            repeat: 2
            repeat_after: 10m
        """,
    )
    (noc,) = config.schedules
    assert noc.display_name == "NOC 值班"
    assert noc.rotation.handoff == "09:30"
    assert noc.rotation.period_days == 3
    assert noc.rotation.handoff_weekday is None
    assert noc.rotation.start == dt.date(2026, 12, 1)
    nights, whole_days = noc.layers
    assert (nights.rotation.handoff, nights.rotation.period_days) == ("fri 18:00", 14)
    assert nights.hours == "18:00-09:00"
    assert nights.window_times() == (dt.time(18), dt.time(9))
    assert whole_days.days == ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    assert whole_days.window_times() is None
    assert [r.members for r, _ in noc.rotations()] == [["anna", "ben"], ["carl"], ["dora"]]
    (solo,) = config.escalations
    assert solo.cycle_gap == 600.0


PERSON = "people:\n  - {id: zhang, user: zhang, name: 张伟, contact: [sms]"
SCHEDULE = "schedules:\n  - {id: noc, timezone: Asia/Shanghai, rotation: {every: 1w, handoff: 'mon 09:00', members: [zhang]"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            PERSON + ", phone: '13800138000'}\n",
            "2: people[0].phone: must be an E.164 phone number: + and the country code, "
            "then the number, no spaces, like +8613800138000",
            id="phone-without-country-code",
        ),
        pytest.param(
            PERSON + ", phone: '+86 138 0013 8000'}\n",
            "2: people[0].phone: must be written in E.164 form: +8613800138000",
            id="phone-with-spaces-says-how-to-write-it",
        ),
        pytest.param(
            PERSON + ", phone: '+861380013800'}\n",
            "2: people[0].phone: +861380013800 is not a number in use under +86: check the digits",
            id="phone-with-a-digit-missing",
        ),
        pytest.param(
            PERSON + ", phone: '+86138001380000'}\n",
            "2: people[0].phone: +86138001380000 is not a number in use under +86: "
            "check the digits",
            id="phone-too-long",
        ),
        pytest.param(
            PERSON + ", phone: '+99912345678'}\n",
            "2: people[0].phone: +99912345678 does not start with a country code",
            id="phone-unknown-country-code",
        ),
        pytest.param(
            PERSON + ", email: zhang.example.cn}\n",
            "2: people[0].email: must be an e-mail address like zhang@example.cn",
            id="email-without-at",
        ),
        pytest.param(
            PERSON.replace("user: zhang", "user: Zhang Wei") + "}\n",
            "2: people[0].user: must be a console user name: 1 to 64 characters of a-z, 0-9, "
            "'.', '_' or '-', starting with a letter or digit",
            id="user-not-a-console-name",
        ),
        pytest.param(
            PERSON + ", language: fr}\n",
            "2: people[0].language: must be one of: zh-CN, en",
            id="unknown-language",
        ),
        pytest.param(
            PERSON.replace("[sms]", "[sms, mail, sms]") + "}\n",
            "2: people[0].contact: lists channel 'sms' twice",
            id="contact-channel-twice",
        ),
        pytest.param(
            PERSON.replace("[sms]", "[]") + "}\n",
            "2: people[0].contact: must have at least 1 items",
            id="no-contact-method",
        ),
        pytest.param(
            PERSON + ", mobile: '+8613800138000'}\n",
            "2: people[0].mobile: unknown key; allowed: contact, email, id, language, name, phone, user",
            id="unknown-person-key",
        ),
        pytest.param(
            SCHEDULE.replace("every: 1w", "every: 12h") + "}}\n",
            "2: schedules[0].rotation.every: must be a number of days or weeks, like 1d, 3d or 1w "
            "(hours are not a rotation: give a layer with hours instead)",
            id="rotation-in-hours",
        ),
        pytest.param(
            SCHEDULE.replace("mon 09:00", "monday 9am") + "}}\n",
            "2: schedules[0].rotation.handoff: must be a time of day like 09:00, or a day and a "
            "time like mon 09:00 (days: mon, tue, wed, thu, fri, sat, sun)",
            id="handoff-not-a-time",
        ),
        pytest.param(
            SCHEDULE.replace("mon 09:00", "09:00") + "}}\n",
            "2: schedules[0].rotation.handoff: a rotation of every 1w hands over on a day of the "
            "week: write it like mon 09:00",
            id="week-rotation-without-a-day",
        ),
        pytest.param(
            SCHEDULE.replace("every: 1w", "every: 2d") + "}}\n",
            "2: schedules[0].rotation.handoff: a rotation of every 2d hands over at a time of day, "
            "not on a day of the week: write 09:00, or every: 1w for weeks",
            id="day-rotation-with-a-day",
        ),
        pytest.param(
            SCHEDULE + ", start: '2026-12-07T09:00'}}\n",
            "2: schedules[0].rotation.start: must be a date like 2026-12-07; the first shift "
            "starts at the first handoff on or after it",
            id="start-with-a-time",
        ),
        pytest.param(
            SCHEDULE.replace("[zhang]", "[]") + "}}\n",
            "2: schedules[0].rotation.members: must have at least 1 items",
            id="rotation-without-members",
        ),
        pytest.param(
            SCHEDULE.replace("Asia/Shanghai", "Asia/Shangai") + "}}\n",
            "2: schedules[0].timezone: unknown timezone 'Asia/Shangai'; did you mean Asia/Shanghai?",
            id="timezone-typo",
        ),
        pytest.param(
            SCHEDULE + "}, layers: [{rotation: {every: 1d, handoff: '18:00', members: [li]}, "
            "hours: '18:00-18:00'}]}\n",
            "2: schedules[0].layers[0].hours: starts and ends at the same time: leave hours out "
            "for the whole day",
            id="layer-hours-empty",
        ),
        pytest.param(
            SCHEDULE + "}, layers: [{rotation: {every: 1d, handoff: '18:00', members: [li]}, "
            "days: [weekend]}]}\n",
            "2: schedules[0].layers[0].days[0]: must be one of: mon, tue, wed, thu, fri, sat, sun",
            id="layer-unknown-day",
        ),
        pytest.param(
            "escalations:\n  - id: trunks\n    levels:\n      - {notify: [schedule:noc]}\n"
            "      - {notify: [person:chen]}\n",
            "3: escalations[0].levels: level 2 has no after: every level but the first says how "
            "long the one before it has to acknowledge, like after: 5m",
            id="second-level-without-after",
        ),
        pytest.param(
            "escalations:\n  - id: trunks\n    levels: [{notify: [schedule:noc]}]\n    repeat: 2\n",
            "2: escalations[0].repeat_after: required with repeat when the last level has no "
            "after: how long after the last level to start again, like repeat_after: 10m",
            id="repeat-without-a-delay",
        ),
        pytest.param(
            "escalations:\n  - {id: trunks, levels: [{notify: [team:noc]}]}\n",
            "2: escalations[0].levels[0].notify[0]: unknown kind 'team'; must be schedule:ID or "
            "person:ID, like schedule:noc or person:chen",
            id="notify-unknown-kind",
        ),
        pytest.param(
            "escalations:\n  - {id: trunks, levels: [{notify: [noc]}]}\n",
            "2: escalations[0].levels[0].notify[0]: must be schedule:ID or person:ID, like "
            "schedule:noc or person:chen",
            id="notify-without-kind",
        ),
        pytest.param(
            "escalations:\n  - {id: trunks, levels: [{notify: [schedule:noc, schedule:noc]}]}\n",
            "2: escalations[0].levels[0].notify: lists target 'schedule:noc' twice",
            id="notify-target-twice",
        ),
        pytest.param(
            "escalations:\n  - {id: trunks, levels: [{after: 5 minutes, notify: [person:li]}]}\n",
            "2: escalations[0].levels[0].after: must be a duration like 10s",
            id="after-not-a-duration",
        ),
        pytest.param(
            "escalations:\n  - {id: trunks, levels: [{notify: [person:li]}], repeat: -1}\n",
            "2: escalations[0].repeat: must be at least 0",
            id="negative-repeat",
        ),
        pytest.param(
            "escalations:\n  - {id: trunks, levels: []}\n",
            "2: escalations[0].levels: must have at least 1 items",
            id="no-levels",
        ),
    ],
)
def test_a_bad_entry_is_one_error_at_its_key(tmp_path: Path, text: str, expected: str) -> None:
    assert load_errors(tmp_path, text) == [expected]


def references(
    text: str, tmp_path: Path, channels: list[str] = CHANNELS, users: object = USERS
) -> list[str]:
    config = load(tmp_path, text)
    return check_references(config.people, config.schedules, config.escalations, channels, users)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            (
                '  - {id: chen, user: chen, name: 陈刚, phone: "+8613700137000", contact: [sms, mail]}\n',
                "",
            ),
            ["escalations[0].levels[1].notify[0]: no person 'chen'; people: zhang, li"],
            id="escalation-names-a-person-not-configured",
        ),
        pytest.param(
            ("schedule:noc", "schedule:nco"),
            [
                "escalations[0].levels[0].notify[0]: no schedule 'nco'; did you mean 'noc'? schedules: noc"
            ],
            id="escalation-names-a-schedule-with-a-typo",
        ),
        pytest.param(
            ("members: [zhang, li]", "members: [zhang, lii, tom]"),
            [
                "schedules[0].rotation.members[1]: no person 'lii'; did you mean 'li'? "
                "people: zhang, li, chen",
                "schedules[0].rotation.members[2]: no person 'tom'; people: zhang, li, chen",
            ],
            id="rotation-members-not-configured",
        ),
        pytest.param(
            ("contact: [ding, sms]", "contact: [dingtalk, sms, fax]"),
            [
                "people[1].contact[0]: no channel 'dingtalk'; did you mean 'ding'? "
                "channels: mail, sms, ding, push",
                "people[1].contact[2]: no channel 'fax'; channels: mail, sms, ding, push",
            ],
            id="contact-channels-not-configured",
        ),
        pytest.param(
            ("user: chen", "user: chen.gang"),
            ["people[2].user: no user 'chen.gang'; did you mean 'chen'? users: chen, li, zhang"],
            id="person-tied-to-no-console-user",
        ),
        pytest.param(
            ("user: chen", "user: li"),
            [
                "people[2].user: user 'li' is already person 'li' (people[1]): one person per "
                "user, so an ack names one person"
            ],
            id="two-people-one-user",
        ),
        pytest.param(
            ("{id: chen,", "{id: li,"),
            [
                "people[2].id: duplicate person id 'li' (first at people[1])",
                "escalations[0].levels[1].notify[0]: no person 'chen'; people: zhang, li",
            ],
            id="duplicate-person-id",
        ),
    ],
)
def test_every_dangling_reference_is_named_with_its_path(
    tmp_path: Path, change: tuple[str, str], expected: list[str]
) -> None:
    old, new = change
    assert old in ISSUE_EXAMPLE
    assert references(ISSUE_EXAMPLE.replace(old, new), tmp_path) == expected


def test_layer_members_and_duplicate_sections_are_checked_too(tmp_path: Path) -> None:
    text = (
        ISSUE_EXAMPLE.replace(
            "schedules:\n",
            "schedules:\n"
            "  - id: noc\n    timezone: UTC\n"
            "    rotation: {every: 1d, handoff: '09:00', members: [li]}\n"
            "    layers: [{rotation: {every: 1d, handoff: '18:00', members: [zhang, wong]}}]\n",
        )
        + "  - {id: trunks, levels: [{notify: [person:li]}]}\n"
    )
    assert references(text, tmp_path) == [
        "schedules[1].id: duplicate schedule id 'noc' (first at schedules[0])",
        "schedules[0].layers[0].rotation.members[1]: no person 'wong'; people: zhang, li, chen",
        "escalations[1].id: duplicate escalation id 'trunks' (first at escalations[0])",
    ]


def test_with_nothing_configured_the_message_says_so(tmp_path: Path) -> None:
    text = "escalations:\n  - {id: trunks, levels: [{notify: [person:li, schedule:noc]}]}\n"
    assert references(text, tmp_path) == [
        "escalations[0].levels[0].notify[0]: no person 'li'; no people are configured",
        "escalations[0].levels[0].notify[1]: no schedule 'noc'; no schedules are configured",
    ]


def test_a_long_list_of_known_names_is_cut_with_a_count(tmp_path: Path) -> None:
    users = {f"user{n:02d}" for n in range(30)}
    text = PERSON + "}\n"
    assert references(text, tmp_path, channels=["sms"], users=users) == [
        "people[0].user: no user 'zhang'; users: "
        + ", ".join(f"user{n:02d}" for n in range(12))
        + " and 18 more"
    ]


def test_problems_come_with_key_paths_for_the_loader(tmp_path: Path) -> None:
    config = load(tmp_path, ISSUE_EXAMPLE.replace("person:chen", "person:tom"))
    assert reference_problems(
        config.people, config.schedules, config.escalations, CHANNELS, USERS
    ) == [
        (("escalations", 0, "levels", 1, "notify", 0), "no person 'tom'; people: zhang, li, chen")
    ]


def test_phonenumbers_loads_only_when_a_phone_is_validated() -> None:
    import subprocess
    import sys

    script = (
        "import sys; import notify.people as p; "
        "assert 'phonenumbers' not in sys.modules; "
        "p.check_phone('+8613800138000'); assert 'phonenumbers' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", script], check=True)
