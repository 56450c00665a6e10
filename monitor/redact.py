"""Scrubbing text shown to the public: no internal addresses, URIs or secrets.

The status page only shows what staff or runbooks wrote for customers, but a
cause like "carrier sip:10.9.8.7 not answering" is easy to type. So every
public string passes through ``redact`` as a second line of defence.
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Iterable
from typing import Literal, get_origin

from pydantic import BaseModel

from core.config import TargetBase
from monitor.config.schema import Config

MASK = "[redacted]"


_PATTERNS = [
    # sip:/sips:/tel:/http(s):/ssh:/snmp: URIs and anything like user@host.
    re.compile(r"\b(?:sips?|tel|https?|ssh|snmp|tcp|udp|wss?):[^\s,\"'<>]+", re.IGNORECASE),
    re.compile(r"\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b"),
    # IPv4 with an optional port.
    re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"),
    # IPv6: at least three groups with colons (keeps times like 10:30 intact).
    re.compile(r"\[?\b(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}\b\]?(?::\d{1,5})?", re.IGNORECASE),
]


def _strings(value: object) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, BaseModel):
        yield from _strings(value.model_dump())
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


@functools.cache
def _internal_fields(model: type[TargetBase]) -> tuple[str, ...]:
    """Kind-specific fields of a target model (address, uri, host, user, community,
    password...) are internal; fixed choices (Literal fields such as transport: udp) are not."""
    return tuple(
        name
        for name, info in model.model_fields.items()
        if name not in TargetBase.model_fields and get_origin(info.annotation) is not Literal
    )


def _collect(config: Config) -> list[str]:
    found: set[str] = set()
    if config.web.token:
        found.add(config.web.token)
    for t in config.targets:
        for name in _internal_fields(type(t)):
            found.update(s for s in _strings(getattr(t, name)) if len(s) >= 4)
    for sink in config.metrics:
        found.update(s for s in _strings(sink) if len(s) >= 4)
    return sorted(found, key=len, reverse=True)


_cache: tuple[Config, list[str]] | None = None
_cache_lock = threading.Lock()


def sensitive_strings(config: Config) -> list[str]:
    """Every configured value that must never reach a public page, longest first.

    Computed once per config object (a reload makes a new one): with 10,000
    targets it takes ~0.2 s, too much for every status page view.
    """
    global _cache
    with _cache_lock:
        if _cache is not None and _cache[0] is config:
            return _cache[1]
    found = _collect(config)
    with _cache_lock:
        _cache = (config, found)
    return found


def redact(text: str, sensitive: Iterable[str] = ()) -> str:
    """``text`` with configured secrets/addresses and anything address-like replaced by MASK."""
    if not text:
        return text  # nothing to scan: at 10,000 targets the scan below costs ~1 ms
    for s in sensitive:
        if s and s in text:
            text = text.replace(s, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(MASK, text)
    return text
