"""Config models for who can be paged: ``people:``, ``schedules:`` and ``escalations:``.

Strict and frozen like the rest of the config (``core.config.StrictModel``);
each validator raises a sentence that names what is allowed, which the loader
prints at the key (``schedules[0].rotation.handoff: ...``). What the models
cannot see on their own — a ``person:`` or ``schedule:`` that does not exist,
a contact channel or console user that is not there — ``check_references``
finds, with the key path of each. The rules these values drive are in
``notify.schedules`` and ``notify.escalation``; docs/oncall.md states them.
"""

from __future__ import annotations

import datetime as dt
import difflib
import re
from collections.abc import Collection, Iterable, Sequence
from typing import Annotated, Any, Literal, get_args

from pydantic import AfterValidator, BeforeValidator, Field, NonNegativeInt, model_validator

from core.config import Duration, FieldValueError, Language, StrictModel, TargetId, Timezone
from monitor.config.errors import KeyPath, format_path

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
"""A day of the week, as in ``handoff: mon 09:00`` and a layer's ``days``."""
WEEKDAYS: tuple[str, ...] = get_args(Weekday)
"""Monday first: the index is ``date.weekday()``."""

# -- values written as text --------------------------------------------------

_TIME = r"([01]?\d|2[0-3]):([0-5]\d)"
_HANDOFF_RE = re.compile(rf"^(?:([a-z]{{3}})\s+)?{_TIME}$")
_HOURS_RE = re.compile(rf"^{_TIME}\s*-\s*{_TIME}$")
_EVERY_RE = re.compile(r"^([1-9]\d{0,2})([dw])$")
_USER_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s.][^@\s]*$")
_E164_RE = re.compile(r"^\+[1-9]\d{6,14}$")
_TARGET_RE = re.compile(r"^([a-z]+):(.*)$")
_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")  # core.config.TargetId

TARGET_KINDS = ("schedule", "person")
"""What a level's ``notify`` entry names: ``schedule:ID`` (whoever is on call) or ``person:ID``."""


def _check_every(value: str) -> str:
    if not _EVERY_RE.match(value):
        raise ValueError(
            "must be a number of days or weeks, like 1d, 3d or 1w "
            "(hours are not a rotation: give a layer with hours instead)"
        )
    return value


def _check_handoff(value: str) -> str:
    m = _HANDOFF_RE.match(value.strip().lower())
    if not m or (m.group(1) is not None and m.group(1) not in WEEKDAYS):
        raise ValueError(
            "must be a time of day like 09:00, or a day and a time like mon 09:00 "
            f"(days: {', '.join(WEEKDAYS)})"
        )
    day, hour, minute = m.group(1), int(m.group(2)), m.group(3)
    return f"{day} {hour:02d}:{minute}" if day else f"{hour:02d}:{minute}"


def _check_hours(value: str) -> str:
    m = _HOURS_RE.match(value.strip())
    if not m:
        raise ValueError(
            "must be a span of the day like 09:00-18:00, or 18:00-09:00 across midnight"
        )
    start, end = (int(m.group(1)), m.group(2)), (int(m.group(3)), m.group(4))
    if start == end:
        raise ValueError("starts and ends at the same time: leave hours out for the whole day")
    return f"{start[0]:02d}:{start[1]}-{end[0]:02d}:{end[1]}"


def _check_start(value: Any) -> Any:
    # A datetime is a date too (subclass): refuse it rather than drop its time.
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(
        "must be a date like 2026-12-07; the first shift starts at the first handoff on or after it"
    )


def _check_user(value: str) -> str:
    # The form monitor.staff.users.normal_name stores; the config must write it so
    # (no folding here: a config says exactly which user it means).
    if not _USER_RE.match(value):
        raise ValueError(
            "must be a console user name: 1 to 64 characters of a-z, 0-9, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def _check_email(value: str) -> str:
    if not _EMAIL_RE.match(value):
        raise ValueError("must be an e-mail address like zhang@example.cn")
    return value


def check_phone(value: str) -> str:
    """``value`` if it is an E.164 number (``+8613800138000``) in use under its country code.

    The shape alone lets a dropped digit through, and a page to a number that
    cannot exist fails only at 3 a.m. at the SMS gateway: the ``phonenumbers``
    metadata knows each country's lengths and ranges. Imported here, on first
    use, so a config without phone numbers never loads it.
    """
    import phonenumbers

    example = "+8613800138000"
    if not _E164_RE.match(value):
        try:
            parsed = phonenumbers.parse(value, None)
        except phonenumbers.NumberParseException:
            parsed = None
        if parsed is not None and phonenumbers.is_valid_number(parsed):
            written = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            raise ValueError(f"must be written in E.164 form: {written}")
        raise ValueError(
            f"must be an E.164 phone number: + and the country code, then the number, "
            f"no spaces, like {example}"
        )
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{value} does not start with a country code") from None
    code = f"+{parsed.country_code}"
    reason = phonenumbers.is_possible_number_with_reason(parsed)
    if reason == phonenumbers.ValidationResult.INVALID_COUNTRY_CODE:
        raise ValueError(f"{value} does not start with a country code")
    if reason == phonenumbers.ValidationResult.TOO_SHORT:
        raise ValueError(f"{value} is too short for a number under {code}: a digit is missing")
    if reason == phonenumbers.ValidationResult.TOO_LONG:
        raise ValueError(f"{value} is too long for a number under {code}: a digit too many")
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"{value} is not a number in use under {code}: check the digits")
    return value


def parse_target(value: str) -> tuple[Literal["schedule", "person"], str]:
    """``"schedule:noc"`` → ``("schedule", "noc")``; the value is already validated."""
    kind, _, ident = value.partition(":")
    return kind, ident  # type: ignore[return-value]


def _check_target(value: str) -> str:
    m = _TARGET_RE.match(value)
    allowed = "schedule:ID or person:ID, like schedule:noc or person:chen"
    if not m:
        raise ValueError(f"must be {allowed}")
    if m.group(1) not in TARGET_KINDS:
        raise ValueError(f"unknown kind '{m.group(1)}'; must be {allowed}")
    if not _ID_RE.match(m.group(2)):
        raise ValueError(
            f"'{m.group(2)}' is not an id: lower-case letters, digits and dashes, like {allowed}"
        )
    return value


def _no_repeats(what: str) -> Any:
    def check(values: list[str]) -> list[str]:
        seen: set[str] = set()
        for value in values:
            if value in seen:
                raise ValueError(f"lists {what} '{value}' twice")
            seen.add(value)
        return values

    return AfterValidator(check)


Every = Annotated[str, AfterValidator(_check_every)]
"""How long each shift lasts: ``1d``, ``3d``, ``1w``, ``2w``."""
Handoff = Annotated[str, AfterValidator(_check_handoff)]
"""When a shift hands over: ``09:00`` (day rotations) or ``mon 09:00`` (week rotations)."""
Hours = Annotated[str, AfterValidator(_check_hours)]
"""A span of the day in local time: ``09:00-18:00``; ``18:00-09:00`` runs across midnight."""
UserName = Annotated[str, AfterValidator(_check_user)]
Email = Annotated[str, AfterValidator(_check_email)]
Phone = Annotated[str, AfterValidator(check_phone)]
NotifyTarget = Annotated[str, AfterValidator(_check_target)]
"""``schedule:ID`` or ``person:ID``."""
StartDate = Annotated[dt.date, BeforeValidator(_check_start)]


# -- people ------------------------------------------------------------------


class PersonConfig(StrictModel):
    """A staff member who can be paged, tied to a console user.

    An acknowledgement by that user stops the paging of the incident; the
    contact methods are tried in order, each failed one falling back to the next.
    """

    id: TargetId
    """Unique name of the person, used in ``members``, ``person:ID`` and overrides."""
    user: UserName
    """The console user this person logs in as (their ack stops the paging)."""
    name: Annotated[str, Field(min_length=1)]
    """Shown in messages and on the console: ``张伟``."""
    email: Email | None = None
    """Address for e-mail channels; ``null``: none."""
    phone: Phone | None = None
    """Mobile number in E.164 form (``+8613800138000``) for SMS and voice channels; ``null``: none."""
    language: Language | None = None
    """Language of their messages (``zh-CN``, ``en``); ``null``: the site's language."""
    contact: Annotated[list[str], Field(min_length=1), _no_repeats("channel")]
    """Channel ids in the order they are tried: the first that delivers ends the attempt."""


# -- schedules ---------------------------------------------------------------


class RotationConfig(StrictModel):
    """Members taking turns: each shift lasts ``every`` and ends at the ``handoff`` time."""

    every: Every
    """Length of a shift: ``Nd`` (days) or ``Nw`` (weeks)."""
    handoff: Handoff
    """Local time (the schedule's timezone) a shift hands over: ``09:00``; a week rotation
    also names the day: ``mon 09:00``."""
    members: Annotated[list[TargetId], Field(min_length=1)]
    """Person ids in turn order; the first takes the first shift. A person may appear twice."""
    start: StartDate | None = None
    """Date of the first shift: it starts at the first handoff on or after this date;
    before it this rotation has no one. ``null``: counted from Monday 3 January 2000,
    so the order is fixed but not who is first."""

    @model_validator(mode="after")
    def _handoff_fits_every(self) -> RotationConfig:
        weeks = self.every.endswith("w")
        has_day = " " in self.handoff
        if weeks and not has_day:
            raise FieldValueError(
                "handoff",
                f"a rotation of every {self.every} hands over on a day of the week: "
                f"write it like mon {self.handoff}",
            )
        if not weeks and has_day:
            raise FieldValueError(
                "handoff",
                f"a rotation of every {self.every} hands over at a time of day, not on a day "
                f"of the week: write {self.handoff.split()[1]}, or every: 1w for weeks",
            )
        return self

    @property
    def period_days(self) -> int:
        """Days in one shift."""
        count, unit = int(self.every[:-1]), self.every[-1]
        return count * 7 if unit == "w" else count

    @property
    def handoff_weekday(self) -> int | None:
        """``date.weekday()`` of the handoff (Monday 0) for week rotations, else None."""
        day, _, _ = self.handoff.rpartition(" ")
        return WEEKDAYS.index(day) if day else None

    @property
    def handoff_time(self) -> dt.time:
        hour, minute = self.handoff.rpartition(" ")[2].split(":")
        return dt.time(int(hour), int(minute))


class LayerConfig(StrictModel):
    """A rotation above the schedule's own, for part of the week (nights, weekends, cover).

    Where a layer has someone, it wins over the layers below it; elsewhere the
    layer below shows through.
    """

    rotation: RotationConfig
    """Who takes turns in this layer (same keys as the schedule's rotation)."""
    days: Annotated[list[Weekday], Field(min_length=1)] = list(WEEKDAYS)
    """Days on which the layer's window starts (``[sat, sun]``); default: every day."""
    hours: Hours | None = None
    """The window on each of those days, local time: ``18:00-09:00`` runs to the next
    morning; ``null``: the whole day."""

    def window_times(self) -> tuple[dt.time, dt.time] | None:
        """(from, to) of ``hours``, or None for whole days."""
        if self.hours is None:
            return None
        start, end = self.hours.split("-")
        return dt.time.fromisoformat(start), dt.time.fromisoformat(end)


class ScheduleConfig(StrictModel):
    """An on-call rotation: who is on call at any moment (docs/oncall.md).

    ``rotation`` is the bottom layer; ``layers`` go on top of it, each later
    one higher; overrides made in the console are above them all.
    """

    id: TargetId
    """Unique name of the schedule, used in ``schedule:ID``."""
    name: str | None = None
    """Shown on the console; defaults to the id."""
    timezone: Timezone
    """IANA name (``Asia/Shanghai``): handoffs and layer hours are local times in it."""
    rotation: RotationConfig
    """The base rotation."""
    layers: list[LayerConfig] = Field(default_factory=list)
    """Rotations above the base one, lowest first."""

    @property
    def display_name(self) -> str:
        return self.name or self.id

    def rotations(self) -> list[tuple[RotationConfig, LayerConfig | None]]:
        """Every layer bottom to top: the base rotation (no window) and then ``layers``."""
        return [(self.rotation, None), *((layer.rotation, layer) for layer in self.layers)]


# -- escalation policies -----------------------------------------------------


class LevelConfig(StrictModel):
    """One step of an escalation: whom to page, and how long after the step before it."""

    after: Duration | None = None
    """How long the level before this one has to acknowledge before this one is paged
    (the first level: how long after paging begins; ``null``: at once). Required from
    the second level on."""
    notify: Annotated[list[NotifyTarget], Field(min_length=1), _no_repeats("target")]
    """``schedule:ID`` (whoever is on call when the level fires) and ``person:ID``."""

    def targets(self) -> list[tuple[Literal["schedule", "person"], str]]:
        return [parse_target(t) for t in self.notify]


class EscalationConfig(StrictModel):
    """Levels of whom to page until someone acknowledges (docs/oncall.md states the rules)."""

    id: TargetId
    """Unique name of the policy, used by a rule's ``escalate:``."""
    levels: Annotated[list[LevelConfig], Field(min_length=1)]
    """Paged in order, each after its ``after`` delay."""
    repeat: NonNegativeInt = 0
    """How many more times to go through all the levels when no one acknowledges."""
    repeat_after: Duration | None = None
    """How long after the last level a repeat starts at the first level again;
    ``null``: the last level's ``after``."""

    @model_validator(mode="after")
    def _delays(self) -> EscalationConfig:
        for number, level in enumerate(self.levels[1:], start=2):
            if level.after is None:
                raise FieldValueError(
                    "levels",
                    f"level {number} has no after: every level but the first says how long "
                    "the one before it has to acknowledge, like after: 5m",
                )
        if self.repeat and self.repeat_after is None and self.levels[-1].after is None:
            raise FieldValueError(
                "repeat_after",
                "required with repeat when the last level has no after: how long after "
                "the last level to start again, like repeat_after: 10m",
            )
        return self

    @property
    def cycle_gap(self) -> float:
        """Seconds from the last level of one round to the first level of the next."""
        gap = self.repeat_after if self.repeat_after is not None else self.levels[-1].after
        return gap or 0.0


# -- references between entries ----------------------------------------------

_LISTED = 12
"""Known names listed in a message; past that, a count (a site has many users)."""


def _listing(what: str, names: Sequence[str]) -> str:
    if not names:
        return f"no {what} are configured"
    shown = ", ".join(names[:_LISTED])
    more = f" and {len(names) - _LISTED} more" if len(names) > _LISTED else ""
    return f"{what}: {shown}{more}"


def _missing(kind: str, plural: str, name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"no {kind} '{name}'; did you mean '{close[0]}'? {_listing(plural, known)}"
    return f"no {kind} '{name}'; {_listing(plural, known)}"


def _ordered(names: Collection[str]) -> list[str]:
    """A list as given (config order); a set sorted, so messages do not change from run to run."""
    return list(names) if isinstance(names, Sequence) else sorted(names)


def _duplicates(section: str, what: str, ids: Iterable[str]) -> list[tuple[KeyPath, str]]:
    found: list[tuple[KeyPath, str]] = []
    first: dict[str, int] = {}
    for index, ident in enumerate(ids):
        if ident in first:
            earlier = format_path((section, first[ident]))
            found.append(
                ((section, index, "id"), f"duplicate {what} id '{ident}' (first at {earlier})")
            )
        else:
            first[ident] = index
    return found


def reference_problems(
    people: Sequence[PersonConfig],
    schedules: Sequence[ScheduleConfig],
    escalations: Sequence[EscalationConfig],
    channel_ids: Collection[str],
    user_names: Collection[str] | None,
) -> list[tuple[KeyPath, str]]:
    """Every dangling reference between the sections, as (key path, message), in config order.

    The loader puts file and line in front of each path; ``check_references``
    writes them as lines without.
    """
    found: list[tuple[KeyPath, str]] = []
    person_ids = list(dict.fromkeys(p.id for p in people))
    schedule_ids = list(dict.fromkeys(s.id for s in schedules))
    # None: the console's users are not known here (check-config reads no state DB).
    channels, users = _ordered(channel_ids), _ordered(user_names or ())
    known_people, known_schedules = set(person_ids), set(schedule_ids)
    known_channels, known_users = set(channels), set(users)

    found += _duplicates("people", "person", [p.id for p in people])
    user_of: dict[str, int] = {}
    for i, person in enumerate(people):
        if user_names is not None and person.user not in known_users:
            found.append((("people", i, "user"), _missing("user", "users", person.user, users)))
        elif person.user in user_of:
            other = people[user_of[person.user]]
            found.append(
                (
                    ("people", i, "user"),
                    f"user '{person.user}' is already person '{other.id}' "
                    f"(people[{user_of[person.user]}]): one person per user, so an ack "
                    "names one person",
                )
            )
        user_of.setdefault(person.user, i)
        for j, channel in enumerate(person.contact):
            if channel not in known_channels:
                found.append(
                    (
                        ("people", i, "contact", j),
                        _missing("channel", "channels", channel, channels),
                    )
                )

    found += _duplicates("schedules", "schedule", [s.id for s in schedules])
    for i, schedule in enumerate(schedules):
        rotations: list[tuple[KeyPath, RotationConfig]] = [
            (("schedules", i, "rotation"), schedule.rotation)
        ]
        rotations += [
            (("schedules", i, "layers", k, "rotation"), layer.rotation)
            for k, layer in enumerate(schedule.layers)
        ]
        for path, rotation in rotations:
            for j, member in enumerate(rotation.members):
                if member not in known_people:
                    found.append(
                        ((*path, "members", j), _missing("person", "people", member, person_ids))
                    )

    found += _duplicates("escalations", "escalation", [e.id for e in escalations])
    for i, policy in enumerate(escalations):
        for j, level in enumerate(policy.levels):
            for k, (kind, ident) in enumerate(level.targets()):
                path: KeyPath = ("escalations", i, "levels", j, "notify", k)
                if kind == "person" and ident not in known_people:
                    found.append((path, _missing("person", "people", ident, person_ids)))
                elif kind == "schedule" and ident not in known_schedules:
                    found.append((path, _missing("schedule", "schedules", ident, schedule_ids)))
    return found


def check_references(
    people: Sequence[PersonConfig],
    schedules: Sequence[ScheduleConfig],
    escalations: Sequence[EscalationConfig],
    channel_ids: Collection[str],
    user_names: Collection[str],
) -> list[str]:
    """Every dangling ``person:``, ``schedule:``, member, channel and user reference, and
    every duplicate id, one line each with its key path:
    ``escalations[0].levels[1].notify[0]: no person 'chen'; people: zhang, li``."""
    return [
        f"{format_path(path)}: {message}"
        for path, message in reference_problems(
            people, schedules, escalations, channel_ids, user_names
        )
    ]
