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
from collections.abc import Callable

from core.clock import Clock
from monitor.faults import Faults
from notify.channels.base import DeliveryError
from notify.channels.exchange import Exchange
from notify.settings import HeartbeatConfig

log = logging.getLogger(__name__)


def ping(config: HeartbeatConfig) -> str:
    """One ping; returns the answer's status line, raises ``RuntimeError`` with the reason."""
    exchange = Exchange(
        config.url, label="heartbeat", timeout=config.timeout, allow_private=config.allow_private
    )
    try:
        answer = exchange.send("GET", max_bytes=4096)
    except DeliveryError as exc:
        raise RuntimeError(exc.reason) from None
    if not answer.ok:
        raise RuntimeError(f"{exchange.where} answered HTTP {answer.status}")
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
