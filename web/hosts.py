"""Which Host headers the staff console answers (pure): DNS rebinding stops here.

A page on the internet can make a NOC browser resolve its own name to
127.0.0.1 and talk to a loopback appliance with the browser's cookies — but
the request then names the attacker's host. Staff routes answer only to
``web.base_url``'s host, ``web.allowed_hosts``, and (on a loopback
listener, by default) 127.0.0.1, ::1 and localhost with the listening port.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from core.net.address import is_loopback


def _normal(host: str) -> str:
    return host.strip().lower().rstrip(".")


def allowed_hosts(
    base_url: str | None, extra: Iterable[str], listen_host: str, listen_port: int
) -> frozenset[str]:
    """Every accepted Host value (``name`` accepts any port, ``name:port`` that port)."""
    hosts = {_normal(h) for h in extra}
    if base_url:
        parts = urlsplit(base_url)
        hosts.add(_normal(parts.netloc))
        if parts.port is None:
            # A browser omits the default port; a proxy may add it.
            default = 443 if parts.scheme == "https" else 80
            hosts.add(f"{_normal(parts.netloc)}:{default}")
    if is_loopback(listen_host):
        # Only the box itself reaches a loopback listener, by these names.
        names = ("127.0.0.1", "[::1]", "localhost")
        hosts |= {f"{name}:{listen_port}" for name in names}
        if listen_port == 80:  # a browser leaves the default port out of Host
            hosts |= set(names)
    return frozenset(hosts)


def host_allowed(host_header: str | None, allowed: frozenset[str]) -> bool:
    if not host_header:
        return False
    host = _normal(host_header)
    if host in allowed:
        return True
    name, sep, port = host.rpartition(":")
    # An entry without a port accepts that name on any port.
    return bool(sep) and port.isdigit() and name in allowed
