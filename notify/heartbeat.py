"""The outbound heartbeat: a GET to a dead man's switch every ``paging.heartbeat.every``.

A service such as healthchecks.io expects a ping at an interval and tells
someone when the pings stop: that is how anyone hears that the appliance
itself has died, which no message from the appliance can say. The URL is
resolved and checked like a webhook's (private ranges refused unless
``allow_private``, the checked address pinned), redirects are not followed,
and a failed ping is logged and counted as an appliance fault; the next ping
still goes at its time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from urllib.parse import urlsplit

from core import __version__
from core.clock import Clock
from core.net.outbound import OutboundRefused, checked_address, pinned_pool, pinned_url
from monitor.faults import Faults
from notify.settings import HeartbeatConfig

log = logging.getLogger(__name__)


def ping(config: HeartbeatConfig) -> str:
    """One ping; returns the answer's status line, raises ``OSError``-like ``RuntimeError``."""
    from core.net.http import HttpFailure, request, shown_url

    deadline = time.monotonic() + config.timeout
    parts = urlsplit(config.url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        address = checked_address(
            parts.hostname or "", port, deadline=deadline, allow_private=config.allow_private
        )
    except OutboundRefused as exc:
        raise RuntimeError(f"heartbeat {shown_url(config.url)}: {exc.reason}") from None
    pinned = pinned_url(config.url, address)
    pool = pinned_pool(pinned, True, None)
    try:
        answer = request(
            pool,
            "GET",
            pinned.url,
            deadline=deadline,
            max_bytes=4096,
            headers={"Host": pinned.host_header, "User-Agent": f"Dialwatch/{__version__}"},
            redirects="none",
        )
    except HttpFailure as exc:
        raise RuntimeError(
            "heartbeat " + exc.detail.replace(shown_url(pinned.url), shown_url(config.url))
        ) from None
    finally:
        pool.clear()
    if not 200 <= answer.status < 300:
        raise RuntimeError(f"heartbeat {shown_url(config.url)} answered HTTP {answer.status}")
    return f"HTTP {answer.status}"


async def run_heartbeat(
    config: Callable[[], HeartbeatConfig | None], clock: Clock, faults: Faults
) -> None:
    """Ping for ever (until cancelled), reading the config before each ping (reloads)."""
    while True:
        current = config()
        if current is None:
            await clock.sleep(60)
            continue
        try:
            await asyncio.to_thread(ping, current)
        except Exception as exc:  # a failed ping is reported; the next one goes at its time
            log.warning("%s", exc)
            faults.report("notify:heartbeat", str(exc))
        await clock.sleep(current.every)
