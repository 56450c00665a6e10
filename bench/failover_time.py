"""Trunk death → the first INVITE that reaches the backup: Dialwatch's failover against
Kamailio's own dispatcher probing, in the same run.

The lab: two SIPp trunks (``tests.peers.sipp.sipp_trunk_uas``, answering OPTIONS and
INVITE) behind a real Kamailio dispatcher (``tests.peers.kamailio``) that routes each
new INVITE with ``ds_select_dst`` in priority order (primary first). A caller sends a
new INVITE through Kamailio every ``--every`` ms and notes, per INVITE, when it was sent
and which trunk answered it (the port in the answer's ``Contact``). The primary is
killed; measured is the time from the kill to the send of the first INVITE the backup
answers — the moment calls are routed to the backup again.

Designs, each run ``--runs`` times:

- ``dialwatch``: ``dialwatch run`` probes both trunks with OPTIONS every 1 s,
  ``fail_after: 2``, timeout 300 ms, and takes a dead trunk out of the proxy
  (``failover:``); Kamailio's own probing is off. Goal (issue 12): ≤ 5 s.
- ``kamailio``: Kamailio's own probing, ``ds_ping_interval=1``,
  ``ds_probing_threshold=2`` (``ds_probing_mode=1``), with the lab's ``fr_timer``
  of 2 s (the time a ping waits for an answer), and again with Kamailio's shipped
  default of 30 s (``kamailio-30s``).

Usage (repository root)::

    .venv/bin/python -m bench.failover_time
    .venv/bin/python -m bench.failover_time --runs 3 --designs dialwatch,kamailio,kamailio-30s
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from tests.peers import free_port
from tests.peers.kamailio import Kamailio, kamailio_dispatcher
from tests.peers.sipp import SippUas, sipp_trunk_uas

ROOT = Path(__file__).resolve().parent.parent
_CONTACT = re.compile(r"^(?:Contact|m):[^\n]*?127\.0\.0\.1:(\d+)", re.MULTILINE | re.IGNORECASE)


class Caller:
    """Sends a new INVITE through the proxy every ``every`` s; remembers who answered each."""

    def __init__(self, proxy_port: int, every: float) -> None:
        self.proxy_port = proxy_port
        self.every = every
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self.sent: dict[str, float] = {}
        self.answered_by: dict[str, int] = {}
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._send, daemon=True),
                         threading.Thread(target=self._read, daemon=True)]  # fmt: skip

    def __enter__(self) -> Caller:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(2)
        self.sock.close()

    def _invite(self, call: str) -> bytes:
        p, me = self.proxy_port, self.port
        sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
        return (
            f"INVITE sip:lab@127.0.0.1:{p} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{me};branch=z9hG4bK{call[:16]};rport\r\n"
            "Max-Forwards: 70\r\n"
            f"From: <sip:caller@127.0.0.1:{me}>;tag={call[:8]}\r\n"
            f"To: <sip:lab@127.0.0.1:{p}>\r\n"
            f"Call-ID: {call}@bench\r\n"
            "CSeq: 1 INVITE\r\n"
            f"Contact: <sip:caller@127.0.0.1:{me}>\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(sdp)}\r\n\r\n{sdp}"
        ).encode()

    def _send(self) -> None:
        while not self._stop.is_set():
            call = uuid.uuid4().hex
            self.sent[call] = time.monotonic()
            self.sock.sendto(self._invite(call), ("127.0.0.1", self.proxy_port))
            self._stop.wait(self.every)

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65535).decode("utf-8", "replace")
            except (TimeoutError, OSError):
                continue
            call = re.search(r"^Call-ID: ([0-9a-f]+)@bench", data, re.MULTILINE)
            contact = _CONTACT.search(data)
            if call and contact and data.startswith(("SIP/2.0 18", "SIP/2.0 200")):
                self.answered_by.setdefault(call[1], int(contact[1]))

    def first_answered_by(self, port: int, after: float) -> float | None:
        """Send time of the first INVITE sent after ``after`` that ``port`` answered."""
        times = [self.sent[c] for c, p in list(self.answered_by.items())
                 if p == port and self.sent[c] >= after]  # fmt: skip
        return min(times) if times else None


def _wait(what: str, check: object, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


@contextlib.contextmanager
def appliance(work: Path, primary: SippUas, backup: SippUas, proxy: Kamailio) -> Iterator[None]:
    cfg = work / "dialwatch.yaml"
    probe = "interval: 1s, timeout: 300ms, fail_after: 2, recover_after: 1"
    cfg.write_text(
        f"""\
appliance: {{interval: 24h}}
targets:
  - {{id: trunk-ct, kind: sip, uri: "{primary.uri}", {probe}}}
  - {{id: trunk-cu, kind: sip, uri: "{backup.uri}", {probe}}}
failover:
  - id: carriers
    proxy: {{kind: kamailio, ctl: "unix:{proxy.ctl}", set: 1}}
    members:
      - {{target: trunk-ct, destination: "{primary.uri}"}}
      - {{target: trunk-cu, destination: "{backup.uri}"}}
""",
        encoding="utf-8",
    )
    web = free_port()
    log = (work / "app.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dialwatch.cli", "run", "--config", str(cfg), "--data",
         str(work / "data"), "--listen", f"127.0.0.1:{web}"],
        cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        _wait("the appliance's web server", lambda: _healthz(web), 60)
        # Both trunks seen up by the appliance before the kill (its state DB says so).
        _wait("both trunks up", lambda: _healths(work / "data" / "state.db") == {"up"}, 60)
        yield
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _healths(db: Path) -> set[str]:
    import sqlite3

    if not db.exists():
        return set()
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute(
                "SELECT health FROM target_state WHERE target_id IN ('trunk-ct', 'trunk-cu')"
            ).fetchall()
    except sqlite3.Error:
        return set()
    return {r[0] for r in rows} if len(rows) == 2 else set()


def _healthz(port: int) -> bool:
    import urllib.request

    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
        return True
    except OSError:
        return False


def one_run(design: str, every: float, limit: float) -> float | None:
    with tempfile.TemporaryDirectory(prefix="dw-failover-") as tmp:
        work = Path(tmp)
        with contextlib.ExitStack() as stack:
            primary = stack.enter_context(sipp_trunk_uas(work))
            backup = stack.enter_context(sipp_trunk_uas(work))
            own = design.startswith("kamailio")
            proxy = stack.enter_context(
                kamailio_dispatcher(
                    work, [(primary.uri, 10), (backup.uri, 5)],
                    ping_interval=1 if own else 0, probing_threshold=2,
                    fr_timer=30000 if design == "kamailio-30s" else 2000,
                )
            )  # fmt: skip
            if not own:
                stack.enter_context(appliance(work, primary, backup, proxy))
            caller = stack.enter_context(Caller(proxy.port, every))
            _wait("calls reaching the primary",
                  lambda: caller.first_answered_by(primary.port, 0) is not None, 30)  # fmt: skip
            time.sleep(1)
            killed = time.monotonic()
            primary.process.kill()
            try:
                _wait("an INVITE answered by the backup",
                      lambda: caller.first_answered_by(backup.port, killed) is not None, limit)  # fmt: skip
            except RuntimeError:
                return None
            first = caller.first_answered_by(backup.port, killed)
            assert first is not None
            return first - killed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--every", type=float, default=50.0, help="ms between INVITEs")
    parser.add_argument("--designs", default="dialwatch,kamailio,kamailio-30s")
    parser.add_argument("--limit", type=float, default=120.0, help="give up after (s)")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, load {os.getloadavg()[0]:.2f}")
    print(f"INVITE every {args.every:g} ms; {args.runs} runs per design\n")
    print("| design | runs | kill → first INVITE on the backup, s (each) | median s | goal |")
    print("| --- | ---: | --- | ---: | --- |")
    for design in args.designs.split(","):
        times = [one_run(design, args.every / 1000, args.limit) for _ in range(args.runs)]
        shown = ", ".join("never" if t is None else f"{t:.2f}" for t in times)
        done = [t for t in times if t is not None]
        median = statistics.median(done) if done else float("nan")
        goal = ""
        if design == "dialwatch":
            goal = (
                "≤ 5 s — **met**"
                if done and len(done) == len(times) and max(done) <= 5
                else "≤ 5 s — missed"
            )
        print(f"| {design} | {len(times)} | {shown} | {median:.2f} | {goal} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
