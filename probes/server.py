"""``server`` probe: this machine's resources via psutil (placeholder until it lands)."""

from __future__ import annotations

from typing import Literal

from monitor.config.models import TargetBase
from monitor.observation import Observation
from probes.base import ProbeContext


class ServerTarget(TargetBase):
    kind: Literal["server"]
    via: Literal["local"] = "local"


async def check(target: ServerTarget, ctx: ProbeContext) -> Observation:
    return Observation.ok("placeholder")
