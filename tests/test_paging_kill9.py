"""The outbox across a kill -9: every delivery arrives, and only in-flight ones may twice.

1,000 deliveries wait in the state DB's outbox (10 people, 100 each, not
grouped) when ``dialwatch run`` starts; a local webhook receiver takes each
in 20 ms and counts them by ``X-Dialwatch-Delivery``. The appliance is
killed with SIGKILL in the middle of the burst and started again. In the
end every delivery has arrived, and a delivery that arrived twice is one
whose attempt the restart found in flight (``interrupted``): the bound the
docs state (docs/notify.md, "Delivery guarantees").
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from monitor.store.db import open_database
from monitor.store.models import ATTEMPT_INTERRUPTED, DeliveryAttempt
from monitor.store.repository import StateRepository
from notify import outbox
from notify.outbox import Notice
from tests.peers import free_port
from tests.peers.webhook import webhook_receiver

ROOT = Path(__file__).resolve().parent.parent
SECRET = "0123456789abcdef0123456789"
PEOPLE = 10
EACH = 100
TOTAL = PEOPLE * EACH


def config(path: Path, hook: str) -> None:
    people = "".join(
        f"  - {{id: p{i}, user: p{i}, name: P{i}, contact: [hook]}}\n" for i in range(PEOPLE)
    )
    path.write_text(
        "appliance: {interval: 24h}\n"
        "targets: []\n"
        "channels:\n"
        f'  - {{id: hook, kind: webhook, url: "{hook}", secret: "{SECRET}", allow_private: true}}\n'
        f"people:\n{people}"
        "paging: {rate_limit: 1000, concurrency: 8}\n",
        encoding="utf-8",
    )


def start(cfg: Path, data: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "dialwatch.cli", "run", "--config", str(cfg), "--data", str(data),
         "--listen", f"127.0.0.1:{free_port()}"],
        cwd=ROOT, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip


def unsent(data: Path) -> int:
    """Deliveries not sent yet, read from the running appliance's state DB (read-only)."""
    with contextlib.closing(sqlite3.connect(f"file:{data / 'state.db'}?mode=ro", uri=True)) as db:
        return int(db.execute("SELECT count(*) FROM delivery WHERE state != 'sent'").fetchone()[0])


@pytest.mark.e2e
def test_a_kill_9_in_a_burst_of_1000_deliveries_loses_none_and_repeats_only_in_flight_ones(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    engine = open_database(None, data)
    repo = StateRepository(engine)
    now = time.time()
    with repo.transaction() as conn:
        for i in range(TOTAL):
            notice = Notice("test", None)
            outbox.add(conn, f"p{i % PEOPLE}", [notice], ["hook"], now, group=False)
    repo.close()
    engine.dispose()
    with webhook_receiver(SECRET, delay=0.02) as hook:
        cfg = tmp_path / "dialwatch.yaml"
        config(cfg, hook.url())
        log = tmp_path / "app.log"

        def received() -> collections.Counter[str]:
            return collections.Counter(
                r.headers.get("x-dialwatch-delivery", "") for r in list(hook.requests)
            )

        proc = start(cfg, data, log)
        try:
            deadline = time.monotonic() + 60
            while len(received()) < TOTAL // 3 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert len(received()) >= TOTAL // 3, log.read_text()[-3000:]
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            before = len(received())
            assert before < TOTAL, "the burst ended before the kill: nothing was tested"
            proc = start(cfg, data, log)
            deadline = time.monotonic() + 120
            # Until the outbox itself is done: an attempt that reached the receiver just
            # before the kill is in doubt, so it is sent again after the count is full.
            while time.monotonic() < deadline and (len(received()) < TOTAL or unsent(data) > 0):
                time.sleep(0.05)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        got = received()
    assert len(got) == TOTAL, f"{TOTAL - len(got)} deliveries never arrived"
    assert all(r.signed for r in hook.requests)
    engine = open_database(None, data)
    try:
        with engine.connect() as conn:
            interrupted = {
                f"dw-{a.delivery_id}"
                for a in conn.execute(
                    select(DeliveryAttempt).where(DeliveryAttempt.outcome == ATTEMPT_INTERRUPTED)
                )
            }
            states = collections.Counter(v.delivery.state for v in outbox.recent(conn, TOTAL))
    finally:
        engine.dispose()
    twice = {d for d, n in got.items() if n > 1}
    assert twice <= interrupted, f"sent twice without having been in flight: {twice - interrupted}"
    assert max(got.values()) <= 2
    assert len(interrupted) <= 8  # at most the sender's concurrency was in flight
    assert states == {"sent": TOTAL}
