"""Our probe and health sentences in the page's language.

Probes, the runner and the health machine write their details and reasons in
English, from a small fixed vocabulary (core/errors.py, the probes' timeout
and success sentences, the health reasons). What is stored, logged and
returned by the API stays that English; zh-CN pages show it through ``say()``,
which recognises a known sentence by its shape, keeps the values it carries
(milliseconds, counts, addresses, the peer's own reason phrase) and returns
the catalog's wording. A sentence it does not know is shown as written.

``HEAD: TAIL`` (a health reason and the probe detail behind it, a gateway
and its answer) is said part by part, so "down after 2 consecutive failures:
connection refused" is translated whole.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from flask_babel import get_locale
from flask_babel import gettext as _

Say = Callable[[re.Match[str]], str]

_NUMBER = r"\d+(?:\.\d+)?"


def _table() -> tuple[tuple[re.Pattern[str], Say], ...]:
    rows: list[tuple[str, Say]] = [
        # core/errors.py: describe_os_error
        ("connection refused", lambda m: _("connection refused")),
        (
            r"connection refused \(ICMP port unreachable: nothing listens on that port\)",
            lambda m: _("connection refused (ICMP port unreachable: nothing listens on that port)"),
        ),
        (
            r"could not resolve host \((?P<reason>.*)\)",
            lambda m: _("could not resolve host (%(reason)s)", reason=say(m["reason"])),
        ),
        (
            r"host unreachable \((?P<reason>.*)\)",
            lambda m: _("host unreachable (%(reason)s)", reason=say(m["reason"])),
        ),
        (
            r"connection failed \((?P<reason>.*)\)",
            lambda m: _("connection failed (%(reason)s)", reason=say(m["reason"])),
        ),
        # The C library's words inside those parentheses, the common ones.
        ("Name or service not known", lambda m: _("Name or service not known")),
        (
            "Temporary failure in name resolution",
            lambda m: _("Temporary failure in name resolution"),
        ),
        ("No address associated with hostname", lambda m: _("No address associated with hostname")),
        ("No route to host", lambda m: _("No route to host")),
        ("Network is unreachable", lambda m: _("Network is unreachable")),
        ("Host is down", lambda m: _("Host is down")),
        ("Connection reset by peer", lambda m: _("Connection reset by peer")),
        ("Connection timed out", lambda m: _("Connection timed out")),
        # Timeouts: the runner's and each probe's own.
        (
            rf"probe did not finish within its timeout of (?P<s>{_NUMBER})s",
            lambda m: _("probe did not finish within its timeout of %(s)ss", s=m["s"]),
        ),
        (
            rf"no answer to TCP connect within (?P<s>{_NUMBER})s",
            lambda m: _("no answer to TCP connect within %(s)ss", s=m["s"]),
        ),
        (
            rf"no complete HTTP answer within (?P<s>{_NUMBER})s",
            lambda m: _("no complete HTTP answer within %(s)ss", s=m["s"]),
        ),
        (
            rf"no TLS handshake with (?P<address>\S+) within (?P<s>{_NUMBER})s",
            lambda m: _(
                "no TLS handshake with %(address)s within %(s)ss", address=m["address"], s=m["s"]
            ),
        ),
        (
            rf"no answer from (?P<server>\S+) within (?P<s>{_NUMBER})s",
            lambda m: _("no answer from %(server)s within %(s)ss", server=m["server"], s=m["s"]),
        ),
        (
            rf"no answer to (?P<method>[A-Z]+) after (?P<n>\d+) retransmissions? "
            rf"\((?P<s>{_NUMBER}) s\)",
            lambda m: _(
                "no answer to %(method)s after %(n)s retransmissions (%(s)s s)",
                method=m["method"],
                n=m["n"],
                s=m["s"],
            ),
        ),
        (
            rf"no answer to (?P<method>[A-Z]+) over TCP within (?P<s>{_NUMBER}) s",
            lambda m: _(
                "no answer to %(method)s over TCP within %(s)s s", method=m["method"], s=m["s"]
            ),
        ),
        # Answers.
        (
            rf"connected in (?P<ms>{_NUMBER}) ms",
            lambda m: _("connected in %(ms)s ms", ms=m["ms"]),
        ),
        (
            rf"connected in (?P<ms>{_NUMBER}) ms \(above (?P<limit>{_NUMBER}) ms\)",
            lambda m: _(
                "connected in %(ms)s ms (above %(limit)s ms)", ms=m["ms"], limit=m["limit"]
            ),
        ),
        (
            rf"(?P<phrase>[1-6]\d\d [^:;]*?) in (?P<ms>{_NUMBER}) ms",
            lambda m: _("%(phrase)s in %(ms)s ms", phrase=m["phrase"], ms=m["ms"]),
        ),
        (
            rf"(?P<phrase>[1-6]\d\d [^:;]*?) in (?P<ms>{_NUMBER}) ms "
            r"after (?P<n>\d+) retransmissions?",
            lambda m: _(
                "%(phrase)s in %(ms)s ms after %(n)s retransmissions",
                phrase=m["phrase"],
                ms=m["ms"],
                n=m["n"],
            ),
        ),
        (
            rf"answered (?P<phrase>[1-6]\d\d [^:;]*?) to (?P<method>[A-Z]+) in (?P<ms>{_NUMBER}) ms",
            lambda m: _(
                "answered %(phrase)s to %(method)s in %(ms)s ms",
                phrase=m["phrase"],
                method=m["method"],
                ms=m["ms"],
            ),
        ),
        (
            rf"HTTP (?P<code>\d{{3}}) in (?P<ms>{_NUMBER}) ms",
            lambda m: _("HTTP %(code)s in %(ms)s ms", code=m["code"], ms=m["ms"]),
        ),
        ("the server sent no certificate", lambda m: _("the server sent no certificate")),
        # monitor/health.py: why a target's health changed.
        ("down after 1 failure", lambda m: _("down after 1 failure")),
        (
            r"down after (?P<n>\d+) consecutive failures",
            lambda m: _("down after %(n)s consecutive failures", n=m["n"]),
        ),
        (
            r"up after (?P<n>\d+) successful checks?",
            lambda m: _("up after %(n)s successful checks", n=m["n"]),
        ),
        ("up", lambda m: _("up")),
        ("degraded", lambda m: _("degraded")),
        (
            r"degraded after (?P<n>\d+) checks in a row with warnings or failures",
            lambda m: _("degraded after %(n)s checks in a row with warnings or failures", n=m["n"]),
        ),
        (
            r"answering again after (?P<n>\d+) checks?, but degraded",
            lambda m: _("answering again after %(n)s checks, but degraded", n=m["n"]),
        ),
        ("unknown", lambda m: _("unknown")),
        ("the probe could not run", lambda m: _("the probe could not run")),
        (
            r"(?P<n>\d+) bad checks? so far, (?P<needed>\d+) needed to decide",
            lambda m: _(
                "%(n)s bad checks so far, %(needed)s needed to decide", n=m["n"], needed=m["needed"]
            ),
        ),
        ("in maintenance", lambda m: _("in maintenance")),
        # The refusals of the monitor's incident and staff functions (monitor/incident_actions.py,
        # monitor/staff/): the console shows them beside the form that was refused.
        (
            r"cannot \w+ incident (?P<id>\d+): it is resolved",
            lambda m: _("incident %(id)s is resolved: it cannot be changed", id=m["id"]),
        ),
        (r"no incident (?P<id>\d+)", lambda m: _("there is no incident %(id)s", id=m["id"])),
        (
            r"eta (?P<eta>\S+) is not in the future \(now (?P<now>\S+)\)",
            lambda m: _(
                "the ETA %(eta)s is not in the future (now %(now)s)", eta=m["eta"], now=m["now"]
            ),
        ),
        (
            r"target '(?P<target>[^']+)' is in open incident (?P<id>\d+) already; "
            r"add a note or an update there instead",
            lambda m: _(
                "target %(target)s is in open incident %(id)s already; add a note or an "
                "update there instead",
                target=m["target"],
                id=m["id"],
            ),
        ),
        (
            r"target '(?P<target>[^']+)' is in maintenance window (?P<id>\d+) already "
            r"\(started by (?P<who>[^)]+)\); end it first",
            lambda m: _(
                "target %(target)s is in maintenance window %(id)s already (started by "
                "%(who)s); end it first",
                target=m["target"],
                id=m["id"],
                who=m["who"],
            ),
        ),
        (
            r"silence (?P<id>\d+) is over already",
            lambda m: _("silence %(id)s is over already", id=m["id"]),
        ),
        (
            r"maintenance window (?P<id>\d+) is over already",
            lambda m: _("maintenance window %(id)s is over already", id=m["id"]),
        ),
        (
            r"(?P<name>\S+) is the last admin: make another admin first",
            lambda m: _("%(name)s is the last admin: make another admin first", name=m["name"]),
        ),
        (
            r"a user named '(?P<name>[^']+)' exists already",
            lambda m: _("a user named %(name)s exists already", name=m["name"]),
        ),
        (
            r"user (?P<name>\S+) is disabled already",
            lambda m: _("user %(name)s is disabled already", name=m["name"]),
        ),
        (
            r"user (?P<name>\S+) is not disabled",
            lambda m: _("user %(name)s is not disabled", name=m["name"]),
        ),
        (
            r"no user named '(?P<name>[^']+)'",
            lambda m: _("there is no user %(name)s", name=m["name"]),
        ),
        (
            "a token's expiry must be in the future",
            lambda m: _("a token's expiry must be in the future"),
        ),
    ]
    return tuple((re.compile(pattern), render) for pattern, render in rows)


_SENTENCES = _table()


def _whole(text: str) -> str | None:
    for pattern, render in _SENTENCES:
        if (match := pattern.fullmatch(text)) is not None:
            return render(match)
    return None


def say(text: str | None) -> str:
    """``text`` (one of our English sentences) in the current page language; unknown text as is."""
    if not text:
        return ""
    locale = get_locale()
    if locale is None or locale.language == "en":
        # The sentences are written in English: shown as they are (with their
        # own plurals, which the one-form msgids here do not have).
        return text
    whole = _whole(text)
    if whole is not None:
        return whole
    head, colon, tail = text.partition(": ")
    if colon:
        said_head, said_tail = _whole(head), say(tail)
        if said_head is not None or said_tail != tail:
            return _("%(head)s: %(tail)s", head=said_head or head, tail=said_tail)
    return text
