"""Kamailio's dispatcher, driven from outside: list destinations and set their state.

Two ways in, as Kamailio offers them:

- the **ctl socket** with ``kamcmd -s unix:/run/kamailio/kamailio_ctl`` (preferred:
  a local socket, guarded by file permissions);
- **JSON-RPC over HTTP** (``jsonrpcs`` behind ``xhttp``). Kamailio's JSON-RPC has
  no authentication of its own: its docs say to bind it to loopback or to put
  a proxy with basic auth in front, and this client speaks both (``username``
  and ``password`` give basic auth).

States are Kamailio's letters: ``a`` active, ``i`` inactive, ``d`` disabled,
optionally with ``p`` (probing). Dialwatch takes a trunk out with ``i``
*without* ``p``, so Kamailio's own probing cannot put it back behind our
back. ``dispatcher.list`` answers ``FLAGS`` such as ``AX`` (active), ``IX``
(inactive), ``IP`` (inactive, probing), ``DX`` (disabled).

A failure raises ``KamailioError`` with Kamailio's own words (``500 - State
Update Failed`` for a destination that is not in the set) or the transport's.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

STATES = frozenset({"a", "i", "d", "ap", "ip", "dp"})
_KAMCMD_ERROR = re.compile(r"^error:\s*(.*)$", re.MULTILINE)


class KamailioError(Exception):
    """The proxy did not do what was asked; ``reason`` is a sentence with its own words."""

    def __init__(self, reason: str, *, refused: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.refused = refused
        """Kamailio (or what is in front of it) answered and said no, or this machine
        cannot ask at all: trying again the same way cannot help."""


@dataclass(frozen=True)
class Destination:
    """One dispatcher destination as the proxy lists it."""

    set_id: int
    uri: str
    flags: str
    priority: int = 0

    @property
    def active(self) -> bool:
        return self.flags[:1] == "A"

    @property
    def probing(self) -> bool:
        return "P" in self.flags[1:]


class Dispatcher(Protocol):
    """What failover and the ``kamailio`` step need from a proxy."""

    def list(self) -> list[Destination]: ...

    def set_state(self, state: str, set_id: int, uri: str) -> str: ...

    def reload(self) -> str: ...


def _transient(words: str) -> bool:
    """Kamailio said no for now, not for good: a reload within ``reload_delta`` of the last."""
    return "Ongoing reload" in words


def _check_state(state: str) -> str:
    if state not in STATES:
        raise KamailioError(
            f"state {state!r} is not one of {', '.join(sorted(STATES))}", refused=True
        )
    return state


def destinations_of_json(result: Any) -> list[Destination]:
    """``dispatcher.list``'s JSON-RPC result → destinations."""
    found: list[Destination] = []
    records = result.get("RECORDS") if isinstance(result, dict) else None
    for record in records or []:
        group = record.get("SET", {}) if isinstance(record, dict) else {}
        set_id = int(group.get("ID", 0))
        for target in group.get("TARGETS", []) or []:
            dest = target.get("DEST", {}) if isinstance(target, dict) else {}
            if "URI" in dest:
                found.append(
                    Destination(
                        set_id,
                        str(dest["URI"]),
                        str(dest.get("FLAGS", "")),
                        int(dest.get("PRIORITY", 0)),
                    )  # fmt: skip
                )
    return found


def destinations_of_kamcmd(text: str) -> list[Destination]:
    """``kamcmd dispatcher.list``'s indented text → destinations."""
    found: list[Destination] = []
    set_id = 0
    dest: dict[str, str] = {}

    def flush() -> None:
        if "URI" in dest:
            priority = dest.get("PRIORITY", "0")
            found.append(
                Destination(
                    set_id,
                    dest["URI"],
                    dest.get("FLAGS", ""),
                    int(priority) if priority.lstrip("-").isdigit() else 0,
                )  # fmt: skip
            )
        dest.clear()

    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("ID:"):
            flush()
            set_id = int(line.split(":", 1)[1].strip() or 0)
        elif line.startswith("DEST:"):
            flush()
        elif ":" in line and not line.endswith("{"):
            key, value = line.split(":", 1)
            if key in ("URI", "FLAGS", "PRIORITY"):
                dest[key] = value.strip()
    flush()
    return found


class CtlDispatcher:
    """The dispatcher over the ctl socket, through ``kamcmd``."""

    def __init__(self, socket: str, *, timeout: float = 5.0, kamcmd: str = "kamcmd") -> None:
        self.socket = socket if socket.startswith(("unix:", "tcp:", "udp:")) else f"unix:{socket}"
        self.timeout = timeout
        self.kamcmd = kamcmd

    def __repr__(self) -> str:
        return f"CtlDispatcher({self.socket!r})"

    def _run(self, *args: str) -> str:
        command = [self.kamcmd, "-s", self.socket, *args]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except FileNotFoundError:
            raise KamailioError(
                f"kamcmd is not installed here ({self.kamcmd}); apt install kamailio",
                refused=True,
            ) from None
        except subprocess.TimeoutExpired:
            raise KamailioError(
                f"kamcmd {args[0]} on {self.socket}: no answer within {self.timeout:g} s"
            ) from None
        said = _KAMCMD_ERROR.search(done.stdout)
        if said:
            words = said.group(1).strip()
            raise KamailioError(
                f"kamailio ({self.socket}) {args[0]}: {words}", refused=not _transient(words)
            )
        if done.returncode != 0:
            detail = " ".join((done.stderr or done.stdout).split())[:300]
            raise KamailioError(f"kamcmd {args[0]} on {self.socket} failed: {detail}")
        return done.stdout

    def list(self) -> list[Destination]:
        return destinations_of_kamcmd(self._run("dispatcher.list"))

    def set_state(self, state: str, set_id: int, uri: str) -> str:
        return self._run("dispatcher.set_state", _check_state(state), str(set_id), uri).strip()

    def reload(self) -> str:
        return self._run("dispatcher.reload").strip()


class RpcDispatcher:
    """The dispatcher over JSON-RPC (HTTP), with basic auth when a proxy in front asks."""

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        username: str | None = None,
        password: str | None = None,
        verify_tls: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.username = username
        self.password = password
        self.verify_tls = verify_tls
        self.ca_file = ca_file
        self._ids = 0

    def __repr__(self) -> str:
        from core.net.http import shown_url

        return f"RpcDispatcher({shown_url(self.url)!r})"

    def call(self, method: str, params: Sequence[Any] = ()) -> Any:
        from core.net.http import HttpFailure, basic_auth, new_pool, request, shown_url

        self._ids += 1
        body = json.dumps(
            {"jsonrpc": "2.0", "method": method, "params": list(params), "id": self._ids}
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.username is not None:
            headers["Authorization"] = basic_auth(self.username, self.password or "")
        pool = new_pool(self.verify_tls, self.ca_file)
        where = shown_url(self.url)
        try:
            answer = request(
                pool,
                "POST",
                self.url,
                deadline=time.monotonic() + self.timeout,
                max_bytes=1024 * 1024,
                headers=headers,
                body=body,
                redirects="none",
            )
        except HttpFailure as exc:
            raise KamailioError(f"kamailio JSON-RPC {exc.detail}") from None
        finally:
            pool.clear()
        try:
            document = json.loads(answer.body)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("error"), dict):
            error = document["error"]
            words = f"{error.get('code', answer.status)} - {error.get('message', answer.reason)}"
            raise KamailioError(
                f"kamailio ({where}) {method}: {words}", refused=not _transient(words)
            )
        if answer.status == 401:
            raise KamailioError(
                f"kamailio JSON-RPC {where} answered 401: the proxy in front wants "
                "username and password",
                refused=True,
            )
        if not 200 <= answer.status < 300 or not isinstance(document, dict):
            text = " ".join(answer.body.decode("utf-8", "replace").split())[:200]
            raise KamailioError(
                f"kamailio JSON-RPC {where} answered HTTP {answer.status} {answer.reason}: {text}"
            )
        return document.get("result")

    def list(self) -> list[Destination]:
        return destinations_of_json(self.call("dispatcher.list"))

    def set_state(self, state: str, set_id: int, uri: str) -> str:
        return str(self.call("dispatcher.set_state", [_check_state(state), set_id, uri]))

    def reload(self) -> str:
        return str(self.call("dispatcher.reload"))


def dispatcher_of(proxy: Any) -> Dispatcher:
    """The client for a ``KamailioProxyConfig`` (``runbooks.failover.config``), as it says."""
    if proxy.ctl is not None:
        return CtlDispatcher(proxy.ctl, timeout=proxy.timeout)
    assert proxy.rpc is not None
    return RpcDispatcher(
        proxy.rpc,
        timeout=proxy.timeout,
        username=proxy.username,
        password=proxy.password,
        verify_tls=proxy.verify_tls,
        ca_file=proxy.ca_file,
    )
