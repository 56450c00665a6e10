"""From a window's counts to metric points, a status and a detail sentence (pure).

Shared by every CDR source. Points (rates in percent, floats; counts ints;
a rate without a denominator is left out, never written as 0):

- ``dialer`` (overall), and
- ``dialer_trunk`` tagged ``trunk`` (at most ``max_trunks`` series + ``other``).
"""

from __future__ import annotations

from collections.abc import Mapping

from core.observation import ErrorClass, FieldValue, MetricPoint, Observation, Status
from probes.dialer.cdr import WindowSample, cap_trunks
from probes.dialer.config import DIALER_RULES
from probes.dialer.kpi import Counts, Kpis, kpis, total
from probes.thresholds import Breach, Limit, by_severity, format_value, judge, worst

RULES = {rule.name: rule for rule in DIALER_RULES}
RATE_RULES = ("loss_rate", "system_loss_rate", "callee_loss_rate", "asr", "acd", "abandon_rate")
"""Judged per trunk and overall, once there are ``min_attempts`` attempts."""
_SHOWN_BREACHES = 4
MIN_ROWS_TO_BLAME_LAYOUT = 3
"""With this many rows read and none readable, the mapping is wrong (fail); one or two
garbled rows are only a warning."""


def fields_of(k: Kpis) -> dict[str, FieldValue]:
    """Metric fields with fixed types: counts int, rates/ACD/calls per minute float."""
    out: dict[str, FieldValue] = {
        "attempts": k.attempts,
        "answered": k.answered,
        "lost": k.lost,
        "system_lost": k.system_lost,
        "callee_lost": k.callee_lost,
        "abandoned": k.abandoned,
        "calls_per_minute": round(float(k.calls_per_minute), 4),
    }
    for name in RATE_RULES:
        value = getattr(k, name)
        if value is not None:
            out[name] = round(float(value), 4)
    return out


def _judge_rates(
    k: Kpis, subject: str, thresholds: Mapping[str, Limit | None], measure_abandon: bool
) -> list[Breach]:
    out: list[Breach] = []
    for name in RATE_RULES:
        if name == "abandon_rate" and not measure_abandon:
            continue
        limit, value = thresholds.get(name), getattr(k, name)
        if limit is None or limit.off or value is None:
            continue
        breach = judge(RULES[name], limit, value, subject)
        if breach is not None:
            out.append(breach)
    return out


def summary(k: Kpis, window_seconds: float, measure_abandon: bool) -> str:
    """``15 min: 1200 attempts, ASR 41.5%, loss 58.5% (system 2%, no answer/busy 56.5%), …``."""
    span = format_span(window_seconds)
    if k.attempts == 0:
        return f"no call attempts in the last {span}"
    parts = [
        f"{k.attempts} attempts in the last {span}",
        f"ASR {format_value(k.asr or 0, '%')}",
        f"loss {format_value(k.loss_rate or 0, '%')} (system {format_value(k.system_loss_rate or 0, '%')}, "
        f"no answer/busy {format_value(k.callee_loss_rate or 0, '%')})",
    ]
    if k.acd is not None:
        parts.append(f"ACD {format_value(k.acd, 's')}")
    if measure_abandon and k.abandon_rate is not None:
        parts.append(f"abandon {format_value(k.abandon_rate, '%')}")
    parts.append(f"{format_value(round(k.calls_per_minute, 1))} calls/min")
    return ", ".join(parts)


def breach_sentence(b: Breach) -> str:
    """``Breach.sentence()``, with two decimals where one would make the value read as the limit
    (3.03 % shown as "3% (fail above 3%)" looks like a bug)."""
    text = b.sentence()
    unit = b.rule.unit
    if format_value(b.value, unit) != format_value(b.bound, unit):
        return text
    shown = f"{b.value:.2f}" + (unit if unit in ("%", "/s") else f" {unit}" if unit else "")
    return text.replace(f"at {format_value(b.value, unit)} ", f"at {shown} ", 1)


def format_span(seconds: float) -> str:
    if seconds % 60 == 0:
        return f"{int(seconds // 60)} min"
    return f"{format_value(seconds)} s"


def evaluate(
    sample: WindowSample,
    thresholds: Mapping[str, Limit | None],
    min_attempts: int,
    max_trunks: int,
    measure_abandon: bool = True,
    latency: float | None = None,
) -> Observation:
    """Judge one window: rates per trunk and overall, calls per minute overall."""
    trunks = cap_trunks(sample.trunks, max_trunks)
    overall: Counts = total(trunks.values())
    w = sample.window_seconds
    k_all = kpis(overall, w)
    points = [MetricPoint("dialer", {**fields_of(k_all), "skipped_rows": sample.skipped})]
    breaches: list[tuple[Breach, int]] = []
    for name in sorted(trunks):
        k = kpis(trunks[name], w)
        points.append(MetricPoint("dialer_trunk", fields_of(k), {"trunk": name}))
        if k.attempts >= min_attempts:
            for b in _judge_rates(k, f"trunk {name}", thresholds, measure_abandon):
                breaches.append((b, k.attempts))
    if k_all.attempts >= min_attempts:
        for b in _judge_rates(k_all, "", thresholds, measure_abandon):
            breaches.append((b, k_all.attempts))
    cpm_limit = thresholds.get("calls_per_minute")
    if cpm_limit is not None and not cpm_limit.off:
        b = judge(RULES["calls_per_minute"], cpm_limit, k_all.calls_per_minute)
        if b is not None:
            breaches.append((b, 0))

    status = worst(b.status for b, _ in breaches)
    sentences = []
    ordered = by_severity([b for b, _ in breaches])
    attempts_of = {id(b): n for b, n in breaches}
    for b in ordered[:_SHOWN_BREACHES]:
        n = attempts_of[id(b)]
        sentences.append(f"{breach_sentence(b)} over {n} attempts" if n else breach_sentence(b))
    if len(ordered) > _SHOWN_BREACHES:
        sentences.append(f"{len(ordered) - _SHOWN_BREACHES} more limits crossed")
    sentences.append(summary(k_all, w, measure_abandon))
    notes = list(sample.notes)
    if sample.skipped:
        notes.append(
            f"{sample.skipped} CDR row{'s' if sample.skipped != 1 else ''} skipped "
            f"(missing or unreadable fields; first: {sample.skipped_example})"
        )
    error_class: ErrorClass | None = ErrorClass.THRESHOLD if breaches else None
    if sample.read_rows >= MIN_ROWS_TO_BLAME_LAYOUT and sample.skipped >= sample.read_rows:
        # Nothing readable at all: the column mapping or the file's layout is wrong.
        status = Status.FAIL
        error_class = ErrorClass.PROTOCOL
        sentences.insert(0, f"none of the {sample.read_rows} CDR rows read could be counted")
    elif (sample.skipped or sample.warn_notes) and status is Status.OK:
        status = Status.WARN
        error_class = ErrorClass.PROTOCOL
    detail = "; ".join(sentences + notes)
    return Observation(status, detail, tuple(points), latency, error_class)
