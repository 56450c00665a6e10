"""``sip`` probe: is a SIP trunk, gateway or proxy alive? An OPTIONS ping over UDP or TCP.

One probe run sends one OPTIONS request (RFC 3261 §11) to ``target.uri`` and
classifies the final response (see ``classify``): 2xx ``ok``; codes that
prove the peer alive but unhappy (``warn_codes``) ``warn``; other errors,
timeouts, ICMP/TCP refusals and unresolvable hosts ``fail``. It records the
RTT, the status code and the number of retransmissions in a ``sip`` metric
point; the Observation's latency is the RTT in seconds.

Modules: ``message`` (build and parse, pure), ``transaction`` (RFC 3261
timers for UDP, framing for TCP, and the RTT choice for retransmitted
requests), ``transport`` (the shared UDP socket per source address and port,
its branch dispatcher, and why ICMP "port unreachable" still reaches the
right probe through IP_RECVERR), ``classify`` (Outcome → Observation, pure).
User documentation: ``docs/probes/sip.md``.

Why our own minimal SIP client and not a library. On PyPI (2026-11):
``aiosip`` is abandoned (last release 2017); ``PyVoIP`` is built around a
phone with threads, RTP and a socket of its own; PJSUA2 bindings need a
native build or platform wheels and run their own event loop and threads;
``aiosipua`` and ``pysipio`` are young single-maintainer projects. None offers
what the probe is about: thousands of concurrent non-INVITE transactions on
one shared asyncio socket, routed by branch, with exact Timer E/F behaviour
and per-destination ICMP errors. An OPTIONS client is a few hundred lines of
well-specified code that we can test byte for byte; a SIP stack would be
far more code than we use. REGISTER/digest and TLS can be added in this
package when needed.

Name resolution uses A/AAAA records (``getaddrinfo``) with the URI's port or
5060; RFC 3263 NAPTR/SRV lookups are not done yet.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import socket
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from monitor import __version__
from monitor.config.models import Duration, TargetBase
from monitor.observation import ErrorClass, Observation, Status
from probes.base import ProbeContext
from probes.sip.classify import DEFAULT_WARN_CODES, classify, metric_point
from probes.sip.message import SipUri, build_options, parse_uri
from probes.sip.transaction import Outcome, UdpClientTransaction, tcp_transaction
from probes.sip.transport import open_tcp, shared_endpoints

__all__ = ["DEFAULT_WARN_CODES", "SipTarget", "check"]

_TOKEN_CHARS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()+%&=$,;?/"
)


class SipTarget(TargetBase):
    """A SIP peer pinged with OPTIONS."""

    kind: Literal["sip"]
    uri: str
    """Request-URI: ``sip:host[:port][;params]`` (``sip:carrier.example.com``,
    ``sip:+861012345@192.0.2.10:5080;transport=tcp``). Port default 5060."""
    transport: Literal["udp", "tcp"] = "udp"
    """``udp`` (retransmits per RFC 3261) or ``tcp``; taken from the URI's
    ``transport=`` parameter when not given. TLS comes later."""
    source_address: str | None = None
    """Local IP to send from (carriers whitelist source IPs); default: the kernel's choice."""
    source_port: int = Field(default=0, ge=0, le=65535)
    """Local port to send from; 0 = ephemeral. Every UDP target with the same
    source address and port shares one socket."""
    from_user: str = "dialwatch"
    """User part of the From and Contact URIs."""
    from_domain: str | None = None
    """Host part of the From URI; default: the local address the request leaves from."""
    user_agent: str = f"Dialwatch/{__version__}"
    """User-Agent header (some carriers filter on it)."""
    warn_codes: list[int] = Field(default_factory=lambda: list(DEFAULT_WARN_CODES))
    """Final responses that prove the peer alive but unhappy with the request: ``warn``."""
    interval: Duration = 30.0
    """30 s: carriers and SBCs commonly rate-limit or block sources that ping faster."""
    timeout: Duration = 4.0
    """Timer F: over UDP, retransmissions at 0.5, 1.5 and 3.5 s, then give up at 4 s."""

    @model_validator(mode="before")
    @classmethod
    def _transport_from_uri(cls, data: Any) -> Any:
        if isinstance(data, dict) and "transport" not in data and isinstance(data.get("uri"), str):
            try:
                param = parse_uri(data["uri"]).params.get("transport", "").lower()
            except ValueError:
                return data  # the uri validator reports it
            if param in ("udp", "tcp"):
                data = {**data, "transport": param}
        return data

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        uri = parse_uri(value)
        if uri.scheme == "sips":
            raise ValueError("sips: URIs need TLS, which this probe does not support yet; use sip:")
        param = uri.params.get("transport", "").lower()
        if param and param not in ("udp", "tcp"):
            raise ValueError(f"transport={param} is not supported (udp or tcp)")
        return uri.text

    @field_validator("source_address")
    @classmethod
    def _source_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("must be an IP address of this machine, e.g. 192.0.2.5") from None

    @field_validator("from_user")
    @classmethod
    def _from_user(cls, value: str) -> str:
        if not value or not set(value) <= _TOKEN_CHARS:
            raise ValueError("must be a SIP user name: letters, digits and -_.!~*'()+%&=$,;?/")
        return value

    @field_validator("from_domain")
    @classmethod
    def _from_domain(cls, value: str | None) -> str | None:
        if value is not None:
            uri = parse_uri(f"sip:{value}")
            if uri.user or uri.port or uri.params or "?" in value:
                raise ValueError("must be a host name or IP address, e.g. carrier.example.com")
        return value

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "\r\n"):
            raise ValueError("must be one non-empty line")
        return value.strip()

    @field_validator("warn_codes")
    @classmethod
    def _warn_codes(cls, value: list[int]) -> list[int]:
        for code in value:
            if code == 408:
                raise ValueError(
                    "408 cannot be a warn code: proxies generate it themselves when "
                    "the peer behind them is silent, so it never proves the peer alive"
                )
            if not 300 <= code <= 699:
                raise ValueError(f"{code} is not a SIP error code (300-699)")
        return value

    @model_validator(mode="after")
    def _transport_matches_uri(self) -> SipTarget:
        uri = parse_uri(self.uri)
        literal = _literal_address(uri.host, uri.effective_port)
        if literal is not None and self.source_address is not None:
            source_family = _literal_address(self.source_address, 0)
            if source_family is not None and source_family[0] != literal[0]:
                raise ValueError(
                    f"source_address {self.source_address} and the uri's host {uri.host} "
                    "are not the same IP version"
                )
        param = uri.params.get("transport", "").lower()
        if param and param != self.transport:
            raise ValueError(
                f"transport is {self.transport} but the uri says transport={param}; "
                "remove one of them"
            )
        return self


def _next_cseq(state: dict[str, Any]) -> int:
    # One counter per target across runs: harmless to peers (each run has a new
    # Call-ID) and it makes consecutive probes easy to tell apart in a trace.
    cseq = int(state.get("sip_cseq", 0)) % (2**31 - 1) + 1
    state["sip_cseq"] = cseq
    return cseq


def _literal_address(host: str, port: int) -> tuple[int, tuple[Any, ...]] | None:
    """(family, sockaddr) when ``host`` is an IP address, else None."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return socket.AF_INET6, (str(ip), port, 0, 0)
    return socket.AF_INET, (str(ip), port)


async def check(target: SipTarget, ctx: ProbeContext) -> Observation:
    """Send one OPTIONS to ``target.uri`` and classify what comes back (see ``classify``)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    budget = min(target.timeout, ctx.timeout)
    uri = parse_uri(target.uri)
    resolved = await _resolve(target, uri, budget)
    if isinstance(resolved, Observation):
        return resolved
    family, sockaddr = resolved
    timer_f = max(budget - (loop.time() - started), 0.001)
    if target.transport == "udp":
        outcome = await _udp(target, ctx, family, sockaddr, timer_f)
    else:
        outcome = await _tcp(target, ctx, sockaddr, timer_f)
    if isinstance(outcome, Observation):
        return outcome
    if outcome is None:
        return Observation.fail(
            f"no TCP connection to {uri.host}:{uri.effective_port} within {budget:.1f} s",
            ErrorClass.TIMEOUT,
            _NO_ANSWER,
        )
    return classify(
        outcome, transport=target.transport, timeout=budget, warn_codes=target.warn_codes
    )


_NO_ANSWER = (metric_point(Outcome(), up=False),)


async def _resolve(
    target: SipTarget, uri: SipUri, budget: float
) -> tuple[int, tuple[Any, ...]] | Observation:
    """(family, sockaddr) of the peer, or a RESOLVE failure."""
    family = 0
    if target.source_address is not None:
        version = ipaddress.ip_address(target.source_address).version
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
    literal = _literal_address(uri.host, uri.effective_port)
    if literal is not None:
        # Most trunks are configured by IP: skip the resolver's thread pool.
        return literal
    sock_type = socket.SOCK_DGRAM if target.transport == "udp" else socket.SOCK_STREAM
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(uri.host, uri.effective_port, family=family, type=sock_type),
            budget,
        )
    except TimeoutError:
        return Observation.fail(
            f"could not resolve {uri.host} within {budget:.1f} s", ErrorClass.RESOLVE, _NO_ANSWER
        )
    except socket.gaierror as exc:
        return Observation.fail(
            f"could not resolve host {uri.host} ({exc.strerror})", ErrorClass.RESOLVE, _NO_ANSWER
        )
    family, _, _, _, sockaddr = infos[0]
    return family, sockaddr


def _cannot_bind(target: SipTarget, exc: OSError) -> Observation:
    """The probe cannot run from the configured source: a setup problem, not the peer's."""
    source = f"{target.source_address or '*'}:{target.source_port or '*'}"
    return Observation(
        status=Status.ERROR,
        detail=f"cannot send from {source} ({exc.strerror or exc}); check source_address and source_port",
        metrics=(metric_point(Outcome(), up=False),),
    )


async def _udp(
    target: SipTarget, ctx: ProbeContext, family: int, sockaddr: tuple[Any, ...], timer_f: float
) -> Outcome | Observation:
    try:
        endpoint = await shared_endpoints(ctx.shared).get(
            family, target.source_address, target.source_port
        )
    except OSError as exc:
        return _cannot_bind(target, exc)
    try:
        local_host = endpoint.local_host_for(sockaddr[0])
    except OSError as exc:  # no route to the peer at all
        return Outcome(error=exc)
    request = build_options(
        request_uri=target.uri,
        transport="udp",
        local_host=local_host,
        local_port=endpoint.local_address[1],
        from_user=target.from_user,
        from_domain=target.from_domain or local_host,
        user_agent=target.user_agent,
        cseq=_next_cseq(ctx.state),
    )
    txn = UdpClientTransaction(endpoint.sender(request.data, sockaddr), timer_f)
    endpoint.register(request.branch, txn)
    try:
        return await txn.run()
    finally:
        endpoint.unregister(request.branch)


async def _tcp(
    target: SipTarget, ctx: ProbeContext, sockaddr: tuple[Any, ...], timer_f: float
) -> Outcome | Observation | None:
    """None when the connection could not be made within the budget."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        reader, writer = await asyncio.wait_for(
            open_tcp(sockaddr[0], sockaddr[1], target.source_address, target.source_port),
            timer_f,
        )
    except TimeoutError:
        return None
    except OSError as exc:
        fixed_source = target.source_address is not None or target.source_port != 0
        if fixed_source and exc.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            return _cannot_bind(target, exc)
        return Outcome(error=exc, elapsed=loop.time() - started)
    try:
        local_host, local_port = writer.get_extra_info("sockname")[:2]
        request = build_options(
            request_uri=target.uri,
            transport="tcp",
            local_host=local_host,
            local_port=local_port,
            from_user=target.from_user,
            from_domain=target.from_domain or local_host,
            user_agent=target.user_agent,
            cseq=_next_cseq(ctx.state),
        )
        remaining = max(timer_f - (loop.time() - started), 0.001)
        return await tcp_transaction(reader, writer, request.data, request.branch, remaining)
    finally:
        writer.close()
