"""InfluxDB line protocol: one encoder for every InfluxDB sink.

Both sinks (v1 ``/write`` and the v2 write API) send the bytes this module
makes, so the same MetricPoint lands as the same point whichever server
stores it. The rules are deterministic — the same point always gives the
same line, or the same reason it was rejected:

- Tags are sorted by key (InfluxDB's preferred order, and it makes lines
  comparable); fields are sorted too.
- Measurement: commas and spaces are escaped. Tag keys, tag values and field
  keys: commas, equals signs and spaces are escaped. String field values:
  double quotes and backslashes are escaped.
- A backslash inside a name or tag is replaced by ``/``: InfluxDB 1.x reads
  ``\\`` in a tag as an escaped second backslash, 2.x as one backslash, so no
  spelling means the same thing to both.
- Line breaks and tabs inside names, tags and string fields become one space
  each: a line break ends a line in line protocol, and not every server
  accepts one inside a quoted string.
- A tag with an empty key or value is left out (InfluxDB has no empty tags).
- A field that InfluxDB cannot store (NaN, ±inf, an integer outside int64,
  an empty key, the reserved key ``time``) is left out and the reason noted;
  a point with no field left, or no measurement, is rejected with a reason.
- Names and tag values longer than ``MAX_NAME_BYTES`` and string fields
  longer than ``MAX_STRING_BYTES`` are cut at a character boundary.
- ``int`` is an integer field (``5i``), ``float`` a float (``5.0``), ``bool``
  ``true``/``false``. Timestamps are nanoseconds; ``time_ns == 0`` sends no
  timestamp (the server's clock).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from core.observation import FieldValue, MetricPoint

MAX_NAME_BYTES = 1024
"""Longest measurement, tag key, tag value or field key kept (bytes, UTF-8)."""
MAX_STRING_BYTES = 64 * 1024 - 1
"""Longest string field value kept (bytes, UTF-8): InfluxDB's 64 KiB limit."""

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

# Whitespace that would end a line or confuse a parser, replaced in every part.
# (translate maps each character once, so a line break maps straight to an escaped space.)
_CONTROL = "\n\r\t"
_MEASUREMENT = str.maketrans({**dict.fromkeys(_CONTROL, "\\ "), "\\": "/", ",": "\\,", " ": "\\ "})
_KEY = str.maketrans(
    {**dict.fromkeys(_CONTROL, "\\ "), "\\": "/", ",": "\\,", "=": "\\=", " ": "\\ "}
)
_STRING = str.maketrans({**dict.fromkeys(_CONTROL, " "), "\\": "\\\\", '"': '\\"'})


class EncodeError(ValueError):
    """A point cannot be written at all (no measurement, no storable field)."""


@dataclass(frozen=True, slots=True)
class Encoded:
    """One encoded point: its line (without newline) and what was left out of it."""

    line: bytes
    notes: tuple[str, ...] = ()


def _cut(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` UTF-8 bytes without splitting a character."""
    if len(text) * 4 <= limit:  # no character is longer than 4 bytes: nothing to cut
        return text
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore")


def escape_measurement(name: str) -> str:
    return _cut(name, MAX_NAME_BYTES).translate(_MEASUREMENT)


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key."""
    return _cut(text, MAX_NAME_BYTES).translate(_KEY)


def format_field_value(value: FieldValue) -> str | None:
    """The line-protocol text of one field value, or None if InfluxDB cannot store it."""
    # bool before int: bool is a subclass of int.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if _INT64_MIN <= value <= _INT64_MAX:
            return f"{value}i"
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return repr(value)
        return None
    if isinstance(value, str):
        return '"' + _cut(value, MAX_STRING_BYTES).translate(_STRING) + '"'
    return None


def _why_unstorable(value: object) -> str:
    if isinstance(value, float):
        return f"{value!r} is not a finite number"
    if isinstance(value, int):
        return "integer outside the 64-bit range"
    return f"unsupported type {type(value).__name__}"


# The same few thousand series repeat every interval, so the escaped
# "measurement,tags" prefix and escaped field keys are cached; the caches are
# simply emptied when they grow past a bound (no LRU bookkeeping on the hot path).
_CACHE_LIMIT = 50_000
_prefix_cache: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
_field_key_cache: dict[str, str] = {}


def _prefix(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,tag=value,...`` with tags sorted and escaped."""
    cache_key = (measurement, tuple(tags.items()))
    prefix = _prefix_cache.get(cache_key)
    if prefix is None:
        parts = [escape_measurement(measurement)]
        for key in sorted(tags):
            value = tags[key]
            if key and value:
                parts.append(f",{escape_key(key)}={escape_key(str(value))}")
        prefix = "".join(parts)
        if len(_prefix_cache) >= _CACHE_LIMIT:
            _prefix_cache.clear()
        _prefix_cache[cache_key] = prefix
    return prefix


def _field_key(key: str) -> str | None:
    """The escaped field key, or None for a key InfluxDB cannot take."""
    try:
        return _field_key_cache[key]
    except KeyError:
        pass
    escaped = escape_key(key) if key and key != "time" else None
    if len(_field_key_cache) >= _CACHE_LIMIT:
        _field_key_cache.clear()
    _field_key_cache[key] = escaped
    return escaped


def _bad_key_note(key: str) -> str:
    if not key:
        return "field with an empty name left out"
    return f"field {key!r} left out (reserved by InfluxDB)"


def _fields(fields: Mapping[str, FieldValue], notes: list[str]) -> str:
    parts = []
    for key in sorted(fields):
        escaped = _field_key(key)
        if escaped is None:
            notes.append(_bad_key_note(key))
            continue
        value = fields[key]
        kind = type(value)
        # Fast paths for the exact common types; subclasses and strings go the long way.
        if kind is float and value - value == 0.0:  # finite: inf - inf and nan - nan are nan
            parts.append(f"{escaped}={value!r}")
            continue
        if kind is int and _INT64_MIN <= value <= _INT64_MAX:
            parts.append(f"{escaped}={value}i")
            continue
        text = format_field_value(value)
        if text is None:
            notes.append(f"field {key!r} left out: {_why_unstorable(value)}")
            continue
        parts.append(f"{escaped}={text}")
    return ",".join(parts)


def _encode(point: MetricPoint, notes: list[str]) -> str:
    if not point.measurement:
        raise EncodeError("point has no measurement")
    mark = len(notes)
    fields = _fields(point.fields, notes)
    if not fields:
        reason = "; ".join(notes[mark:]) if len(notes) > mark else "no fields"
        del notes[mark:]
        raise EncodeError(f"{point.measurement}: no field can be written ({reason})")
    if point.time_ns:
        return f"{_prefix(point.measurement, point.tags)} {fields} {int(point.time_ns)}"
    return f"{_prefix(point.measurement, point.tags)} {fields}"


def encode_point(point: MetricPoint) -> Encoded:
    """Encode one point; EncodeError if nothing of it can be written."""
    notes: list[str] = []
    line = _encode(point, notes)
    return Encoded(line.encode(), tuple(notes))


@dataclass(frozen=True, slots=True)
class EncodedBatch:
    """Lines ready to send, and the points that could not be encoded (with reasons)."""

    lines: list[bytes]
    rejected: list[tuple[MetricPoint, str]]
    notes: list[str]


def encode_batch(points: Iterable[MetricPoint]) -> EncodedBatch:
    """Encode many points; never raises for a bad point."""
    lines: list[bytes] = []
    rejected: list[tuple[MetricPoint, str]] = []
    notes: list[str] = []
    append = lines.append
    for point in points:
        try:
            append(_encode(point, notes).encode())
        except EncodeError as exc:
            rejected.append((point, str(exc)))
    return EncodedBatch(lines, rejected, notes)


def join_lines(lines: Iterable[bytes]) -> bytes:
    """A request body: lines separated by newlines."""
    return b"\n".join(lines)
