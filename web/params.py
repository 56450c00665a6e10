"""Query-string validation for the API and the dashboard (pure functions).

Every bad parameter becomes a ``ParamError`` whose message names the
parameter and what is allowed; unknown parameters are errors too, so a typo
(``?helth=down``) never silently returns everything.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta, tzinfo

from pydantic import TypeAdapter, ValidationError
from werkzeug.routing import BaseConverter

from core.config import TargetId
from monitor.health import HEALTH_ORDER, Health
from monitor.store.queries import MAX_PER_PAGE, Page, TargetFilter

Args = Mapping[str, Sequence[str]]
"""Parameter name → every value given (``werkzeug.MultiDict.to_dict(flat=False)``)."""

MAX_TEXT = 200
MAX_DIGITS = 18
"""Digits a whole-number parameter may have: below 2**63, so no database overflows."""


class ParamError(ValueError):
    """A query parameter is missing its mark; the message is shown to the caller as is."""


def reject_unknown(args: Args, allowed: Collection[str]) -> None:
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ParamError(
            f"unknown parameter {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )


def single(args: Args, name: str) -> str | None:
    values = args.get(name) or []
    if len(values) > 1:
        raise ParamError(f"{name}: give it at most once (got {len(values)} values)")
    return values[0] if values else None


def choices(args: Args, name: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """A repeatable and/or comma-separated list, each value one of ``allowed``; order kept, no duplicates."""
    picked: list[str] = []
    for raw in args.get(name) or []:
        for value in raw.split(","):
            value = value.strip()
            if not value:
                raise ParamError(f"{name}: empty value; allowed: {', '.join(allowed)}")
            if value not in allowed:
                raise ParamError(f"{name}: unknown value {value!r}; allowed: {', '.join(allowed)}")
            if value not in picked:
                picked.append(value)
    return tuple(picked)


def integer(args: Args, name: str, default: int, low: int, high: int) -> int:
    raw = single(args, name)
    if raw is None:
        return default
    raw = raw.strip()
    # str.isdigit() is True for "²" and "١" too, which int() refuses or reads as a digit:
    # a number in a URL is ASCII digits, and at most a handful of them.
    if not (raw.isascii() and raw.isdigit()) or len(raw) > MAX_DIGITS:
        raise ParamError(f"{name}: must be a whole number from {low} to {high}, got {raw!r}")
    value = int(raw)
    if not low <= value <= high:
        raise ParamError(f"{name}: must be from {low} to {high}, got {value}")
    return value


def text(args: Args, name: str, max_len: int = MAX_TEXT) -> str:
    raw = (single(args, name) or "").strip()
    if len(raw) > max_len:
        raise ParamError(f"{name}: at most {max_len} characters, got {len(raw)}")
    # PostgreSQL refuses a NUL in text outright; no search needs any control character.
    if any(ord(c) < 32 or ord(c) == 127 for c in raw):
        raise ParamError(f"{name}: must not contain control characters")
    return raw


def page(args: Args, default_per_page: int = 100) -> Page:
    # The upper bound on page only keeps OFFSET arithmetic sane; real lists end far earlier.
    return Page(
        page=integer(args, "page", 1, 1, 1_000_000),
        per_page=integer(args, "per_page", default_per_page, 1, MAX_PER_PAGE),
    )


TARGET_LIST_PARAMS = ("health", "kind", "q", "page", "per_page")


def target_query(
    args: Args,
    kinds: Sequence[str],
    default_per_page: int = 100,
    extra_allowed: Collection[str] = (),
) -> tuple[TargetFilter, Page]:
    """``?health=&kind=&q=&page=&per_page=`` → a filter and a page, or ParamError."""
    reject_unknown(args, (*TARGET_LIST_PARAMS, *extra_allowed))
    flt = TargetFilter(
        health=tuple(map(Health, choices(args, "health", HEALTH_ORDER))),
        kind=choices(args, "kind", kinds),
        q=text(args, "q"),
    )
    return flt, page(args, default_per_page)


_TARGET_ID: TypeAdapter[str] = TypeAdapter(TargetId)


def is_target_id(value: str) -> bool:
    """Whether ``value`` could be a target id at all (the config's rule for ids).

    A path segment that cannot be one is answered "no such target" without
    asking the state DB: PostgreSQL refuses a NUL in a query outright (a 500).
    """
    try:
        _TARGET_ID.validate_python(value)
    except ValidationError:
        return False
    return True


class IdConverter(BaseConverter):
    """``<id:name>`` in a route: 1 to 18 ASCII digits, as an int.

    Werkzeug's ``int`` converter matches any Unicode digit (``/incidents/١``) and
    any number of them (an id past 2**63 overflows SQLite: a 500); this one
    does not match either, so such a URL is a plain 404.
    """

    regex = f"[0-9]{{1,{MAX_DIGITS}}}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: object) -> str:
        return str(int(value))  # type: ignore[call-overload]


MAX_INSTANT = 40
"""Characters an ISO 8601 time may have (``2026-12-02T10:00:00.123456+08:00`` is 32)."""


INSTANT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([Tt][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?([Zz]|[+-][0-9]{2}:[0-9]{2})?)?",
    re.ASCII,
)
"""What a time parameter may look like: a date, a local time (what ``<input
type="datetime-local">`` sends), or a time with its zone (for scripts)."""
INSTANT_PATTERN = "^" + INSTANT.pattern + "$"
"""The same, for the OpenAPI document."""


def instant(args: Args, name: str, tz: tzinfo, *, end_of_day: bool = False) -> float | None:
    """An ISO 8601 date or time (``2026-12-02``, ``2026-12-02T10:00``, ``...T02:00:00Z``)
    → epoch seconds; without an offset it is read in ``tz``. ``end_of_day``: a date alone
    means the end of that day (for the end of a range: ``to=2026-12-02`` takes the whole
    2nd). None when not given; given empty, it is refused like any other value that is
    not a time. The one parser of times in query strings (audit, incidents)."""
    if single(args, name) is None:
        return None
    raw = text(args, name, MAX_INSTANT)
    try:
        if INSTANT.fullmatch(raw) is None:
            raise ValueError(raw)
        parsed = datetime.fromisoformat(raw.upper())  # RFC 3339 allows a lower-case t and z
        if end_of_day and "T" not in raw.upper():
            parsed += timedelta(days=1)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=tz)
        return parsed.timestamp()
    except (ValueError, OverflowError, OSError):  # OverflowError: year 1 or 9999 at a zone's edge
        raise ParamError(
            f"{name}: must be an ISO 8601 date or time such as 2026-12-02, 2026-12-02T10:00"
            f" or 2026-12-02T10:00:00+08:00, got {raw!r}"
        ) from None
