"""Serve the web app with waitress in a background thread.

The engine runs the scheduler in the same process; waitress only serves HTTP.
``serve(app, host, 0)`` picks a free port (``handle.port`` tells which).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any

from waitress.server import create_server


@dataclass
class ServerHandle:
    """A running waitress server; ``close()`` stops it and waits for its thread."""

    host: str
    port: int
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _stop: threading.Event = field(repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self, timeout: float = 5.0) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        # OSError: the loop woke on its own timeout, saw the flag and already
        # closed the trigger; it is exiting anyway (seen once in CI as EBADF).
        with contextlib.suppress(OSError):
            self._server.pull_trigger()  # wake the select() so the loop sees the stop flag now
        self._thread.join(timeout)


def _loop(server: Any, stop: threading.Event) -> None:
    # The asyncore loop is not thread-safe, so everything that touches it (serving
    # and closing) happens on this one thread; close() only sets a flag and wakes it.
    try:
        while not stop.is_set():
            server.asyncore.loop(timeout=1.0, map=server._map, count=1)
    finally:
        # Workers first: a request finishing after its trigger is closed would die
        # with EBADF in the worker thread (waitress's own close() keeps this order).
        server.task_dispatcher.shutdown(timeout=2)
        for channel in list(server._map.values()):
            if channel is not server:
                channel.close()
        server.close()


def serve(app: Any, host: str = "127.0.0.1", port: int = 8080, threads: int = 8) -> ServerHandle:
    """Start waitress for ``app`` on host:port in a daemon thread and return at once."""
    server = create_server(app, host=host, port=port, threads=threads, ident="dialwatch")
    stop = threading.Event()
    thread = threading.Thread(target=_loop, args=(server, stop), name="web-server", daemon=True)
    handle = ServerHandle(host, int(server.effective_port), server, thread, stop)
    thread.start()
    return handle
