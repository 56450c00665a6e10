"""Trunk failover end to end: ``dialwatch run`` as a process, a real Kamailio dispatcher in
front of two SIPp trunks, requests routed through Kamailio.

Dialwatch probes both trunks with OPTIONS every second. A routed request (an OPTIONS
with a user part, which the lab's Kamailio sends through ``ds_select_dst`` like any
new call) is answered by the trunk Kamailio picked: its ``Contact`` names that
trunk's port. Kill the primary → Dialwatch takes it out of the dispatcher → routed
requests reach the backup; the primary back and up for ``failback_after`` → it
takes traffic again. Kamailio's own probing is off: only Dialwatch moves traffic.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from runbooks.kamailio import CtlDispatcher
from tests.peers import free_port
from tests.peers.kamailio import kamailio_dispatcher
from tests.peers.sipp import sipp_options_uas

ROOT = Path(__file__).resolve().parent.parent


def wait_for(what: str, check: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


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


def config(path: Path, primary: str, backup: str, ctl: Path) -> None:
    path.write_text(
        f"""\
appliance: {{interval: 24h}}
targets:
  - {{id: trunk-ct, kind: sip, uri: "{primary}", interval: 1s, timeout: 300ms,
      fail_after: 2, recover_after: 1}}
  - {{id: trunk-cu, kind: sip, uri: "{backup}", interval: 1s, timeout: 300ms,
      fail_after: 2, recover_after: 1}}
failover:
  - id: carriers
    proxy: {{kind: kamailio, ctl: "unix:{ctl}", set: 1}}
    members:
      - {{target: trunk-ct, destination: "{primary}"}}
      - {{target: trunk-cu, destination: "{backup}"}}
    failback_after: 3s
""",
        encoding="utf-8",
    )


@pytest.mark.e2e
def test_a_dead_primary_trunk_is_taken_out_of_kamailio_and_put_back_when_stable(
    tmp_path: Path,
) -> None:
    primary_stack = contextlib.ExitStack()
    primary = primary_stack.enter_context(sipp_options_uas(tmp_path))
    with (
        sipp_options_uas(tmp_path) as backup,
        kamailio_dispatcher(tmp_path, [(primary.uri, 10), (backup.uri, 5)]) as proxy,
    ):
        dispatcher = CtlDispatcher(str(proxy.ctl))
        assert routed_to(proxy.port) == primary.port  # priority order: the primary
        cfg = tmp_path / "dialwatch.yaml"
        config(cfg, primary.uri, backup.uri, proxy.ctl)
        log = (tmp_path / "app.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "dialwatch.cli", "run", "--config", str(cfg),
             "--data", str(tmp_path / "data"), "--listen", f"127.0.0.1:{free_port()}"],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            wait_for("the appliance to probe", lambda: b"engine started" in _read(tmp_path))
            primary.process.kill()  # the carrier's trunk dies
            wait_for("the primary to be taken out", lambda: not dispatcher.list()[0].active)
            assert [d.flags for d in dispatcher.list()] == ["IX", "AX"]
            assert routed_to(proxy.port) == backup.port  # calls go to the backup now

            primary_stack.close()
            primary_stack.enter_context(sipp_options_uas(tmp_path, port=primary.port))
            wait_for("the failback", lambda: dispatcher.list()[0].active, timeout=40)
            assert routed_to(proxy.port) == primary.port
            text = _read(tmp_path).decode()
            assert "trunk-ct taken out of the proxy" in text
            assert "trunk-ct put back into the proxy" in text
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            primary_stack.close()


def _read(tmp_path: Path) -> bytes:
    return (tmp_path / "app.log").read_bytes()
