"""Outbox throughput: deliveries/s from the state DB to a local webhook receiver, and memory.

``--deliveries`` rows wait in the outbox of a fresh state DB (100 people,
not grouped) when ``dialwatch run`` starts; each goes out over a webhook to
a local receiver that answers 204 at once. Measured: deliveries/s from the
first arrival to the last, and the appliance's resident memory sampled
every 0.5 s during the burst (flat is the goal: the sender claims only
what it sends at once).

The reference, in the same run: the same webhook channel class sending the
same number of messages to the same receiver from as many threads as the
sender's concurrency, with no outbox at all (what the provider side can
take from this machine). The difference is what the outbox costs: two
committed writes per attempt (in flight, outcome), a timeline line and an
audit entry.

Usage (repository root)::

    .venv/bin/python -m bench.outbox_throughput
    .venv/bin/python -m bench.outbox_throughput --deliveries 5000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil

from bench.status_crowd import HERE, appliance

SECRET = "0123456789abcdef0123456789"
PEOPLE = 100
CONCURRENCY = 8

_FILL = """
import sys, time
from pathlib import Path
from monitor.store.db import open_database
from monitor.store.repository import StateRepository
from notify import outbox
from notify.outbox import Notice
db = open_database(None, Path(sys.argv[1]))
repo = StateRepository(db)
now = time.time()
with repo.transaction() as conn:
    for i in range(int(sys.argv[2])):
        outbox.add(conn, f"p{i % 100}", [Notice("test", None)], ["hook"], now, group=False)
db.dispose()
"""


class Receiver:
    def __init__(self) -> None:
        self.times: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.times.append(time.monotonic())
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def reference(port: int, count: int) -> float:
    """Messages/s of the webhook channel alone, CONCURRENCY threads, no outbox."""
    from notify.channels.base import Message
    from notify.channels.webhook import WebhookChannel, WebhookChannelConfig

    channel = WebhookChannel(
        WebhookChannelConfig(
            id="hook", kind="webhook", url=f"http://127.0.0.1:{port}/hook", secret=SECRET,
            allow_private=True,
        )
    )  # fmt: skip

    def send(i: int) -> None:
        channel.send(Message(delivery_id=f"ref-{i}", subject="test", text="test"))

    started = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(send, range(count)))
    return count / (time.monotonic() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--deliveries", type=int, default=2000)
    args = parser.parse_args()
    receiver = Receiver()
    load = os.getloadavg()
    print(
        f"{args.deliveries} deliveries, {PEOPLE} people, sender concurrency {CONCURRENCY}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs",
        flush=True,
    )
    ref = reference(receiver.port, args.deliveries)
    receiver.times.clear()
    with tempfile.TemporaryDirectory(prefix="outbox-") as tmp:
        work = Path(tmp)
        data = work / "data"
        data.mkdir(mode=0o700)
        env = {**os.environ, "PYTHONPATH": str(HERE)}
        subprocess.run(
            [sys.executable, "-c", _FILL, str(data), str(args.deliveries)],
            cwd=HERE, env=env, check=True,
        )  # fmt: skip
        people = "".join(
            f"  - {{id: p{i}, user: p{i}, name: P{i}, contact: [hook]}}\n" for i in range(PEOPLE)
        )
        config = work / "dialwatch.yaml"
        config.write_text(
            "appliance: {interval: 24h}\ntargets: []\nchannels:\n"
            f"  - {{id: hook, kind: webhook, url: 'http://127.0.0.1:{receiver.port}/hook',"
            f" secret: '{SECRET}', allow_private: true}}\n"
            f"people:\n{people}paging: {{rate_limit: 1000, concurrency: {CONCURRENCY}}}\n",
            encoding="utf-8",
        )
        rss: list[float] = []
        with appliance(HERE, config, work, data) as app:
            proc = psutil.Process(app.process.pid)
            deadline = time.monotonic() + 600
            while len(receiver.times) < args.deliveries and time.monotonic() < deadline:
                rss.append(proc.memory_info().rss / 2**20)
                time.sleep(0.5)
    receiver.close()
    got = len(receiver.times)
    span = receiver.times[-1] - receiver.times[0] if got > 1 else float("nan")
    rate = (got - 1) / span if got > 1 else 0.0
    print()
    print("| design | deliveries | deliveries/s | RSS first / last / max MiB |")
    print("| --- | ---: | ---: | --- |")
    print(
        f"| webhook channel alone, {CONCURRENCY} threads (reference) | {args.deliveries} | {ref:,.0f} | - |"
    )
    shown = f"{rss[0]:.0f} / {rss[-1]:.0f} / {max(rss):.0f}" if rss else "-"
    print(f"| outbox + sender (dialwatch run) | {got} | {rate:,.0f} | {shown} |")
    return 0 if got == args.deliveries else 1


if __name__ == "__main__":
    raise SystemExit(main())
