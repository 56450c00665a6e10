"""The ``ami`` step: one Asterisk manager (AMI) action, its ``Response: Success`` checked.

```yaml
- kind: ami
  address: "10.0.0.5:5038"
  username: dialwatch
  secret: "${AMI_SECRET}"
  action: DBPut
  headers: {Family: route, Key: "{{ params.campaign }}", Val: backup}
```

The step logs in on a session of its own (the dialer probe's client,
``probes.dialer.ami_client``, with ``Events: off``), sends the action,
reads its ``Response``, logs off and closes — a step is rare, and a session
of its own never waits behind a probe's poll nor leaves one half-read.
``Response: Error`` is a failure with Asterisk's ``Message:`` that is not
tried again (the same action gets the same refusal); a login that is
refused is too. A connection refused, a timeout or a session dropped
mid-answer may be tried again.

Only the action's ``Response`` message is read: a list action
(``CoreShowChannels``, ``Status``) succeeds with its first message, and its
events are not collected. ``Command`` needs Asterisk 14 or later (the answer
as ``Output:`` lines; older versions answer ``Response: Follows`` with raw
text, which is not AMI framing).
"""

from __future__ import annotations

import contextlib
import re
import time
from typing import Literal

from pydantic import Field, field_validator

from core.config import SECRET_KEY_RE
from core.net.address import split_host_port
from core.observation import ErrorClass
from probes.dialer.ami_client import AmiConnection, AmiError, Message, encode, get
from runbooks import template
from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult, short

DEFAULT_PORT = 5038
ACTION_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
RESERVED = frozenset({"action", "actionid"})
"""Headers the client writes itself."""
SESSION_ACTIONS = frozenset({"login", "logoff", "challenge"})
"""Actions the step does itself, or that would end its session."""
HeaderValue = str | bool | int | float


def _address(value: str) -> tuple[str, int]:
    if ":" not in value:
        return value, DEFAULT_PORT
    return split_host_port(value)


def _text(value: HeaderValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _bad_header(key: str, value: str) -> str | None:
    if key.lower() in RESERVED:
        return f"header {key!r} is written by the step itself (use action:)"
    try:
        encode("Check", "check", {key: value})
    except ValueError as exc:
        return str(exc)
    return None


class AmiStepConfig(StepConfig):
    """Send one AMI action and expect ``Response: Success``."""

    kind: Literal["ami"]
    address: str
    """``host:port`` of Asterisk's manager interface (``manager.conf`` ``bindaddr``/``port``);
    the port defaults to 5038."""
    username: str
    """The ``[user]`` in ``manager.conf``; it needs the write class of the action
    (``system`` for Reload and DBPut, ``call`` or ``originate`` for Originate, ``command``)."""
    secret: str
    """Its ``secret``; write it as ``${file:…}`` or ``${ENV}``. Never shown."""
    action: str
    """The AMI action, e.g. ``Reload``, ``DBPut``, ``Originate``, ``Command``."""
    headers: dict[str, HeaderValue] = Field(default_factory=dict)
    """The action's headers (``Family``/``Key``/``Val``; ``Module``; ``Command``); values are
    templates. ``true``/``false`` are sent as such."""

    TEMPLATED = ("headers",)

    @field_validator("address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        _address(value)
        return value

    @field_validator("username", "secret")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        if any(c in value for c in "\r\n"):
            raise ValueError("must not contain a line break")
        return value

    @field_validator("action")
    @classmethod
    def _action(cls, value: str) -> str:
        if not ACTION_RE.match(value):
            raise ValueError("must be an AMI action name such as Reload, DBPut or Originate")
        if value.lower() in SESSION_ACTIONS:
            raise ValueError(f"{value} is done by the step itself; name the action to send")
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, HeaderValue]) -> dict[str, HeaderValue]:
        for key, item in value.items():
            text = _text(item)
            if why := _bad_header(key, "" if template.is_template(text) else text):
                raise ValueError(why)
        return value


def _lines(message: Message) -> str:
    """The answer as ``Key: Value`` lines (ActionID left out; ``Output`` one line each)."""
    out = []
    for key, value in message.items():
        if key.lower() == "actionid":
            continue
        out.extend(f"{key}: {line}" for line in value.split("\n"))
    return "\n".join(out)


class AmiStep:
    def __init__(self, config: AmiStepConfig) -> None:
        self.config = config
        self.host, self.port = _address(config.address)

    def _headers(self) -> dict[str, str]:
        return {k: _text(v) for k, v in self.config.headers.items()}

    def plan(self) -> list[str]:
        c = self.config
        shown = " ".join(
            f"{k}: {'***' if SECRET_KEY_RE.search(k) else v}" for k, v in self._headers().items()
        )
        where = f"{self.host}:{self.port}"
        return [
            f"ami {where} as {c.username!r}: Action: {c.action}" + (f" {shown}" if shown else "")
        ]

    async def run(self, ctx: StepContext) -> StepResult:
        c = self.config
        headers = self._headers()
        for key, value in headers.items():
            if why := _bad_header(key, value):  # a rendered value with a line break
                raise StepFailed(why, retry=False)
        # The client's timeouts are durations: spend what is left of the step's deadline.
        deadline = time.monotonic() + ctx.remaining()

        def left() -> float:
            return max(0.05, deadline - time.monotonic())

        conn: AmiConnection | None = None
        try:
            conn = await AmiConnection.open(self.host, self.port, left())
            await conn.login(c.username, c.secret, left())
            reply = await conn.request(c.action, headers, left())
        except AmiError as exc:
            if conn is not None:
                await conn.close()
            # A refused login stays refused; a dropped or silent peer may be back soon.
            detail = exc.detail.replace(c.secret, "***") if len(c.secret) >= 4 else exc.detail
            raise StepFailed(detail, retry=exc.error_class is not ErrorClass.AUTH) from None
        except BaseException:
            # Cancelled at the step's timeout mid-conversation: no Logoff, just close.
            if conn is not None:
                conn.abort()
            raise
        await self._logoff(conn)
        output = _lines(reply)
        response = get(reply, "Response")
        message = get(reply, "Message")
        if response.lower() == "success":
            said = f": {short(message, 200)}" if message else ""
            return StepResult(f"AMI {c.action}: Success{said}", output, dict(reply))
        if response.lower() == "error":
            reason = message or "no reason given"
            raise StepFailed(f"AMI refused {c.action}: {reason}", output=output, retry=False)
        raise StepFailed(
            f"AMI answered {c.action} with Response: {short(response, 60)}, not Success"
            + (f" ({short(message, 200)})" if message else ""),
            output=output,
            retry=False,
        )

    @staticmethod
    async def _logoff(conn: AmiConnection) -> None:
        """A polite Logoff (Asterisk logs a dropped session), a moment at most, then close."""
        try:
            if not conn.broken:
                with contextlib.suppress(AmiError):
                    await conn.request("Logoff", {}, 1.0)
        finally:
            await conn.close()
