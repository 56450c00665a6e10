"""Where a sip target's requests go: the URI's host resolved to one or more Destinations.

An IP literal needs no resolver. A host name with an explicit port (or with
``dns.rfc3263: false``) is looked up as A/AAAA. A host name without a port
follows RFC 3263 (see ``rfc3263``): NAPTR → SRV → A/AAAA, and every address
found is a gateway the probe checks.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

from monitor.observation import ErrorClass, Observation
from probes.sip.classify import metric_point
from probes.sip.config import SipTarget
from probes.sip.message import SipUri
from probes.sip.session import Destination, literal_destination
from probes.sip.transaction import Outcome

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


async def resolve(target: SipTarget, uri: SipUri, budget: float) -> list[Destination] | Observation:
    """The destinations to probe, in order, or a RESOLVE failure."""
    transport = target.transport or "udp"
    port = uri.port or default_port(transport)
    literal = literal_destination(uri.host, port, transport)
    if literal is not None:
        # Most trunks are configured by IP: skip the resolver's thread pool.
        return [literal]
    return await system_lookup(target, uri.host, port, transport, budget)


async def system_lookup(
    target: SipTarget, host: str, port: int, transport: str, budget: float
) -> list[Destination] | Observation:
    """A/AAAA through the system (``getaddrinfo``: /etc/hosts, then DNS)."""
    sock_type = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(
            loop.getaddrinfo(host, port, family=source_family(target), type=sock_type), budget
        )
    except TimeoutError:
        return Observation.fail(
            f"could not resolve {host} within {budget:.1f} s", ErrorClass.RESOLVE, NO_ANSWER
        )
    except socket.gaierror as exc:
        return Observation.fail(
            f"could not resolve host {host} ({exc.strerror})", ErrorClass.RESOLVE, NO_ANSWER
        )
    family, _, _, _, sockaddr = infos[0]
    return [Destination(transport, family, sockaddr, host)]
