"""Make equal parts of a validated config one shared object.

A site with thousands of targets repeats the same values in every one of
them: default TLS and DNS options, the list of warn codes, the same tags, the
same few strings. Validation builds a separate copy of each for every target
(about 4 KB of objects per SIP target), which at 10,000 targets was a tenth
of the engine's resident memory (bench/sip_probe_throughput). Config models
are frozen, so equal parts can be one object: ``share_equal_parts`` replaces
each value by the first equal one it met, bottom up, and ``pickle`` (the
isolated loader) keeps that sharing on the way to the engine.

"Equal" is structural and includes the exact type: ``Secret("x")`` and
``"x"`` stay apart, so masking in ``repr`` is unchanged; ``1``, ``1.0`` and
``True`` stay apart too. A value whose type is not known here is left as it
is and makes its containers unshared.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from pydantic import BaseModel

_SCALARS = (str, int, float, bool, type(None))

Key = Hashable | None
"""A structural key; None for a value that must not be shared."""


def share_equal_parts(model: BaseModel) -> None:
    """Replace, in place, every equal sub-value of ``model`` by one shared object.

    ``model`` itself stays the same object (its fields may be replaced).
    """
    _Sharer().model_fields_of(model)


class _Sharer:
    def __init__(self) -> None:
        self.pool: dict[Hashable, Any] = {}

    def shared(self, value: Any) -> tuple[Any, Key]:
        """``value`` or an equal object met before, and the structural key of it."""
        if isinstance(value, _SCALARS):
            key: Key = (type(value), value)
        elif isinstance(value, BaseModel):
            key = self.model_fields_of(value)
            if key is None:  # unshareable (a field of a type not known here): keep it apart
                return value, None
        elif type(value) in (list, tuple):
            items = [self.shared(v) for v in value]
            value = type(value)(v for v, _ in items)
            if any(k is None for _, k in items):
                return value, None
            key = (type(value), tuple(k for _, k in items))
        elif type(value) is dict:
            pairs = [(self.shared(k), self.shared(v)) for k, v in value.items()]
            value = {k: v for (k, _), (v, _) in pairs}
            if any(k is None or vk is None for (_, k), (_, vk) in pairs):
                return value, None
            key = (dict, tuple((k, vk) for (_, k), (_, vk) in pairs))
        else:
            return value, None
        return self.pool.setdefault(key, value), key

    def model_fields_of(self, model: BaseModel) -> Key:
        """Share the fields of ``model``; its own key (None if a field is unshareable)."""
        fields = model.__dict__
        keys = []
        for name, value in fields.items():
            new, key = self.shared(value)
            if new is not value:
                fields[name] = new  # frozen model: around __setattr__, as mask_in_model does
            keys.append((name, key))
        fields_set = model.__pydantic_fields_set__
        set_key = (frozenset, frozenset(fields_set))
        object.__setattr__(
            model, "__pydantic_fields_set__", self.pool.setdefault(set_key, fields_set)
        )
        if getattr(model, "__pydantic_extra__", None) or getattr(
            model, "__pydantic_private__", None
        ):
            return None
        if any(k is None for _, k in keys):
            return None
        return (type(model), tuple(keys), set_key)
