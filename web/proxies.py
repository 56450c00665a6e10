"""The client's address and scheme, believing X-Forwarded-* only from trusted proxies (pure).

Anyone can send ``X-Forwarded-For: 1.2.3.4``; only a reverse proxy listed
in ``web.trusted_proxies`` is believed. The client is the right-most address
in the chain that is not itself a trusted proxy (each proxy appends the
address it received from), so a forged left-hand entry changes nothing.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Client:
    address: str
    secure: bool


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip().strip("[]"))
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value.strip("[]"))
    except ValueError:
        return False
    return True


def client(
    remote_addr: str | None,
    forwarded_for: str | None,
    forwarded_proto: str | None,
    direct_secure: bool,
    proxies: Sequence[Network],
) -> Client:
    peer = remote_addr or ""
    if not proxies or not _trusted(peer, proxies):
        return Client(peer, direct_secure)
    address = peer
    for hop in reversed([h.strip() for h in (forwarded_for or "").split(",") if h.strip()]):
        if not _is_ip(hop):
            break  # a trusted proxy appends addresses: junk came from the client
        address = hop
        if not _trusted(hop, proxies):
            break
    proto = (forwarded_proto or "").split(",")[0].strip().lower()
    secure = proto == "https" if proto in ("http", "https") else direct_secure
    return Client(address[:64], secure)
