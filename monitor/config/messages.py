"""Turning pydantic validation errors into one human line each, at the right key path.

Pydantic's locations contain union tags (``('targets', 0, 'sip', 'uri')``) and
its messages talk about "inputs"; operators want ``targets[0].uri: required``.
We walk the model types along each location to drop tags and to know the
model at the error (for the list of allowed keys) and the field (for the
values a ``Literal`` allows).
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Union

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from core.config import FieldValueError, TagKey, TargetId
from monitor.config.errors import KeyPath


@dataclass(frozen=True)
class Translated:
    path: KeyPath
    message: str


def _pattern_of(annotated: Any) -> str | None:
    for meta in getattr(annotated, "__metadata__", ()):
        pattern = getattr(meta, "pattern", None)
        if pattern:
            return str(pattern)
    return None


# Patterns of the shared constrained strings → what to tell the operator.
_PATTERN_HINTS = {
    _pattern_of(TargetId): (
        "must be lower-case letters, digits and dashes, like trunk-a "
        "(at most 64 characters, not starting or ending with a dash)"
    ),
    _pattern_of(TagKey): (
        "must be a name of letters, digits and _, starting with a letter or _ "
        "(at most 63 characters)"
    ),
}


def _strip(tp: Any) -> Any:
    """Remove Annotated and Optional wrappers."""
    while True:
        origin = typing.get_origin(tp)
        if origin is typing.Annotated:
            tp = typing.get_args(tp)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _union_member_for_tag(members: tuple[Any, ...], tag: str) -> Any | None:
    for member in members:
        member = _strip(member)
        if _is_model(member):
            kind = member.model_fields.get("kind")
            if (
                kind is not None
                and typing.get_origin(kind.annotation) is Literal
                and tag in typing.get_args(kind.annotation)
            ):
                return member
        if getattr(member, "__name__", None) == tag:
            return member
    return None


# Pydantic's tags for union members that are not models: 'str', 'int',
# 'function-after[...]', 'list[...]', 'nullable[...]'.
_PYDANTIC_TAG_RE = re.compile(r"^[a-z_-]+(\[.*\])?$")


@dataclass
class _Walk:
    path: list[str | int]
    model: type[BaseModel] | None
    """The model the last path part is a key of (for "allowed keys")."""
    field_type: Any
    """The type at the end of the path (None when unknown)."""


def walk(root: type[BaseModel], loc: tuple[str | int, ...]) -> _Walk:
    """Follow ``loc`` through the types from ``root``, dropping union tags."""
    path: list[str | int] = []
    tp: Any = root
    model: type[BaseModel] | None = None
    for part in loc:
        if part == "[key]":  # pydantic marks an error in a dict key this way
            continue
        tp = _strip(tp)
        origin = typing.get_origin(tp)
        if origin in (Union, types.UnionType) and isinstance(part, str):
            member = _union_member_for_tag(typing.get_args(tp), part)
            if member is not None or _PYDANTIC_TAG_RE.match(part):
                tp = member
                continue
        if _is_model(tp) and isinstance(part, str):
            model = tp
            field = _field(tp, part)
            tp = field.annotation if field is not None else None
            if field is not None and field.metadata:
                tp = typing.Annotated[(tp, *field.metadata)]
        elif origin in (list, tuple, set, frozenset) and isinstance(part, int):
            args = typing.get_args(tp)
            tp = args[0] if args else None
        elif origin is dict:
            args = typing.get_args(tp)
            tp = args[1] if len(args) == 2 else None
        else:
            tp = None
        path.append(part)
    return _Walk(path, model, tp)


def _field(model: type[BaseModel], key: str) -> FieldInfo | None:
    """The field written as ``key`` in YAML: its name, or its alias (``for`` for ``for_``)."""
    field = model.model_fields.get(key)
    if field is not None and field.alias in (None, key):
        return field
    return next((f for f in model.model_fields.values() if f.alias == key), None)


def _keys(model: type[BaseModel]) -> list[str]:
    """The keys a model allows, as written in YAML."""
    return sorted(field.alias or name for name, field in model.model_fields.items())


def _choices(field_type: Any, fallback: str) -> list[str]:
    tp = _strip(field_type)
    if typing.get_origin(tp) is Literal:
        return [str(v) for v in typing.get_args(tp)]
    return re.findall(r"'([^']*)'", fallback)


def _known_kinds(expected: str) -> str:
    return ", ".join(re.findall(r"'([^']*)'", expected))


def translate(root: type[BaseModel], error: ErrorDetails, secret: bool = False) -> Translated:
    """One pydantic error → the key path to report it at and a human message.

    ``secret``: the value at this path came from ``${...}``; never echo it.
    """
    kind = error["type"]
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    w = walk(root, tuple(error["loc"]))
    path: list[str | int] = list(w.path)
    given = error.get("input")

    def shown(value: Any) -> str:
        return "'***'" if secret else repr(value)

    if kind == "missing":
        message = "required"
    elif kind == "extra_forbidden" and hasattr(w.model, "unknown_key_message") and path:
        # A model whose keys come from a registry (a rule's action kinds) says
        # which kinds this build has instead of only listing its keys.
        message = w.model.unknown_key_message(str(path[-1]))
    elif kind == "extra_forbidden":
        allowed = _keys(w.model) if w.model is not None else []
        message = "unknown key; allowed: " + ", ".join(allowed) if allowed else "unknown key"
    elif kind == "union_tag_invalid" and isinstance(given, dict) and given.get("kind") is None:
        path.append("kind")  # ``kind:`` written with no value
        message = "required; known kinds: " + _known_kinds(str(ctx.get("expected_tags", "")))
    elif kind == "union_tag_invalid":
        path.append("kind")
        message = f"unknown kind {shown(ctx.get('tag'))}; known kinds: " + _known_kinds(
            str(ctx.get("expected_tags", ""))
        )
    elif kind == "union_tag_not_found":
        path.append("kind")
        expected = ctx.get("expected_tags") or ""
        kinds = _known_kinds(str(expected)) or _kinds_of(root, w.path)
        message = "required; known kinds: " + kinds if kinds else "required"
    elif kind == "literal_error":
        message = "must be one of: " + ", ".join(_choices(w.field_type, ctx.get("expected", "")))
    elif kind in ("value_error", "assertion_error"):
        cause = ctx.get("error")
        if isinstance(cause, FieldValueError):
            path.append(cause.field)
        message = str(cause) if cause is not None else error["msg"]
    elif kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern", ""))
        message = _PATTERN_HINTS.get(pattern, f"must match the pattern {pattern}")
    elif kind in ("string_type", "string_sub_type"):
        if isinstance(given, bool | int | float):
            message = "must be text; put the value in quotes"
        else:
            message = "must be text"
    elif kind in ("int_type", "int_parsing", "int_from_float"):
        message = "must be a whole number"
    elif kind in ("float_type", "float_parsing"):
        message = "must be a number"
    elif kind in ("bool_type", "bool_parsing"):
        message = "must be true or false"
    elif kind in ("list_type", "tuple_type", "set_type"):
        message = "must be a list (lines starting with '- ')"
    elif kind in ("dict_type", "model_type", "model_attributes_type"):
        message = "must be a mapping of keys to values (key: value)"
    elif kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        words = {
            "greater_than": ("greater than", "gt"),
            "greater_than_equal": ("at least", "ge"),
            "less_than": ("less than", "lt"),
            "less_than_equal": ("at most", "le"),
        }[kind]
        message = f"must be {words[0]} {ctx.get(words[1])}"
    elif kind in ("too_short", "string_too_short"):
        message = f"must have at least {ctx.get('min_length')} " + (
            "characters" if kind.startswith("string") else "items"
        )
    elif kind in ("too_long", "string_too_long"):
        message = f"must have at most {ctx.get('max_length')} " + (
            "characters" if kind.startswith("string") else "items"
        )
    elif kind == "frozen_instance":
        message = "cannot be changed"
    else:
        message = _lower_first(error["msg"])
    return Translated(tuple(path), message)


def _kinds_of(root: type[BaseModel], path: list[str | int]) -> str:
    """Known kinds for a union-tag error whose context does not list them."""
    tp: Any = root
    for part in path:
        tp = _strip(tp)
        if _is_model(tp) and isinstance(part, str):
            field = tp.model_fields.get(part)
            tp = field.annotation if field else None
        elif typing.get_origin(tp) is list:
            tp = typing.get_args(tp)[0]
    tp = _strip(tp)
    kinds: list[str] = []
    for member in typing.get_args(tp):
        member = _strip(member)
        if _is_model(member) and "kind" in member.model_fields:
            kinds.extend(str(a) for a in typing.get_args(member.model_fields["kind"].annotation))
    return ", ".join(kinds)


def _lower_first(text: str) -> str:
    text = text.removeprefix("Value error, ")
    return text[:1].lower() + text[1:]
