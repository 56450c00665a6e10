"""Where a sip target's requests go: the URI's host resolved to one or more Destinations.

An IP literal needs no resolver. A host name with an explicit port (or with
``dns.rfc3263: false``) is looked up as A/AAAA. A host name without a port
follows RFC 3263 (see ``rfc3263``): NAPTR → SRV → A/AAAA, and every address
found is a gateway the probe checks. A/AAAA go through the system
(``getaddrinfo``: /etc/hosts, then DNS) unless ``dns.nameservers`` is set.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.observation import ErrorClass, Observation
from core.shared import SharedResources
from probes.sip.classify import metric_point
from probes.sip.config import SipTarget
from probes.sip.message import SipUri
from probes.sip.rfc3263 import DnsFailure, Plan, addresses, plan, shared_resolver
from probes.sip.session import Destination, literal_destination
from probes.sip.transaction import Outcome

if TYPE_CHECKING:
    import dns.asyncresolver

NO_ANSWER = (metric_point(Outcome(), up=False),)


def default_port(transport: str) -> int:
    """RFC 3261 §19.1.2: 5061 for TLS, else 5060."""
    return 5061 if transport == "tls" else 5060


def source_family(target: SipTarget) -> int:
    """AF_INET / AF_INET6 when a source address pins the IP version, else 0."""
    if target.source_address is None:
        return 0
    version = ipaddress.ip_address(target.source_address).version
    return socket.AF_INET6 if version == 6 else socket.AF_INET


@dataclass
class Resolved:
    """The gateways to probe, in RFC 3263 order, and the names that gave no address."""

    destinations: list[Destination]
    unresolved: list[tuple[str, str]] = field(default_factory=list)
    """(``host:port``, sentence) of SRV targets without any address: failed gateways."""
    named: bool = False
    """True when the URI has a host name: each gateway's points get a ``gateway`` tag."""
    via: str = ""


async def resolve(
    target: SipTarget, uri: SipUri, budget: float, shared: SharedResources
) -> Resolved | Observation:
    """The destinations to probe, in order, or a RESOLVE failure."""
    transport = target.transport or ("tls" if uri.scheme == "sips" else "udp")
    literal = literal_destination(uri.host, uri.port or default_port(transport), transport)
    if literal is not None:
        # Most trunks are configured by IP: skip the resolver entirely.
        return Resolved([literal])
    lifetime = max(budget / 2, 0.05)
    family = source_family(target)
    resolver: dns.asyncresolver.Resolver | None = None
    if target.dns.nameservers or (target.dns.rfc3263 and uri.port is None):
        # None without /etc/resolv.conf: the system lookup (/etc/hosts) still works
        resolver = shared_resolver(target.dns, shared)
    a_resolver = resolver if target.dns.nameservers else None
    if uri.port is not None or not target.dns.rfc3263 or resolver is None:
        found = Plan(transport, [(uri.host, uri.port or default_port(transport))], "A/AAAA")
    else:
        try:
            found = await plan(resolver, uri.host, uri.scheme, target.transport, lifetime)
        except DnsFailure as exc:
            if target.dns.nameservers:
                return Observation.fail(
                    f"could not resolve {uri.host}: {exc}", ErrorClass.RESOLVE, NO_ANSWER
                )
            # The system's DNS cannot do NAPTR/SRV right now: fall back to A/AAAA
            # (getaddrinfo also reads /etc/hosts) rather than fail a named peer.
            found = Plan(transport, [(uri.host, uri.port or default_port(transport))], "A/AAAA")
    result = Resolved([], named=True, via=found.via)
    failures: list[str] = []
    for host, port in found.hosts:
        if len(result.destinations) >= target.dns.max_gateways:
            break
        try:
            addresses_found = await addresses(a_resolver, host, port, family, lifetime)
        except DnsFailure as exc:
            failures.append(str(exc))
            addresses_found = []
        # A host with both A and AAAA is one gateway reachable two ways, not two
        # gateways: probe one family (IPv4 first), or a monitor without an IPv6
        # route would show every dual-stack trunk as degraded.
        families = {fam for fam, _ in addresses_found}
        if len(families) > 1:
            addresses_found = [(f, a) for f, a in addresses_found if f == socket.AF_INET]
        if not addresses_found:
            result.unresolved.append((f"{host}:{port}", f"could not resolve {host}"))
        for fam, sockaddr in addresses_found:
            if len(result.destinations) < target.dns.max_gateways:
                result.destinations.append(Destination(found.transport, fam, sockaddr, host))
    if not result.destinations:
        if not found.hosts:
            reason = f"{found.via}: no usable SRV record"
        elif failures:
            reason = failures[0]
        else:
            reason = "no A/AAAA record" if a_resolver else "Name or service not known"
        return Observation.fail(
            f"could not resolve host {uri.host} ({reason})", ErrorClass.RESOLVE, NO_ANSWER
        )
    return result
