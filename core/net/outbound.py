"""Requests to addresses an operator typed: resolve once, refuse private ranges, connect to what was checked.

A webhook URL (and later a chat robot's or an SMS gateway's) is written by
whoever edits the config; on a monitoring appliance inside the call
center's network such a URL must not become a way to reach its internal
services or a cloud's metadata endpoint (server-side request forgery). So
the host is resolved *here*, every address it resolves to is checked
against ``DENIED_NETWORKS`` before any connection is made, and the request
then goes to that checked address (``pinned_url``, with the name kept for
the ``Host`` header, TLS SNI and the certificate check): a second lookup
by the HTTP library could answer differently (DNS rebinding) and is never
made. A name with any denied address is refused as a whole, so which of
its addresses would have been used does not matter.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from core.net.address import parse_nameserver
from core.observation import ErrorClass

if TYPE_CHECKING:
    import urllib3

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DENIED_NETWORKS: tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...] = (
    (ipaddress.ip_network("10.0.0.0/8"), "private"),
    (ipaddress.ip_network("172.16.0.0/12"), "private"),
    (ipaddress.ip_network("192.168.0.0/16"), "private"),
    (ipaddress.ip_network("127.0.0.0/8"), "loopback"),
    (ipaddress.ip_network("169.254.0.0/16"), "link-local"),
    # Connecting to 0.0.0.0 or :: reaches this machine on Linux.
    (ipaddress.ip_network("0.0.0.0/8"), "this-host"),
    (ipaddress.ip_network("::/128"), "this-host"),
    (ipaddress.ip_network("::1/128"), "loopback"),
    (ipaddress.ip_network("fc00::/7"), "private"),
    (ipaddress.ip_network("fe80::/10"), "link-local"),
)
"""Ranges an outbound request to a configured URL may not reach unless the config allows it.
IPv4-mapped IPv6 addresses (``::ffff:10.0.0.1``) are checked as the IPv4 address they are."""


class OutboundRefused(Exception):
    """No request was made: ``reason`` says why; ``permanent``: the same config will fail again."""

    def __init__(self, reason: str, error_class: ErrorClass, permanent: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.error_class = error_class
        self.permanent = permanent


def denied_range(address: IPAddress) -> tuple[str, str] | None:
    """(network, kind) of the denied range ``address`` is in, or None."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for network, kind in DENIED_NETWORKS:
        if address.version == network.version and address in network:
            return str(network), kind
    return None


def resolve(
    host: str, port: int, *, deadline: float, nameservers: Sequence[str] = ()
) -> list[IPAddress]:
    """Every address ``host`` resolves to (an IP literal is itself); OutboundRefused when none.

    ``nameservers`` (``ip`` or ``ip:port``): ask these DNS servers for A and
    AAAA records; default: the system's resolver (``getaddrinfo``: /etc/hosts,
    then DNS), which has no deadline of its own.
    """
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    if nameservers:
        return _ask_servers(host, nameservers, deadline)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        gone = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME))
        raise OutboundRefused(
            f"could not resolve {host} ({exc.strerror})", ErrorClass.RESOLVE, permanent=gone
        ) from None
    found: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).partition("%")[0])
        if address not in found:
            found.append(address)
    return found


def _ask_servers(host: str, nameservers: Sequence[str], deadline: float) -> list[IPAddress]:
    import dns.exception
    import dns.nameserver
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [
        dns.nameserver.Do53Nameserver(*parse_nameserver(server)) for server in nameservers
    ]
    lifetime = max(deadline - time.monotonic(), 0.01)
    try:
        answers = resolver.resolve_name(host, lifetime=lifetime, search=False)
    except dns.resolver.NXDOMAIN:
        raise OutboundRefused(
            f"could not resolve {host} (no such name)", ErrorClass.RESOLVE, permanent=True
        ) from None
    except dns.resolver.NoAnswer:
        raise OutboundRefused(
            f"could not resolve {host} (no address records)", ErrorClass.RESOLVE, permanent=True
        ) from None
    except dns.exception.Timeout:
        raise OutboundRefused(
            f"could not resolve {host}: no answer from {', '.join(nameservers)} in time",
            ErrorClass.TIMEOUT,
            permanent=False,
        ) from None
    except dns.exception.DNSException as exc:
        raise OutboundRefused(
            f"could not resolve {host} ({type(exc).__name__})", ErrorClass.RESOLVE, permanent=False
        ) from None
    return [ipaddress.ip_address(a) for a in answers.addresses()]


def checked_address(
    host: str,
    port: int,
    *,
    deadline: float,
    allow_private: bool = False,
    nameservers: Sequence[str] = (),
) -> IPAddress:
    """The address to connect to for ``host``: resolved once, every address checked.

    Raises OutboundRefused (permanent) when any address is in a denied range
    and ``allow_private`` is off — before any connection is attempted.
    """
    addresses = resolve(host, port, deadline=deadline, nameservers=nameservers)
    if not addresses:
        raise OutboundRefused(f"{host} resolves to no address", ErrorClass.RESOLVE, False)
    if not allow_private:
        for address in addresses:
            denied = denied_range(address)
            if denied is not None:
                network, kind = denied
                what = host if str(address) == host.strip("[]") else f"{host} resolves to {address}"
                raise OutboundRefused(
                    f"{what}, a {kind} address ({network}): not sent, outbound requests go to "
                    "public addresses only (allow_private: true allows it)",
                    ErrorClass.UNREACHABLE,
                    permanent=True,
                )
    return addresses[0]


@dataclass(frozen=True)
class Pinned:
    """A URL rewritten to a checked address, and what the request must say instead of it."""

    url: str
    """The URL with the checked IP address as its host."""
    host_header: str
    """``Host:`` as the original URL names it (``hooks.example.cn:8443``)."""
    hostname: str
    """The original host name, for TLS SNI and the certificate's name check."""


def pinned_url(url: str, address: IPAddress) -> Pinned:
    """``url`` aimed at ``address``, keeping its path and query and its name for Host and TLS."""
    parts = urlsplit(url)
    hostname = parts.hostname or ""
    netloc_host = f"[{address}]" if address.version == 6 else str(address)
    port = f":{parts.port}" if parts.port is not None else ""
    original = parts.netloc.rpartition("@")[2]
    return Pinned(
        urlunsplit(parts._replace(netloc=netloc_host + port)),
        original,
        hostname,
    )


def pinned_pool(pinned: Pinned, verify: bool, ca_file: str | None) -> urllib3.PoolManager:
    """A one-off pool whose TLS checks the original name although it connects to an address."""
    import urllib3

    if verify:
        return urllib3.PoolManager(
            num_pools=1,
            maxsize=1,
            cert_reqs="CERT_REQUIRED",
            ca_certs=ca_file,
            # SNI and the certificate's name check use the name (the ssl module checks it
            # against server_hostname), while the socket goes to the checked address.
            server_hostname=pinned.hostname,
        )
    return urllib3.PoolManager(
        num_pools=1,
        maxsize=1,
        cert_reqs="CERT_NONE",
        assert_hostname=False,
        server_hostname=pinned.hostname,
    )
