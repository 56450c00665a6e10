"""``appliance`` probe: Dialwatch's own health (placeholder until it lands)."""

from __future__ import annotations

from typing import Literal

from monitor.config.models import TargetBase
from monitor.observation import Observation
from probes.base import ProbeContext


class ApplianceTarget(TargetBase):
    kind: Literal["appliance"]


async def check(target: ApplianceTarget, ctx: ProbeContext) -> Observation:
    return Observation.ok("placeholder")
