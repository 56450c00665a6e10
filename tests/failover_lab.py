"""The trunk failover lab, shared by its end-to-end tests: ``dialwatch run`` as a process
next to a real Kamailio dispatcher in front of SIPp trunks (tests/peers).

- ``wait_for``: poll a condition until it holds or a timeout says what never came;
- ``routed_to``: one routed OPTIONS (with a user part) through Kamailio, the trunk that
  answered;
- ``Appliance``: ``dialwatch run`` on a free port with its own data directory, an admin
  and an API token made in its state DB before it starts, its output in ``app.log``,
  and ``api`` calls with that token.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from tests.peers import free_port

ROOT = Path(__file__).resolve().parent.parent
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T], timeout: float = 30.0) -> T:
    """``check()``'s first truthy answer, polled every 0.1 s; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


def routed_to(proxy_port: int) -> int | None:
    """Send one routed request through Kamailio; the port of the trunk that answered."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(2.0)
        port = sock.getsockname()[1]
        call = uuid.uuid4().hex
        request = (
            f"OPTIONS sip:caller@127.0.0.1:{proxy_port} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call[:12]};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:lab@127.0.0.1>;tag={call[:8]}\r\n"
            f"To: <sip:caller@127.0.0.1:{proxy_port}>\r\n"
            f"Call-ID: {call}@lab\r\n"
            "CSeq: 1 OPTIONS\r\n"
            f"Contact: <sip:lab@127.0.0.1:{port}>\r\n"
            "Content-Length: 0\r\n\r\n"
        )
        sock.sendto(request.encode(), ("127.0.0.1", proxy_port))
        try:
            while True:
                data = sock.recv(65535).decode("utf-8", "replace")
                if not data.startswith("SIP/2.0 1"):  # skip provisional answers
                    break
        except TimeoutError:
            return None
    if not data.startswith("SIP/2.0 200"):
        return None
    contact = re.search(r"^Contact: <sip:127\.0\.0\.1:(\d+)", data, re.MULTILINE)
    return int(contact[1]) if contact else None


class Appliance:
    """``dialwatch run --config CFG --data DIR --listen 127.0.0.1:PORT`` as a process."""

    def __init__(self, workdir: Path, config: str) -> None:
        self.workdir = workdir
        self.config = workdir / "dialwatch.yaml"
        self.config.write_text(config, encoding="utf-8")
        self.data = workdir / "data"
        self.port = free_port()
        self.output = workdir / "app.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""

    def __enter__(self) -> Appliance:
        self._make_token()
        with self.output.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "dialwatch.cli", "run", "--config", str(self.config),
                 "--data", str(self.data), "--listen", f"127.0.0.1:{self.port}"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )  # fmt: skip
        wait_for("the appliance to probe", lambda: "engine started" in self.text(), timeout=30)
        wait_for("the appliance's API", self._answers, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def _make_token(self) -> None:
        """An admin and an API token in the appliance's own state DB, made before it starts
        (what ``dialwatch user add`` and ``dialwatch token create`` do, without two more
        interpreter start-ups per test)."""
        from monitor.staff import tokens, users
        from monitor.store.db import open_database
        from monitor.store.repository import StateRepository

        engine = open_database(None, self.data)
        try:
            repo = StateRepository(engine)
            users.add_user(repo, "cli", "lab-admin", "admin", "a failover lab passphrase")
            self.token = tokens.create_token(repo, "cli", "lab-admin")[1]
        finally:
            engine.dispose()

    def _answers(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"dialwatch exited with {self.process.returncode}: {self.tail()}")
        try:
            return self.api("GET", "/healthz")[0] == 200
        except OSError:
            return False

    def api(self, method: str, path: str) -> tuple[int, Any]:
        """One call with the admin's bearer token: (HTTP status, JSON body)."""
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            method=method,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return resp.status, json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")

    def get(self, path: str) -> Any:
        status, body = self.api("GET", path)
        assert status == 200, f"GET {path}: {status} {body}"
        return body

    def audit(self, action: str) -> list[dict[str, Any]]:
        """The audit entries of ``action``, newest first (``GET /api/v1/audit``)."""
        return list(self.get(f"/api/v1/audit?action={action}&per_page=100")["items"])

    def stop(self) -> None:
        """SIGTERM: it must stop cleanly (exit status 0)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(30) == 0, self.tail()

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def tail(self) -> str:
        return self.text()[-4000:] if self.output.exists() else ""
