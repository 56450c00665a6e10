"""The dialer probe's CSV CDR tail on a real Master.csv in a temp dir.

The file is written the way Asterisk's cdr_csv writes it (tests/test_dialer_cdrs.py
renders generated calls with known true counts); the probe state goes
through JSON between polls, as the engine persists it. Every test checks
that each row is counted exactly once — across appends, partial lines,
rotation, truncation and restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest

from core.config import SiteConfig
from core.observation import ErrorClass, Observation, Status
from probes.base import ProbeContext
from probes.dialer import DialerTarget, check
from probes.dialer.cdr_csv import STATE_KEY
from probes.dialer.kpi import Counts, total
from tests.test_dialer_cdrs import Generated, generate_cdrs, master_csv_line

CDR_TZ = "Asia/Shanghai"
QUIET = {"abandon_rate": None, "system_loss_rate": None}


class Tail:
    """One CSV target polled again and again, its state round-tripped through JSON."""

    def __init__(self, path: Path, **source: Any) -> None:
        self.target = DialerTarget.model_validate(
            {
                "id": "dialer-csv",
                "kind": "dialer",
                "thresholds": source.pop("thresholds", QUIET),
                "source": {"type": "csv", "path": str(path), "timezone": CDR_TZ, **source},
            }
        )
        self.state: dict[str, Any] = {}

    def poll(self) -> Observation:
        ctx = ProbeContext(
            target_id=self.target.id,
            timeout=self.target.timeout,
            state=json.loads(json.dumps(self.state)),
            site=SiteConfig(),
        )
        obs = asyncio.run(check(self.target, ctx))
        self.state = json.loads(json.dumps(ctx.state))
        return obs

    def restarted(self) -> Tail:
        """The same target after an engine restart: only the persisted state survives."""
        again = Tail.__new__(Tail)
        again.target, again.state = self.target, json.loads(json.dumps(self.state))
        return again


def counted(obs: Observation) -> Counts:
    f = next(p for p in obs.metrics if p.measurement == "dialer").fields
    return Counts(f["attempts"], f["answered"], f["callee_lost"], f["system_lost"], f["abandoned"])


def per_trunk(obs: Observation) -> dict[str, int]:
    return {
        p.tags["trunk"]: p.fields["attempts"]
        for p in obs.metrics
        if p.measurement == "dialer_trunk"
    }


def truth(*parts: Generated) -> Counts:
    c = total(g.total(with_cause=False) for g in parts)
    return Counts(c.attempts, c.answered, c.callee_lost, c.system_lost, c.abandoned)


def lines(g: Generated) -> str:
    return "".join(master_csv_line(r) for r in g.rows)


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


@pytest.fixture
def now() -> float:
    return time.time()


def test_a_new_file_is_counted_and_appended_rows_join_the_window(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    first = generate_cdrs(1, 200, now, CDR_TZ, outside=30)
    path.write_text(lines(first))
    tail = Tail(path)
    obs = tail.poll()
    assert obs.status is Status.OK, obs.detail
    assert counted(obs) == truth(first)
    assert obs.detail.startswith("200 attempts in the last 15 min")
    second = generate_cdrs(2, 120, now, CDR_TZ, outside=10)
    append(path, lines(second))
    assert counted(tail.poll()) == truth(first, second)
    # Nothing new: the same counts, nothing read twice.
    assert counted(tail.poll()) == truth(first, second)


def test_per_trunk_counts_match_the_generated_truth(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    g = generate_cdrs(3, 400, now, CDR_TZ)
    path.write_text(lines(g))
    obs = Tail(path).poll()
    assert per_trunk(obs) == {t: c.attempts for t, c in g.expected_without_cause.items()}


def test_a_partial_last_line_waits_for_its_newline(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    g = generate_cdrs(4, 3, now, CDR_TZ, outside=0)
    text = lines(g)
    cut = text.rindex("\n", 0, len(text) - 1) + 20  # inside the last line
    path.write_text(text[:cut])
    tail = Tail(path)
    assert counted(tail.poll()).attempts == 2
    append(path, text[cut:])
    assert counted(tail.poll()) == truth(g)


def test_a_restart_goes_on_from_the_saved_offset_without_counting_twice(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    first = generate_cdrs(5, 150, now, CDR_TZ)
    path.write_text(lines(first))
    tail = Tail(path)
    tail.poll()
    second = generate_cdrs(6, 50, now, CDR_TZ)
    append(path, lines(second))  # written while the engine was down
    assert counted(tail.restarted().poll()) == truth(first, second)


def test_rotation_reads_the_rest_of_the_old_file_then_the_new_one(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    before = generate_cdrs(7, 100, now, CDR_TZ)
    path.write_text(lines(before))
    tail = Tail(path)
    tail.poll()
    late = generate_cdrs(8, 40, now, CDR_TZ)
    append(path, lines(late))  # written after our poll, before rotation
    path.rename(tmp_path / "Master.csv.1")
    after = generate_cdrs(9, 60, now, CDR_TZ)
    path.write_text(lines(after))
    obs = tail.poll()
    assert counted(obs) == truth(before, late, after)
    assert "Master.csv was rotated; read the rest of Master.csv.1" in obs.detail
    assert obs.status is Status.OK
    assert counted(tail.poll()) == truth(before, late, after)


def test_rotation_with_the_old_file_gone_says_what_was_not_counted(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    before = generate_cdrs(10, 100, now, CDR_TZ)
    path.write_text(lines(before))
    tail = Tail(path)
    tail.poll()
    path.rename(tmp_path / "gone")
    after = generate_cdrs(11, 30, now, CDR_TZ)
    path.write_text(lines(after))  # created while the old inode still exists: a new one
    (tmp_path / "gone").unlink()
    obs = tail.poll()
    assert counted(obs) == truth(before, after)
    assert obs.status is Status.WARN and obs.error_class is ErrorClass.PROTOCOL
    assert (
        "Master.csv was replaced and the old file was not found next to it; rows written to it "
        "after the last poll were not counted" in obs.detail
    )


def test_a_file_truncated_under_the_tail_is_read_again_from_the_start(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    before = generate_cdrs(12, 100, now, CDR_TZ)
    path.write_text(lines(before))
    tail = Tail(path)
    tail.poll()
    size = path.stat().st_size
    after = generate_cdrs(13, 20, now, CDR_TZ)
    with open(path, "r+", encoding="utf-8") as f:  # copytruncate: same inode, shorter
        f.truncate(0)
        f.write(lines(after))
    obs = tail.poll()
    assert counted(obs) == truth(before, after)
    assert obs.status is Status.WARN
    assert (
        f"Master.csv was truncated or rewritten ({path.stat().st_size} bytes, the tail was at {size})"
        in obs.detail
    )
    assert "reading it again from the start" in obs.detail
    assert tail.poll().status is Status.OK  # the next poll is back to normal


def test_a_file_rewritten_in_place_to_a_longer_one_is_noticed(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    before = generate_cdrs(14, 20, now, CDR_TZ)
    path.write_text(lines(before))
    tail = Tail(path)
    tail.poll()
    after = generate_cdrs(15, 60, now, CDR_TZ)
    with open(path, "r+", encoding="utf-8") as f:
        f.truncate(0)
        f.write(lines(after))  # longer than before: size alone would not tell
    assert path.stat().st_size > 0
    obs = tail.poll()
    assert counted(obs) == truth(before, after)
    assert "truncated or rewritten" in obs.detail


@pytest.mark.parametrize(
    ("bad_line", "reason"),
    [
        pytest.param('"","1001","138","ctx","clid","SIP/a-1"\n', "only 6 fields, no dstchannel", id="cut-short"),
        pytest.param(
            '"","1","2","c","x","L/1","PJSIP/trunk-a-01","Queue","","2026-13-45 99:00:00","","",5,3,"ANSWERED","D","u",""\n',
            "start '2026-13-45 99:00:00' is not a time", id="bad-time",
        ),
        pytest.param(
            '"","1","2","c","x","L/1","PJSIP/trunk-a-01","Queue","","{t}","","",5,,"ANSWERED","D","u",""\n',
            "no billsec", id="no-billsec",
        ),
        pytest.param(
            '"","1","2","c","x","L/1","PJSIP/trunk-a-01","Queue","","{t}","","",5,3,"MAYBE","D","u",""\n',
            "unknown disposition 'MAYBE'", id="unknown-disposition",
        ),
    ],
)  # fmt: skip
def test_rows_with_missing_fields_are_skipped_counted_and_named(
    tmp_path: Path, now: float, bad_line: str, reason: str
):
    path = tmp_path / "Master.csv"
    g = generate_cdrs(16, 30, now, CDR_TZ, outside=0)
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + 8 * 3600 - 120))
    good = lines(g)
    path.write_text(good + bad_line.replace("{t}", stamp))
    obs = Tail(path).poll()
    assert counted(obs) == truth(g)
    assert obs.status is Status.WARN and obs.error_class is ErrorClass.PROTOCOL
    assert (
        f"1 CDR row skipped (missing or unreadable fields; first: row at byte {len(good.encode())}: {reason})"
        in obs.detail
    )
    assert next(p for p in obs.metrics if p.measurement == "dialer").fields["skipped_rows"] == 1


def test_a_file_of_nothing_but_unreadable_rows_fails(tmp_path: Path):
    path = tmp_path / "Master.csv"
    path.write_text("this is not,a cdr\n" * 5)
    obs = Tail(path).poll()
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.PROTOCOL
    assert obs.detail.startswith("none of the 5 CDR rows read could be counted")


def test_a_missing_file_fails_and_the_next_poll_works_once_it_exists(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    tail = Tail(path)
    obs = tail.poll()
    assert obs.status is Status.FAIL and obs.error_class is ErrorClass.UNREACHABLE
    assert obs.detail == f"the CDR file {path} does not exist"
    g = generate_cdrs(17, 25, now, CDR_TZ)
    path.write_text(lines(g))
    assert counted(tail.poll()) == truth(g)


def test_the_first_poll_of_a_big_file_reads_only_its_end(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    old = generate_cdrs(18, 0, now - 86400, CDR_TZ, outside=2000)  # yesterday: outside any window
    recent = generate_cdrs(19, 50, now, CDR_TZ, outside=0)
    path.write_text(lines(old) + lines(recent))
    tail = Tail(path, backfill_bytes=len(lines(recent).encode()) + 100)
    obs = tail.poll()
    assert counted(obs) == truth(recent)
    assert "started at the last" in obs.detail and obs.status is Status.OK


def test_a_backlog_is_caught_up_over_several_polls(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    g = generate_cdrs(20, 300, now, CDR_TZ, outside=0)
    path.write_text(lines(g))
    tail = Tail(path, max_read_bytes=16384)
    first = tail.poll()
    assert 0 < counted(first).attempts < 300
    assert "catching up:" in first.detail
    for _ in range(20):
        obs = tail.poll()
    assert counted(obs) == truth(g)


def test_calls_older_than_the_window_fall_out_of_it(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    g = generate_cdrs(21, 100, now, CDR_TZ, outside=0)
    path.write_text(lines(g))
    tail = Tail(path)
    tail.poll()
    # Twenty minutes later, the same file: every call is now older than 15 min.
    later = Tail.__new__(Tail)
    later.target, later.state = tail.target, tail.state
    ctx = ProbeContext("dialer-csv", 10.0, state=later.state, site=SiteConfig())
    from probes.dialer import cdr_csv

    sample = asyncio.run(cdr_csv.collect(tail.target, ctx, now=now + 1200))
    assert sum(c.attempts for c in sample.trunks.values()) == 0
    assert ctx.state[STATE_KEY]["buckets"] == {}


def test_state_stays_small_for_a_busy_center(tmp_path: Path, now: float):
    path = tmp_path / "Master.csv"
    g = generate_cdrs(22, 20000, now, CDR_TZ, outside=0)
    path.write_text(lines(g))
    tail = Tail(path)
    assert counted(tail.poll()) == truth(g)
    # Counts per bucket and trunk, not rows: 60 buckets x 4 trunks at most.
    assert len(json.dumps(tail.state)) < 60 * 4 * 120 + 1000
    assert os.path.getsize(path) > 100 * len(json.dumps(tail.state))


def test_a_custom_layout_with_a_cause_column_is_read_by_its_field_names(tmp_path: Path, now: float):
    path = tmp_path / "Custom.csv"
    g = generate_cdrs(23, 200, now, CDR_TZ)
    # A cdr_custom line: start, trunk channel, disposition, billsec, cause, lastapp.
    path.write_text(
        "".join(
            f'"{r.calldate:%Y-%m-%d %H:%M:%S}","{r.dstchannel}","{r.disposition}",'
            f'{r.billsec},{"" if r.hangupcause is None else r.hangupcause},"{r.lastapp}"\n'
            for r in g.rows
        )
    )
    tail = Tail(
        path,
        fields=["start", "dstchannel", "disposition", "billsec", "hangupcause", "lastapp"],
        columns={"calldate": "start", "hangupcause": "hangupcause"},
    )
    c = g.total(with_cause=True)
    assert counted(tail.poll()) == Counts(
        c.attempts, c.answered, c.callee_lost, c.system_lost, c.abandoned
    )
