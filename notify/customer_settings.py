"""The ``customers:`` section: how the center's customers are told about components.

```yaml
customers:
  email_channel: mail          # a channels: entry of kind email
  sms_channel: sms             # a channels: entry of kind sms
  push_channel: push           # a channels: entry of kind webpush
  notify: auto                 # or manual: only when staff publish a customer update
  delay: 5m                    # auto: the first notice after this much trouble
  settle: 10m                  # an all clear waits this long (a flap is one outage)
  quiet_hours: {start: "22:00", end: "08:00"}
  outage_in_quiet_hours: true  # the outage notice itself goes out in them
```
The rules of who hears what and when are ``notify.customer_policy``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import time
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from core.config import Bool, Duration, StrictModel, TargetId
from monitor.config.errors import KeyPath
from notify.customer_policy import QuietHours, Rules

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class QuietHoursConfig(StrictModel):
    start: str
    """Local time (the site's timezone), ``HH:MM``."""
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.fullmatch(value):
            raise ValueError("a local time as HH:MM, e.g. 22:00")
        return value


class SubscribeLimits(StrictModel):
    """Abuse limits of the public subscribe forms (no CAPTCHA service needed)."""

    per_address_per_hour: Annotated[int, Field(ge=1, le=100)] = 3
    per_network_per_hour: Annotated[int, Field(ge=1, le=10_000)] = 20
    """Per client address (an IPv6 /64 counts as one network)."""
    sms_codes_per_number_per_day: Annotated[int, Field(ge=1, le=100)] = 10
    sms_codes_per_network_per_day: Annotated[int, Field(ge=1, le=10_000)] = 5
    """Verification texts asked for from one client network (an IPv6 /64) a day."""
    sms_codes_per_day: Annotated[int, Field(ge=1, le=1_000_000)] = 500
    """Verification texts in total per day (SMS pumping costs money)."""


class CustomersConfig(StrictModel):
    """How customers subscribed on the status page are told."""

    email_channel: TargetId | None = None
    """The ``channels:`` entry (kind ``email``) that sends customers' e-mail; none: no
    e-mail subscriptions."""
    sms_channel: TargetId | None = None
    """The ``channels:`` entry (kind ``sms``) for text messages; none: no SMS subscriptions."""
    push_channel: TargetId | None = None
    """The ``channels:`` entry (kind ``webpush``) for browser notifications from the status
    page's own service worker; its ``allowed_hosts`` say which push services a subscriber's
    browser may use. None: no push subscriptions."""
    notify: Literal["auto", "manual"] = "auto"
    delay: Duration = 300.0
    settle: Duration = 600.0
    quiet_hours: QuietHoursConfig | None = None
    outage_in_quiet_hours: Bool = True
    limits: SubscribeLimits = Field(default_factory=SubscribeLimits)
    maintenance_notice: Annotated[list[Duration], Field(max_length=5)] = Field(
        default_factory=lambda: [86400.0, 3600.0]
    )
    """How long before a scheduled maintenance window of a component its subscribers are
    told (then again when it starts and ends); ``[]``: only at its start and end."""

    def rules(self, timezone: str, component: Any = None) -> Rules:
        """The rules for one component: its own ``notify`` / ``notify_delay`` where set."""
        quiet = None
        if self.quiet_hours is not None:
            quiet = QuietHours(
                time.fromisoformat(self.quiet_hours.start),
                time.fromisoformat(self.quiet_hours.end),
                timezone,
            )
        mode = getattr(component, "notify", None) or self.notify
        delay = getattr(component, "notify_delay", None) or self.delay
        return Rules(mode, delay, self.settle, quiet, self.outage_in_quiet_hours)

    def channel_for(self, kind: str) -> str | None:
        """The channel that sends to subscribers of ``kind`` (email, sms, webpush)."""
        return {
            "email": self.email_channel,
            "sms": self.sms_channel,
            "webpush": self.push_channel,
        }.get(kind)


def customers_problems(config: Any) -> Iterable[tuple[KeyPath, str]]:
    """The channels named must be in ``channels:`` and of the right kind."""
    customers = getattr(config, "customers", None)
    if customers is None:
        return
    kinds = {c.id: c.kind for c in getattr(config, "channels", [])}
    for key, wanted in (
        ("email_channel", "email"),
        ("sms_channel", "sms"),
        ("push_channel", "webpush"),
    ):
        name = getattr(customers, key)
        if name is None:
            continue
        if name not in kinds:
            yield (
                ("customers", key),
                f"no channel '{name}' (channels: {', '.join(sorted(kinds)) or 'none'})",
            )
        elif kinds[name] != wanted:
            yield ("customers", key), f"channel '{name}' is of kind {kinds[name]}, not {wanted}"
