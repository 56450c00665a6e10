"""The channel seam: a message, what a provider answered, and how a delivery fails.

Every channel kind is a module in ``notify.channels`` with a config model (a
``ChannelConfig`` with ``kind: Literal[...]``) and a class built from it::

    channel = EmailChannel(config)
    receipt = channel.send(message)      # blocking, bounded by the channel's timeout

``send`` returns a ``Receipt`` when the provider accepted the message, and
raises ``DeliveryError(reason, permanent=...)`` otherwise; the reason is a
sentence an operator reads on the delivery's row ("the SMTP server refused
zhang@example.cn: 550 5.1.1 no such user"). ``permanent`` says whether
sending the same message again can help: a refused recipient or a 404 is
permanent (move to the person's next contact method at once), a timeout, a
4xx SMTP answer or an HTTP 503 is transient (retry a bounded number of
times, then move on). A channel raises nothing else on purpose; the caller
still treats any other exception as a transient failure of that attempt.

Why ``send`` blocks instead of being a coroutine: every channel ends in a
blocking client (``smtplib``; the one HTTP client, ``core.net.http``, is
urllib3 in the caller's thread), and each bounds itself by its configured
timeout, so there is nothing a coroutine would gain but a second client
stack. The caller on the engine's asyncio loop runs it off the loop
(``await asyncio.to_thread(channel.send, message)``) under its own
concurrency cap, so a hanging provider holds a worker thread, never the
loop; the console's "send test" (Flask, synchronous) calls it directly.

A resend of the same delivery carries the same ``delivery_id``; channels
derive what the provider deduplicates on from it (the e-mail's
``Message-ID``, the webhook's ``X-Dialwatch-Delivery`` header), so an attempt
that was in flight when the appliance died can be sent again safely.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Protocol

from core.config import Language, StrictModel, TargetId
from core.observation import ErrorClass

if TYPE_CHECKING:
    from monitor.store.repository import StateRepository

_DELIVERY_ID = re.compile(r"[A-Za-z0-9._:@-]{1,200}")

Fact = str | int | float | bool | None
"""A value in ``Message.data``: what a JSON receiver can take as it is."""


@dataclass(frozen=True)
class Message:
    """One message to one recipient, already rendered in the recipient's language.

    The address fields are those of the recipient (a person or a subscriber);
    each channel reads the one it needs (email: ``email``; SMS: ``phone``) and
    fails permanently when it is missing. A webhook needs none: its address
    is the channel's own URL.
    """

    delivery_id: str
    """The delivery this message is (its idempotency key): the same on every attempt."""
    subject: str
    """One line: the e-mail's subject, a chat message's title."""
    text: str
    """The message as plain text; every channel can send this."""
    html: str | None = None
    """The same message as HTML, for channels that can show it (e-mail); escaped by its renderer."""
    language: Language = "zh-CN"
    """The language it is written in (the e-mail's ``Content-Language``)."""
    name: str | None = None
    """The recipient's name, for an address line (``张伟 <zhang@example.cn>``)."""
    email: str | None = None
    """The recipient's e-mail address."""
    phone: str | None = None
    """The recipient's phone number, E.164 (``+8613800138000``)."""
    data: Mapping[str, Fact] = field(default_factory=dict)
    """Facts for machine receivers (incident id, target, health): the webhook's ``data``."""
    user: str | None = None
    """The recipient's console user name (``people[].user``): web push goes to that user's
    subscriptions."""
    push_subscription: str | None = None
    """A browser's push subscription as JSON (``{"endpoint", "keys": {"p256dh", "auth"}}``):
    a status page subscriber's. Web push goes to it instead of a user's subscriptions."""

    def __post_init__(self) -> None:
        # It goes into headers (Message-ID, X-Dialwatch-Delivery): no spaces, no line breaks.
        if not _DELIVERY_ID.fullmatch(self.delivery_id):
            raise ValueError(
                f"delivery id {self.delivery_id!r} must be 1-200 letters, digits and ._:@-"
            )
        # Frozen all the way down: a message may be handed to another thread.
        object.__setattr__(self, "data", MappingProxyType(dict(self.data)))


@dataclass(frozen=True)
class Receipt:
    """What the provider said when it accepted a message."""

    provider_id: str | None
    """The provider's id for the message, when it gives one (for e-mail: our ``Message-ID``)."""
    answer: str
    """The provider's answer as text, shortened (``250 2.0.0 Ok: queued as 4F2A1``)."""


class DeliveryError(Exception):
    """A message was not accepted; ``reason`` is the sentence, ``permanent`` whether a resend can help."""

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool,
        error_class: ErrorClass | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.error_class = error_class
        """The fixed vocabulary (timeout, refused, tls...) for counting and logs; None: none fits."""
        self.retry_after = retry_after
        """Seconds the provider asked us to wait before the next try (HTTP ``Retry-After``)."""

    def __repr__(self) -> str:
        kind = "permanent" if self.permanent else "transient"
        return f"DeliveryError({self.reason!r}, {kind})"


@dataclass(frozen=True)
class ChannelContext:
    """What a channel kind may need from the running appliance besides its config.

    E-mail and webhooks need nothing (they are built from their config alone);
    web push reads and prunes subscriptions in the state DB and signs with the
    appliance's VAPID key. ``build_channel(config, context)`` hands it to the
    kinds that take one.
    """

    state: StateRepository | None = None
    """The state DB (``state.engine`` for reads); None: channels that need it fail permanently."""
    data_dir: Path | None = None
    """The appliance's data directory (keys live under ``keys/``)."""
    vapid_key: Path | None = None
    """The VAPID private key file; default ``<data_dir>/keys/vapid.pem``."""
    base_url: str | None = None
    """The console's public URL (``web.base_url``), for links and the VAPID ``sub``."""
    clock: Callable[[], float] = time.time
    """Wall clock (epoch seconds): JWT expiry, ``last_success_at``."""

    @property
    def vapid_key_path(self) -> Path | None:
        if self.vapid_key is not None:
            return self.vapid_key
        return None if self.data_dir is None else self.data_dir / "keys" / "vapid.pem"


class ChannelConfig(StrictModel):
    """What every ``channels:`` entry has, whatever its kind."""

    id: TargetId
    """Unique name of the channel, used in people's ``contact`` lists, deliveries and logs."""
    kind: str
    """Which kind of channel: one of the kinds below."""
    name: str | None = None
    """Shown on the console; defaults to the id."""

    @property
    def display_name(self) -> str:
        return self.name or self.id


class Channel(Protocol):
    """What every channel kind implements (built from its config: ``Kind(config)``)."""

    config: ChannelConfig

    def send(self, message: Message) -> Receipt:
        """Deliver ``message`` or raise ``DeliveryError``; blocks at most about the timeout."""
        ...


def shortened(text: str, limit: int = 300) -> str:
    """A provider's answer for a receipt or a reason: one line, at most ``limit`` characters."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
