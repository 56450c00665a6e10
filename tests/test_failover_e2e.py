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
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from runbooks.kamailio import CtlDispatcher
from tests.failover_lab import ROOT, routed_to, wait_for
from tests.peers import free_port
from tests.peers.kamailio import kamailio_dispatcher
from tests.peers.sipp import sipp_options_uas


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
