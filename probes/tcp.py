"""``tcp`` probe: can we open a TCP connection, and how long does it take?

Useful for routers, SBC management ports, CRM databases — anything whose
liveness is "it accepts a connection".
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from pydantic import field_validator

from core.config import Duration, TargetBase
from core.errors import describe_os_error
from core.net.address import split_host_port
from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.base import ProbeContext


class TcpTarget(TargetBase):
    kind: Literal["tcp"]
    address: str
    """``host:port`` to connect to."""
    warn_connect_time: Duration | None = None
    """Connect times above this make the observation ``warn``."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_host_port(value)
        return value


async def check(target: TcpTarget, ctx: ProbeContext) -> Observation:
    host, port = split_host_port(target.address)
    started = time.perf_counter()
    writer = None
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), ctx.timeout)
    except TimeoutError:
        return Observation.fail(
            f"no answer to TCP connect within {ctx.timeout:g}s", ErrorClass.TIMEOUT
        )
    except OSError as exc:
        detail, error_class = describe_os_error(exc)
        return Observation.fail(detail, error_class)
    finally:
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - started
    point = MetricPoint("tcp", {"connect_ms": round(elapsed * 1000, 3)})
    if target.warn_connect_time is not None and elapsed > target.warn_connect_time:
        return Observation(
            status=Status.WARN,
            detail=f"connected in {elapsed * 1000:.1f} ms (above {target.warn_connect_time * 1000:g} ms)",
            metrics=(point,),
            latency=elapsed,
            error_class=ErrorClass.THRESHOLD,
        )
    return Observation.ok(f"connected in {elapsed * 1000:.1f} ms", (point,), elapsed)
