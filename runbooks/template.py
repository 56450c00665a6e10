"""Values in runbook steps: ``{{ params.campaign }}``, ``{{ incident.cause }}``, rendered safely.

A runbook's text fields are Jinja2 templates rendered by a **sandboxed**
environment with nothing to reach: no loader (``include``, ``import`` and
``extends`` find no file), no globals (``range``, ``lipsum``, ``cycler``...),
no calls at all (``{{ x.upper() }}`` is refused, so no method of any value
can run), no attribute starting with ``_`` (``''.__class__`` is refused by
the sandbox), and an undefined name is an error, not an empty string.
Filters stay: ``{{ incident.cause | default('unknown') | truncate(40) }}``.

Values rendered into a shell command (``ssh``, ``shell`` steps) are
shell-quoted one by one (``finalize``): whatever a SIP peer put in a reason
phrase, ``; touch /tmp/pwned`` reaches the shell as one quoted word. The
command's own text, written by whoever wrote the runbook, is not quoted.

Templates are parsed when the config loads (``check``), so a syntax error is
a file:line:key error, not a failure at 3 a.m.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError


class TemplateRefused(ValueError):
    """A template that cannot be rendered: its syntax, a name it does not know, something
    the sandbox refuses. The message is one sentence, for the run's log."""


class _NoCalls(ImmutableSandboxedEnvironment):
    """The sandbox, minus every call: a runbook's value is data, never code."""

    def is_safe_callable(self, obj: Any) -> bool:
        return False


def _environment(finalize: Any = None) -> _NoCalls:
    env = _NoCalls(
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    env.globals.clear()
    return env


def _shell_word(value: Any) -> str:
    return shlex.quote("" if value is None else str(value))


_TEXT = _environment()
_SHELL = _environment(_shell_word)


def _refused(exc: Exception) -> TemplateRefused:
    if isinstance(exc, SecurityError):
        return TemplateRefused(f"template refused: {exc}")
    if isinstance(exc, TypeError) and "no loader" in str(exc):
        return TemplateRefused(
            "template refused: a template cannot read files (include, import, extends)"
        )
    if isinstance(exc, TemplateError):
        where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
        return TemplateRefused(f"template: {exc.message or exc}{where}")
    return TemplateRefused(f"template: {type(exc).__name__}: {exc}")


def check(text: str) -> str:
    """Parse ``text`` as a template; raises ``TemplateRefused`` with the syntax error.
    Returns ``text`` (a pydantic validator)."""
    try:
        _TEXT.parse(text)
    except TemplateError as exc:
        raise _refused(exc) from None
    return text


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


def render(text: str, values: Mapping[str, Any], *, shell: bool = False) -> str:
    """``text`` with ``values`` filled in; every value shell-quoted when ``shell``."""
    if not is_template(text):
        return text
    env = _SHELL if shell else _TEXT
    try:
        return env.from_string(text).render(dict(values))
    except Exception as exc:  # the sandbox and StrictUndefined raise several kinds
        raise _refused(exc) from None


def render_value(value: Any, values: Mapping[str, Any], *, shell: bool = False) -> Any:
    """Every string inside ``value`` (dicts and lists walked) rendered."""
    if isinstance(value, str):
        return render(value, values, shell=shell)
    if isinstance(value, Mapping):
        return {k: render_value(v, values, shell=shell) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [render_value(v, values, shell=shell) for v in value]
    return value
