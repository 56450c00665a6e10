"""The error vocabulary: low-level failures as a human sentence and a fixed class."""

from __future__ import annotations

import errno
import socket

from core.observation import ErrorClass


def describe_os_error(exc: OSError) -> tuple[str, ErrorClass]:
    """Map a socket error to a human sentence and the fixed error vocabulary."""
    if isinstance(exc, socket.gaierror):
        return f"could not resolve host ({exc.strerror})", ErrorClass.RESOLVE
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "connection refused", ErrorClass.REFUSED
    if exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN):
        return f"host unreachable ({exc.strerror})", ErrorClass.UNREACHABLE
    return f"connection failed ({exc.strerror or exc})", ErrorClass.UNREACHABLE
