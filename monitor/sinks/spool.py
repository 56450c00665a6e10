"""The on-disk spool, and the delivery policy of the InfluxDB sinks built on it.

``Spool`` — append-only segment files of checksummed records, one record per
batch of encoded lines:

    magic "DWS1" | body length u32 | crc32(body) u32 | body
    body = record id u64 | created ns u64 | line count u32 | lines joined by "\\n"

Records get increasing ids that survive restarts. What the server has
acknowledged is kept in a separate small file ``ack`` (record id and how many
of its leading lines are done), replaced atomically (write, fsync, rename,
fsync of the directory) after every acknowledgement, so a restart never
resends an acknowledged batch. A segment whose records are all acknowledged is
deleted. fsync policy: every appended record and every acknowledgement is
fsynced before the call returns (``fsync=False`` is for benchmarks only).
A torn or corrupt tail (kill -9 while writing) fails its checksum; the
segment is cut before it and the loss is counted.

The cap is bytes on disk: an append that would exceed it first deletes the
oldest segments, counting the points evicted.

``SpoolingSink`` — a ``BatchingSink`` that sends encoded batches through a
subclass's ``post(body)``; what happens on each answer is decided here, once,
for both InfluxDB sinks (see ``classify``).
"""

from __future__ import annotations

import email.utils
import logging
import os
import struct
import threading
import time
import zlib
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path
from typing import BinaryIO

from core.observation import MetricPoint
from core.vitals import SinkHealth
from monitor.sinks.base import BatchingSink, SinkError
from monitor.sinks.lineprotocol import encode_batch, join_lines

log = logging.getLogger(__name__)

_MAGIC = b"DWS1"
_HEAD = struct.Struct("<4sII")  # magic, body length, crc32(body)
_BODY_HEAD = struct.Struct("<QQI")  # record id, created ns, line count
_ACK = struct.Struct("<QII")  # record id, lines done, crc32 of the first 12 bytes
_SEGMENT_SUFFIX = ".seg"


@dataclass(frozen=True, slots=True)
class SpoolRecord:
    """One spooled batch. ``done``: leading lines already delivered or quarantined."""

    id: int
    created_ns: int
    lines: list[bytes]
    done: int = 0


@dataclass(slots=True)
class _Entry:
    id: int
    created_ns: int
    count: int
    offset: int
    size: int


@dataclass(slots=True)
class _Segment:
    path: Path
    entries: list[_Entry]
    size: int


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Spool:
    """Append-only, checksummed, capped FIFO of line batches on disk. Not thread-safe
    for writers: one writer thread appends and acks; ``stats`` may be read from anywhere."""

    def __init__(
        self,
        directory: Path | str,
        max_bytes: int = 1024**3,
        segment_bytes: int = 8 * 1024**2,
        fsync: bool = True,
    ) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        # Eviction works by whole segments, so a segment is a small part of the cap.
        self.segment_bytes = max(4096, min(segment_bytes, max_bytes // 8))
        self.fsync = fsync
        self._lock = threading.Lock()
        self._segments: list[_Segment] = []
        self._file: BinaryIO | None = None  # open handle of the last segment
        self.evicted_points = 0
        self.evicted_records = 0
        self.corrupt_records = 0
        self._acked_id, self._acked_lines = self._read_ack()
        self._load()
        last = max((e.id for s in self._segments for e in s.entries), default=self._acked_id)
        self._next_id = max(last, self._acked_id) + 1
        self._drop_acked_segments()

    # -- state -----------------------------------------------------------
    def _read_ack(self) -> tuple[int, int]:
        try:
            data = (self.directory / "ack").read_bytes()
        except FileNotFoundError:
            return 0, 0
        if len(data) == _ACK.size:
            record_id, done, crc = _ACK.unpack(data)
            if zlib.crc32(data[:12]) == crc:
                return record_id, done
        # A torn ack file cannot happen (it is replaced by rename); a corrupt one
        # means disk trouble. Resending is safer than skipping: InfluxDB absorbs it.
        log.error("spool %s: ack file is corrupt; replaying everything spooled", self.directory)
        return 0, 0

    def _write_ack(self) -> None:
        head = struct.pack("<QI", self._acked_id, self._acked_lines)
        tmp = self.directory / "ack.tmp"
        with open(tmp, "wb") as f:
            f.write(head + struct.pack("<I", zlib.crc32(head)))
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, self.directory / "ack")
        if self.fsync:
            _fsync_dir(self.directory)

    def _load(self) -> None:
        paths = sorted(self.directory.glob("*" + _SEGMENT_SUFFIX))
        for path in paths:
            entries, good = self._scan(path)
            size = path.stat().st_size
            if good < size:
                log.warning(
                    "spool %s: %s has a torn or corrupt record at byte %d; cut there",
                    self.directory,
                    path.name,
                    good,
                )
                self.corrupt_records += 1
                with open(path, "r+b") as f:
                    f.truncate(good)
                    if self.fsync:
                        os.fsync(f.fileno())
            if entries:
                self._segments.append(_Segment(path, entries, good))
            else:
                path.unlink()

    @staticmethod
    def _scan(path: Path) -> tuple[list[_Entry], int]:
        """Index a segment; returns its good records and the byte offset where they end."""
        entries: list[_Entry] = []
        offset = 0
        with open(path, "rb") as f:
            data = f.read()
        while offset + _HEAD.size <= len(data):
            magic, length, crc = _HEAD.unpack_from(data, offset)
            start = offset + _HEAD.size
            body = data[start : start + length]
            if magic != _MAGIC or len(body) != length or length < _BODY_HEAD.size:
                break
            if zlib.crc32(body) != crc:
                break
            record_id, created, count = _BODY_HEAD.unpack_from(body)
            entries.append(_Entry(record_id, created, count, offset, _HEAD.size + length))
            offset = start + length
        return entries, offset

    # -- writing ---------------------------------------------------------
    def append(self, lines: list[bytes]) -> int:
        """Spool one batch (fsynced unless ``fsync=False``); returns its record id."""
        payload = join_lines(lines)
        with self._lock:
            record_id = self._next_id
            self._next_id += 1
            created = time.time_ns()
            body = _BODY_HEAD.pack(record_id, created, len(lines)) + payload
            record = _HEAD.pack(_MAGIC, len(body), zlib.crc32(body)) + body
            self._make_room(len(record))
            segment = self._writable_segment(record_id)
            f = self._file
            assert f is not None
            f.write(record)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
            segment.entries.append(
                _Entry(record_id, created, len(lines), segment.size, len(record))
            )
            segment.size += len(record)
            return record_id

    def _writable_segment(self, record_id: int) -> _Segment:
        if self._segments and self._file is not None:
            last = self._segments[-1]
            if last.size < self.segment_bytes:
                return last
        self._close_file()
        path = self.directory / f"{record_id:020d}{_SEGMENT_SUFFIX}"
        segment = _Segment(path, [], 0)
        self._segments.append(segment)
        self._file = open(path, "ab")  # noqa: SIM115 - kept open across appends
        if self.fsync:
            _fsync_dir(self.directory)
        return segment

    def _make_room(self, incoming: int) -> None:
        while self._segments and self._bytes() + incoming > self.max_bytes:
            if len(self._segments) == 1:
                self._close_file()  # the open handle belongs to the newest segment
            oldest = self._segments.pop(0)
            lost = [e for e in oldest.entries if e.id > self._acked_id]
            lost_points = sum(e.count for e in lost)
            if lost and lost[0].id == self._acked_id + 1:
                lost_points -= self._acked_lines
            self.evicted_points += max(lost_points, 0)
            self.evicted_records += len(lost)
            oldest.path.unlink(missing_ok=True)
            log.warning(
                "spool %s: full (%d bytes); evicted %d oldest points",
                self.directory,
                self.max_bytes,
                lost_points,
            )

    def _close_file(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    # -- reading ---------------------------------------------------------
    def _pending(self) -> list[_Entry]:
        return [e for s in self._segments for e in s.entries if e.id > self._acked_id]

    def peek(self) -> SpoolRecord | None:
        """The oldest batch not yet acknowledged, or None when the spool is empty."""
        records = self.peek_many(1)
        return records[0] if records else None

    def peek_many(self, max_lines: int) -> list[SpoolRecord]:
        """The oldest unacknowledged batches, in order: at least one (when any), then
        more while their undelivered lines together stay within ``max_lines``."""
        out: list[SpoolRecord] = []
        total = 0
        with self._lock:
            for segment in self._segments:
                for entry in segment.entries:
                    if entry.id <= self._acked_id:
                        continue
                    done = self._acked_lines if entry.id == self._acked_id + 1 else 0
                    if out and total + entry.count - done > max_lines:
                        return out
                    with open(segment.path, "rb") as f:
                        f.seek(entry.offset + _HEAD.size)
                        body = f.read(entry.size - _HEAD.size)
                    payload = body[_BODY_HEAD.size :]
                    lines = payload.split(b"\n") if payload else []
                    out.append(SpoolRecord(entry.id, entry.created_ns, lines, done))
                    total += len(lines) - done
        return out

    def ack(self, record_id: int, lines_done: int | None = None) -> None:
        """The server has the record (or, with ``lines_done``, its first lines)."""
        with self._lock:
            if lines_done is None:
                self._acked_id, self._acked_lines = record_id, 0
            else:
                self._acked_id, self._acked_lines = record_id - 1, lines_done
            self._write_ack()
            self._drop_acked_segments()

    def _drop_acked_segments(self) -> None:
        while self._segments and all(e.id <= self._acked_id for e in self._segments[0].entries):
            segment = self._segments.pop(0)
            if not self._segments:
                self._close_file()
            segment.path.unlink(missing_ok=True)

    # -- numbers ---------------------------------------------------------
    def _bytes(self) -> int:
        return sum(s.size for s in self._segments)

    @property
    def bytes(self) -> int:
        with self._lock:
            return self._bytes()

    @property
    def points(self) -> int:
        with self._lock:
            pending = self._pending()
            total = sum(e.count for e in pending)
            if pending and pending[0].id == self._acked_id + 1:
                total -= self._acked_lines
            return total

    @property
    def empty(self) -> bool:
        with self._lock:
            # Ids only grow, so the newest record tells whether anything is unacknowledged.
            last = next((seg.entries[-1] for seg in reversed(self._segments) if seg.entries), None)
            return last is None or last.id <= self._acked_id

    def oldest_age(self) -> float | None:
        """Seconds since the oldest unacknowledged batch was spooled."""
        with self._lock:
            pending = self._pending()
            if not pending:
                return None
            return max(0.0, (time.time_ns() - pending[0].created_ns) / 1e9)

    def close(self) -> None:
        with self._lock:
            self._close_file()


# -- delivery policy ------------------------------------------------------


class Outcome(Enum):
    """What to do with a batch after the server answered."""

    SPOOL = "spool"  # time may fix it: keep on disk, retry with backoff
    SPLIT = "split"  # some points are bad (400/422): split to isolate them
    SHRINK = "shrink"  # too large (413): split and retry


def classify(status: int) -> Outcome:
    """HTTP status of a failed write → what to do. Connection errors and timeouts
    never reach here: they are always ``SPOOL``.

    401/403 (token) and 404 (database or bucket missing) are spooled: an operator
    fixes them, and the points must still be there when they do. Any status we
    do not know is spooled too — losing data is worse than waiting.
    """
    if status in (400, 422):
        return Outcome.SPLIT
    if status == 413:
        return Outcome.SHRINK
    return Outcome.SPOOL


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class WriteFailed(SinkError):
    """A write the server refused or never answered; ``status`` None for no answer."""

    def __init__(
        self, message: str, status: int | None = None, retry_after: float | None = None
    ) -> None:
        outcome = Outcome.SPOOL if status is None else classify(status)
        super().__init__(message, retryable=outcome is Outcome.SPOOL, retry_after=retry_after)
        self.status = status
        self.outcome = outcome


class SpoolingSink(BatchingSink):
    """Sends batches of line protocol; spools and replays when the server is away.

    Order: while anything is spooled, new batches are appended behind it, so
    points reach the server in the order they were submitted. Replay runs on
    the writer thread (``on_tick``) with exponential backoff from
    ``retry_initial`` to ``retry_max`` seconds, or the server's Retry-After.
    """

    def __init__(
        self,
        name: str,
        spool_dir: Path | str,
        *,
        spool_max_bytes: int = 1024**3,
        quarantine_dir: Path | str | None = None,
        batch_size: int = 5000,
        flush_interval: float = 1.0,
        max_queued: int = 200_000,
        retry_initial: float = 1.0,
        retry_max: float = 30.0,
        replay_slice: float = 2.0,
        spool_fsync: bool = True,
    ) -> None:
        super().__init__(name, batch_size, flush_interval, max_queued)
        self.spool = Spool(spool_dir, max_bytes=spool_max_bytes, fsync=spool_fsync)
        self.quarantine_dir = (
            Path(quarantine_dir) if quarantine_dir else Path(spool_dir) / "quarantine"
        )
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.replay_slice = replay_slice
        self._backoff = 0.0
        self._next_attempt = 0.0  # monotonic
        self._quarantined = 0
        self._alert: str | None = None
        self._evicted_reported = 0
        if not self.spool.empty:
            self.set_state(False, f"{self.spool.points} points spooled from before; replaying")

    @abstractmethod
    def post(self, body: bytes) -> None:
        """Send one request body of line protocol; raise WriteFailed on any failure."""

    # -- BatchingSink hooks ----------------------------------------------
    def write_batch(self, points: list[MetricPoint]) -> int | None:
        encoded = encode_batch(points)
        if encoded.rejected:
            self._quarantine(
                [repr(p).encode() for p, _ in encoded.rejected],
                "; ".join(sorted({reason for _, reason in encoded.rejected})),
            )
        if encoded.notes:
            log.info("sink %s: %s", self.name, "; ".join(sorted(set(encoded.notes))))
        if not encoded.lines:
            return 0
        if not self.spool.empty or time.monotonic() < self._next_attempt:
            self._spool(encoded.lines)
            return 0
        done = 0

        def progress(n: int) -> None:
            nonlocal done
            done = n

        try:
            self._deliver(encoded.lines, 0, progress)
        except WriteFailed as exc:
            self._spool(encoded.lines[done:])
            self._went_down(exc)
            return 0
        self._came_up()
        return 0

    def on_tick(self) -> None:
        if self.spool.empty or time.monotonic() < self._next_attempt:
            return
        deadline = time.monotonic() + self.replay_slice
        while time.monotonic() < deadline:
            try:
                # Several small records go out as one request (a 1 s flush during an
                # outage makes records of a few thousand points; requests cost more).
                records = self.spool.peek_many(self.batch_size)
            except OSError as exc:
                # The spool's disk failed under us: say so and wait, rather than spin.
                self._alert = f"cannot read the spool: {exc}"
                self._next_attempt = time.monotonic() + self.retry_max
                log.error("sink %s: cannot read the spool: %s", self.name, exc)
                self.fault(exc)
                return
            if not records:
                self._came_up()
                return
            lines = [line for record in records for line in record.lines]
            try:
                self._deliver(lines, records[0].done, self._partial_ack(records))
            except WriteFailed as exc:
                self._went_down(exc)
                return
            self.spool.ack(records[-1].id)
        if self.spool.empty:
            self._came_up()
        else:
            self.set_state(True, f"replaying: {self.spool.points} points still spooled")

    def _partial_ack(self, records: list[SpoolRecord]) -> Callable[[int], None]:
        """Remember how far into the records sent together we got (``n`` lines of
        their concatenation settled), so a split interrupted by an outage resumes
        where it stopped instead of resending what the server already has."""
        ends = []
        total = 0
        for record in records:
            total += len(record.lines)
            ends.append(total)

        def progress(n: int) -> None:
            start = 0
            for index, (record, end) in enumerate(zip(records, ends, strict=True)):
                if n < end:
                    if n > start:
                        self.spool.ack(record.id, n - start)
                    elif index:
                        self.spool.ack(records[index - 1].id)  # the ones before it are done
                    return
                start = end
            # n covers everything: the caller acknowledges the last record itself.

        return progress

    def batch_wait(self) -> float:
        if not self.spool.empty and time.monotonic() >= self._next_attempt:
            return 0.0  # replay is due: do not sit out a flush interval first
        return self.flush_interval

    def on_close(self) -> None:
        self.spool.close()

    def health(self) -> SinkHealth:
        base = super().health()
        evicted = self.spool.evicted_points
        return replace(
            base,
            points_dropped=base.points_dropped + evicted,
            spool_bytes=self.spool.bytes,
            spool_oldest_age=self.spool.oldest_age(),
            points_spooled=self.spool.points,
            points_evicted=evicted,
            points_quarantined=self._quarantined,
            alert=self._alert,
        )

    # -- delivery --------------------------------------------------------
    def _deliver(self, lines: list[bytes], start: int, progress: Callable[[int], None]) -> None:
        """Send ``lines[start:]`` in order, splitting around bad points.

        ``progress(n)`` is called whenever the first ``n`` lines are settled
        (written or quarantined), so a spooled record can remember partial
        progress. A retryable failure propagates as WriteFailed.
        """
        self._send_range(lines, start, len(lines), progress)

    def _send_range(
        self, lines: list[bytes], lo: int, hi: int, progress: Callable[[int], None]
    ) -> None:
        if lo >= hi:
            return
        started = time.monotonic()
        try:
            try:
                self.post(join_lines(lines[lo:hi]))
            except WriteFailed:
                raise
            except Exception as exc:
                # A client bug or an error type we did not expect: keep the points
                # (spool them) rather than let the base class drop the batch.
                log.exception("sink %s: unexpected error posting %d points", self.name, hi - lo)
                raise WriteFailed(f"unexpected error: {exc}") from exc
        except WriteFailed as exc:
            if exc.outcome is Outcome.SPOOL:
                raise
            if hi - lo == 1:
                why = "too large for the server" if exc.outcome is Outcome.SHRINK else str(exc)
                self._quarantine([lines[lo]], why)
                progress(hi)
                return
            mid = (lo + hi) // 2
            self._send_range(lines, lo, mid, progress)
            self._send_range(lines, mid, hi, progress)
            return
        self.count_written(hi - lo, time.monotonic() - started)
        progress(hi)

    def _spool(self, lines: list[bytes]) -> None:
        if not lines:
            return
        try:
            self.spool.append(lines)
        except OSError as exc:
            # A full or broken disk: the points are lost, but counted and said.
            log.error("sink %s: cannot spool %d points: %s", self.name, len(lines), exc)
            self.fault(exc)
            self.count_dropped(len(lines))
            self._alert = f"spool write failed: {exc}"

    def _went_down(self, exc: WriteFailed) -> None:
        self._backoff = min(self.retry_max, max(self.retry_initial, self._backoff * 2))
        wait = self._backoff if exc.retry_after is None else min(exc.retry_after, 3600.0)
        self._next_attempt = time.monotonic() + wait
        self.set_state(False, f"{exc} (points wait in the spool; next try in {wait:g}s)")
        self.fault(exc)

    def _came_up(self) -> None:
        self._backoff = 0.0
        self._next_attempt = 0.0
        self.set_state(True, "ok")

    def _quarantine(self, lines: list[bytes], reason: str) -> None:
        self.quarantine_dir.mkdir(parents=True, exist_ok=True)
        path = self.quarantine_dir / f"{time.strftime('%Y%m%d', time.gmtime())}.lp"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        reason_line = " ".join(reason.split())
        with open(path, "ab") as f:
            f.write(f"# {stamp} {self.name}: {reason_line}\n".encode())
            for line in lines:
                f.write(line + b"\n")
        self._quarantined += len(lines)
        self._alert = (
            f"{self._quarantined} points refused by the server and quarantined in "
            f"{self.quarantine_dir}; last reason: {reason_line}"
        )
        log.error("sink %s: quarantined %d points: %s", self.name, len(lines), reason_line)
        self.fault(f"{len(lines)} points quarantined: {reason_line}", error_class="Quarantined")
