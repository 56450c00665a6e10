"""RFC 3263 server location: NAPTR → SRV → A/AAAA, with dnspython's asyncio resolver.

Selection (§4.1, §4.2), for a host name without an explicit port:

1. Transport fixed (``transport:`` option, URI ``transport=``, or ``sips:``)
   or not, NAPTR records of the host are asked first; those with flag ``s``
   and a service we speak (``SIP+D2U`` udp, ``SIP+D2T`` tcp, ``SIPS+D2T``
   tls; only ``SIPS+D2T`` for ``sips:``) are kept in order/preference order,
   and the first whose replacement has SRV records wins. NAPTR records that
   all lead nowhere are reported as such (a DNS configuration error).
2. No usable NAPTR: SRV ``_sips._tcp`` (sips), else ``_sip._udp``,
   ``_sip._tcp``, ``_sips._tcp`` — the first that exists (only the fixed
   transport's when one is fixed).
3. No SRV: A/AAAA of the host itself, on the transport's default port.

Every SRV target (priority order, then higher weight first) is resolved to
addresses, and every address is a gateway the probe checks, up to
``dns.max_gateways``. We probe all of them rather than picking one by
weight: the question is "which of the carrier's gateways answer", not
"where would one call go".

The resolver is kept in ``ctx.shared`` per nameserver set, with a cache that
respects the records' TTLs, so 10,000 targets do not ask the same SRV
10,000 times. Pure selection functions are separate from the I/O.

dnspython is imported when the first resolver is made, not with this module:
most trunks are configured by IP address, and an engine watching only those
does not carry it (~2-3 MB in the engine; memory at 10,000 targets, bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.shared import SharedResources
from probes.sip.config import DnsOptions, parse_nameserver

if TYPE_CHECKING:
    import dns.asyncresolver
    import dns.resolver

SHARED_KEY = "sip.dns_resolvers"

NAPTR_SERVICES = {"SIP+D2U": "udp", "SIP+D2T": "tcp", "SIPS+D2T": "tls"}
SRV_PREFIXES = {"udp": "_sip._udp", "tcp": "_sip._tcp", "tls": "_sips._tcp"}


class DnsFailure(Exception):
    """The DNS itself failed (timeout, SERVFAIL, no server): not an answer about the name."""


@dataclass(frozen=True, slots=True)
class NaptrRecord:
    order: int
    preference: int
    flags: str
    service: str
    replacement: str


@dataclass(frozen=True, slots=True)
class SrvRecord:
    priority: int
    weight: int
    port: int
    target: str


@dataclass
class Plan:
    """What resolution found: a transport and the hosts/ports to resolve to addresses."""

    transport: str
    hosts: list[tuple[str, int]] = field(default_factory=list)
    via: str = "A/AAAA"
    """``NAPTR``, ``SRV`` or ``A/AAAA``: how the hosts were found (for the detail)."""


def naptr_choices(records: Sequence[NaptrRecord], allowed: Sequence[str]) -> list[tuple[str, str]]:
    """(transport, SRV name) of every usable NAPTR record, in RFC 3263 §4.1 order.

    The first one with SRV records wins; the others are the fallbacks when its
    SRV name has no records.
    """
    found: list[tuple[str, str]] = []
    for record in sorted(records, key=lambda r: (r.order, r.preference)):
        transport = NAPTR_SERVICES.get(record.service.upper())
        if record.flags.lower() == "s" and transport in allowed and record.replacement:
            found.append((transport, record.replacement.rstrip(".")))
    return found


def naptr_choice(records: Sequence[NaptrRecord], allowed: Sequence[str]) -> tuple[str, str] | None:
    """The preferred usable NAPTR record's (transport, SRV name), or None."""
    choices = naptr_choices(records, allowed)
    return choices[0] if choices else None


def srv_order(records: Sequence[SrvRecord]) -> list[tuple[str, int]]:
    """SRV targets in the order to list them: priority, then higher weight first.

    A target of ``.`` means "no service here" (RFC 2782) and is dropped.
    """
    ordered = sorted(records, key=lambda r: (r.priority, -r.weight, r.target))
    return [(r.target.rstrip("."), r.port) for r in ordered if r.target not in (".", "")]


def allowed_transports(scheme: str, fixed: str | None) -> list[str]:
    if fixed is not None:
        return [fixed]
    return ["tls"] if scheme == "sips" else ["udp", "tcp", "tls"]


def make_resolver(options: DnsOptions, lifetime: float) -> dns.asyncresolver.Resolver:
    """Raises dns.resolver.NoResolverConfiguration without nameservers and /etc/resolv.conf."""
    import dns.asyncresolver
    import dns.nameserver
    import dns.resolver

    if options.nameservers:
        resolver = dns.asyncresolver.Resolver(configure=False)
        resolver.nameservers = [
            dns.nameserver.Do53Nameserver(*parse_nameserver(server))
            for server in options.nameservers
        ]
    else:
        resolver = dns.asyncresolver.Resolver()  # /etc/resolv.conf
    resolver.cache = dns.resolver.LRUCache(4096)
    resolver.lifetime = lifetime
    return resolver


def shared_resolver(
    options: DnsOptions, shared: SharedResources
) -> dns.asyncresolver.Resolver | None:
    """One resolver (and cache) per nameserver list for the whole engine.

    None when no nameservers are given and there is no /etc/resolv.conf.
    """
    import dns.resolver

    resolvers: dict[tuple[str, ...], dns.asyncresolver.Resolver] | None = shared.get(SHARED_KEY)
    if resolvers is None:
        resolvers = {}
        shared.set(SHARED_KEY, resolvers)
    key = tuple(options.nameservers)
    resolver = resolvers.get(key)
    if resolver is None:
        try:
            resolver = make_resolver(options, 5.0)
        except dns.resolver.NoResolverConfiguration:
            return None
        resolvers[key] = resolver
    return resolver


async def _query(
    resolver: dns.asyncresolver.Resolver, name: str, rdtype: str, lifetime: float
) -> list[object]:
    """Records of one type; [] for NXDOMAIN / no data; DnsFailure when DNS itself fails."""
    import dns.exception
    import dns.resolver

    try:
        answer = await resolver.resolve(name, rdtype, lifetime=lifetime, search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.Timeout:
        raise DnsFailure(f"DNS timeout asking {rdtype} of {name}") from None
    except dns.resolver.NoNameservers as exc:
        raise DnsFailure(
            f"no DNS server answered {rdtype} of {name} ({_first_error(exc)})"
        ) from None
    except dns.exception.DNSException as exc:
        raise DnsFailure(f"DNS error asking {rdtype} of {name} ({exc})") from None
    return list(answer)


def _first_error(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    if errors:
        return str(errors[0][3])
    return "no servers"


async def plan(
    resolver: dns.asyncresolver.Resolver,
    host: str,
    scheme: str,
    fixed: str | None,
    lifetime: float,
) -> Plan:
    """Steps 1–3 above for ``host`` (a name without port)."""
    allowed = allowed_transports(scheme, fixed)
    naptrs = [
        NaptrRecord(r.order, r.preference, r.flags.decode(), r.service.decode(), str(r.replacement))  # type: ignore[attr-defined]
        for r in await _query(resolver, host, "NAPTR", lifetime)
    ]
    choices = naptr_choices(naptrs, allowed)
    via = "NAPTR → SRV" if choices else "SRV"
    candidates = choices or [(t, f"{SRV_PREFIXES[t]}.{host}") for t in allowed]
    for transport, name in candidates:
        srvs = [
            SrvRecord(r.priority, r.weight, r.port, str(r.target))  # type: ignore[attr-defined]
            for r in await _query(resolver, name, "SRV", lifetime)
        ]
        if srvs:
            return Plan(transport, srv_order(srvs), f"{via} {name}")
    if choices:
        # The domain publishes NAPTR records but none leads to SRV records: a
        # broken DNS setup to report, not a reason to guess with A records.
        return Plan(choices[0][0], [], f"NAPTR → SRV {choices[0][1]}")
    transport = fixed or ("tls" if scheme == "sips" else "udp")
    return Plan(transport, [(host, 5061 if transport == "tls" else 5060)], "A/AAAA")


async def addresses(
    resolver: dns.asyncresolver.Resolver | None,
    host: str,
    port: int,
    family: int,
    lifetime: float,
) -> list[tuple[int, tuple[object, ...]]]:
    """(family, sockaddr) for every A/AAAA of ``host``; through the system when no resolver."""
    if resolver is None:
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(host, port, family=family, type=socket.SOCK_DGRAM), lifetime
            )
        except TimeoutError:
            raise DnsFailure(f"DNS timeout resolving {host}") from None
        except socket.gaierror:
            return []
        seen: list[tuple[int, tuple[object, ...]]] = []
        for fam, _, _, _, sockaddr in infos:
            if (fam, sockaddr) not in seen:
                seen.append((fam, sockaddr))
        return seen
    found: list[tuple[int, tuple[object, ...]]] = []
    kinds = []
    if family in (0, socket.AF_INET):
        kinds.append(("A", socket.AF_INET))
    if family in (0, socket.AF_INET6):
        kinds.append(("AAAA", socket.AF_INET6))
    for rdtype, fam in kinds:
        for record in await _query(resolver, host, rdtype, lifetime):
            address = record.address  # type: ignore[attr-defined]
            sockaddr: tuple[object, ...] = (
                (address, port) if fam == socket.AF_INET else (address, port, 0, 0)
            )
            found.append((fam, sockaddr))
    return found


__all__ = [
    "DnsFailure",
    "NaptrRecord",
    "Plan",
    "SrvRecord",
    "addresses",
    "naptr_choice",
    "plan",
    "shared_resolver",
    "srv_order",
]
