"""The audit log: who did what, from where, with what result — hash-chained.

One table (``audit_entry``), one writer function (``record``), called inside
the transaction of the change it records, from the web, the CLI, the engine
and rules alike. Each row carries ``prev_hash`` (the hash of the row before
it, or of the pruning anchor) and its own ``hash`` over that and its fields,
so an edited, inserted or deleted row breaks the chain at that row
(``verify``). Rows are chained one at a time: on SQLite the caller's write
transaction is ``BEGIN IMMEDIATE`` (``StateRepository.transaction``), on
PostgreSQL a transaction-scoped advisory lock serialises writers, so two
processes (the appliance and ``dialwatch user add``) never fork the chain.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Connection, Table, func, insert, select, text

from monitor.events import check_actor
from monitor.store.models import AuditAnchor, AuditEntry

Result = Literal["ok", "denied", "failed", "error"]
RESULTS: tuple[str, ...] = ("ok", "denied", "failed", "error")
GENESIS = "0" * 64
"""``prev_hash`` of the first entry ever written."""
MAX_OBJECT = 500
MAX_DETAIL = 2000
_LOCK_KEY = 0x6477_6175_6469_74  # "dwaudit": PostgreSQL advisory lock for the chain

_ENTRY: Table = AuditEntry.__table__  # type: ignore[assignment]
ENTRY = _ENTRY
"""The ``audit_entry`` table, for the retention job and the read model."""
_ANCHOR: Table = AuditAnchor.__table__  # type: ignore[assignment]
_FIELDS = (
    "at",
    "actor",
    "address",
    "action",
    "object",
    "result",
    "before",
    "after",
    "detail",
    "count",
)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One entry as read back."""

    id: int
    at: float
    actor: str
    address: str
    action: str
    object: str
    result: str
    before: Mapping[str, Any] | None
    after: Mapping[str, Any] | None
    detail: str
    count: int


def entry_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 hex over the previous hash and this entry's fields (pure, canonical JSON).

    ``at`` enters as its ``repr``-exact float via JSON; both databases give
    floats back bit-for-bit, so the hash recomputes anywhere.
    """
    body = {name: fields.get(name) for name in _FIELDS}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


def _clip(value: str, limit: int) -> str:
    return value if len(value) <= limit else value[: limit - 1] + "…"


_HEAD = "dialwatch.audit_head"
"""``conn.info`` key: (the transaction, the hash this module wrote last in it)."""


def _chain_head(conn: Connection) -> str:
    # Inside one write transaction the head is the entry written last by this code (the
    # writer lock, or PostgreSQL's advisory lock, keeps every other writer out until the
    # commit): a batch of entries reads it once.
    cached = conn.info.get(_HEAD)
    if cached is not None and cached[0] is conn.get_transaction():
        return str(cached[1])
    last = conn.execute(select(_ENTRY.c.hash).order_by(_ENTRY.c.id.desc()).limit(1)).scalar()
    if last is not None:
        return str(last)
    anchor = conn.execute(select(_ANCHOR.c.hash).where(_ANCHOR.c.id == 1)).scalar()
    return str(anchor) if anchor is not None else GENESIS


def record(
    conn: Connection,
    *,
    at: float,
    actor: str,
    action: str,
    result: Result = "ok",
    object: str = "",
    address: str = "",
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    detail: str = "",
    count: int = 1,
) -> int:
    """Append one entry inside the caller's write transaction; returns its id."""
    check_actor(actor)
    if result not in RESULTS:
        raise ValueError(f"audit result must be one of {', '.join(RESULTS)}, not {result!r}")
    if not isinstance(at, int | float) or not math.isfinite(at):
        raise ValueError(f"at must be epoch seconds, not {at!r}")
    if not action or len(action) > 64:
        raise ValueError("an audit action is 1 to 64 characters")
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    fields: dict[str, Any] = {
        "at": float(at),
        "actor": actor,
        "address": _clip(address or "", 64),
        "action": action,
        "object": _clip(object or "", MAX_OBJECT),
        "result": result,
        "before": dict(before) if before is not None else None,
        "after": dict(after) if after is not None else None,
        "detail": _clip(detail or "", MAX_DETAIL),
        "count": int(count),
    }
    # A JSON round trip now, so what is hashed is exactly what reads back.
    for key in ("before", "after"):
        if fields[key] is not None:
            fields[key] = json.loads(json.dumps(fields[key], default=str))
    prev = _chain_head(conn)
    digest = entry_hash(prev, fields)
    entry_id = int(
        conn.execute(
            insert(_ENTRY).values(**fields, prev_hash=prev, hash=digest)
        ).inserted_primary_key[0]  # type: ignore[index]
    )
    if conn.get_transaction() is not None:
        conn.info[_HEAD] = (conn.get_transaction(), digest)
    return entry_id


@dataclass(frozen=True, slots=True)
class ChainCheck:
    """What ``verify`` found: ``broken_at`` is the first bad entry's id, or None."""

    checked: int
    broken_at: int | None
    reason: str
    head: str


def verify(conn: Connection, *, batch: int = 5000) -> ChainCheck:
    """Walk the chain from the anchor; name the first entry whose hashes do not hold."""
    anchor = conn.execute(select(_ANCHOR.c.hash, _ANCHOR.c.through_id)).first()
    prev = str(anchor.hash) if anchor is not None else GENESIS
    after_id = int(anchor.through_id) if anchor is not None else 0
    checked = 0
    while True:
        rows = conn.execute(
            select(_ENTRY).where(_ENTRY.c.id > after_id).order_by(_ENTRY.c.id).limit(batch)
        ).all()
        if not rows:
            return ChainCheck(checked, None, "", prev)
        for row in rows:
            if row.prev_hash != prev:
                return ChainCheck(
                    checked,
                    row.id,
                    f"entry {row.id} does not follow the entry before it "
                    "(an entry was deleted or inserted here)",
                    prev,
                )
            fields = {name: getattr(row, name) for name in _FIELDS}
            if entry_hash(prev, fields) != row.hash:
                return ChainCheck(
                    checked, row.id, f"entry {row.id} was changed after it was written", prev
                )
            prev = row.hash
            after_id = row.id
            checked += 1


def count_entries(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(_ENTRY)).scalar_one())


# -- the chain's ends ------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Anchor:
    """Where the chain starts after pruning: entries up to ``through_id`` are gone, and
    the first kept entry follows ``hash`` (the last pruned entry's)."""

    through_id: int
    hash: str
    at: float


@dataclass(frozen=True, slots=True)
class Head:
    """The newest entry (id 0 and the anchor's or the genesis hash when there is none)."""

    id: int
    hash: str

    def __str__(self) -> str:
        return f"{self.id}:{self.hash}"


def anchor(conn: Connection) -> Anchor | None:
    row = conn.execute(select(_ANCHOR).where(_ANCHOR.c.id == 1)).first()
    return Anchor(int(row.through_id), str(row.hash), float(row.at)) if row is not None else None


def head(conn: Connection) -> Head:
    """The chain head as the appliance logs it: ``entry id:hash``."""
    last = conn.execute(
        select(_ENTRY.c.id, _ENTRY.c.hash).order_by(_ENTRY.c.id.desc()).limit(1)
    ).first()
    if last is not None:
        return Head(int(last.id), str(last.hash))
    kept = anchor(conn)
    return Head(kept.through_id, kept.hash) if kept is not None else Head(0, GENESIS)


def entry_hash_of(conn: Connection, entry_id: int) -> str | None:
    """The stored hash of one entry (None: no such entry, or pruned)."""
    found = conn.execute(select(_ENTRY.c.hash).where(_ENTRY.c.id == entry_id)).scalar()
    return str(found) if found is not None else None


# -- pruning ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Pruned:
    """What one ``prune_prefix`` call did."""

    deleted: int
    through_id: int | None
    """The id of the last entry deleted (None: none)."""
    more: bool
    """True when the batch was full: more entries may be due."""
    broken_at: int | None = None
    """The chain does not hold at this entry: nothing from it on is pruned."""


def prune_prefix(
    conn: Connection,
    *,
    before: float | None,
    below_id: int | None,
    limit: int,
    at: float,
) -> Pruned:
    """Delete the oldest entries that are due — older than ``before`` or with an id below
    ``below_id`` — at most ``limit``, and move the anchor past them, in the caller's
    write transaction.

    Only a prefix of the chain goes: the walk stops at the first entry that is
    not due, so an entry written late with an early time (a merged exception
    entry) never leaves a hole. Each entry is verified before it goes, so
    pruning cannot launder a changed entry into a trusted anchor; at the first
    one that does not hold it stops and says where (``broken_at``).
    """
    if before is None and below_id is None:
        return Pruned(0, None, False)
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    kept = anchor(conn)
    prev = kept.hash if kept is not None else GENESIS
    after_id = kept.through_id if kept is not None else 0
    rows = conn.execute(
        select(_ENTRY).where(_ENTRY.c.id > after_id).order_by(_ENTRY.c.id).limit(limit)
    ).all()
    last: Any = None
    broken: int | None = None
    for row in rows:
        due = (before is not None and row.at < before) or (
            below_id is not None and row.id < below_id
        )
        if not due:
            break
        fields = {name: getattr(row, name) for name in _FIELDS}
        if row.prev_hash != prev or entry_hash(prev, fields) != row.hash:
            broken = int(row.id)
            break
        prev = row.hash
        last = row
    if last is None:
        return Pruned(0, None, False, broken)
    deleted = conn.execute(
        _ENTRY.delete().where(_ENTRY.c.id > after_id, _ENTRY.c.id <= last.id)
    ).rowcount
    moved = {"through_id": int(last.id), "hash": str(last.hash), "at": float(at)}
    if kept is None:
        conn.execute(insert(_ANCHOR).values(id=1, **moved))
    else:
        conn.execute(_ANCHOR.update().where(_ANCHOR.c.id == 1).values(**moved))
    full = len(rows) == limit and broken is None and last is rows[-1]
    return Pruned(int(deleted or 0), int(last.id), full, broken)
