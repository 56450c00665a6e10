"""Customer notice fan-out: N e-mail subscribers of one component told of an outage.

What runs is the appliance's own notification service (``notify.service``:
the customer-notice subscriber, the outbox, the sender with its concurrency
and the e-mail channel) over a fresh SQLite state DB, against a real SMTP
server (``aiosmtpd``) on loopback, in a process of its own. ``--subscribers`` confirmed e-mail
subscribers hear about one component; its target goes down (``delay: 1s``),
and the sender's ticks queue and send every notice. Measured: seconds from
the transition to the last message accepted by the SMTP server, and the
process's resident memory sampled during the burst (flat is the goal: the
tick queues at most 500 notices at a time and the sender claims only what
it sends).

The reference, in the same run: the same e-mail channel class sending the
same number of messages to the same server from as many threads as the
sender's concurrency (16, as docs/customers.md advises for a big fan-out), in a plain loop with no outbox, no subscriber store
and no encryption.

Goal (issue 13): 10,000 e-mails ≤ 60 s, memory flat.

Usage (repository root)::

    .venv/bin/python -m bench.customer_fanout
    .venv/bin/python -m bench.customer_fanout --subscribers 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import insert, update

from core.clock import SYSTEM_CLOCK
from core.secret_box import SecretBox
from dialwatch.schema import Config
from monitor.events import EventKind, NewEvent, record
from monitor.faults import NO_FAULTS
from monitor.store.db import open_database
from monitor.store.models import TargetState
from monitor.store.repository import StateRepository
from notify import subscribers
from notify.channels import ChannelContext, Message, build_channel
from notify.service import Notifications
from tests.peers.smtp import QUEUED, smtp_server

CONCURRENCY = 16


@dataclass
class Counting:
    """Counts the messages accepted, in the server's process."""

    count: Any  # a multiprocessing.Value

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.count.get_lock():
            self.count.value += 1
        return QUEUED


def _serve(count: Any, ports: Any, stop: Any) -> None:
    with smtp_server(Counting(count)) as smtp:
        ports.send(smtp.port)
        stop.wait()


@contextlib.contextmanager
def smtp_peer() -> Iterator[tuple[int, Any]]:
    """The real SMTP server (``aiosmtpd``) in a process of its own, as a mail server is:
    sharing this process's interpreter lock it would be timed as part of Dialwatch.
    Yields its port and the shared count of messages accepted."""
    ctx = multiprocessing.get_context("spawn")
    count = ctx.Value("i", 0)
    mine, theirs = ctx.Pipe()
    stop = ctx.Event()
    child = ctx.Process(target=_serve, args=(count, theirs, stop), daemon=True)
    child.start()
    try:
        if not mine.poll(30):
            raise RuntimeError("the SMTP server did not start")
        yield mine.recv(), count
    finally:
        stop.set()
        child.join(10)


class Memory:
    """Samples this process's RSS every 0.25 s on a thread."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            self.samples.append(me.memory_info().rss / 2**20)
            self._stop.wait(0.25)

    def __enter__(self) -> Memory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def config(port: int) -> Config:
    return Config.model_validate(
        {
            "site": {"name": "Bench center", "timezone": "Asia/Shanghai", "language": "zh-CN"},
            "web": {"base_url": "https://status.example.cn"},
            "targets": [{"id": "trunk-a", "kind": "tcp", "address": "192.0.2.1:5060"}],
            "components": [{"id": "outbound", "name": {"zh-CN": "外呼线路", "en": "Outbound"},
                            "targets": ["trunk-a"]}],
            "channels": [{"id": "mail", "kind": "email", "from": "Status <s@example.cn>",
                          "smtp": {"host": "127.0.0.1", "port": port, "tls": "none"}}],
            "customers": {"email_channel": "mail", "delay": "1s"},
            "paging": {"retries": 0, "concurrency": CONCURRENCY},
        }
    )  # fmt: skip


def fanout(work: Path, port: int, count: int, received: Any) -> tuple[float, float, list[float]]:
    cfg = config(port)
    repo = StateRepository(open_database(None, work))
    box = SecretBox.from_file(work / "keys" / "appliance.key")
    notes = Notifications(repo, box, lambda: cfg, clock=SYSTEM_CLOCK, faults=NO_FAULTS,
                          listen=("127.0.0.1", 8080), data_dir=work)  # fmt: skip
    started = time.monotonic()
    for n in range(count):
        asked = subscribers.subscribe(repo, notes.subscriber_keys, "email", f"c{n}@example.cn",
                                      ["outbound"], "en", known=["outbound"], at=time.time())  # fmt: skip
        subscribers.confirm(repo, asked.subscriber.id, at=time.time())
    setup = time.monotonic() - started
    with repo.transaction() as conn:
        conn.execute(insert(TargetState).values(target_id="trunk-a", kind="tcp", health="up",
                                                since=time.time() - 3600))  # fmt: skip
    with Memory() as memory:
        t0 = time.monotonic()
        now = time.time()
        with repo.transaction() as conn:
            conn.execute(update(TargetState).where(TargetState.target_id == "trunk-a")
                         .values(health="down", since=now))  # fmt: skip
            event = record(repo, NewEvent(EventKind.TRANSITION, now, target_id="trunk-a"))
            notes.customers.handle(repo, event)

        async def drain() -> None:
            await notes.start()  # the sender's own loop, with its tick, as in the appliance
            try:
                while received.value < count:
                    await asyncio.sleep(0.05)
                    if time.monotonic() - t0 > 600:
                        raise RuntimeError(f"only {received.value} of {count} arrived")
            finally:
                await notes.stop()

        asyncio.run(drain())
        took = time.monotonic() - t0
    return setup, took, memory.samples


def reference(port: int, count: int, cfg: Config, work: Path) -> float:
    channel = build_channel(cfg.channels[0], ChannelContext(state=None, data_dir=work))

    def one(n: int) -> None:
        channel.send(Message(delivery_id=f"ref-{n}", subject="Outbound: we are investigating",
                             text="We are investigating.\n", html=None, language="en",
                             email=f"r{n}@example.cn"))  # fmt: skip

    t0 = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(one, range(count)))
    return time.monotonic() - t0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    args = parser.parse_args()
    n = args.subscribers
    load = os.getloadavg()
    print(f"{n} e-mail subscribers; {os.cpu_count()} CPUs; Python {sys.version.split()[0]}; "
          f"load average {load[0]:.2f}", flush=True)  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="fanout-") as tmp:
        with smtp_peer() as (port, got):
            setup, took, rss = fanout(Path(tmp), port, n, got)
            sent = got.value
        with smtp_peer() as (port, plain):
            ref = reference(port, n, config(port), Path(tmp))
            plain_sent = plain.value
    print(f"setup: {n} subscribers subscribed and confirmed in {setup:.1f} s")
    print()
    print("| design | messages | s | messages/s | RSS first / last / max MiB | goal |")
    print("| --- | ---: | ---: | ---: | --- | --- |")
    goal = "≤ 60 s — **met**" if took <= 60 else "≤ 60 s — missed"
    print(f"| customer notices (policy, outbox, sender) | {sent} | {took:.1f} | "
          f"{sent / took:.0f} | {rss[0]:.0f} / {rss[-1]:.0f} / {max(rss):.0f} | "
          f"{goal} |")  # fmt: skip
    print(f"| e-mail channel alone, {CONCURRENCY} threads (reference) | {plain_sent} | "
          f"{ref:.1f} | {plain_sent / ref:.0f} | - | |")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
