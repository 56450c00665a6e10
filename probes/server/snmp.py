"""``via: snmp`` — read a machine through its SNMP agent (pysnmp 7, asyncio).

A thin adapter: it asks the agent (one GET for sysUpTime, load averages and
the configured OIDs, then GETBULK walks of the profile tables, all at once),
turns pysnmp's answers into plain ``Var`` values, and leaves the meaning to
``snmp_profiles`` (rows -> readings) and ``snmp_evaluate`` (readings -> points
and status), which are pure.

pysnmp engines live in ``ctx.shared`` between polls: one for every v2c
target, one per set of v3 credentials (a v3 engine holds one key set per user
name, so targets with other keys for the same user need their own). An engine
owns one UDP socket and, for v3, the discovered engine IDs and times of the
agents, so a poll is a few datagrams rather than a discovery round trip; it is
also costly to build (it loads its own MIB modules, ~0.2 s of CPU), which is
why targets share them. A target's own session (address, timeouts,
credentials objects, the row counts of its tables) is rebuilt when its SNMP
settings change; everything is rebuilt when a new event loop runs the probe
(a dispatcher belongs to the loop that created it). The engine closes all on
stop. Each engine admits a bounded number of polls at once (``MAX_IN_FLIGHT``,
``MAX_WAITING``): decoding answers is CPU-bound, and past the CPU's capacity an
unbounded crowd of polls would all time out together.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from pysnmp.carrier.error import CarrierError
from pysnmp.error import PySnmpError
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    Udp6TransportTarget,
    UdpTransportTarget,
    UsmUserData,
    bulk_cmd,
    get_cmd,
)
from pysnmp.hlapi.v3arch.asyncio import auth as snmp_auth
from pysnmp.proto import errind

from core.observation import ErrorClass
from probes.base import ProbeContext
from probes.server.config import ServerTarget
from probes.server.findings import SampleWithFindings
from probes.server.sample import SourceError
from probes.server.snmp_config import SnmpOptions
from probes.server.snmp_evaluate import snmp_findings
from probes.server.snmp_profiles import (
    FIXED_REFRESH_POLLS,
    HR_PROCESSOR_LOAD,
    HR_STORAGE_CHANGING,
    HR_STORAGE_COLUMNS,
    HR_STORAGE_FIXED,
    HR_STORAGE_TYPE,
    HR_STORAGE_USED,
    HR_SW_RUN_NAME,
    IF_COLUMNS,
    IF_DESCR,
    IF_HC_IN_OCTETS,
    IF_OCTETS_32,
    LA_LOAD,
    SYS_UPTIME,
    MalformedAnswer,
    SnmpReading,
    Var,
    count_processes,
    describe,
    host_reading,
    interface_rows,
    number,
    server_sample,
    table,
)

SHARED_KEY = "server.snmp"
STATE_KEY = "snmp"
MAX_WALK_ROWS = 5000
"""A table walk stops after this many rows (an agent that never ends its table)."""
GET_CHUNK = 32
"""OIDs per GET request; large GETs make some agents answer tooBig."""
MAX_IN_FLIGHT = 16
"""Polls one engine (one UDP socket) has under way at once; more wait their turn.

Decoding an answer costs ~1–2 ms of CPU (pysnmp's BER decoder is pure Python).
Without a limit, hundreds of polls under way at once each get part of the CPU,
all finish late, time out, and their retries and late answers add to the pile:
past the CPU's capacity almost every poll failed. Admitting a bounded number
keeps those fast; the excess fails as "did not get its turn", naming the cause."""
MAX_WAITING = 4 * MAX_IN_FLIGHT
"""Polls that may wait for a turn; a poll arriving when more wait fails at once."""
RECEIVE_BUFFER = 4 * 1024 * 1024

AUTH_PROTOCOLS = {
    "MD5": snmp_auth.usmHMACMD5AuthProtocol,
    "SHA": snmp_auth.usmHMACSHAAuthProtocol,
    "SHA224": snmp_auth.usmHMAC128SHA224AuthProtocol,
    "SHA256": snmp_auth.usmHMAC192SHA256AuthProtocol,
    "SHA384": snmp_auth.usmHMAC256SHA384AuthProtocol,
    "SHA512": snmp_auth.usmHMAC384SHA512AuthProtocol,
}
PRIV_PROTOCOLS = {
    "DES": snmp_auth.usmDESPrivProtocol,
    "AES": snmp_auth.usmAesCfb128Protocol,
    # Net-SNMP's AES192/AES256 extend the key as Blumenthal's draft says; Cisco's
    # (Net-SNMP: AES192C/AES256C) the way of the 3DES draft (Reeder).
    "AES192": snmp_auth.usmAesBlumenthalCfb192Protocol,
    "AES256": snmp_auth.usmAesBlumenthalCfb256Protocol,
    "AES192C": snmp_auth.usmAesCfb192Protocol,
    "AES256C": snmp_auth.usmAesCfb256Protocol,
}


# -- sessions (engine, credentials, transport) kept between polls ----------------


@dataclass
class Engine:
    """A pysnmp engine, the event loop its dispatcher (and UDP socket) belongs to, and
    the gate that bounds its polls under way."""

    loop: asyncio.AbstractEventLoop
    engine: SnmpEngine = field(default_factory=SnmpEngine)
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_IN_FLIGHT))
    waiting: int = 0
    """Polls waiting for the gate."""
    tuned: bool = False

    def carriers(self) -> list[Any]:
        """pysnmp's UDP transports of this engine (IPv4, IPv6), those it opened."""
        dispatcher = self.engine.transport_dispatcher
        found = []
        for domain in (UdpTransportTarget.TRANSPORT_DOMAIN, Udp6TransportTarget.TRANSPORT_DOMAIN):
            try:
                carrier = dispatcher.get_transport(domain) if dispatcher is not None else None
            except CarrierError:
                continue  # this engine never opened a socket of that family
            if carrier is not None:
                found.append(carrier)
        return found

    def tune(self) -> None:
        """A bigger receive buffer, once the socket exists: answers that arrive while the
        loop decodes others wait there instead of being dropped (the kernel caps it)."""
        if self.tuned:
            return
        for carrier in self.carriers():
            udp = getattr(carrier, "transport", None)
            sock = udp.get_extra_info("socket") if udp is not None else None
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
                self.tuned = True

    async def aclose(self) -> None:
        """Close on the engine's own (running) loop, without answers still queued for
        pysnmp hitting a transport it has already forgotten."""
        for carrier in self.carriers():
            udp = getattr(carrier, "transport", None)
            if udp is not None:
                udp.close()  # no more reads; the ones already queued run next
        await asyncio.sleep(0)
        self.engine.close_dispatcher()

    def close(self) -> None:
        """Close the engine's UDP sockets and cancel its timer task (any loop state)."""
        if self.loop.is_closed():
            # asyncio cannot close a transport of a closed loop (it schedules the
            # close on that loop), so close the sockets themselves and let pysnmp
            # forget the transports.
            for carrier in self.carriers():
                udp = getattr(carrier, "transport", None)
                sock = getattr(udp, "_sock", None)
                if sock is not None:
                    sock.close()
                carrier.transport = None
        self.engine.close_dispatcher()


@dataclass
class Session:
    """One target's way to its agent: a shared engine plus its own address and credentials."""

    fingerprint: str
    engine: Engine
    auth: CommunityData | UsmUserData
    transport: UdpTransportTarget | Udp6TransportTarget
    context: ContextData
    rows: dict[str, int] = field(default_factory=dict)
    """Rows each table column had last poll: the next walk asks for that many at once."""
    queued: float = 0.0
    """When this target's current poll asked for its turn (monotonic seconds)."""
    admitted: float | None = None
    """When it got it; None while it waits."""
    storage_fixed: dict[str, dict[str, Var]] | None = None
    """hrStorageTable's fixed columns (type, description, units) from an earlier poll."""
    storage_polls: int = 0
    """Polls since those were read."""


class Sessions:
    """Every engine and target session; one instance lives in ``ctx.shared``, closed on engine stop."""

    def __init__(self) -> None:
        self.engines: dict[str, Engine] = {}
        self.by_target: dict[str, Session] = {}

    def engine(self, key: str) -> Engine:
        """The engine for this credentials key on the running loop (a new one after a loop change)."""
        loop = asyncio.get_running_loop()
        found = self.engines.get(key)
        if found is not None and found.loop is loop:
            return found
        if found is not None or any(e.loop is not loop for e in self.engines.values()):
            self.close()  # the loop changed: nothing made on the old one can be used
        self.engines[key] = Engine(loop)
        return self.engines[key]

    def prune(self) -> None:
        """Close engines no target session uses any more."""
        used = {id(session.engine) for session in self.by_target.values()}
        for key, engine in list(self.engines.items()):
            if id(engine) not in used:
                del self.engines[key]
                engine.close()

    async def aclose(self) -> None:
        """The engine's stop: close every engine on its loop when that is the running one."""
        self.by_target.clear()
        engines, self.engines = list(self.engines.values()), {}
        running = asyncio.get_running_loop()
        for engine in engines:
            if engine.loop is running:
                await engine.aclose()
            else:
                engine.close()

    def close(self) -> None:
        self.by_target.clear()
        engines, self.engines = list(self.engines.values()), {}
        for engine in engines:
            engine.close()


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x00".join(str(p) for p in parts).encode()).hexdigest()


def engine_key(options: SnmpOptions) -> str:
    """Targets with equal keys can share an engine (secrets only enter hashed)."""
    if options.version == "2c":
        return "v2c"
    return "v3:" + _digest(
        options.user,
        options.auth_protocol if options.auth_key else "",
        options.auth_key or "",
        options.priv_protocol if options.priv_key else "",
        options.priv_key or "",
    )


def fingerprint(options: SnmpOptions, timeout: float) -> str:
    """Changes whenever a setting a session was built with changes (secrets hashed)."""
    return _digest(options.model_dump_json(), f"{timeout:g}")


def auth_data(options: SnmpOptions) -> CommunityData | UsmUserData:
    if options.version == "2c":
        return CommunityData(str(options.community), mpModel=1)
    return UsmUserData(
        str(options.user),
        authKey=str(options.auth_key) if options.auth_key else None,
        privKey=str(options.priv_key) if options.priv_key else None,
        authProtocol=(
            AUTH_PROTOCOLS[options.auth_protocol]
            if options.auth_key
            else snmp_auth.usmNoAuthProtocol
        ),
        privProtocol=(
            PRIV_PROTOCOLS[options.priv_protocol]
            if options.priv_key
            else snmp_auth.usmNoPrivProtocol
        ),
    )


def attempt_timeout(timeout: float, retries: int) -> float:
    """Seconds pysnmp waits for each try, so that all tries fit in the poll's timeout."""
    return max(0.1, timeout / (retries + 1))


async def session_for(target_id: str, options: SnmpOptions, ctx: ProbeContext) -> Session:
    sessions = ctx.shared.get(SHARED_KEY)
    if not isinstance(sessions, Sessions):
        sessions = Sessions()
        ctx.shared.set(SHARED_KEY, sessions, sessions.aclose)
    engine = sessions.engine(engine_key(options))
    mark = fingerprint(options, ctx.timeout)
    session = sessions.by_target.get(target_id)
    if session is not None and session.engine is engine and session.fingerprint == mark:
        return session
    old = sessions.by_target.pop(target_id, None)
    kind = Udp6TransportTarget if ":" in options.host else UdpTransportTarget
    try:
        transport = await asyncio.wait_for(
            kind.create(
                (options.host, options.port),
                timeout=attempt_timeout(ctx.timeout, options.retries),
                retries=options.retries,
            ),
            ctx.timeout,
        )
    except TimeoutError:
        raise SourceError(
            f"SNMP: could not resolve {options.host} within {ctx.timeout:g} s", ErrorClass.RESOLVE
        ) from None
    except PySnmpError as exc:
        cause = exc.__cause__ or exc.__context__
        reason = cause.strerror if isinstance(cause, socket.gaierror) else _reason(exc)
        raise SourceError(
            f"SNMP: could not resolve {options.host} ({reason})", ErrorClass.RESOLVE
        ) from None
    session = Session(
        fingerprint=mark,
        engine=engine,
        auth=auth_data(options),
        transport=transport,
        context=ContextData(contextName=options.context) if options.context else ContextData(),
    )
    sessions.by_target[target_id] = session
    if old is not None and old.engine is not engine:
        sessions.prune()  # its new settings moved it to other credentials
    return session


@contextlib.asynccontextmanager
async def turn(session: Session, options: SnmpOptions) -> AsyncIterator[None]:
    """Hold one of the engine's places while a poll is under way.

    When more polls already wait than can be run soon, this one fails at once
    rather than joining a queue in which every poll would wait until it timed
    out: past the CPU's capacity, the excess fails and the rest still succeed.
    """
    engine = session.engine
    session.queued = time.monotonic()
    session.admitted = None
    if engine.gate.locked() and engine.waiting >= MAX_WAITING:
        raise SourceError(overloaded(options, None), ErrorClass.TIMEOUT)
    engine.waiting += 1
    try:
        await engine.gate.acquire()
    finally:
        engine.waiting -= 1
    session.admitted = time.monotonic()
    try:
        yield
    finally:
        engine.gate.release()
        engine.tune()


def overloaded(options: SnmpOptions, timeout: float | None) -> str:
    within = f" within {timeout:g} s" if timeout is not None else ""
    return (
        f"SNMP: this poll of {options.address} did not get its turn{within} — Dialwatch has "
        f"more SNMP polls to run than its CPU keeps up with ({MAX_IN_FLIGHT} at a time, "
        f"{MAX_WAITING} waiting); fewer targets or longer intervals would help"
    )


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


# -- requests ------------------------------------------------------------------


def to_var(oid: Any, value: Any) -> Var:
    """A pysnmp (name, value) pair as a plain Var."""
    kind = type(value).__name__
    if kind in ("NoSuchObject", "NoSuchInstance", "EndOfMibView", "Null"):
        return Var(str(oid), kind)
    if kind in ("ObjectIdentifier", "ObjectName"):
        return Var(str(oid), "ObjectIdentifier", str(value))
    if kind in ("OctetString", "DisplayString", "IpAddress", "Opaque", "Bits"):
        raw = value.asOctets() if hasattr(value, "asOctets") else bytes(value)
        return Var(str(oid), "OctetString", raw.decode("utf-8", "replace").rstrip("\x00"))
    try:
        return Var(str(oid), kind, int(value))
    except (TypeError, ValueError):
        return Var(str(oid), kind)


def error_detail(indication: object, options: SnmpOptions, timeout: float) -> SourceError:
    """A pysnmp error indication as a human sentence in the fixed error vocabulary."""
    where = options.address
    user = f"v3 user {options.user!r}"
    if isinstance(indication, errind.RequestTimedOut):
        return SourceError(
            f"SNMP: no answer from {where} within {timeout:g} s "
            "(community or v3 credentials wrong, or agent down)",
            ErrorClass.TIMEOUT,
        )
    if isinstance(indication, errind.UnknownUserName):
        return SourceError(f"SNMP: {where} does not know {user}", ErrorClass.AUTH)
    if isinstance(indication, errind.WrongDigest | errind.AuthenticationFailure):
        return SourceError(
            f"SNMP: {where} rejected the auth_key of {user} "
            f"(wrong key or auth_protocol {options.auth_protocol})",
            ErrorClass.AUTH,
        )
    if isinstance(indication, errind.DecryptionError):
        return SourceError(
            f"SNMP: could not decrypt the answer from {where} "
            f"(wrong priv_key or priv_protocol {options.priv_protocol})",
            ErrorClass.AUTH,
        )
    if isinstance(indication, errind.UnsupportedSecurityLevel):
        return SourceError(
            f"SNMP: {where} does not allow {options.security_level} for {user}", ErrorClass.AUTH
        )
    if isinstance(indication, errind.EncryptionError):
        return SourceError(
            "SNMP: v3 privacy needs the cryptography package (pip install cryptography)",
            ErrorClass.AUTH,
        )
    if isinstance(indication, errind.OidNotIncreasing):
        return SourceError(
            f"SNMP: {where} answered a walk with OIDs that do not increase (broken agent)",
            ErrorClass.PROTOCOL,
        )
    return SourceError(f"SNMP: {where}: {indication}", ErrorClass.PROTOCOL)


def status_detail(
    status: object, index: object, oids: Sequence[str], options: SnmpOptions
) -> SourceError:
    """A PDU error-status (authorizationError, genErr, tooBig...) as a sentence."""
    position = int(index) - 1 if isinstance(index, int) or str(index).isdigit() else -1
    about = describe(oids[position]) if 0 <= position < len(oids) else ""
    name = status.prettyPrint() if hasattr(status, "prettyPrint") else str(status)
    if name in ("authorizationError", "noAccess"):
        # Net-SNMP answers so when the user's view hides the object or the
        # request's security level is below what its rouser line requires.
        level = f" ({options.security_level})" if options.version == "3" else ""
        return SourceError(
            f"SNMP: {options.address} denied "
            f"{f'access to {about}' if about else 'the request'} ({name}): check the agent's "
            f"view for this {'user' if options.version == '3' else 'community'} and the "
            f"security level it requires{level}",
            ErrorClass.AUTH,
        )
    about = f" for {about}" if about else ""
    return SourceError(f"SNMP: {options.address} answered {name}{about}", ErrorClass.RESPONSE)


async def get(
    session: Session, options: SnmpOptions, oids: Sequence[str], timeout: float
) -> list[Var]:
    """GET the OIDs (in chunks); missing instances come back as NoSuch* vars, not errors."""
    found: list[Var] = []
    for start in range(0, len(oids), GET_CHUNK):
        chunk = oids[start : start + GET_CHUNK]
        indication, status, index, binds = await get_cmd(
            session.engine.engine,
            session.auth,
            session.transport,
            session.context,
            *(ObjectType(ObjectIdentity(oid)) for oid in chunk),
            lookupMib=False,
        )
        if indication:
            raise error_detail(indication, options, timeout)
        if status:
            raise status_detail(status, index, chunk, options)
        answered = [to_var(name, value) for name, value in binds]
        if [var.oid for var in answered] != list(chunk):
            raise SourceError(
                f"SNMP: {options.address} answered other OIDs than asked for", ErrorClass.PROTOCOL
            )
        found.extend(answered)
    return found


def _oid_tuple(oid: str) -> tuple[int, ...]:
    return tuple(int(part) for part in oid.split("."))


async def walk_table(
    session: Session, options: SnmpOptions, columns: Sequence[str], timeout: float
) -> list[list[Var]]:
    """GETBULK-walk the columns of one table together: each answer carries whole rows.

    A column is done at the first OID outside it (or endOfMibView); the others
    go on from their own last OID. The first request asks for as many rows as
    the table had last poll plus one — the row past the end shows the walk is
    over — so a table that did not grow takes one round trip, and the agent
    sends (and pysnmp decodes, its dearest part) no rows of other tables.
    """
    found: dict[str, list[Var]] = {column: [] for column in columns}
    last = {column: _oid_tuple(column) for column in columns}
    known = [session.rows.get(column) for column in columns]
    repetitions = options.max_repetitions
    if all(count is not None for count in known):
        repetitions = min(repetitions, max(count or 0 for count in known) + 1)
    pending = list(columns)
    total = 0
    while pending:
        asked = list(pending)
        indication, status, index, binds = await bulk_cmd(
            session.engine.engine,
            session.auth,
            session.transport,
            session.context,
            0,
            repetitions,
            *(ObjectType(ObjectIdentity(".".join(map(str, last[c])))) for c in asked),
            lookupMib=False,
        )
        if indication:
            raise error_detail(indication, options, timeout)
        if status:
            raise status_detail(status, index, asked, options)
        if not binds:
            raise SourceError(
                f"SNMP: {options.address} answered a GETBULK with no values", ErrorClass.PROTOCOL
            )
        ended: set[str] = set()
        for position, (name, value) in enumerate(binds):
            column = asked[position % len(asked)]
            if column in ended:
                continue
            oid = tuple(name)
            if type(value).__name__ == "EndOfMibView" or not str(name).startswith(column + "."):
                ended.add(column)
                continue
            if oid <= last[column]:
                raise SourceError(
                    f"SNMP: {options.address} answered a walk of {describe(column)} with OIDs "
                    "that do not increase (broken agent)",
                    ErrorClass.PROTOCOL,
                )
            found[column].append(to_var(name, value))
            last[column] = oid
        total += len(binds)
        if total > MAX_WALK_ROWS * len(columns):
            raise SourceError(
                f"SNMP: {options.address} sent more than {MAX_WALK_ROWS} rows for "
                f"{describe(columns[0])}; stopped walking",
                ErrorClass.PROTOCOL,
            )
        pending = [column for column in asked if column not in ended]
        repetitions = options.max_repetitions  # a table that grew: go on at full size
    for column in columns:
        session.rows[column] = len(found[column])
    return [found[column] for column in columns]


async def walk_all(
    session: Session, options: SnmpOptions, tables: Sequence[Sequence[str]], timeout: float
) -> dict[str, dict[str, Var]]:
    """Walk several tables concurrently (one request per table in flight) and index them."""
    walked = await asyncio.gather(*(walk_table(session, options, t, timeout) for t in tables))
    columns = [column for t in tables for column in t]
    return table(columns, [rows for result in walked for rows in result])


# -- one poll ------------------------------------------------------------------


async def read(target: ServerTarget, ctx: ProbeContext) -> SnmpReading:
    """Everything one poll asks the agent, as plain values. Raises SourceError."""
    options = target.snmp
    if options is None:  # the config validator makes this impossible
        raise SourceError("via: snmp needs an snmp section", ErrorClass.PROTOCOL)
    session = await session_for(target.id, options, ctx)
    timeout = ctx.timeout
    try:
        async with asyncio.timeout(timeout), turn(session, options):
            return await _read(target, options, session, timeout)
    except TimeoutError:
        admitted = session.admitted
        if admitted is None or admitted - session.queued > timeout / 2:
            # Most of the time went waiting for a turn, not for the agent.
            raise SourceError(overloaded(options, timeout), ErrorClass.TIMEOUT) from None
        raise SourceError(
            f"SNMP: no answer from {options.address} within {timeout:g} s "
            "(community or v3 credentials wrong, or agent down)",
            ErrorClass.TIMEOUT,
        ) from None
    except MalformedAnswer as exc:
        raise SourceError(str(exc), ErrorClass.PROTOCOL) from None
    except OSError as exc:
        raise SourceError(
            f"SNMP: cannot send to {options.address} ({exc.strerror or exc})",
            ErrorClass.UNREACHABLE,
        ) from None


async def _read(
    target: ServerTarget, options: SnmpOptions, session: Session, timeout: float
) -> SnmpReading:
    host = "host" in options.profiles
    scalars = [SYS_UPTIME, *(LA_LOAD if host else ()), *(o.oid for o in options.oids)]
    # The GET first: it fails fast on wrong credentials, before the walks start.
    got = await get(session, options, scalars, timeout)
    taken_at = time.time()
    uptime_var = got[0]
    if uptime_var.missing:
        raise SourceError(
            f"SNMP: no instance for OID {SYS_UPTIME} (sysUpTime.0) at {options.address}",
            ErrorClass.RESPONSE,
        )
    uptime = int(number(uptime_var))
    tables: list[tuple[str, ...]] = []
    # hrStorage's type, description and units are half of what a host poll decodes
    # and do not change while the rows stay the same: keep them for a while.
    fixed = session.storage_fixed if session.storage_polls < FIXED_REFRESH_POLLS else None
    if host:
        tables += [(HR_PROCESSOR_LOAD,), HR_STORAGE_CHANGING if fixed else HR_STORAGE_COLUMNS]
    if target.processes:
        tables.append((HR_SW_RUN_NAME,))
    if "interfaces" in options.profiles:
        tables.append(IF_COLUMNS)  # ifTable and ifXTable share their index
    walked = await walk_all(session, options, tables, timeout) if tables else {}
    if "interfaces" in options.profiles and walked[IF_DESCR] and not walked[IF_HC_IN_OCTETS]:
        # No 64-bit counters (an SNMPv1-era agent, or a view without ifXTable).
        walked.update(await walk_all(session, options, [IF_OCTETS_32], timeout))

    if host and fixed is not None:
        if set(walked[HR_STORAGE_USED]) == set(fixed[HR_STORAGE_TYPE]):
            walked.update(fixed)
            session.storage_polls += 1
        else:  # rows came or went (a filesystem was mounted): read them all again
            walked.update(await walk_all(session, options, [HR_STORAGE_FIXED], timeout))
            session.storage_polls = 0
    elif host:
        session.storage_polls = 0

    reading = None
    if host:
        if not walked.get(HR_STORAGE_COLUMNS[0]):
            raise SourceError(
                f"SNMP: {options.address} has no rows in hrStorageTable (1.3.6.1.2.1.25.2.3) — "
                "the agent does not serve HOST-RESOURCES-MIB, or its view hides it",
                ErrorClass.RESPONSE,
            )
        reading = host_reading(walked, got[1:4], target.disks)
        session.storage_fixed = {column: walked[column] for column in HR_STORAGE_FIXED}
    processes = count_processes(walked.get(HR_SW_RUN_NAME, {}), target.processes)
    interfaces = None
    if "interfaces" in options.profiles:
        interfaces = tuple(interface_rows(walked, target.interfaces))
    own = got[1 + (3 if host else 0) :]
    return SnmpReading(
        sample=server_sample(taken_at, uptime / 100.0, reading, processes),
        uptime_ticks=uptime,
        processor_loads=reading.processor_loads if reading else (),
        interfaces=interfaces,
        oids={o.name: var for o, var in zip(options.oids, own, strict=True)},
    )


async def collect(target: ServerTarget, ctx: ProbeContext) -> SampleWithFindings:
    """The ``SOURCES`` entry: one reading, with the SNMP-only parts judged as findings.

    Keeps its own counters in ``ctx.state["snmp"]`` (interfaces, counter OIDs,
    sysUpTime); the shared part is judged by ``evaluate`` like every source's.
    """
    from probes.server import max_rate_age  # the package imports this module

    reading = await read(target, ctx)
    options = target.snmp
    assert options is not None  # read() checked it
    findings, state = snmp_findings(
        reading,
        ctx.state.get(STATE_KEY),
        target.thresholds,
        options.oids,
        options.interface_down,
        max_rate_age(target),
    )
    ctx.state[STATE_KEY] = state
    return replace(reading.sample, findings=tuple(findings))
