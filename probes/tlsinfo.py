"""Certificate expiry for the ``http`` and ``tls`` probes: the ``cert_expiry_days`` rule.

The TLS helpers themselves (contexts, certificate facts, error sentences) are
in ``core.net.tls``.
"""

from __future__ import annotations

from core.net.tls import CertInfo
from core.observation import Status
from probes.thresholds import Limit, Rule, judge, resolve

EXPIRY_RULE = Rule(
    "cert_expiry_days",
    "certificate expires in",
    unit="days",
    default=Limit(warn=14, fail=3),
    lower_is_worse=True,
    doc="days until the server certificate expires",
)


def expiry_limit(given: Limit | None, was_given: bool) -> Limit:
    """The target's ``cert_expiry_days`` merged with the defaults (``null`` = off).

    Raises ValueError for a warn level below the fail level.
    """
    return resolve({EXPIRY_RULE.name: given} if was_given else {}, [EXPIRY_RULE])[EXPIRY_RULE.name]


def judge_expiry(cert: CertInfo, limit: Limit) -> tuple[Status, str, float]:
    """(status, sentence, days_left) for a certificate's remaining validity."""
    days = cert.days_left()
    breach = judge(EXPIRY_RULE, limit, days)
    if days < 0:
        sentence = f"certificate expired {-days:.1f} days ago"
    else:
        sentence = f"certificate expires in {days:.1f} days"
    if breach is not None:
        bound = f"{breach.bound:g}"
        level = "fail" if breach.status is Status.FAIL else "warn"
        return breach.status, f"{sentence} ({level} below {bound} days)", days
    return Status.OK, sentence, days
