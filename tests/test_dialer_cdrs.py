"""Generated CDRs whose true KPIs are known, for the dialer probe's SQL and CSV tests.

``generate_cdrs(seed, ...)`` picks each call's fate from a hand-written
table of scenarios (what the call really was: connected to an agent,
abandoned in the queue, busy, carrier congestion...), renders it as an
Asterisk CDR row (disposition, hangup cause, billsec, lastapp, dstchannel),
and counts the truth per trunk as it goes. The expected counts never go
through the probe's classifier, so a test comparing the probe's numbers with
them checks the probe, not itself. The tests at the end check the
generator.
"""

from __future__ import annotations

import random
import zoneinfo
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from probes.dialer.kpi import Counts

TRUNKS = ("trunk-a", "trunk-b", "carrier-x")


@dataclass(frozen=True)
class Scenario:
    """One kind of call: how Asterisk writes it, and what it really was."""

    name: str
    disposition: str
    cause: int | None
    truth: str  # answered | abandoned | callee | system — with the cause column read
    truth_without_cause: str  # the same call when only the disposition is read
    billsec: tuple[int, int]
    lastapp: str = "Queue"


SCENARIOS: tuple[tuple[Scenario, int], ...] = (
    (Scenario("agent-talked", "ANSWERED", 16, "answered", "answered", (6, 600)), 30),
    (Scenario("dropped-in-queue", "ANSWERED", 16, "abandoned", "abandoned", (0, 5)), 4),
    (
        Scenario("short-message", "ANSWERED", 16, "answered", "answered", (1, 5), "Playback"),
        2,
    ),
    (Scenario("no-answer", "NO ANSWER", 19, "callee", "callee", (0, 0)), 25),
    (Scenario("no-answer-no-cause", "NO ANSWER", None, "callee", "callee", (0, 0)), 5),
    (Scenario("busy", "BUSY", 17, "callee", "callee", (0, 0)), 10),
    (Scenario("rejected", "BUSY", 21, "callee", "callee", (0, 0)), 3),
    # Asterisk says FAILED, the cause says the number does not exist: the callee's side.
    (Scenario("unallocated-number", "FAILED", 1, "callee", "system", (0, 0)), 3),
    (Scenario("congestion", "CONGESTION", 34, "system", "system", (0, 0)), 5),
    (Scenario("temporary-failure", "FAILED", 41, "system", "system", (0, 0)), 3),
    (Scenario("no-channel", "CHANUNAVAIL", None, "system", "system", (0, 0)), 2),
    # NO ANSWER written, but the carrier sent 503 / cause 38 (network out of order).
    (Scenario("carrier-503", "NO ANSWER", 503, "system", "callee", (0, 0)), 2),
    (Scenario("network-out-of-order", "NO ANSWER", 38, "system", "callee", (0, 0)), 2),
)


@dataclass(frozen=True)
class Cdr:
    calldate: datetime  # naive, on the CDR clock
    dstchannel: str
    disposition: str
    billsec: int | None
    duration: int
    hangupcause: int | None
    lastapp: str
    uniqueid: str


@dataclass
class Generated:
    rows: list[Cdr] = field(default_factory=list)
    expected: dict[str, Counts] = field(default_factory=dict)
    """Per trunk, the window's true counts when the hangup cause column is read."""
    expected_without_cause: dict[str, Counts] = field(default_factory=dict)
    bad_rows: int = 0
    """Rows in the window with no billsec (to be skipped and counted)."""

    def total(self, with_cause: bool = True) -> Counts:
        out = Counts()
        for c in (self.expected if with_cause else self.expected_without_cause).values():
            out.add(c)
        return out


def _count(into: dict[str, Counts], trunk: str, truth: str, billsec: int) -> None:
    c = into.setdefault(trunk, Counts())
    c.attempts += 1
    if truth in ("answered", "abandoned"):
        c.answered += 1
        c.billsec += billsec
        c.abandoned += truth == "abandoned"
    elif truth == "callee":
        c.callee_lost += 1
    else:
        c.system_lost += 1


def generate_cdrs(
    seed: int,
    calls: int,
    now: float,
    tz: str = "UTC",
    window: float = 900.0,
    outside: int = 50,
    bad_rows: int = 0,
    edge_margin: float = 60.0,
) -> Generated:
    """``calls`` calls inside the window (kept ``edge_margin`` s away from its ends), ``outside``
    older ones that must not count, ``bad_rows`` in the window without billsec."""
    rng = random.Random(seed)
    zone = zoneinfo.ZoneInfo(tz)
    scenarios = [s for s, _ in SCENARIOS]
    weights = [w for _, w in SCENARIOS]
    out = Generated()
    serial = 0

    def channel() -> tuple[str, str]:
        nonlocal serial
        serial += 1
        roll = rng.random()
        if roll < 0.05:
            return f"Local/1{serial:04d}@from-dialer-{serial:08x};2", "unknown"
        if roll < 0.07:
            return "", "unknown"
        trunk = rng.choice(TRUNKS)
        tech = "SIP" if roll < 0.15 else "PJSIP"
        return f"{tech}/{trunk}-{serial:08x}", trunk

    def row(at: float, s: Scenario, dst: str, billsec: int | None) -> Cdr:
        local = datetime.fromtimestamp(int(at), zone).replace(tzinfo=None)
        wait = rng.randint(5, 40)
        return Cdr(
            local, dst, s.disposition, billsec, wait + (billsec or 0), s.cause, s.lastapp,
            f"{int(at)}.{serial}",
        )  # fmt: skip

    for _ in range(calls):
        s = rng.choices(scenarios, weights)[0]
        dst, trunk = channel()
        billsec = rng.randint(*s.billsec)
        at = now - rng.uniform(edge_margin, window - edge_margin)
        out.rows.append(row(at, s, dst, billsec))
        _count(out.expected, trunk, s.truth, billsec)
        _count(out.expected_without_cause, trunk, s.truth_without_cause, billsec)
    for _ in range(outside):
        s = rng.choices(scenarios, weights)[0]
        dst, _trunk = channel()
        at = now - rng.uniform(window + edge_margin, window + 6 * 3600)
        out.rows.append(row(at, s, dst, rng.randint(*s.billsec)))
    for _ in range(bad_rows):
        dst, _trunk = channel()
        at = now - rng.uniform(edge_margin, window - edge_margin)
        out.rows.append(row(at, scenarios[0], dst, None))
        out.bad_rows += 1
    rng.shuffle(out.rows)
    return out


# -- the Asterisk `cdr` table, in any SQLAlchemy dialect -----------------------


def cdr_table(metadata: sa.MetaData, with_cause: bool = True, name: str = "cdr") -> sa.Table:
    """Asterisk's ``cdr`` table layout (plus ``hangupcause``, which some installs add)."""
    columns = [
        sa.Column("calldate", sa.DateTime, nullable=False, index=True),
        sa.Column("clid", sa.String(80), default=""),
        sa.Column("src", sa.String(80), default=""),
        sa.Column("dst", sa.String(80), default=""),
        sa.Column("dcontext", sa.String(80), default=""),
        sa.Column("channel", sa.String(80), default=""),
        sa.Column("dstchannel", sa.String(80), default=""),
        sa.Column("lastapp", sa.String(80), default=""),
        sa.Column("lastdata", sa.String(80), default=""),
        sa.Column("duration", sa.Integer, default=0),
        sa.Column("billsec", sa.Integer, nullable=True),
        sa.Column("disposition", sa.String(45), default=""),
        sa.Column("amaflags", sa.Integer, default=3),
        sa.Column("accountcode", sa.String(20), default=""),
        sa.Column("uniqueid", sa.String(32), default=""),
        sa.Column("userfield", sa.String(255), default=""),
    ]
    if with_cause:
        columns.append(sa.Column("hangupcause", sa.Integer, nullable=True))
    return sa.Table(name, metadata, *columns)


def load_cdrs(url: str, generated: Generated, with_cause: bool = True) -> None:
    """Create the ``cdr`` table in ``url``'s database and insert the generated rows."""
    engine = sa.create_engine(url)
    try:
        metadata = sa.MetaData()
        table = cdr_table(metadata, with_cause)
        metadata.create_all(engine)
        values = []
        for r in generated.rows:
            item = {
                "calldate": r.calldate,
                "channel": "Local/agent@dialer",
                "dstchannel": r.dstchannel,
                "lastapp": r.lastapp,
                "duration": r.duration,
                "billsec": r.billsec,
                "disposition": r.disposition,
                "uniqueid": r.uniqueid,
            }
            if with_cause:
                item["hangupcause"] = r.hangupcause
            values.append(item)
        if values:
            with engine.begin() as conn:
                conn.execute(table.insert(), values)
    finally:
        engine.dispose()


# -- Asterisk's Master.csv -------------------------------------------------------


def _quoted(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def master_csv_line(r: Cdr) -> str:
    """One row as Asterisk's cdr_csv writes it (strings quoted, numbers bare)."""
    start = r.calldate.strftime("%Y-%m-%d %H:%M:%S")
    fields = [
        _quoted(""), _quoted("1001"), _quoted("13800138000"), _quoted("from-dialer"),
        _quoted('"Campaign 7" <1001>'), _quoted("Local/agent@dialer-0001;1"), _quoted(r.dstchannel),
        _quoted(r.lastapp), _quoted("sales,t"), _quoted(start),
        _quoted(start if r.disposition == "ANSWERED" else ""), _quoted(start),
        str(r.duration), "" if r.billsec is None else str(r.billsec), _quoted(r.disposition),
        _quoted("DOCUMENTATION"), _quoted(r.uniqueid), _quoted(""),
    ]  # fmt: skip
    return ",".join(fields) + "\n"


# -- the generator's own tests -------------------------------------------------


def test_the_same_seed_generates_the_same_calls():
    a = generate_cdrs(7, 200, now=1_800_000_000.0)
    b = generate_cdrs(7, 200, now=1_800_000_000.0)
    assert a.rows == b.rows and a.expected == b.expected


def test_expected_counts_add_up_to_the_calls_in_the_window():
    g = generate_cdrs(3, 500, now=1_800_000_000.0, outside=40, bad_rows=5)
    total = g.total()
    assert total.attempts == 500
    assert total.answered + total.callee_lost + total.system_lost == 500
    assert len(g.rows) == 545 and g.bad_rows == 5
    # Every kind of call shows up, or the tests built on it would prove less than they claim.
    assert total.abandoned > 0 and total.system_lost > 0 and "unknown" in g.expected


def test_reading_the_cause_moves_calls_between_callee_and_system_loss():
    g = generate_cdrs(5, 2000, now=1_800_000_000.0)
    with_cause, without = g.total(True), g.total(False)
    assert with_cause.answered == without.answered
    assert with_cause.system_lost != without.system_lost


def test_a_master_csv_line_has_asterisks_eighteen_columns():
    import csv

    g = generate_cdrs(1, 1, now=1_800_000_000.0, outside=0)
    (record,) = list(csv.reader([master_csv_line(g.rows[0])]))
    assert len(record) == 18
    assert record[4] == '"Campaign 7" <1001>'
