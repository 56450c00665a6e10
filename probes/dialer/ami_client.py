"""A minimal Asterisk Manager Interface (AMI) client on asyncio streams.

Why our own and not ``panoramisk`` (1.4, the asyncio AMI library on PyPI):
panoramisk does collect event lists (a response with ``EventList: start``,
then events until one whose name ends in ``Complete``), but its ``Manager``
logs in from a connection callback, runs its own reconnect and ping loops
as background tasks, and leaves an action's future pending when the peer
drops mid-list — so a poll could neither bound every step by its own
timeout nor say *which* step failed. Its last release is from 2021. The
probe needs two read-only actions, and the protocol is small:

- on connect the peer sends one line, ``Asterisk Call Manager/<version>``;
- then messages both ways: ``Key: Value`` lines ending in ``\\r\\n``, a
  message ends with an empty line;
- an action carries ``Action:`` and ``ActionID:``; its ``Response:``
  (``Success`` / ``Error``, with ``Message:``) echoes the ActionID;
- a list action answers ``Response: Success`` + ``EventList: start``, then
  events carrying the same ActionID, then ``Event: <Name>Complete`` with
  ``EventList: Complete`` (and ``ListItems: N``).

Every read is bounded by a deadline; anything the peer sends that is not
this protocol raises ``AmiError`` with a human sentence. The secret is sent
once, in ``Login``, and never appears in an error or log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass

from core.errors import describe_os_error
from core.observation import ErrorClass

BANNER_PREFIX = "Asterisk Call Manager/"
MAX_LINE = 8192
"""Bytes in one ``Key: Value`` line; longer is not AMI."""
MAX_MESSAGE_LINES = 256
MAX_LIST_EVENTS = 50_000
"""Events in one list; a peer that never sends ``…Complete`` is cut off here (or by the timeout)."""
MAX_SKIPPED = 10_000
"""Messages for other ActionIDs (unsolicited events) read past while waiting for ours."""

Message = dict[str, str]
"""One AMI message. Keys keep Asterisk's spelling; ``get`` below looks them up without case."""


class AmiError(Exception):
    """One AMI step failed; ``detail`` is the sentence for the observation.

    ``broken``: the connection's state is unknown (timeout, garbage, EOF)
    and it must not be reused.
    """

    def __init__(self, detail: str, error_class: ErrorClass, *, broken: bool = True) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error_class = error_class
        self.broken = broken


def get(message: Mapping[str, str], key: str, default: str = "") -> str:
    """A header's value whatever its case (Asterisk versions differ: ``Holdtime``/``HoldTime``)."""
    if key in message:
        return message[key]
    lower = key.lower()
    for k, v in message.items():
        if k.lower() == lower:
            return v
    return default


def encode(action: str, action_id: str, headers: Mapping[str, str]) -> bytes:
    """One action as bytes; raises ValueError for a header that would break the framing."""
    lines = [f"Action: {action}", f"ActionID: {action_id}"]
    for key, value in headers.items():
        if any(c in f"{key}{value}" for c in "\r\n") or ":" in key:
            raise ValueError(f"AMI header {key!r} contains a line break or colon")
        lines.append(f"{key}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_line(line: str) -> tuple[str, str]:
    """``Key: Value`` -> (key, value); AmiError for anything else."""
    key, sep, value = line.partition(":")
    if not sep or not key or key != key.strip() or " " in key:
        shown = line[:60] + ("…" if len(line) > 60 else "")
        raise AmiError(
            f"the AMI peer sent a line that is not 'Key: Value': {shown!r}", ErrorClass.PROTOCOL
        )
    return key, value.strip()


def check_list_count(action: str, complete: Message, received: int) -> None:
    """``ListItems`` on the closing event must match what arrived (nothing lost on the way)."""
    said = get(complete, "ListItems").strip()
    if said.isdigit() and int(said) != received:
        raise AmiError(
            f"the {action} list announced {said} events but {received} arrived",
            ErrorClass.PROTOCOL,
            broken=False,
        )


@dataclass
class Listing:
    """An event list's events and what its closing event said."""

    events: list[Message]
    complete: Message


class AmiConnection:
    """One logged-in AMI session. Not safe for concurrent actions: callers hold ``lock``."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, banner: str, where: str
    ) -> None:
        self._reader = reader
        self._writer = writer
        self.banner = banner
        self.where = where
        self.lock = asyncio.Lock()
        self.broken = False
        self._ids = itertools.count(1)

    @property
    def version(self) -> str:
        return self.banner[len(BANNER_PREFIX) :]

    @classmethod
    async def open(cls, host: str, port: int, timeout: float) -> AmiConnection:
        """Connect and read the banner, within ``timeout`` seconds."""
        where = f"{host}:{port}"
        try:
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, limit=MAX_LINE)
        except TimeoutError:
            raise AmiError(
                f"no answer to TCP connect to AMI at {where} within {timeout:g}s",
                ErrorClass.TIMEOUT,
            ) from None
        except OSError as exc:
            detail, error_class = describe_os_error(exc)
            raise AmiError(f"AMI at {where}: {detail}", error_class) from None
        conn = cls(reader, writer, "", where)
        try:
            line = await conn._read_line(timeout, "its banner")
        except BaseException:
            await conn.close()
            raise
        if not line.startswith(BANNER_PREFIX):
            await conn.close()
            shown = line[:60]
            raise AmiError(
                f"{where} is not an Asterisk manager interface (it greeted with {shown!r})",
                ErrorClass.PROTOCOL,
            )
        conn.banner = line
        return conn

    def abort(self) -> None:
        """Close without waiting (safe while a poll is being cancelled)."""
        self.broken = True
        self._writer.close()

    async def close(self) -> None:
        self.abort()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._writer.wait_closed(), 1.0)

    async def login(self, username: str, secret: str, timeout: float) -> None:
        """``Action: Login`` with ``Events: off`` (we only want our actions' answers)."""
        reply = await self.request(
            "Login", {"Username": username, "Secret": secret, "Events": "off"}, timeout
        )
        if get(reply, "Response").lower() != "success":
            reason = get(reply, "Message") or "no reason given"
            # The peer closes the session after a failed login; never reuse it.
            self.broken = True
            raise AmiError(
                f"AMI login as {username!r} rejected: {reason}", ErrorClass.AUTH, broken=True
            )

    async def request(self, action: str, headers: Mapping[str, str], timeout: float) -> Message:
        """Send one action and return its ``Response`` message (whatever it says)."""
        action_id = await self._send(action, headers)
        return await self._read_reply(action_id, action, timeout)

    async def event_list(self, action: str, headers: Mapping[str, str], timeout: float) -> Listing:
        """Send a list action; collect its events up to ``<…>Complete``.

        A ``Response: Error`` raises (not broken: the session is fine);
        so does a peer that closes or stalls mid-list (broken).
        """
        events: list[Message] = []
        try:
            async with asyncio.timeout(timeout):
                action_id = await self._send(action, headers)
                reply = await self._read_reply(action_id, action, None)
                if get(reply, "Response").lower() != "success":
                    reason = get(reply, "Message") or "no reason given"
                    raise AmiError(
                        f"AMI refused {action}: {reason}", ErrorClass.RESPONSE, broken=False
                    )
                while True:
                    message = await self._read_for(action_id, f"the {action} list", None)
                    name = get(message, "Event")
                    if not name:
                        raise AmiError(
                            f"the AMI peer sent a message without Event inside the {action} list",
                            ErrorClass.PROTOCOL,
                        )
                    if name.endswith("Complete") or get(message, "EventList").lower() == "complete":
                        check_list_count(action, message, len(events))
                        return Listing(events, message)
                    events.append(message)
                    if len(events) > MAX_LIST_EVENTS:
                        raise AmiError(
                            f"the {action} list went past {MAX_LIST_EVENTS} events without ending",
                            ErrorClass.PROTOCOL,
                        )
        except TimeoutError:
            self.broken = True
            got = f" (got {len(events)} events)" if events else ""
            raise AmiError(
                f"the {action} list from AMI at {self.where} was not complete within "
                f"{timeout:g}s{got}",
                ErrorClass.TIMEOUT,
            ) from None
        except AmiError as exc:
            if exc.broken:
                self.broken = True
            raise

    async def _send(self, action: str, headers: Mapping[str, str]) -> str:
        action_id = f"dialwatch-{next(self._ids)}"
        try:
            self._writer.write(encode(action, action_id, headers))
            await self._writer.drain()
        except (OSError, RuntimeError) as exc:
            self.broken = True
            raise AmiError(
                f"AMI at {self.where} closed the connection ({type(exc).__name__})",
                ErrorClass.UNREACHABLE,
            ) from None
        return action_id

    async def _read_reply(self, action_id: str, action: str, timeout: float | None) -> Message:
        message = await self._read_for(action_id, f"the answer to {action}", timeout)
        if not get(message, "Response"):
            self.broken = True
            raise AmiError(
                f"the AMI peer answered {action} without a Response line", ErrorClass.PROTOCOL
            )
        return message

    async def _read_for(self, action_id: str, what: str, timeout: float | None) -> Message:
        """The next message carrying ``action_id``; others (unsolicited events) are skipped."""
        try:
            async with asyncio.timeout(timeout):
                for _ in range(MAX_SKIPPED):
                    message = await self._read_message(what)
                    if get(message, "ActionID") == action_id:
                        return message
        except TimeoutError:
            self.broken = True
            raise AmiError(
                f"nothing from AMI at {self.where} within {timeout:g}s (waiting for {what})",
                ErrorClass.TIMEOUT,
            ) from None
        self.broken = True
        raise AmiError(
            f"AMI at {self.where} sent {MAX_SKIPPED} messages that were not {what}",
            ErrorClass.PROTOCOL,
        )

    async def _read_message(self, what: str) -> Message:
        message: Message = {}
        for _ in range(MAX_MESSAGE_LINES):
            line = await self._read_line(None, what)
            if not line:
                if message:
                    return message
                continue  # stray blank lines between messages are harmless
            key, value = parse_line(line)
            if key in message and key.lower() == "output":
                # ``Command`` answers one ``Output:`` line per line of CLI output
                # (Asterisk 14+): keep them all, in order. Any other repeated key
                # keeps its first value.
                message[key] += "\n" + value
            else:
                message.setdefault(key, value)
        self.broken = True
        raise AmiError(
            f"the AMI peer sent a message longer than {MAX_MESSAGE_LINES} lines",
            ErrorClass.PROTOCOL,
        )

    async def _read_line(self, timeout: float | None, what: str) -> str:
        try:
            async with asyncio.timeout(timeout):
                raw = await self._reader.readuntil(b"\n")
        except TimeoutError:
            self.broken = True
            raise AmiError(
                f"nothing from AMI at {self.where} within {timeout:g}s (waiting for {what})",
                ErrorClass.TIMEOUT,
            ) from None
        except asyncio.IncompleteReadError:
            self.broken = True
            raise AmiError(
                f"AMI at {self.where} closed the connection while we waited for {what}",
                ErrorClass.PROTOCOL,
            ) from None
        except asyncio.LimitOverrunError:
            self.broken = True
            raise AmiError(
                f"the AMI peer sent a line longer than {MAX_LINE} bytes", ErrorClass.PROTOCOL
            ) from None
        except OSError as exc:
            self.broken = True
            detail, error_class = describe_os_error(exc)
            raise AmiError(f"AMI at {self.where}: {detail}", error_class) from None
        try:
            return raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            # Caller ID names can be Latin-1 on old systems; keep the bytes readable.
            return raw.decode("latin-1").rstrip("\r\n")
