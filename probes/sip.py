"""``sip`` probe: SIP OPTIONS ping over UDP and TCP (placeholder until the SIP probe lands)."""

from __future__ import annotations

from typing import Literal

from monitor.config.models import Duration, TargetBase
from monitor.observation import ErrorClass, Observation
from probes.base import ProbeContext


class SipTarget(TargetBase):
    kind: Literal["sip"]
    uri: str
    transport: Literal["udp", "tcp"] = "udp"
    interval: Duration = 30.0
    timeout: Duration = 4.0


async def check(target: SipTarget, ctx: ProbeContext) -> Observation:
    return Observation.fail("SIP probe not implemented yet", ErrorClass.PROTOCOL)
