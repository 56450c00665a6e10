"""A small path syntax for picking values out of a JSON document (pure, no eval).

Grammar — a path is steps separated by dots or brackets::

    data.queues[*].waiting      key "data", key "queues", every element, key "waiting"
    stats[0].agents             an array index (0-based; negative counts from the end)
    queues[*]                   every element of an array, or every value of an object
    ["queue.name"].count        a key that holds dots, spaces or brackets, in double quotes

A bare key is letters, digits, ``_``, ``-``, ``$`` and ``@`` (no dots). ``[*]``
over an object yields its values in document order, each remembering its key
(``Match.key``), so ``{"sales": {...}, "support": {...}}`` can name queues by
key. Nothing else is supported: no filters, no slices, no functions — a path
is data, never code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any


class Wildcard:
    """``[*]``: every element."""

    def __repr__(self) -> str:
        return "[*]"


WILDCARD = Wildcard()
Step = str | int | Wildcard

_KEY = re.compile(r"[A-Za-z0-9_$@-]+")
_INDEX = re.compile(r"\[(-?\d+)\]")


class PathSyntaxError(ValueError):
    """The path text does not follow the grammar; the message says where."""


class PathMissing(LookupError):
    """The document has nothing at the path; the message names the step that failed."""


@dataclass(frozen=True)
class Match:
    """One value a path reached, where it was (``data.queues[2]``) and its key under ``[*]``."""

    value: Any
    where: str
    key: str | None = None


def parse(path: str) -> tuple[Step, ...]:
    """Path text -> steps; PathSyntaxError with the position of the first bad character."""
    steps: list[Step] = []
    i, n = 0, len(path)
    if not path.strip():
        raise PathSyntaxError("empty path")
    expect_key = True  # at the start and after a dot a key must follow
    while i < n:
        ch = path[i]
        if ch == "[":
            if path.startswith("[*]", i):
                steps.append(WILDCARD)
                i += 3
            elif m := _INDEX.match(path, i):
                steps.append(int(m.group(1)))
                i = m.end()
            elif path.startswith('["', i):
                end = path.find('"]', i + 2)
                if end < 0:
                    raise PathSyntaxError(f'unclosed ["…"] at position {i + 1} of {path!r}')
                steps.append(path[i + 2 : end])
                i = end + 2
            else:
                raise PathSyntaxError(
                    f"at position {i + 1} of {path!r}: brackets hold a number, * or a quoted key"
                )
            expect_key = False
        elif ch == ".":
            if expect_key:
                raise PathSyntaxError(f"at position {i + 1} of {path!r}: a key must come first")
            i += 1
            expect_key = True
            if i >= n:
                raise PathSyntaxError(f"{path!r} ends with a dot")
        elif m := _KEY.match(path, i):
            if not expect_key:
                raise PathSyntaxError(f"at position {i + 1} of {path!r}: a dot is missing")
            steps.append(m.group(0))
            i = m.end()
            expect_key = False
        else:
            raise PathSyntaxError(f"unexpected {ch!r} at position {i + 1} of {path!r}")
    return tuple(steps)


def has_wildcard(steps: tuple[Step, ...]) -> bool:
    return any(isinstance(s, Wildcard) for s in steps)


def _show(step: Step) -> str:
    if isinstance(step, Wildcard):
        return "[*]"
    if isinstance(step, int):
        return f"[{step}]"
    return f".{step}" if _KEY.fullmatch(step) else f"[{json.dumps(step)}]"


def _join(where: str, step: Step) -> str:
    return (where + _show(step)).lstrip(".")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    return "a number"


def find(document: Any, steps: tuple[Step, ...], where: str = "") -> list[Match]:
    """Every value ``steps`` reach from ``document``.

    A missing key or index raises PathMissing naming where it was looked for;
    ``[*]`` over an empty array gives no matches (not an error).
    """
    current = [Match(document, where)]
    for step in steps:
        following: list[Match] = []
        for m in current:
            value = m.value
            if isinstance(step, Wildcard):
                if isinstance(value, list):
                    following.extend(Match(v, f"{m.where}[{i}]") for i, v in enumerate(value))
                elif isinstance(value, dict):
                    following.extend(
                        Match(v, _join(m.where, str(k)), str(k)) for k, v in value.items()
                    )
                else:
                    raise PathMissing(f"{m.where or 'the document'} is {_kind(value)}, not a list")
            elif isinstance(step, int):
                if not isinstance(value, list):
                    raise PathMissing(
                        f"{m.where or 'the document'} is {_kind(value)}, not an array"
                    )
                if not -len(value) <= step < len(value):
                    raise PathMissing(
                        f"{m.where or 'the document'} has {len(value)} elements, no [{step}]"
                    )
                following.append(Match(value[step], f"{m.where}[{step}]", m.key))
            else:
                if not isinstance(value, dict):
                    raise PathMissing(
                        f"{m.where or 'the document'} is {_kind(value)}, not an object "
                        f"(looking for {step!r})"
                    )
                if step not in value:
                    raise PathMissing(f"{m.where or 'the document'} has no {step!r}")
                following.append(Match(value[step], _join(m.where, step), m.key))
        current = following
    return current


def find_one(document: Any, steps: tuple[Step, ...], where: str = "") -> Any:
    """The single value a wildcard-free path reaches."""
    return find(document, steps, where)[0].value


def text(steps: tuple[Step, ...]) -> str:
    """Steps back to path text (for messages)."""
    return "".join(_show(s) for s in steps).lstrip(".")
