"""CSV CDR tail: follow Asterisk's ``Master.csv`` and keep the window's counts in probe state.

Each poll reads the complete lines added since the last one (a partial last
line waits for its newline) and adds every row to a small time bucket of
per-trunk ``Counts``; the window is the sum of the buckets it covers. Only
counts are kept — 60 buckets per window, at most ``MAX_STATE_TRUNKS`` trunks
each — so a center doing 50 calls/s (45,000 rows per 15 min) costs a few
kilobytes of state, not the rows.

What survives what (``ctx.state["dialer_csv"]``, persisted by the engine
together with the buckets, so offset and counts never disagree):

- **restart**: the saved device, inode and byte offset say where to go on;
- **rotation** (the path now has another inode): the rest of the old file is
  read from the rotated copy in the same directory (``Master.csv.1``,
  ``Master.csv-20261123``...) found by its inode, then the new file from its start;
- **truncation or replacement in place** (smaller than the offset, or the
  bytes just before the offset changed): read again from the start, and say so.

The row's time (``start`` by default) decides its bucket, so a row that
arrives late still lands in its own minute; rows older than the window are
read past and not counted.
"""

from __future__ import annotations

import asyncio
import csv
import os
import time
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from core.observation import ErrorClass
from probes.base import ProbeContext
from probes.dialer.cdr import (
    OTHER_TRUNK,
    BadRow,
    CallReader,
    SourceError,
    WindowSample,
)
from probes.dialer.config import CsvSource, DialerTarget
from probes.dialer.kpi import Counts

STATE_KEY = "dialer_csv"
BUCKETS_PER_WINDOW = 60
MAX_STATE_TRUNKS = 256
"""Distinct trunk names kept per bucket; more (a pattern that captures call ids?) go to ``other``."""
FINGERPRINT_BYTES = 64
"""Bytes before the offset remembered to notice a file replaced in place by one as long."""
MIB = 1024 * 1024


@dataclass
class Position:
    """Where the tail stands in the file."""

    dev: int
    inode: int
    offset: int
    fingerprint: str = ""  # latin-1 text of the bytes just before offset


@dataclass
class ReadResult:
    """Rows parsed in one poll, already bucketed."""

    buckets: dict[int, dict[str, Counts]] = field(default_factory=dict)
    rows: int = 0
    skipped: int = 0
    skipped_example: str = ""
    notes: list[str] = field(default_factory=list)
    warn: bool = False


def bucket_seconds(window: float) -> int:
    return max(1, int(window // BUCKETS_PER_WINDOW))


class RowParser:
    """Turns one CSV record into (time, call) using the source's field names."""

    def __init__(self, source: CsvSource, tz: zoneinfo.ZoneInfo) -> None:
        index = {name: i for i, name in enumerate(source.fields)}
        cols = source.columns
        self.i_time = index[cols.calldate]
        self.i_disp = index[cols.disposition]
        self.i_trunk = index[cols.trunk]
        self.i_billsec = index[cols.billsec]
        self.i_cause = index[cols.hangupcause] if cols.hangupcause else None
        self.i_marker = index[source.abandon.column] if source.abandon is not None else None
        self.needed = 1 + max(
            i
            for i in (self.i_time, self.i_disp, self.i_trunk, self.i_billsec, self.i_cause)
            if i is not None
        )
        self.names = source.fields
        self.time_format = source.time_format
        self.tz = tz
        self.reader = CallReader.from_config(source.trunk_pattern, source.abandon)

    def when(self, text: str) -> float:
        if not text.strip():
            raise BadRow(f"no {self.names[self.i_time]}")
        try:
            naive = datetime.strptime(text.strip(), self.time_format)
        except ValueError:
            raise BadRow(f"{self.names[self.i_time]} {text[:30]!r} is not a time") from None
        return naive.replace(tzinfo=self.tz).timestamp()

    def parse(self, record: list[str]) -> tuple[float, Any]:
        if len(record) < self.needed:
            missing = self.names[len(record)] if len(record) < len(self.names) else "?"
            raise BadRow(f"only {len(record)} fields, no {missing}")
        at = self.when(record[self.i_time])
        marker = (
            record[self.i_marker]
            if self.i_marker is not None and self.i_marker < len(record)
            else None
        )
        cause = record[self.i_cause] if self.i_cause is not None else None
        call = self.reader.read(
            record[self.i_trunk], record[self.i_disp], record[self.i_billsec], cause, marker
        )
        return at, call


def parse_lines(
    data: bytes, base_offset: int, parser: RowParser, oldest: float, bucket: int, out: ReadResult
) -> None:
    """Count every complete line of ``data`` (which starts at byte ``base_offset`` of the file)."""
    position = base_offset
    for raw in data.split(b"\n"):
        line_at = position
        position += len(raw) + 1
        if not raw.strip():
            continue
        out.rows += 1
        text = raw.decode("utf-8", errors="replace").rstrip("\r")
        try:
            record = next(csv.reader([text]))
            at, call = parser.parse(record)
        except (BadRow, csv.Error, StopIteration) as exc:
            if not out.skipped_example:
                out.skipped_example = f"row at byte {line_at}: {exc}"
            out.skipped += 1
            continue
        if at < oldest:
            continue
        key = int(at // bucket) * bucket
        trunks = out.buckets.setdefault(key, {})
        name = call.trunk
        if name not in trunks and len(trunks) >= MAX_STATE_TRUNKS:
            name = OTHER_TRUNK
        counts = trunks.get(name)
        if counts is None:
            counts = trunks[name] = Counts()
        counts.add_call(call.outcome, call.billsec, call.abandoned)


def _fingerprint(fd: int, offset: int) -> str:
    if offset <= 0:
        return ""
    start = max(0, offset - FINGERPRINT_BYTES)
    return os.pread(fd, offset - start, start).decode("latin-1")


def _find_rotated(path: Path, dev: int, inode: int) -> Path | None:
    """The file in ``path``'s directory that still has the old inode (the rotated copy)."""
    try:
        candidates = [p for p in path.parent.iterdir() if p.name.startswith(path.name)]
    except OSError:
        return None
    for candidate in candidates:
        try:
            st = candidate.stat()
        except OSError:
            continue
        if st.st_ino == inode and st.st_dev == dev and candidate != path:
            return candidate
    return None


def _read_complete_lines(fd: int, offset: int, size: int, limit: int, final: bool) -> bytes:
    """Bytes from ``offset`` up to the last newline (or to ``size`` when ``final``), at most ``limit``."""
    want = min(size - offset, limit)
    if want <= 0:
        return b""
    data = os.pread(fd, want, offset)
    if final and offset + len(data) >= size:
        return data
    cut = data.rfind(b"\n")
    return data[: cut + 1] if cut >= 0 else b""


def read_new_rows(
    source: CsvSource, previous: Position | None, now: float, window: float, tz: zoneinfo.ZoneInfo
) -> tuple[Position, ReadResult]:
    """One poll's reading (blocking; runs in a worker thread)."""
    path = Path(source.path)
    bucket = bucket_seconds(window)
    oldest = now - window - bucket
    parser = RowParser(source, tz)
    out = ReadResult()
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise SourceError(f"the CDR file {path} does not exist", ErrorClass.UNREACHABLE) from None
    except OSError as exc:
        raise SourceError(
            f"cannot open the CDR file {path}: {exc.strerror}", ErrorClass.UNREACHABLE
        ) from None
    try:
        st = os.fstat(fd)
        size = st.st_size
        if previous is None:
            offset = max(0, size - source.backfill_bytes)
            if offset > 0:
                # Start at a line boundary: skip the partial line we landed in.
                head = os.pread(fd, min(size - offset, 1 * MIB), offset)
                cut = head.find(b"\n")
                offset = offset + cut + 1 if cut >= 0 else size
                out.notes.append(
                    f"started at the last {source.backfill_bytes / MIB:g} MiB of {path.name}"
                )
        elif (previous.dev, previous.inode) != (st.st_dev, st.st_ino):
            offset = 0
            rotated = _find_rotated(path, previous.dev, previous.inode)
            if rotated is None:
                out.notes.append(
                    f"{path.name} was replaced and the old file was not found next to it; "
                    "rows written to it after the last poll were not counted"
                )
                out.warn = True
            else:
                _finish_rotated(rotated, previous, source, parser, oldest, bucket, out)
        elif size < previous.offset or _fingerprint(fd, previous.offset) != previous.fingerprint:
            out.notes.append(
                f"{path.name} was truncated or rewritten ({size} bytes, the tail was at "
                f"{previous.offset}); reading it again from the start"
            )
            out.warn = True
            offset = 0
        else:
            offset = previous.offset
        data = _read_complete_lines(fd, offset, size, source.max_read_bytes, final=False)
        parse_lines(data, offset, parser, oldest, bucket, out)
        offset += len(data)
        left = size - offset
        if left > source.max_read_bytes // 2 and len(data) > 0:
            out.notes.append(f"catching up: {left / MIB:.1f} MiB of {path.name} still to read")
        return Position(st.st_dev, st.st_ino, offset, _fingerprint(fd, offset)), out
    finally:
        os.close(fd)


def _finish_rotated(
    rotated: Path,
    previous: Position,
    source: CsvSource,
    parser: RowParser,
    oldest: float,
    bucket: int,
    out: ReadResult,
) -> None:
    """Read what was added to the old file between our last poll and its rotation."""
    try:
        fd = os.open(rotated, os.O_RDONLY)
    except OSError:
        out.notes.append(
            f"could not open the rotated file {rotated.name}; its last rows were not counted"
        )
        out.warn = True
        return
    try:
        size = os.fstat(fd).st_size
        start = previous.offset if size >= previous.offset else 0
        # The old file gets no more writes: its last line counts even without a newline.
        data = _read_complete_lines(fd, start, size, source.max_read_bytes, final=True)
        parse_lines(data, start, parser, oldest, bucket, out)
        out.notes.append(f"{Path(source.path).name} was rotated; read the rest of {rotated.name}")
    finally:
        os.close(fd)


def merge_buckets(
    saved: Mapping[str, Mapping[str, Counts]],
    fresh: Mapping[int, Mapping[str, Counts]],
    oldest: float,
) -> dict[str, dict[str, Counts]]:
    """Saved buckets plus this poll's, without those that fell out of the window."""
    merged: dict[str, dict[str, Counts]] = {}
    for key, trunks in saved.items():
        if int(key) < oldest:
            continue
        merged[key] = dict(trunks)
    for key_int, trunks in fresh.items():
        key = str(key_int)
        into = merged.setdefault(key, {})
        for name, counts in trunks.items():
            if name not in into and len(into) >= MAX_STATE_TRUNKS:
                name = OTHER_TRUNK
            into.setdefault(name, Counts()).add(counts)
    return merged


def window_counts(
    buckets: Mapping[str, Mapping[str, Counts]], now: float, window: float, bucket: int
) -> dict[str, Counts]:
    """Per-trunk counts of the buckets that start inside [now - window, now]."""
    first = now - window
    trunks: dict[str, Counts] = {}
    for key, per_trunk in buckets.items():
        if int(key) < first:
            continue
        for name, counts in per_trunk.items():
            trunks.setdefault(name, Counts()).add(counts)
    return trunks


def load_state(raw: Any, source: CsvSource, bucket: int) -> tuple[Position | None, dict[str, Any]]:
    """The saved position and buckets, or nothing when absent, malformed or for another file."""
    if not isinstance(raw, dict) or raw.get("path") != source.path or raw.get("bucket") != bucket:
        return None, {}
    try:
        position = Position(
            int(raw["dev"]), int(raw["inode"]), int(raw["offset"]), str(raw.get("fingerprint", ""))
        )
        buckets = raw.get("buckets") or {}
        if not isinstance(buckets, dict):
            return None, {}
        return position, buckets
    except (KeyError, TypeError, ValueError):
        return None, {}


async def collect(
    target: DialerTarget, ctx: ProbeContext, now: float | None = None
) -> WindowSample:
    source = target.source
    assert isinstance(source, CsvSource)
    now = time.time() if now is None else now
    tz = zoneinfo.ZoneInfo(source.timezone or ctx.site.timezone)
    bucket = bucket_seconds(target.window)
    previous, saved = load_state(ctx.state.get(STATE_KEY), source, bucket)
    try:
        saved_buckets = {
            k: {n: Counts.from_list(v) for n, v in t.items()} for k, t in saved.items()
        }
    except (TypeError, ValueError, AttributeError):
        previous, saved_buckets = None, {}
    position, result = await asyncio.to_thread(
        read_new_rows, source, previous, now, target.window, tz
    )
    oldest = now - target.window - bucket
    merged = merge_buckets(saved_buckets, result.buckets, oldest)
    # Offset and counts are saved together: after a crash both are from the same poll.
    ctx.state[STATE_KEY] = {
        "path": source.path,
        "bucket": bucket,
        "dev": position.dev,
        "inode": position.inode,
        "offset": position.offset,
        "fingerprint": position.fingerprint,
        "buckets": {k: {n: c.to_list() for n, c in t.items()} for k, t in merged.items()},
    }
    return WindowSample(
        trunks=window_counts(merged, now, target.window, bucket),
        window_seconds=target.window,
        skipped=result.skipped,
        skipped_example=result.skipped_example,
        read_rows=result.rows,
        notes=tuple(result.notes),
        warn_notes=result.warn,
    )
