"""Sockets for the SIP probe: shared UDP endpoints with a branch dispatcher, and TCP/TLS connects.

Why one shared UDP socket. The engine runs thousands of SIP targets on one
asyncio loop (10,000 targets every 10 s is ~1,000 OPTIONS/s). A socket per
probe would cost a file descriptor, a bind and a selector registration per
request, and a fixed ``source_port`` (carriers whitelist ip:port) cannot be
bound twice anyway. So every probe from one (source address, source port)
shares one bound, unconnected socket; responses are routed to their
transaction by the top Via branch (RFC 3261 §17.1.3) through a dict, and the
socket gets a large SO_RCVBUF so a burst of answers is not dropped by the
kernel while the loop is busy. ``source_port`` 0 still shares one socket per
source address: the kernel picks its port once.

Why IP_RECVERR. An unconnected UDP socket never sees ECONNREFUSED: Linux
only reports ICMP errors to connected sockets, because otherwise it could not
say which destination failed. With ``IP_RECVERR`` (``IPV6_RECVERR``) the
kernel instead queues each ICMP error with the original datagram, and
``recvmsg(MSG_ERRQUEUE)`` hands us that datagram back — it contains our Via
branch, so a "port unreachable" is routed to exactly the transaction that
caused it. That keeps REFUSED detection without a connected socket per
probe. Where IP_RECVERR does not exist (not Linux), a refused UDP probe ends
as a timeout instead; that is the documented trade-off.

A pending ICMP error is also returned by the *next* ``sendto`` on the socket,
whoever calls it, and that datagram is then not sent. ``UdpEndpoint.send``
therefore drains the error queue (delivering each error to its owner) and
retries once before it blames its own transaction.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import socket
import ssl
import struct
import sys
from collections.abc import Callable
from typing import Any, Protocol, cast

from core.shared import SharedResources
from probes.sip.message import SipParseError, SipResponse, parse_response

log = logging.getLogger(__name__)

SHARED_KEY = "sip.udp_endpoints"
RECEIVE_BUFFER = 4 * 1024 * 1024
"""Bytes asked for SO_RCVBUF; Linux caps it at net.core.rmem_max unless we may force it."""

# Linux values; the socket module does not export them.
_IP_RECVERR = 11
_IPV6_RECVERR = 25
_SO_RCVBUFFORCE = 33
_SOCK_EXTENDED_ERR = struct.Struct("=IBBBBII")
_BRANCH_RE = re.compile(rb"branch=(z9hG4bK[0-9A-Za-z.!%*_+`'~-]+)", re.IGNORECASE)


DRAIN_PER_EVENT = 256
"""Datagrams read per readiness event beyond the one asyncio hands us."""
RECV_SIZE = 65535


class TransactionSink(Protocol):
    """What the dispatcher delivers to: a UdpClientTransaction."""

    def accepts(self, response: SipResponse) -> bool:
        """Is this response (already matched by branch) for us? Checks the CSeq method."""
        ...

    def on_response(self, response: SipResponse) -> None: ...
    def on_error(self, error: OSError) -> None: ...


class UdpEndpoint(asyncio.DatagramProtocol):
    """One bound UDP socket shared by every SIP transaction from one (address, port)."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self.sock = sock
        self.loop = loop
        self.transactions: dict[str, TransactionSink] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.closed = False
        self._ready: asyncio.Future[None] = loop.create_future()
        self.recv_errors = sys.platform.startswith("linux")
        self._route_cache: dict[str, str] = {}
        self._local: tuple[str, int] | None = None
        # Counters for the appliance's own health and for the benchmark.
        self.received = 0
        self.unmatched = 0
        self.malformed = 0

    @property
    def local_address(self) -> tuple[str, int]:
        # The bound address never changes; asking the kernel per probe was a
        # measurable syscall on the hot path (see bench/sip_probe_throughput).
        if self._local is None:
            host, port = self.sock.getsockname()[:2]
            self._local = (host, port)
        return self._local

    # -- asyncio protocol ----------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        if not self._ready.done():
            self._ready.set_result(None)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self._dispatch(data)
        # asyncio reads one datagram per readiness event, i.e. per loop
        # iteration. With thousands of probes in flight an iteration runs many
        # callbacks, so answers queued in the socket were read after their
        # probe's Timer E had already retransmitted (and eventually after
        # Timer F): at 1,000 OPTIONS/s a third of the engine's time went to
        # retransmitting answered requests (py-spy, bench/sip_probe_throughput).
        # Drain what is already queued, bounded so other callbacks still run.
        for _ in range(DRAIN_PER_EVENT):
            try:
                data = self.sock.recv(RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # an ICMP error surfacing on this read: hand it to its owner
                self.drain_error_queue()
                return
            self._dispatch(data)

    def _dispatch(self, data: bytes) -> None:
        self.received += 1
        try:
            response = parse_response(data)
        except SipParseError:
            self.malformed += 1
            return
        branch = response.top_via_branch
        txn = self.transactions.get(branch) if branch else None
        if txn is None or not txn.accepts(response):
            # Late answers to finished probes, requests sent to us, other people's traffic.
            self.unmatched += 1
            return
        txn.on_response(response)

    def error_received(self, exc: OSError) -> None:
        # asyncio calls this when recvfrom() or a buffered sendto() fails; with
        # IP_RECVERR the error's owner waits in the error queue.
        self.drain_error_queue()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.closed = True

    async def ready(self) -> None:
        """Wait until asyncio has taken the socket over (at most one loop iteration)."""
        ready = self._ready
        if ready.done():  # every probe after the first: no shield, no new future
            ready.result()  # re-raise if opening failed
            return
        await asyncio.shield(ready)

    def fail(self, exc: BaseException) -> None:
        """Opening failed: wake anyone waiting in ``ready`` with the error."""
        self.closed = True
        self.sock.close()
        if not self._ready.done():
            error = exc if isinstance(exc, Exception) else OSError("UDP endpoint was not opened")
            self._ready.set_exception(error)
            self._ready.exception()  # retrieved: no "never retrieved" warning if nobody waits

    # -- for transactions ----------------------------------------------
    def register(self, branch: str, txn: TransactionSink) -> None:
        self.transactions[branch] = txn

    def unregister(self, branch: str) -> None:
        self.transactions.pop(branch, None)

    def sender(self, data: bytes, addr: tuple[str, int]) -> Callable[[], None]:
        """A zero-argument send for a transaction's Timer E."""
        return lambda: self.send(data, addr)

    def send(self, data: bytes, addr: tuple[str, int]) -> None:
        """Send one datagram now; raise OSError only for an error that is this send's own."""
        for attempt in (1, 2):
            try:
                self.sock.sendto(data, addr)
                return
            except BlockingIOError:
                # Kernel send buffer full: let the transport queue it.
                if self.transport is not None:
                    self.transport.sendto(data, addr)
                return
            except OSError:
                if attempt == 2 or not self.recv_errors:
                    raise
                # Possibly another destination's ICMP error surfacing here.
                self.drain_error_queue()

    def drain_error_queue(self) -> None:
        """Deliver every queued ICMP error to the transaction whose datagram caused it."""
        if not self.recv_errors:
            return
        while True:
            try:
                data, ancdata, _flags, _addr = self.sock.recvmsg(2048, 512, socket.MSG_ERRQUEUE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            code = _extended_errno(ancdata)
            m = _BRANCH_RE.search(data)
            txn = self.transactions.get(m.group(1).decode()) if m else None
            if txn is not None and code:
                txn.on_error(OSError(code, _strerror(code)))

    def local_host_for(self, dest_ip: str) -> str:
        """The address the kernel would send from to reach ``dest_ip`` (for Via and Contact)."""
        bound = self.local_address[0]
        if bound not in ("0.0.0.0", "::"):
            return bound
        cached = self._route_cache.get(dest_ip)
        if cached is None:
            # connect() on a UDP socket sends nothing; it only asks the routing table.
            with socket.socket(self.sock.family, socket.SOCK_DGRAM) as probe:
                probe.connect((dest_ip, 9))
                cached = probe.getsockname()[0]
            if len(self._route_cache) > 65536:
                self._route_cache.clear()
            self._route_cache[dest_ip] = cached
        return cached

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            try:
                self.transport.close()
                return
            except RuntimeError:
                pass  # its event loop is closed: close the socket ourselves
        self.sock.close()


def _extended_errno(ancdata: list[tuple[int, int, bytes]]) -> int:
    for level, kind, payload in ancdata:
        if (level, kind) in (
            (socket.IPPROTO_IP, _IP_RECVERR),
            (socket.IPPROTO_IPV6, _IPV6_RECVERR),
        ) and len(payload) >= _SOCK_EXTENDED_ERR.size:
            return _SOCK_EXTENDED_ERR.unpack_from(payload)[0]
    return 0


def _strerror(code: int) -> str:
    try:
        return os.strerror(code)
    except ValueError:
        return errno.errorcode.get(code, str(code))


def open_udp_socket(family: int, source_address: str | None, source_port: int) -> socket.socket:
    """A non-blocking UDP socket bound to the source address/port, with a large receive buffer."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.SOL_SOCKET, _SO_RCVBUFFORCE, RECEIVE_BUFFER)
        except OSError:
            # Not root/CAP_NET_ADMIN: take what net.core.rmem_max allows.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        if sys.platform.startswith("linux"):
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, _IPV6_RECVERR, 1)
            else:
                sock.setsockopt(socket.IPPROTO_IP, _IP_RECVERR, 1)
        any_address = "::" if family == socket.AF_INET6 else "0.0.0.0"
        sock.bind((source_address or any_address, source_port))
    except BaseException:
        sock.close()
        raise
    return sock


class UdpEndpoints:
    """All shared UDP endpoints of one engine, kept in ``ctx.shared``."""

    def __init__(self) -> None:
        self._endpoints: dict[tuple[int, str, int], UdpEndpoint] = {}

    async def get(self, family: int, source_address: str | None, source_port: int) -> UdpEndpoint:
        """The endpoint for this source, opened on first use.

        No lock: the socket is opened and registered synchronously, so probes
        arriving while it connects find it and wait for it to be ready.
        """
        loop = asyncio.get_running_loop()
        key = (family, source_address or "", source_port)
        endpoint = self._endpoints.get(key)
        if endpoint is not None and not endpoint.closed and endpoint.loop is loop:
            await endpoint.ready()
            return endpoint
        if endpoint is not None:
            # Closed, or left over from another event loop (a CLI run before this one).
            endpoint.close()
        sock = open_udp_socket(family, source_address, source_port)
        endpoint = UdpEndpoint(sock, loop)
        self._endpoints[key] = endpoint
        try:
            await loop.create_datagram_endpoint(lambda: endpoint, sock=sock)
        except BaseException as exc:
            endpoint.fail(exc)
            if self._endpoints.get(key) is endpoint:
                del self._endpoints[key]
            raise
        return endpoint

    def endpoints(self) -> list[UdpEndpoint]:
        return list(self._endpoints.values())

    def close(self) -> None:
        for endpoint in self._endpoints.values():
            endpoint.close()
        self._endpoints.clear()


def shared_endpoints(shared: SharedResources) -> UdpEndpoints:
    """The engine-wide UdpEndpoints, created on first use and closed with ``ctx.shared``."""
    endpoints = shared.get(SHARED_KEY)
    if endpoints is None:
        endpoints = UdpEndpoints()
        shared.set(SHARED_KEY, endpoints, close=endpoints.close)
    return endpoints


async def open_tcp(
    host: str,
    port: int,
    source_address: str | None,
    source_port: int,
    ssl_context: ssl.SSLContext | None = None,
    server_name: str | None = None,
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """Connect, optionally from a fixed source address/port, optionally with TLS.

    With ``ssl_context`` the TLS handshake is part of the connect, and
    ``server_name`` is sent as SNI (not for an IP) and checked against the certificate.

    With a fixed source port the connection is closed with a RST (SO_LINGER 0):
    a normal close would leave it in TIME_WAIT for a minute, and the next probe
    from the same ip:port to the same peer could not connect.
    """
    local_addr = None
    if source_address or source_port:
        local_addr = (source_address or ("::" if ":" in host else "0.0.0.0"), source_port)
    if ssl_context is None:
        reader, writer = await asyncio.open_connection(host, port, local_addr=local_addr)
    else:
        reader, writer = await asyncio.open_connection(
            host, port, local_addr=local_addr, ssl=ssl_context, server_hostname=server_name or host
        )
    if source_port:
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return reader, writer
