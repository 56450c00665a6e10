"""The ``disabled`` channel: a channel that is off, and says why.

```yaml
channels:
  - id: sms
    kind: disabled
    reason: the SMS account is being renewed (ticket 4411)
```

Written by hand, it switches a channel off while people's contact lists
keep naming it. The config loader also puts one in place of a ``channels:``
entry that does not validate (a typo in a key, an unset ``${ENV}``): that
channel is off with the error as its reason and everything else works,
instead of one bad channel refusing the whole config. Either way the
channel cannot be built, so the appliance lists it as ``disabled`` with the
reason (logs, appliance faults, ``GET /api/v1/channels``, the /oncall
page), and a message for it fails permanently at once: people fall back to
their next channel.
"""

from __future__ import annotations

from typing import Any, Literal

from notify.channels.base import ChannelConfig


class ChannelOff(Exception):
    """Raised when a ``disabled`` channel is built: its reason is the message."""


class DisabledChannelConfig(ChannelConfig):
    """A channel that is off; ``reason`` says why."""

    kind: Literal["disabled"]
    reason: str = "switched off in the config"
    """Why it is off: shown with the channel wherever the channel is listed."""


def stand_in(ident: str, reason: str) -> dict[str, Any]:
    """The entry the config loader puts in place of a channel entry that does not validate."""
    return {"id": ident, "kind": "disabled", "reason": f"its config does not load: {reason}"}


class DisabledChannel:
    """Never built: construction raises ``ChannelOff`` with the reason."""

    def __init__(self, config: DisabledChannelConfig, *_: Any) -> None:
        raise ChannelOff(config.reason)
