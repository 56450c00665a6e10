"""What the dialer's queues look like right now, and how that is judged (pure).

The live sources (Asterisk AMI, HTTP) read a snapshot of the dialer's
queues — calls waiting, the longest wait, agents logged in / available /
on a call / paused, and cumulative call counters — into a ``QueueSample``.
``evaluate_queues`` turns it into metric points, a status and a detail
sentence against the target's ``thresholds``, the same for every source:

- ``dialer_queue`` tagged ``queue`` (at most ``max_queues`` series + ``other``)
- ``dialer`` (overall: the sum over queues; the longest wait is the maximum)

Calls per minute come from the counters between two polls (``rates``): the
growth of a queue's ``calls_total`` ÷ the minutes between the readings. A
counter that went down was reset (``queue reset stats``, an Asterisk restart,
midnight on VICIdial), so that poll has no rate rather than a wrong one.

Fields have fixed types: counts are ints, seconds and rates are floats. A
value the source does not give is left out, never written as 0.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from core.observation import ErrorClass, FieldValue, MetricPoint, Observation, Status
from probes.thresholds import Breach, Limit, Rule, by_severity, format_value, judge, worst

OTHER_QUEUE = "other"
"""Queues beyond ``max_queues`` are summed together under this name."""

QUEUE_RULES: tuple[Rule, ...] = (
    Rule("calls_waiting", "{subject} calls waiting", doc="callers waiting for an agent"),
    Rule(
        "longest_wait",
        "{subject} longest wait",
        "s",
        Limit(warn=30, fail=120),
        doc="seconds the longest-waiting caller has waited",
    ),
    Rule(
        "agents_available",
        "{subject} agents available",
        lower_is_worse=True,
        doc="agents logged in, not paused and not on a call (judged below the limits)",
    ),
    Rule(
        "calls_per_minute",
        "{subject} calls per minute",
        "/min",
        lower_is_worse=True,
        doc="calls the queues took per minute between two polls (overall only)",
    ),
)
"""Every metric a queue source's ``thresholds:`` accepts, with its default limits."""

_RULES = {rule.name: rule for rule in QUEUE_RULES}
_JUDGED_PER_QUEUE = ("calls_waiting", "longest_wait", "agents_available")
_SHOWN_BREACHES = 4

# QueueStats attribute -> metric field name (fixed types: see fields_of).
_COUNT_FIELDS = {
    "calls_waiting": "calls_waiting",
    "logged_in": "agents_logged_in",
    "available": "agents_available",
    "on_call": "agents_on_call",
    "paused": "agents_paused",
}


@dataclass(frozen=True)
class QueueStats:
    """One queue as a source read it; ``None`` where the source does not say."""

    calls_waiting: int
    longest_wait: float | None = None
    """Seconds the longest-waiting caller has waited (0 when nobody waits)."""
    logged_in: int | None = None
    available: int | None = None
    """Logged in, not paused, not on a call."""
    on_call: int | None = None
    paused: int | None = None
    """Logged in and paused (not counted as available)."""
    calls_total: int | None = None
    """A cumulative counter of calls the queue took (completed + abandoned on Asterisk);
    only its growth between polls is used."""


@dataclass(frozen=True)
class QueueSample:
    """What a live source read in one poll."""

    queues: Mapping[str, QueueStats]
    notes: tuple[str, ...] = ()
    """Sentences about the source itself (e.g. a configured queue the dialer does not have)."""
    warn_notes: bool = False
    """True when a note should make the observation ``warn``."""


def _add(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return a + b


def _max(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


def combine(stats: Iterable[QueueStats]) -> QueueStats:
    """Several queues as one: counts summed, the longest wait the maximum.

    An agent in two queues is counted in both: a dialer's own overall agent
    count needs its agent list, which queue statistics do not give.
    """
    out = QueueStats(calls_waiting=0)
    for s in stats:
        out = QueueStats(
            calls_waiting=out.calls_waiting + s.calls_waiting,
            longest_wait=_max(out.longest_wait, s.longest_wait),
            logged_in=_add(out.logged_in, s.logged_in),
            available=_add(out.available, s.available),
            on_call=_add(out.on_call, s.on_call),
            paused=_add(out.paused, s.paused),
            calls_total=_add(out.calls_total, s.calls_total),
        )
    return out


def cap_queues(queues: Mapping[str, QueueStats], max_queues: int) -> dict[str, QueueStats]:
    """At most ``max_queues`` series: the busiest queues, the rest combined as ``other``.

    Busiest = most agents logged in plus calls waiting; ties by name, so the
    choice is stable from poll to poll.
    """
    if len(queues) <= max_queues:
        return dict(queues)

    def weight(item: tuple[str, QueueStats]) -> tuple[int, str]:
        name, s = item
        return (-((s.logged_in or 0) + s.calls_waiting), name)

    ranked = sorted(queues.items(), key=weight)
    kept = dict(ranked[: max_queues - 1])
    rest = [s for _, s in ranked[max_queues - 1 :]]
    if OTHER_QUEUE in kept:  # a real queue called "other" joins the overflow
        rest.append(kept.pop(OTHER_QUEUE))
    kept[OTHER_QUEUE] = combine(rest)
    return kept


def rates(
    previous: Mapping[str, Any] | None, queues: Mapping[str, QueueStats], now: float
) -> tuple[dict[str, float], dict[str, Any]]:
    """Calls per minute per queue since the previous poll, and the state to keep for the next.

    ``previous`` is what the last call returned as state (``{"time": t,
    "totals": {queue: n}}``), or None on the first poll. A queue appears in
    the result only when both readings have a counter, time went forward and
    the counter did not go down (a reset gives no rate for that poll).
    """
    totals = {name: s.calls_total for name, s in queues.items() if s.calls_total is not None}
    state: dict[str, Any] = {"time": now, "totals": totals}
    out: dict[str, float] = {}
    if not previous:
        return out, state
    then = previous.get("time")
    old = previous.get("totals")
    if not isinstance(then, int | float) or not isinstance(old, Mapping) or now <= then:
        return out, state
    minutes = (now - then) / 60.0
    for name, current in totals.items():
        before = old.get(name)
        if isinstance(before, int) and not isinstance(before, bool) and current >= before:
            out[name] = (current - before) / minutes
    return out, state


def fields_of(s: QueueStats, calls_per_minute: float | None) -> dict[str, FieldValue]:
    """Metric fields with fixed types: counts int, seconds and rates float."""
    out: dict[str, FieldValue] = {}
    for attr, name in _COUNT_FIELDS.items():
        value = getattr(s, attr)
        if value is not None:
            out[name] = int(value)
    if s.longest_wait is not None:
        out["longest_wait"] = round(float(s.longest_wait), 3)
    if calls_per_minute is not None:
        out["calls_per_minute"] = round(float(calls_per_minute), 4)
    return out


def _judge(s: QueueStats, subject: str, thresholds: Mapping[str, Limit | None]) -> list[Breach]:
    values: dict[str, float | None] = {
        "calls_waiting": s.calls_waiting,
        "longest_wait": s.longest_wait,
        "agents_available": s.available,
    }
    out: list[Breach] = []
    for name in _JUDGED_PER_QUEUE:
        limit, value = thresholds.get(name), values[name]
        if limit is None or limit.off or value is None:
            continue
        breach = judge(_RULES[name], limit, float(value), subject)
        if breach is not None:
            out.append(breach)
    return out


def summary(s: QueueStats, queues: int, calls_per_minute: float | None) -> str:
    """``3 queues: 4 calls waiting (longest 12 s), 20 agents logged in, 6 available, ...``."""
    noun = "queue" if queues == 1 else "queues"
    waiting = f"{s.calls_waiting} call{'s' if s.calls_waiting != 1 else ''} waiting"
    if s.calls_waiting and s.longest_wait is not None:
        waiting += f" (longest {format_value(round(s.longest_wait, 1), 's')})"
    parts = [f"{queues} {noun}: {waiting}"]
    if s.logged_in is not None:
        parts.append(f"{s.logged_in} agents logged in")
    for value, word in ((s.available, "available"), (s.on_call, "on a call"), (s.paused, "paused")):
        if value is not None:
            parts.append(f"{value} {word}")
    if calls_per_minute is not None:
        parts.append(f"{format_value(round(calls_per_minute, 1))} calls/min")
    return ", ".join(parts)


def evaluate_queues(
    sample: QueueSample,
    thresholds: Mapping[str, Limit | None],
    max_queues: int,
    per_minute: Mapping[str, float],
    overall_per_minute: float | None,
    latency: float | None = None,
) -> Observation:
    """Judge one snapshot: per queue and overall; calls per minute overall only.

    ``per_minute`` holds the queues' rates from ``rates`` (before capping:
    the ``other`` series gets the sum of its members' rates when all have one).
    """
    capped = cap_queues(sample.queues, max_queues)
    rate_of: dict[str, float | None] = {name: per_minute.get(name) for name in capped}
    if OTHER_QUEUE in capped and len(capped) < len(sample.queues):
        members = [n for n in sample.queues if n not in capped or n == OTHER_QUEUE]
        known = [per_minute[n] for n in members if n in per_minute]
        rate_of[OTHER_QUEUE] = sum(known) if len(known) == len(members) else None
    overall = combine(capped.values())
    points = [
        MetricPoint(
            "dialer", {**fields_of(overall, overall_per_minute), "queues": len(sample.queues)}
        )
    ]
    breaches: list[Breach] = []
    for name in sorted(capped):
        stats = capped[name]
        points.append(MetricPoint("dialer_queue", fields_of(stats, rate_of[name]), {"queue": name}))
        breaches.extend(_judge(stats, f"queue {name}:", thresholds))
    if len(capped) > 1:
        breaches.extend(_judge(overall, "all queues:", thresholds))
    cpm = thresholds.get("calls_per_minute")
    if cpm is not None and not cpm.off and overall_per_minute is not None:
        b = judge(_RULES["calls_per_minute"], cpm, overall_per_minute)
        if b is not None:
            breaches.append(b)

    status = worst(b.status for b in breaches)
    ordered = by_severity(breaches)
    sentences = [b.sentence() for b in ordered[:_SHOWN_BREACHES]]
    if len(ordered) > _SHOWN_BREACHES:
        sentences.append(f"{len(ordered) - _SHOWN_BREACHES} more over their limits")
    sentences.append(summary(overall, len(sample.queues), overall_per_minute))
    error_class: ErrorClass | None = ErrorClass.THRESHOLD if breaches else None
    if sample.warn_notes and status is Status.OK:
        status, error_class = Status.WARN, ErrorClass.RESPONSE
    detail = "; ".join(sentences + list(sample.notes))
    return Observation(status, detail, tuple(points), latency, error_class)


def overall_rate(per_minute: Mapping[str, float], queues: Mapping[str, QueueStats]) -> float | None:
    """All queues' calls per minute: the sum, only when every queue with a counter has a rate."""
    counted = [name for name, s in queues.items() if s.calls_total is not None]
    if not counted or any(name not in per_minute for name in counted):
        return None
    return sum(per_minute[name] for name in counted)
