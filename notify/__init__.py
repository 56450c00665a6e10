"""Who is told: channels, people, schedules, escalation and the outbox.

The layer above the engine (``monitor``) that turns incident events into
messages to people. This package starts with its seam, the channels
(``notify.channels``): one module per way of reaching someone, one interface,
``send(message) -> Receipt`` raising ``DeliveryError(reason, permanent=...)``,
and one literal registry, ``CHANNELS``. Who is on call, escalation and the
outbox build on it. ``notify`` imports ``monitor``, ``probes`` and ``core``
only; it meets ``runbooks`` and ``analytics`` through events (DESIGN.md).
"""
