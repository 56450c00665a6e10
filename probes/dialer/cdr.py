"""Reading one CDR row into a counted call, and what a CDR source hands back (pure).

Both CDR sources (SQL and CSV) see the same logical columns (``CdrColumns``);
``CallReader`` turns one row's values into (trunk, outcome, billsec,
abandoned) or says in a sentence why the row cannot be counted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from core.observation import ErrorClass
from probes.dialer.config import AbandonRule
from probes.dialer.kpi import Counts, Outcome, classify

UNKNOWN_TRUNK = "unknown"
"""Trunk name for rows whose trunk column does not match ``trunk_pattern`` (or is empty)."""
OTHER_TRUNK = "other"
"""Trunks beyond ``max_trunks`` are counted together under this name."""


class SourceError(Exception):
    """A source could not read its calls; ``check`` reports it as a ``fail``."""

    def __init__(self, detail: str, error_class: ErrorClass) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error_class = error_class


class BadRow(ValueError):
    """A CDR row that cannot be counted; the message says why, as a sentence fragment."""


@dataclass(frozen=True, slots=True)
class Call:
    trunk: str
    outcome: Outcome
    billsec: float
    abandoned: bool


def parse_number(value: Any, what: str) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise BadRow(f"no {what}")
    if isinstance(value, bool):
        raise BadRow(f"{what} {value!r} is not a number")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise BadRow(f"{what} {str(value)[:40]!r} is not a number") from None
    if number != number or number < 0:  # NaN or negative
        raise BadRow(f"{what} {str(value)[:40]!r} is not a number of seconds")
    return number


def parse_cause(value: Any) -> int | None:
    """A hangup cause column's value as a number; None when empty or not numeric (e.g. a cause name)."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    text = str(value).strip()
    return int(text) if text.isdigit() else None


@dataclass(frozen=True)
class CallReader:
    """Turns one row's values into a ``Call``; built once per poll from the source config."""

    trunk_pattern: re.Pattern[str]
    abandon: AbandonRule | None

    @classmethod
    def from_config(cls, trunk_pattern: str, abandon: AbandonRule | None) -> CallReader:
        return cls(re.compile(trunk_pattern), abandon)

    def trunk(self, channel: Any) -> str:
        if not channel:
            return UNKNOWN_TRUNK
        m = self.trunk_pattern.search(str(channel))
        return m.group(1) if m and m.group(1) else UNKNOWN_TRUNK

    def is_abandon_value(self, value: Any) -> bool:
        if self.abandon is None or value is None:
            return False
        text = str(value).strip().lower()
        return any(text == v.strip().lower() for v in self.abandon.values)

    def read(
        self, channel: Any, disposition: Any, billsec: Any, cause: Any = None, marker: Any = None
    ) -> Call:
        """One call from its column values; BadRow when a needed value is missing or unreadable."""
        if disposition is None or not str(disposition).strip():
            raise BadRow("no disposition")
        outcome = classify(str(disposition), parse_cause(cause))
        if outcome is None:
            raise BadRow(f"unknown disposition {str(disposition)[:40]!r}")
        seconds = parse_number(billsec, "billsec")
        abandoned = (
            outcome is Outcome.ANSWERED
            and self.abandon is not None
            and self.is_abandon_value(marker)
            and (self.abandon.max_billsec is None or seconds <= self.abandon.max_billsec)
        )
        return Call(self.trunk(channel), outcome, seconds, abandoned)


@dataclass
class Tally:
    """Counts per trunk plus the rows that could not be counted."""

    trunks: dict[str, Counts] = field(default_factory=dict)
    skipped: int = 0
    skipped_example: str = ""
    """Why the first skipped row was skipped, e.g. ``line 12: no billsec``."""

    def count(self, call: Call, calls: int = 1, billsec_total: float | None = None) -> None:
        counts = self.trunks.get(call.trunk)
        if counts is None:
            counts = self.trunks[call.trunk] = Counts()
        billsec = call.billsec * calls if billsec_total is None else billsec_total
        counts.add_call(call.outcome, billsec, call.abandoned, calls)

    def skip(self, where: str, reason: str, rows: int = 1) -> None:
        if not self.skipped_example:
            self.skipped_example = f"{where}: {reason}" if where else reason
        self.skipped += rows


@dataclass(frozen=True)
class WindowSample:
    """What a CDR source read for one poll: the window's counts and notes for the detail text."""

    trunks: Mapping[str, Counts]
    window_seconds: float
    skipped: int = 0
    """Rows that could not be counted (missing or unreadable fields)."""
    skipped_example: str = ""
    read_rows: int = 0
    """Rows the source read this poll (CSV: new lines; SQL: rows in the window)."""
    notes: tuple[str, ...] = ()
    """Sentences about the source itself (file rotated, truncated, catching up...)."""
    warn_notes: bool = False
    """True when a note should make the observation ``warn`` (e.g. the file was truncated)."""


def cap_trunks(trunks: Mapping[str, Counts], max_trunks: int) -> dict[str, Counts]:
    """At most ``max_trunks`` series: the busiest trunks by name, the rest summed as ``other``.

    Ties are broken by name so the choice is stable from poll to poll.
    """
    if len(trunks) <= max_trunks:
        return dict(trunks)
    ranked = sorted(trunks.items(), key=lambda kv: (-kv[1].attempts, kv[0]))
    kept = dict(ranked[: max_trunks - 1])
    rest = Counts()
    for _name, counts in ranked[max_trunks - 1 :]:
        rest.add(counts)
    if OTHER_TRUNK in kept:  # a real trunk called "other" joins the overflow
        rest.add(kept.pop(OTHER_TRUNK))
    kept[OTHER_TRUNK] = rest
    return kept
