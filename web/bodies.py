"""Strict JSON request bodies for the API: one small pydantic model per body.

``parse_body(Model)`` reads the request: malformed JSON, a body that is not
an object, an unknown field or a value of the wrong type is a ``BodyError``
(400) whose reason names the field; a missing body where one is needed is a
400 too, and a body sent as anything but JSON a 415. The models are the
documentation as well: ``web.openapi`` publishes their JSON schema.

Values are strict (``"5"`` is not a number, ``1`` is not text) and text
carries no control characters but tab and newline (PostgreSQL refuses a
NUL, and no note needs a bell).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, TypeVar

from flask import request
from pydantic import AfterValidator, ConfigDict, Field, ValidationError

from core.config import StrictModel

MAX_ID = 10**18 - 1
"""The largest id a path or body may name (ids are 64-bit in the state DB)."""
MAX_ERRORS = 3
"""Reasons one 400 lists at most (the first ones; fix those and send again)."""

B = TypeVar("B", bound="Body")


class BodyError(ValueError):
    """A request body the API cannot take; ``status`` is 400 or 415."""

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class Body(StrictModel):
    """Base of every request body: unknown fields are errors, values are not coerced."""

    model_config = ConfigDict(strict=True)


_CONTROLS = "\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f"
PLAIN_PATTERN = f"^[^{_CONTROLS}]*$"
"""Text without control characters but tab and newlines (for the JSON schema)."""
VISIBLE_PATTERN = f"^[^{_CONTROLS}]*[^\\s{_CONTROLS}][^{_CONTROLS}]*$"
"""The same, with at least one character that is not white space."""


def _no_controls(value: str) -> str:
    if any((ord(c) < 32 and c not in "\t\n\r") or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


def _visible(value: str) -> str:
    if not _no_controls(value).strip():
        raise ValueError("must not be empty")
    return value


PLAIN = (AfterValidator(_no_controls), Field(json_schema_extra={"pattern": PLAIN_PATTERN}))
"""Put on an optional text field: ``Annotated[str, StringConstraints(max_length=N), *PLAIN]``."""
VISIBLE = (AfterValidator(_visible), Field(json_schema_extra={"pattern": VISIBLE_PATTERN}))
"""Put on a text field that must say something (not only white space)."""


Id = Annotated[int, Field(ge=1, le=MAX_ID)]
"""An incident, silence or maintenance window id."""


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:  # valid JSON, but which one would the caller mean?
            raise BodyError(f"field {key!r} is given twice")
        out[key] = value
    return out


def load_json(raw: bytes) -> Any:
    """The JSON value of ``raw``, or ``BodyError`` saying what is wrong with it."""
    try:
        doc = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(
            doc, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys
        )
    except json.JSONDecodeError as exc:
        raise BodyError(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise BodyError("the body is not valid JSON: nested too deeply") from None
    except BodyError:
        raise
    except ValueError as exc:  # NaN, Infinity, an integer of thousands of digits
        raise BodyError(f"the body is not valid JSON: {exc}") from None


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def describe(exc: ValidationError, model: type[Body]) -> str:
    """The first few errors, each naming its field: ``text: Input should be a valid string``."""
    reasons = []
    for error in exc.errors(include_url=False)[:MAX_ERRORS]:
        where = _where(tuple(error["loc"]))
        kind = error["type"]
        if kind == "extra_forbidden":
            allowed = ", ".join(model.model_fields) if len(error["loc"]) == 1 else ""
            reason = f"{where}: unknown field" + (f"; allowed: {allowed}" if allowed else "")
        elif kind == "missing":
            reason = f"{where}: required"
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            reason = f"{where}: {message}" if where else message
        reasons.append(reason)
    return "; ".join(reasons)


def parse_body(model: type[B], *, required: bool = True) -> B:
    """The request's JSON body as ``model``; with ``required=False`` no body means ``model()``."""
    raw = request.get_data(cache=True)
    if not raw.strip():
        if required:
            fields = ", ".join(model.model_fields)
            raise BodyError(f"this call needs a JSON object body with {fields}")
        return model()
    if request.mimetype != "application/json":
        raise BodyError(
            f"send the body as application/json, not {request.mimetype or 'no content type'}",
            415,
        )
    data = load_json(raw)
    if not isinstance(data, dict):
        raise BodyError(f"the body must be a JSON object, not {_json_kind(data)}")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BodyError(describe(exc, model)) from None


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"
