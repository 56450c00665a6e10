"""The dialer's queues from an HTTP endpoint (``source: {type: http}``).

Two formats:

- ``json``: any dialer or middleware endpoint that returns JSON. ``queues``
  is a path (``probes.dialer.jsonpath``) to the queue objects, ``queue_name``
  and ``fields`` are paths inside one of them. Without ``queues`` the whole
  document is one queue named ``all`` and ``fields`` are paths from its root.
- ``vicidial``: VICIdial's non-agent API (``non_agent_api.php``), function
  ``in_group_status`` (or ``user_group_status``) asked with ``stage=pipe``
  and ``header=YES``, one request per group. The answer is a header line and
  one data line, ``|``-separated; columns are read by their header names::

      ingroups|total_calls|calls_waiting|agents_logged_in|agents_in_calls|agents_waiting|agents_paused|agents_in_dispo|agents_in_dial
      SALESLINE|31|0|75|54|0|20|1|0

  ``agents_waiting`` (ready for a call) is "available", ``agents_in_calls``
  "on a call"; ``total_calls`` (calls today, in-groups only) is the counter
  that gives calls per minute. An ``ERROR: …`` line is a failed poll.

HTTP goes through ``core.net.http`` in a worker thread: no retries,
redirects followed only within the same scheme, host and port, every request
bounded by what is left of the poll's timeout, bodies bounded by
``max_bytes``. A message never shows the URL's query, the password or the
token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode, urlsplit

import urllib3

from core.net import http
from core.net.http import shared_pool, shown_url
from core.observation import ErrorClass
from probes.base import ProbeContext
from probes.dialer.cdr import SourceError
from probes.dialer.config import DialerTarget
from probes.dialer.jsonpath import PathMissing, find, find_one, parse
from probes.dialer.queue_config import HttpSource
from probes.dialer.queues import QueueSample, QueueStats

WHOLE = "all"
"""Queue name when ``queues`` is not set (the document is one whole)."""
USER_AGENT = "Dialwatch dialer probe"

# metric name in config -> QueueStats attribute
_ATTR = {
    "calls_waiting": "calls_waiting",
    "longest_wait": "longest_wait",
    "agents_logged_in": "logged_in",
    "agents_available": "available",
    "agents_on_call": "on_call",
    "agents_paused": "paused",
    "calls_total": "calls_total",
}
# VICIdial column -> QueueStats attribute
VICIDIAL_COLUMNS = {
    "calls_waiting": "calls_waiting",
    "agents_logged_in": "logged_in",
    "agents_waiting": "available",
    "agents_in_calls": "on_call",
    "agents_paused": "paused",
    "total_calls": "calls_total",
}
_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{2})$")


# -- values ------------------------------------------------------------------------


def to_seconds(value: Any, where: str) -> float:
    """A wait as seconds: a number, a numeric string, or ``MM:SS`` / ``H:MM:SS``."""
    if isinstance(value, str) and (m := _CLOCK.match(value.strip())):
        hours, minutes, seconds = (int(g) if g else 0 for g in m.groups())
        return float(hours * 3600 + minutes * 60 + seconds)
    number = to_number(value, where)
    return float(number)


def to_number(value: Any, where: str) -> float:
    if isinstance(value, bool) or value is None:
        raise ValueError(f"{where} is {json.dumps(value)}, not a number")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ValueError(f"{where} is {value[:40]!r}, not a number") from None
    else:
        raise ValueError(
            f"{where} is {'an object' if isinstance(value, dict) else 'an array'}, not a number"
        )
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{where} is {value!r}, not a count or duration")
    return number


def to_count(value: Any, where: str) -> int:
    number = to_number(value, where)
    if number != int(number):
        raise ValueError(f"{where} is {value!r}, not a whole number")
    return int(number)


def _stats(values: Mapping[str, Any], where: str) -> QueueStats:
    """QueueStats from attribute -> raw value; ValueError with a sentence for a bad value."""
    out: dict[str, Any] = {}
    for attr, raw in values.items():
        at = f"{where} ({attr})" if where else attr
        if attr == "longest_wait":
            out[attr] = None if raw is None else to_seconds(raw, at)
        elif attr == "calls_waiting" or raw is not None:
            out[attr] = to_count(raw, at)
    return QueueStats(**out)


# -- JSON ----------------------------------------------------------------------------


def from_json(document: Any, source: HttpSource) -> QueueSample:
    """Queues picked out of a JSON document by the source's paths (pure).

    Raises ValueError with a sentence when a path finds nothing or a value is not a number.
    """
    fields = {name: parse(path) for name, path in source.fields.items()}
    queues: dict[str, QueueStats] = {}
    try:
        if source.queues is None:
            items = [(WHOLE, document, "")]
        else:
            matches = find(document, parse(source.queues))
            items = []
            name_path = None if source.queue_name == "@key" else parse(source.queue_name)
            for m in matches:
                if name_path is None:
                    name = m.key if m.key is not None else m.where
                else:
                    raw = find_one(m.value, name_path, m.where)
                    if not isinstance(raw, str | int) or isinstance(raw, bool) or raw == "":
                        raise ValueError(f"the queue name at {m.where} is {json.dumps(raw)}")
                    name = str(raw)
                items.append((name, m.value, m.where))
        for name, element, where in items:
            values = {_ATTR[f]: find_one(element, steps, where) for f, steps in fields.items()}
            if name in queues:
                raise ValueError(f"two queues are named {name!r}")
            queues[name] = _stats(values, where)
    except PathMissing as exc:
        raise ValueError(f"a configured path found nothing: {exc}") from None
    notes: tuple[str, ...] = ()
    if source.queues is not None and not queues:
        notes = (f"{source.queues} matched no queues",)
    return QueueSample(queues, notes, warn_notes=bool(notes))


# -- VICIdial --------------------------------------------------------------------------


def from_vicidial(text: str, group: str) -> QueueStats:
    """One group's stats from a non-agent API answer (header + data line, ``|``-separated)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ValueError("the non-agent API answered with an empty body")
    if lines[0].upper().startswith("ERROR"):
        raise PermissionError(lines[0][:200])
    if len(lines) < 2:
        raise ValueError(
            f"expected a header and a data line, got {lines[0][:80]!r} "
            "(is header=YES honoured by this VICIdial version?)"
        )
    header = [h.strip().lower() for h in lines[0].split("|")]
    row = [v.strip() for v in lines[1].split("|")]
    if len(row) != len(header):
        raise ValueError(f"the data line has {len(row)} columns, the header {len(header)}")
    if "calls_waiting" not in header:
        raise ValueError(f"no calls_waiting column in the header {lines[0][:120]!r}")
    by_name = dict(zip(header, row, strict=True))
    values = {attr: by_name[col] for col, attr in VICIDIAL_COLUMNS.items() if col in by_name}
    return _stats(values, f"group {group}")


def vicidial_url(source: HttpSource, group: str) -> str:
    params = {
        "source": "dialwatch",
        "user": str(source.username),
        "pass": str(source.password),
        "function": source.function,
        "stage": "pipe",
        "header": "YES",
        "in_groups" if source.function == "in_group_status" else "user_groups": group,
    }
    joiner = "&" if urlsplit(source.url).query else "?"
    return f"{source.url}{joiner}{urlencode(params)}"


# -- HTTP ------------------------------------------------------------------------------


def _pool(source: HttpSource, ctx: ProbeContext) -> urllib3.PoolManager:
    return shared_pool(ctx.shared, source.verify_tls, source.ca_file)


def _headers(source: HttpSource) -> dict[str, str]:
    headers = {"User-Agent": USER_AGENT, "Accept": "application/json, text/plain"}
    headers.update(source.headers)
    if source.format == "json":
        if source.token is not None:
            headers["Authorization"] = f"Bearer {source.token}"
        elif source.username is not None and source.password is not None:
            pair = f"{source.username}:{source.password}".encode()
            headers["Authorization"] = f"Basic {base64.b64encode(pair).decode()}"
    return headers


def fetch(
    pool: urllib3.PoolManager,
    url: str,
    headers: Mapping[str, str],
    deadline: float,
    max_bytes: int,
) -> bytes:
    """GET ``url`` (blocking); the body, or SourceError with a sentence."""
    try:
        answer = http.request(
            pool, "GET", url, headers=headers, deadline=deadline, max_bytes=max_bytes
        )
    except http.HttpFailure as exc:
        raise SourceError(exc.detail, exc.error_class) from None
    if answer.status >= 400:
        raise SourceError(
            f"HTTP {answer.status} {answer.reason} from {shown_url(answer.url)}".replace("  ", " "),
            ErrorClass.AUTH if answer.status in (401, 403) else ErrorClass.RESPONSE,
        )
    return answer.body


# -- the source ----------------------------------------------------------------------


def _scrub(text: str, source: HttpSource) -> str:
    for secret in (source.password, source.token):
        if secret:
            text = text.replace(str(secret), "***")
    return text


async def collect(target: DialerTarget, ctx: ProbeContext) -> QueueSample:
    """One snapshot of the queues; SourceError with a sentence when the endpoint cannot give it."""
    source = target.source
    assert isinstance(source, HttpSource)
    deadline = time.monotonic() + ctx.timeout
    pool = _pool(source, ctx)
    headers = _headers(source)
    if source.format == "json":
        body = await asyncio.to_thread(fetch, pool, source.url, headers, deadline, source.max_bytes)
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            start = body[:40].decode("utf-8", "replace")
            raise SourceError(
                f"{shown_url(source.url)} did not answer with JSON ({exc.__class__.__name__}: "
                f"{getattr(exc, 'msg', exc)}; it began {start!r})",
                ErrorClass.PROTOCOL,
            ) from None
        try:
            return from_json(document, source)
        except ValueError as exc:
            raise SourceError(f"{shown_url(source.url)}: {exc}", ErrorClass.PROTOCOL) from None
    queues: dict[str, QueueStats] = {}
    for group in source.groups:
        url = vicidial_url(source, group)
        body = await asyncio.to_thread(fetch, pool, url, headers, deadline, source.max_bytes)
        text = body.decode("utf-8", "replace")
        try:
            queues[group] = from_vicidial(text, group)
        except PermissionError as exc:
            raise SourceError(
                f"VICIdial {source.function} for {group!r} answered {_scrub(str(exc), source)!r}",
                ErrorClass.RESPONSE,
            ) from None
        except ValueError as exc:
            raise SourceError(
                f"VICIdial {source.function} for {group!r}: {_scrub(str(exc), source)}",
                ErrorClass.PROTOCOL,
            ) from None
    return QueueSample(queues)
