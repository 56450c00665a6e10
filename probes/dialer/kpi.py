"""Call-outcome classification and the window KPIs of an outbound dialer (pure).

Every source (SQL CDR window, CSV CDR tail, later AMI and HTTP) reduces a
window of calls to additive ``Counts`` per trunk; the KPIs are computed from
those counts here, the same way for all. Nothing here does I/O.

Formulas (over the window, overall and per trunk):

- attempts        = calls that were placed (one CDR row each)
- answered        = rows whose outcome is ANSWERED (also called "connected")
- loss rate       = (attempts − answered) ÷ attempts            (呼损率)
- system loss     = calls lost to the network or the system ÷ attempts
- callee loss     = calls lost to no answer, busy or rejection ÷ attempts
                    (system loss + callee loss = loss rate)
- ASR             = answered ÷ attempts
- ACD             = sum of billsec over answered calls ÷ answered (seconds)
- abandon rate    = answered calls dropped before an agent was connected ÷ answered
- calls/minute    = attempts ÷ window length in minutes

Rates are percentages (floats 0–100). A rate whose denominator is zero has no
value (``None``): no calls means "nothing to say", not 0 % and not 100 %.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from enum import StrEnum


class Outcome(StrEnum):
    """What became of one call attempt."""

    ANSWERED = "answered"
    CALLEE = "callee"
    """Not connected because of the called party: no answer, busy, rejected, bad number."""
    SYSTEM = "system"
    """Not connected because of the network or the system: failure, congestion, no channel."""


DISPOSITIONS: Mapping[str, Outcome] = {
    "ANSWERED": Outcome.ANSWERED,
    "NO ANSWER": Outcome.CALLEE,
    "NOANSWER": Outcome.CALLEE,
    "BUSY": Outcome.CALLEE,
    "CANCEL": Outcome.CALLEE,
    "FAILED": Outcome.SYSTEM,
    "CONGESTION": Outcome.SYSTEM,
    "CHANUNAVAIL": Outcome.SYSTEM,
}
"""Asterisk CDR ``disposition`` (and Dial's ``DIALSTATUS`` words some dialers write) -> outcome."""

CALLEE_SIP_CODES = frozenset({404, 408, 410, 480, 484, 486, 487, 600, 603, 604})
"""SIP final responses that say something about the called party, not the route:
not found / gone / address incomplete (a bad number), request timeout and
temporarily unavailable (nobody picked up), busy, terminated (cancelled), declined."""


def classify_cause(cause: int) -> Outcome | None:
    """Outcome of an unanswered call from its hangup cause, or None when the number says nothing.

    - Q.850 cause 1–31 ("normal event" class: 16 normal clearing, 17 user
      busy, 18 no user responding, 19 no answer, 21 call rejected, 1
      unallocated number, 28 invalid number format...) -> CALLEE.
    - Q.850 cause 32–127 (resource unavailable 34/38/41/42/44/47, service
      unavailable, not implemented, invalid message, protocol error,
      interworking) -> SYSTEM.
    - SIP status 400–699 (dialers that store the SIP code): the codes in
      ``CALLEE_SIP_CODES`` -> CALLEE, every other 4xx/5xx/6xx (403, 500, 502,
      503, 504...) -> SYSTEM.
    - 0, negative or anything else -> None (fall back to the disposition).
    """
    if 1 <= cause <= 31:
        return Outcome.CALLEE
    if 32 <= cause <= 127:
        return Outcome.SYSTEM
    if 400 <= cause <= 699:
        return Outcome.CALLEE if cause in CALLEE_SIP_CODES else Outcome.SYSTEM
    return None


def classify(disposition: str, cause: int | None = None) -> Outcome | None:
    """Outcome of one CDR row; None for a disposition we do not know (the row is skipped).

    ANSWERED always wins (a call that was answered is connected, whatever
    cause ended it). Otherwise a usable hangup cause decides, because it is
    more precise than Asterisk's dispositions (FAILED covers both "number
    does not exist" and "carrier down"); without one, the disposition does.
    """
    outcome = DISPOSITIONS.get(disposition.strip().upper())
    if outcome is Outcome.ANSWERED:
        return outcome
    if cause is not None:
        by_cause = classify_cause(cause)
        if by_cause is not None:
            return by_cause
    return outcome


@dataclass(slots=True)
class Counts:
    """Additive counters of one window (overall or one trunk). ``billsec`` is a sum in seconds."""

    attempts: int = 0
    answered: int = 0
    callee_lost: int = 0
    system_lost: int = 0
    abandoned: int = 0
    billsec: float = 0.0

    def add_call(self, outcome: Outcome, billsec: float, abandoned: bool, calls: int = 1) -> None:
        """Count ``calls`` calls with this outcome; ``billsec`` is their total."""
        self.attempts += calls
        if outcome is Outcome.ANSWERED:
            self.answered += calls
            self.billsec += billsec
            if abandoned:
                self.abandoned += calls
        elif outcome is Outcome.CALLEE:
            self.callee_lost += calls
        else:
            self.system_lost += calls

    def add(self, other: Counts) -> None:
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + getattr(other, f.name))

    def to_list(self) -> list[float]:
        """Compact JSON form for probe state."""
        return [getattr(self, f.name) for f in fields(self)]

    @classmethod
    def from_list(cls, values: Iterable[float]) -> Counts:
        names = [f.name for f in fields(cls)]
        items = list(values)
        if len(items) != len(names):
            raise ValueError(f"expected {len(names)} counters, got {len(items)}")
        kwargs = {
            n: (float(v) if n == "billsec" else int(v)) for n, v in zip(names, items, strict=True)
        }
        return cls(**kwargs)


def total(counts: Iterable[Counts]) -> Counts:
    """The sum of several windows' (or trunks') counts."""
    out = Counts()
    for c in counts:
        out.add(c)
    return out


def percent(part: float, whole: float) -> float | None:
    """``part`` as a percentage of ``whole``; None when ``whole`` is zero."""
    if whole <= 0:
        return None
    return 100.0 * part / whole


@dataclass(frozen=True, slots=True)
class Kpis:
    """The window KPIs derived from ``Counts`` (see the module docstring for each formula)."""

    attempts: int
    answered: int
    lost: int
    system_lost: int
    callee_lost: int
    abandoned: int
    loss_rate: float | None
    system_loss_rate: float | None
    callee_loss_rate: float | None
    asr: float | None
    acd: float | None
    """Seconds."""
    abandon_rate: float | None
    calls_per_minute: float


def kpis(counts: Counts, window_seconds: float) -> Kpis:
    """The KPIs of one window of ``window_seconds``."""
    lost = counts.attempts - counts.answered
    return Kpis(
        attempts=counts.attempts,
        answered=counts.answered,
        lost=lost,
        system_lost=counts.system_lost,
        callee_lost=counts.callee_lost,
        abandoned=counts.abandoned,
        loss_rate=percent(lost, counts.attempts),
        system_loss_rate=percent(counts.system_lost, counts.attempts),
        callee_loss_rate=percent(counts.callee_lost, counts.attempts),
        asr=percent(counts.answered, counts.attempts),
        acd=counts.billsec / counts.answered if counts.answered else None,
        abandon_rate=percent(counts.abandoned, counts.answered),
        calls_per_minute=counts.attempts * 60.0 / window_seconds,
    )
