"""The audit log as CSV for the console's export: pure, streaming, and safe to open in a spreadsheet.

``lines(rows)`` yields the header and then one CSV line per entry as the rows
come (``monitor.store.queries.audit_entries`` reads them a batch at a time),
so an export of a year of entries never sits in memory whole.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a
formula (and some take a leading tab or carriage return the same way), and an
object or detail is text somebody typed — a user name, an incident note, a
probe's error. Such a cell gets a leading ``'``, which the spreadsheet shows
as text (OWASP, "CSV Injection"). Numbers we write (id, count) are never
touched; times are ISO 8601 in the timezone given.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, tzinfo

from monitor.store.queries import AuditRow

HEADER = (
    "id",
    "at",
    "actor",
    "address",
    "action",
    "object",
    "result",
    "count",
    "before",
    "after",
    "detail",
)
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: str) -> str:
    """``value`` as a spreadsheet shows it, never as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _json(value: object) -> str:
    return "" if value is None else json.dumps(value, ensure_ascii=False, sort_keys=True)


def row_cells(row: AuditRow, tz: tzinfo = UTC) -> list[str]:
    at = datetime.fromtimestamp(row.at, tz).isoformat(timespec="seconds")
    texts = [
        row.actor,
        row.address,
        row.action,
        row.object,
        row.result,
    ]
    return [
        str(row.id),
        at,
        *(safe_cell(t) for t in texts),
        str(row.count),
        safe_cell(_json(None if row.before is None else dict(row.before))),
        safe_cell(_json(None if row.after is None else dict(row.after))),
        safe_cell(row.detail),
    ]


def lines(rows: Iterable[AuditRow], tz: tzinfo = UTC) -> Iterator[str]:
    """The header, then one line per row (each ending in CRLF, as RFC 4180 has it)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def flushed() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow(HEADER)
    yield flushed()
    for row in rows:
        writer.writerow(row_cells(row, tz))
        yield flushed()
