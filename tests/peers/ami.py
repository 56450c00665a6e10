"""A local AMI peer written from Asterisk's documented manager protocol (Asterisk itself
is not installable here: not in Debian 12, not on PyPI).

What it speaks, as the Asterisk documentation describes it:

- the banner ``Asterisk Call Manager/<version>\\r\\n`` on connect;
- messages of ``Key: Value\\r\\n`` lines ended by an empty line;
- ``Action: Login`` (``Username``/``Secret``): ``Response: Success`` /
  ``Message: Authentication accepted``, or ``Response: Error`` /
  ``Message: Authentication failed`` and the connection is closed;
- any other action before login: ``Response: Error``, ``Message: Permission denied``;
- ``Action: QueueSummary`` and ``Action: QueueStatus`` (optional ``Queue:``
  filter): ``Response: Success`` with ``EventList: start``, the events with
  Asterisk's field names (``QueueSummary``; ``QueueParams``, ``QueueMember``,
  ``QueueEntry``), then ``QueueSummaryComplete`` / ``QueueStatusComplete``
  with ``EventList: Complete`` and ``ListItems``; every message of an action
  echoes its ``ActionID``;
- ``Action: Ping`` -> ``Response: Success``, ``Ping: Pong``; ``Action: Logoff``
  -> ``Response: Goodbye`` and close; unknown actions -> ``Message: Invalid/unknown command``;
- ``Action: DBPut`` (``Family``, ``Key``, ``Val``) as manager.c's ``action_dbput``:
  ``No family specified`` / ``No key specified`` errors, else the value is stored
  (``AmiPeer.db``) and ``Message: Updated database successfully``;
- ``Action: Reload`` (optional ``Module``) as ``action_reload``: a module not in
  ``AmiPeer.modules`` -> ``Message: No such module``, else ``Message: Module Reloaded``
  (recorded in ``AmiPeer.reloads``, ``"all"`` for no Module);
- ``Action: Command`` (``Command``) as Asterisk 14+ answers it: ``Message: Command output
  follows`` and one ``Output:`` line per line of ``AmiPeer.commands[command]``; a command
  it does not know -> ``Response: Error`` with ``Output: No such command …``.

The queue data is whatever the test sets (``AmiPeer.queues``); QueueSummary's
numbers are derived from it as Asterisk's ``manager_queues_summary`` does
(logged in = members whose device is not UNAVAILABLE/INVALID; available =
logged in, not paused, device NOT_INUSE or UNKNOWN). ``mode`` makes it
misbehave the ways real peers do: ``garbage``, ``drop_mid_list``,
``not_ami``, ``hang_after_connect``, ``hang_mid_list``, ``reject_all``,
``deny_lists`` (lists refused with ``Permission denied``). It runs in its own
thread on an ephemeral 127.0.0.1 port.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

DEVICE_NOT_INUSE = 1
DEVICE_INUSE = 2
DEVICE_UNAVAILABLE = 5
DEVICE_RINGING = 6


@dataclass
class Member:
    name: str
    status: int = DEVICE_NOT_INUSE
    paused: bool = False
    in_call: bool = False
    paused_reason: str = ""
    calls_taken: int = 0


@dataclass
class Caller:
    channel: str
    wait: int
    callerid: str = "13800138000"


@dataclass
class Queue:
    members: list[Member] = field(default_factory=list)
    callers: list[Caller] = field(default_factory=list)
    completed: int = 0
    abandoned: int = 0
    strategy: str = "rrmemory"


class AmiPeer:
    """The peer's shared state: credentials, queues, mode, and what it saw."""

    def __init__(self, username: str = "dialwatch", secret: str = "s3cret-ami") -> None:
        self.username = username
        self.secret = secret
        self.version = "9.0.0"
        self.queues: dict[str, Queue] = {}
        self.mode = "normal"
        self.logins = 0
        self.connections = 0
        self.received: list[dict[str, str]] = []
        self.db: dict[tuple[str, str], str] = {}
        self.modules: set[str] = {"app_queue", "chan_pjsip", "res_pjsip"}
        self.reloads: list[str] = []
        self.commands: dict[str, str] = {
            "core show version": f"Asterisk 20.5.0 built by stand-in (AMI {self.version})"
        }
        self.lock = threading.Lock()
        self.release = threading.Event()
        """Set to free handlers stuck in a ``hang_*`` mode."""
        self._open: list[socket.socket] = []
        self._server: socketserver.ThreadingTCPServer | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------
    def start(self) -> None:
        peer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                # OSError: the client (or kick()) closed the connection.
                with contextlib.suppress(OSError):
                    peer._serve(self.request, self.rfile)

        server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.port = server.server_address[1]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()

    def kick(self) -> None:
        """Close every open session, as Asterisk does on restart (clients must log in again)."""
        with self.lock:
            sockets, self._open = self._open, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- the protocol -----------------------------------------------------------------
    def _serve(self, sock: socket.socket, rfile: object) -> None:
        with self.lock:
            self.connections += 1
            self._open.append(sock)
            mode = self.mode
        if mode == "hang_after_connect":
            self.release.wait(30)
            return
        if mode == "not_ami":
            sock.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n")
            self.release.wait(30)
            return
        sock.sendall(f"Asterisk Call Manager/{self.version}\r\n".encode())
        logged_in = False
        while True:
            message = self._read(rfile)
            if message is None:
                return
            with self.lock:
                self.received.append(message)
                mode = self.mode
            action = message.get("Action", "").lower()
            aid = message.get("ActionID")
            if action == "login":
                ok = (
                    mode != "reject_all"
                    and message.get("Username") == self.username
                    and message.get("Secret") == self.secret
                )
                if not ok:
                    self._send(
                        sock, [("Response", "Error"), ("Message", "Authentication failed")], aid
                    )
                    return
                with self.lock:
                    self.logins += 1
                logged_in = True
                self._send(
                    sock, [("Response", "Success"), ("Message", "Authentication accepted")], aid
                )
            elif not logged_in:
                self._send(sock, [("Response", "Error"), ("Message", "Permission denied")], aid)
            elif action == "ping":
                self._send(sock, [("Response", "Success"), ("Ping", "Pong")], aid)
            elif action == "logoff":
                self._send(
                    sock, [("Response", "Goodbye"), ("Message", "Thanks for all the fish.")], aid
                )
                return
            elif action in ("dbput", "reload", "command"):
                self._send(sock, self._act(action, message), aid)
            elif action in ("queuesummary", "queuestatus") and mode == "deny_lists":
                # A manager user without `read = agent` (or `reporting`) gets this.
                self._send(sock, [("Response", "Error"), ("Message", "Permission denied")], aid)
            elif action in ("queuesummary", "queuestatus"):
                if not self._list(sock, action, message.get("Queue"), aid, mode):
                    return
            else:
                self._send(
                    sock, [("Response", "Error"), ("Message", "Invalid/unknown command")], aid
                )

    def _act(self, action: str, message: dict[str, str]) -> list[tuple[str, str]]:
        """DBPut, Reload and Command, answered as Asterisk's manager.c does."""
        if action == "dbput":
            family, key = message.get("Family", ""), message.get("Key", "")
            if not family:
                return [("Response", "Error"), ("Message", "No family specified")]
            if not key:
                return [("Response", "Error"), ("Message", "No key specified")]
            with self.lock:
                self.db[(family, key)] = message.get("Val", "")
            return [("Response", "Success"), ("Message", "Updated database successfully")]
        if action == "reload":
            module = message.get("Module", "")
            if module and module.removesuffix(".so") not in self.modules:
                return [("Response", "Error"), ("Message", "No such module")]
            with self.lock:
                self.reloads.append(module or "all")
            return [("Response", "Success"), ("Message", "Module Reloaded")]
        command = message.get("Command", "")
        known = self.commands.get(command)
        if known is None:
            return [
                ("Response", "Error"),
                ("Message", "Command output follows"),
                ("Output", f"No such command '{command}' (type 'core show help {command}' "
                 "for other possible commands)"),
            ]  # fmt: skip
        return [("Response", "Success"), ("Message", "Command output follows")] + [
            ("Output", line) for line in known.splitlines()
        ]

    def _list(
        self, sock: socket.socket, action: str, only: str | None, aid: str | None, mode: str
    ) -> bool:
        with self.lock:
            queues = {n: q for n, q in self.queues.items() if only is None or n == only}
            events = self._summary(queues) if action == "queuesummary" else self._status(queues)
        what = "Queue summary" if action == "queuesummary" else "Queue status"
        self._send(
            sock,
            [("Response", "Success"), ("EventList", "start"), ("Message", f"{what} will follow")],
            aid,
        )
        for i, event in enumerate(events):
            if i == 1 and mode == "drop_mid_list":
                sock.sendall(b"Event: QueueMem")  # cut off mid-message, then close
                return False
            if i == 1 and mode == "hang_mid_list":
                self.release.wait(30)
                return False
            if i == 1 and mode == "garbage":
                sock.sendall(b"\x00\xff this is not AMI at all\r\n\r\n")
                continue
            self._send(sock, event, aid)
        complete = "QueueSummaryComplete" if action == "queuesummary" else "QueueStatusComplete"
        self._send(
            sock,
            [("Event", complete), ("EventList", "Complete"), ("ListItems", str(len(events)))],
            aid,
        )
        return True

    @staticmethod
    def _logged_in(m: Member) -> bool:
        return m.status not in (4, DEVICE_UNAVAILABLE)

    def _summary(self, queues: dict[str, Queue]) -> list[list[tuple[str, str]]]:
        out = []
        for name, q in queues.items():
            logged = [m for m in q.members if self._logged_in(m)]
            available = [m for m in logged if not m.paused and m.status in (0, DEVICE_NOT_INUSE)]
            longest = max((c.wait for c in q.callers), default=0)
            out.append(
                [
                    ("Event", "QueueSummary"),
                    ("Queue", name),
                    ("LoggedIn", str(len(logged))),
                    ("Available", str(len(available))),
                    ("Callers", str(len(q.callers))),
                    ("HoldTime", "7"),
                    ("TalkTime", "95"),
                    ("LongestHoldTime", str(longest)),
                ]
            )
        return out

    def _status(self, queues: dict[str, Queue]) -> list[list[tuple[str, str]]]:
        out = []
        for name, q in queues.items():
            out.append(
                [
                    ("Event", "QueueParams"),
                    ("Queue", name),
                    ("Max", "0"),
                    ("Strategy", q.strategy),
                    ("Calls", str(len(q.callers))),
                    ("Holdtime", "7"),
                    ("TalkTime", "95"),
                    ("Completed", str(q.completed)),
                    ("Abandoned", str(q.abandoned)),
                    ("ServiceLevel", "60"),
                    ("ServicelevelPerf", "92.5"),
                    ("ServicelevelPerf2", "90.1"),
                    ("Weight", "0"),
                ]
            )
            for m in q.members:
                out.append(
                    [
                        ("Event", "QueueMember"),
                        ("Queue", name),
                        ("Name", m.name),
                        ("Location", f"PJSIP/{m.name}"),
                        ("StateInterface", f"PJSIP/{m.name}"),
                        ("Membership", "dynamic"),
                        ("Penalty", "0"),
                        ("CallsTaken", str(m.calls_taken)),
                        ("LastCall", "0"),
                        ("LastPause", "0"),
                        ("LoginTime", "1700000000"),
                        ("InCall", "1" if m.in_call else "0"),
                        ("Status", str(m.status)),
                        ("Paused", "1" if m.paused else "0"),
                        ("PausedReason", m.paused_reason),
                        ("Wrapuptime", "0"),
                    ]
                )
            for pos, c in enumerate(q.callers, start=1):
                out.append(
                    [
                        ("Event", "QueueEntry"),
                        ("Queue", name),
                        ("Position", str(pos)),
                        ("Channel", c.channel),
                        ("Uniqueid", f"1700000000.{pos}"),
                        ("CallerIDNum", c.callerid),
                        ("CallerIDName", "unknown"),
                        ("ConnectedLineNum", "unknown"),
                        ("ConnectedLineName", "unknown"),
                        ("Wait", str(c.wait)),
                        ("Priority", "0"),
                    ]
                )
        return out

    @staticmethod
    def _read(rfile: object) -> dict[str, str] | None:
        message: dict[str, str] = {}
        while True:
            raw = rfile.readline()  # type: ignore[attr-defined]
            if not raw:
                return None
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if not line:
                if message:
                    return message
                continue
            key, _, value = line.partition(":")
            message[key.strip()] = value.strip()

    @staticmethod
    def _send(sock: socket.socket, pairs: list[tuple[str, str]], action_id: str | None) -> None:
        lines = []
        for i, (k, v) in enumerate(pairs):
            lines.append(f"{k}: {v}")
            if i == 0 and action_id is not None:
                lines.append(f"ActionID: {action_id}")
        with contextlib.suppress(OSError):
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())


def start_ami_peer() -> AmiPeer:
    peer = AmiPeer()
    peer.start()
    return peer


@pytest.fixture
def ami_peer() -> Iterator[AmiPeer]:
    """A fresh local AMI peer (Asterisk's documented protocol) on an ephemeral loopback port."""
    peer = start_ami_peer()
    try:
        yield peer
    finally:
        peer.stop()
