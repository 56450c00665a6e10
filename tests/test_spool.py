"""The on-disk spool: order, acknowledgement across restarts, torn records, the cap;
and the retry classification shared by both InfluxDB sinks."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from core.observation import MetricPoint
from monitor.sinks.influx_v1 import InfluxV1Sink
from monitor.sinks.spool import Outcome, Spool, WriteFailed, classify, parse_retry_after
from tests.peers import free_port


def batch(start: int, n: int = 3) -> list[bytes]:
    return [f"m v={i}i {i}".encode() for i in range(start, start + n)]


def drain(spool: Spool) -> list[bytes]:
    """Read and acknowledge everything, as a replay would."""
    out: list[bytes] = []
    while (record := spool.peek()) is not None:
        out.extend(record.lines[record.done :])
        spool.ack(record.id)
    return out


def test_batches_come_back_in_the_order_they_were_spooled_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=10**7, segment_bytes=4096, fsync=False)
    for i in range(0, 600, 3):
        spool.append(batch(i))
    assert len(list(tmp_path.glob("*.seg"))) > 1
    assert spool.points == 600
    assert drain(spool) == batch(0, 600)
    assert spool.empty and spool.points == 0


def test_acknowledged_batches_are_not_replayed_after_a_restart(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    for i in range(0, 30, 3):
        spool.append(batch(i))
    for _ in range(4):
        record = spool.peek()
        assert record is not None
        spool.ack(record.id)
    spool.close()  # or a kill: both the records and the ack are already on disk
    reopened = Spool(tmp_path)
    assert reopened.points == 18
    assert drain(reopened) == batch(12, 18)


def test_record_ids_keep_increasing_after_everything_was_acknowledged_and_reopened(
    tmp_path: Path,
) -> None:
    spool = Spool(tmp_path)
    first = spool.append(batch(0))
    spool.ack(first)
    spool.close()
    reopened = Spool(tmp_path)
    assert reopened.append(batch(3)) > first
    assert drain(reopened) == batch(3)


def test_partly_delivered_record_resumes_after_its_delivered_lines(tmp_path: Path) -> None:
    spool = Spool(tmp_path)
    record_id = spool.append(batch(0, 10))
    spool.ack(record_id, lines_done=4)
    spool.close()
    record = Spool(tmp_path).peek()
    assert record is not None
    assert (record.id, record.done) == (record_id, 4)
    assert record.lines[record.done :] == batch(4, 6)
    assert Spool(tmp_path).points == 6


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda data: data[:-7], id="torn tail from a kill during write"),
        pytest.param(
            lambda data: data[:-20] + b"X" + data[-19:], id="flipped byte in the last record"
        ),
    ],
)
def test_damaged_last_record_is_cut_and_counted_and_earlier_ones_survive(
    tmp_path: Path, damage
) -> None:
    spool = Spool(tmp_path)
    spool.append(batch(0))
    spool.append(batch(3))
    spool.close()
    (segment,) = tmp_path.glob("*.seg")
    segment.write_bytes(damage(segment.read_bytes()))
    reopened = Spool(tmp_path)
    assert reopened.corrupt_records == 1
    assert drain(reopened) == batch(0)
    reopened.append(batch(6))  # and it keeps working after the cut
    assert drain(reopened) == batch(6)


def test_full_spool_evicts_the_oldest_points_first_and_counts_them(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=64 * 1024, segment_bytes=4096, fsync=False)
    lines_written = 0
    while lines_written < 20_000:
        spool.append(batch(lines_written, 50))
        lines_written += 50
    assert spool.bytes <= 64 * 1024
    assert spool.evicted_points > 0
    remaining = drain(spool)
    assert len(remaining) + spool.evicted_points == 20_000
    assert remaining == batch(spool.evicted_points, len(remaining))  # the newest survive, in order


def test_acknowledged_segments_are_deleted(tmp_path: Path) -> None:
    spool = Spool(tmp_path, segment_bytes=4096)
    for i in range(0, 3000, 100):
        spool.append(batch(i, 100))
    drain(spool)
    assert list(tmp_path.glob("*.seg")) == []
    assert spool.bytes == 0


def test_sink_with_unreachable_server_and_full_spool_reports_evicted_points(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: connection refused
    sink = InfluxV1Sink(
        "down",
        url,
        "dialwatch",
        tmp_path / "spool",
        spool_max_bytes=32 * 1024,
        flush_interval=0.02,
        batch_size=100,
        retry_initial=60,
    )
    sink.start()
    for i in range(50):
        sink.submit(
            [MetricPoint("m", {"v": j}, {"target": "t"}, j) for j in range(i * 100, i * 100 + 100)]
        )
        time.sleep(0.005)
    deadline = time.monotonic() + 15
    while sink.health().queued and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close()
    health = sink.health()
    assert not health.up and "connection refused" in health.message
    assert health.points_evicted > 0
    assert health.points_dropped == health.points_evicted
    assert health.points_spooled + health.points_evicted == 5000
    assert 0 < health.spool_bytes <= 32 * 1024
    assert health.spool_oldest_age is not None


CLASSES = [
    (400, Outcome.SPLIT),
    (422, Outcome.SPLIT),
    (413, Outcome.SHRINK),
    (401, Outcome.SPOOL),
    (403, Outcome.SPOOL),
    (404, Outcome.SPOOL),
    (429, Outcome.SPOOL),
    (500, Outcome.SPOOL),
    (502, Outcome.SPOOL),
    (503, Outcome.SPOOL),
    (418, Outcome.SPOOL),
]


@pytest.mark.parametrize(("status", "outcome"), CLASSES, ids=[str(c[0]) for c in CLASSES])
def test_each_http_status_has_one_outcome(status: int, outcome: Outcome) -> None:
    assert classify(status) is outcome


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0), ("", None), ("soon", None)],
    ids=["seconds", "http date", "empty", "garbage"],
)
def test_retry_after_is_read_as_seconds_or_a_date(header: str, seconds: float | None) -> None:
    now = 1445412480.0  # 2015-10-21 07:28:00 UTC
    assert parse_retry_after(header, now=now) == seconds


class ExplodingSink(InfluxV1Sink):
    """The real v1 sink whose transport first raises an error type nobody expected."""

    explode = True

    def post(self, body: bytes) -> None:
        if self.explode:
            raise RuntimeError("client bug")
        super().post(body)


def test_an_unexpected_transport_error_spools_the_batch_instead_of_losing_it(
    tmp_path: Path,
) -> None:
    sink = ExplodingSink(
        "odd",
        f"http://127.0.0.1:{free_port()}",
        "d",
        tmp_path / "spool",
        flush_interval=0.02,
        retry_initial=60,
    )
    sink.start()
    sink.submit([MetricPoint("m", {"v": i}, {}, i + 1) for i in range(3)])
    deadline = time.monotonic() + 10
    while sink.health().points_spooled < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    sink.close()
    health = sink.health()
    assert (health.points_spooled, health.points_dropped) == (3, 0)
    assert "unexpected error: client bug" in health.message


def test_peek_many_groups_the_oldest_records_within_a_line_budget(tmp_path: Path) -> None:
    spool = Spool(tmp_path, fsync=False)
    ids = [spool.append(batch(i, 4)) for i in range(0, 20, 4)]
    assert [r.id for r in spool.peek_many(8)] == ids[:2]
    assert [r.id for r in spool.peek_many(3)] == ids[:1]  # always at least one
    spool.ack(ids[0], lines_done=2)
    first, second = spool.peek_many(6)
    assert (first.id, first.done, second.id) == (ids[0], 2, ids[1])
    assert [r.id for r in spool.peek_many(10**6)] == ids


class _MovedHandler(BaseHTTPRequestHandler):
    """A proxy that sends every request to https on the same host and port."""

    seen: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:  # noqa: N802
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(self.path)
        self.send_response(301)
        self.send_header("Location", f"https://{self.headers['Host']}{self.path}")
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_a_redirect_is_the_answer_not_followed_and_the_batch_is_kept_for_the_spool(
    tmp_path: Path,
) -> None:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _MovedHandler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{proxy.server_address[1]}"
    sink = InfluxV1Sink("moved", url, "dialwatch", tmp_path / "spool", create_database=False)
    try:
        with pytest.raises(WriteFailed) as failed:
            sink.post(b"m v=1 1")
    finally:
        sink.close()
        proxy.shutdown()
        proxy.server_close()
    assert (failed.value.status, failed.value.outcome) == (301, Outcome.SPOOL)
    assert str(failed.value) == f"{url}: HTTP 301: HTTP 301"
    assert _MovedHandler.seen == ["/write?db=dialwatch&precision=ns"]
