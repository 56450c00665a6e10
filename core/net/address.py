"""Host and port as written in the config."""

from __future__ import annotations


def split_host_port(address: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host, port); ValueError with a human reason."""
    host, sep, port = address.rpartition(":")
    if not sep or not host:
        raise ValueError("must be host:port, e.g. 192.0.2.1:22")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("port must be a number from 1 to 65535")
    return host, int(port)


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` are loopback; everything else (0.0.0.0, ::, names) is not."""
    import ipaddress

    host = host.strip().strip("[]").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
