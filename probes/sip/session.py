"""One probe run's path to one destination: UDP (shared socket), TCP or TLS, several transactions.

A ``Session`` is opened per destination (a resolved gateway) and carries the
requests of one run in order: one OPTIONS; or REGISTER, then REGISTER with
credentials; or INVITE, ACK, BYE. Over TCP and TLS the run's transactions
share one connection (a registrar answers the authenticated REGISTER on the
connection its challenge came on); over UDP they share the engine's socket
for the source address and port (see ``transport``).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import ipaddress
import socket
import ssl
from dataclasses import dataclass, replace
from typing import Any

from core.observation import Observation, Status
from probes.base import ProbeContext
from probes.sip.classify import metric_point
from probes.sip.config import SipTarget
from probes.sip.message import SipRequest
from probes.sip.tls import TlsFailure, TlsSetupError, client_context, describe_tls_error
from probes.sip.transaction import (
    Outcome,
    PeerClosedError,
    UdpClientTransaction,
    tcp_transaction,
)
from probes.sip.transport import UdpEndpoint, open_tcp, shared_endpoints


@dataclass(frozen=True, slots=True)
class Destination:
    """Where to send: one resolved address of the target, with how to reach it."""

    transport: str
    """``udp``, ``tcp`` or ``tls``."""
    family: int
    sockaddr: tuple[Any, ...]
    server_name: str
    """The host name (or IP) this address was found for: TLS checks the certificate against it."""

    @property
    def label(self) -> str:
        """``ip:port`` (``[v6]:port``): the ``gateway`` tag of its metric points."""
        host = self.sockaddr[0]
        return f"[{host}]:{self.sockaddr[1]}" if ":" in host else f"{host}:{self.sockaddr[1]}"


class Session:
    """Base: what every transport offers to the request flows (options, register, call)."""

    transport: str = "udp"
    local_host: str = ""
    local_port: int = 0

    async def transact(self, request: SipRequest, timer_f: float) -> Outcome:
        raise NotImplementedError

    async def close(self) -> None:
        return None


class UdpSession(Session):
    """Transactions over the engine's shared UDP socket, routed back by branch."""

    def __init__(self, endpoint: UdpEndpoint, destination: Destination, local_host: str) -> None:
        self.endpoint = endpoint
        self.destination = destination
        self.local_host = local_host
        self.local_port = endpoint.local_address[1]

    async def transact(self, request: SipRequest, timer_f: float) -> Outcome:
        txn = UdpClientTransaction(
            self.endpoint.sender(request.data, self.destination.sockaddr),
            timer_f,
            method=request.method,
        )
        self.endpoint.register(request.branch, txn)
        try:
            return await txn.run()
        finally:
            self.endpoint.unregister(request.branch)


class StreamSession(Session):
    """Transactions over one TCP or TLS connection; bytes read past a response are kept."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        transport: str,
        server_name: str | None = None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.transport = transport
        self.server_name = server_name
        """For TLS: the name the certificate was checked against (for failure sentences)."""
        self._answered = False
        self.local_host, self.local_port = writer.get_extra_info("sockname")[:2]
        self._buffer = bytearray()

    async def transact(self, request: SipRequest, timer_f: float) -> Outcome:
        outcome = await tcp_transaction(
            self.reader,
            self.writer,
            request.data,
            request.branch,
            timer_f,
            method=request.method,
            buffer=self._buffer,
        )
        if (
            self.server_name is not None
            and not self._answered
            and isinstance(outcome.error, ConnectionResetError | BrokenPipeError)
            and outcome.provisional is None
            and not outcome.ignored
        ):
            # A TLS peer that drops the connection before any SIP byte has, in practice,
            # refused us at the TLS layer: with TLS 1.3 a rejected (or missing) client
            # certificate is only reported after the client thinks the handshake is done,
            # and the alert may be lost to the reset.
            return replace(
                outcome,
                error=TlsFailure(
                    f"TLS: {self.server_name} closed the connection right after the handshake "
                    "(it refused the handshake; it may want a client certificate)"
                ),
            )
        if outcome.response is not None:
            self._answered = True
        return outcome

    async def close(self) -> None:
        self.writer.close()
        if self.transport == "tls":
            # Let the TLS close_notify go out; never wait long for a peer that hangs.
            with contextlib.suppress(TimeoutError, OSError, ssl.SSLError):
                await asyncio.wait_for(self.writer.wait_closed(), 0.5)


def cannot_bind(target: SipTarget, exc: OSError) -> Observation:
    """The probe cannot run from the configured source: a setup problem, not the peer's."""
    source = f"{target.source_address or '*'}:{target.source_port or '*'}"
    return Observation(
        status=Status.ERROR,
        detail=f"cannot send from {source} ({exc.strerror or exc}); check source_address and source_port",
        metrics=(metric_point(Outcome(), up=False),),
    )


async def open_session(
    target: SipTarget, ctx: ProbeContext, destination: Destination, budget: float
) -> Session | Outcome | Observation | None:
    """A session to ``destination``; an Outcome (refused...), an error Observation, or None
    when a TCP/TLS connection could not be made within ``budget``."""
    if destination.transport == "udp":
        try:
            endpoint = await shared_endpoints(ctx.shared).get(
                destination.family, target.source_address, target.source_port
            )
        except OSError as exc:
            return cannot_bind(target, exc)
        try:
            local_host = endpoint.local_host_for(destination.sockaddr[0])
        except OSError as exc:  # no route to the peer at all
            return Outcome(error=exc)
        return UdpSession(endpoint, destination, local_host)
    context: ssl.SSLContext | None = None
    server_name: str | None = None
    if destination.transport == "tls":
        try:
            context = client_context(target.tls, ctx.shared)
        except TlsSetupError as exc:
            return Observation(
                status=Status.ERROR,
                detail=str(exc),
                metrics=(metric_point(Outcome(), up=False),),
            )
        server_name = target.tls.server_name or destination.server_name
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        reader, writer = await asyncio.wait_for(
            open_tcp(
                destination.sockaddr[0],
                destination.sockaddr[1],
                target.source_address,
                target.source_port,
                ssl_context=context,
                server_name=server_name,
            ),
            budget,
        )
    except TimeoutError:
        return None
    except OSError as exc:
        fixed_source = target.source_address is not None or target.source_port != 0
        if fixed_source and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            return cannot_bind(target, exc)
        if server_name is not None and isinstance(
            exc, ssl.SSLError | ConnectionResetError | BrokenPipeError
        ):
            exc = TlsFailure(describe_tls_error(exc, server_name))
        return Outcome(error=exc, elapsed=loop.time() - started)
    if writer.get_extra_info("sockname") is None:
        # Already closed: with TLS 1.3 a peer's "certificate required" alert can
        # arrive right after the handshake and close the connection at once.
        writer.close()
        error = reader.exception()
        if server_name is not None and isinstance(error, ssl.SSLError):
            error = TlsFailure(describe_tls_error(error, server_name))
        elif server_name is not None:
            error = TlsFailure(
                f"TLS: {server_name} closed the connection right after the handshake "
                "(it refused the handshake; it may want a client certificate)"
            )
        elif not isinstance(error, OSError):
            error = PeerClosedError(errno.ECONNRESET, "the peer closed the connection")
        return Outcome(error=error, elapsed=loop.time() - started)
    return StreamSession(reader, writer, destination.transport, server_name)


@functools.lru_cache(maxsize=16384)
def literal_destination(host: str, port: int, transport: str) -> Destination | None:
    """A Destination for an IP literal, without asking any resolver (cached: most trunks
    are configured by IP, and ``ipaddress`` parsing shows at 1,000 probes a second)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return Destination(transport, socket.AF_INET6, (str(ip), port, 0, 0), str(ip))
    return Destination(transport, socket.AF_INET, (str(ip), port), str(ip))
