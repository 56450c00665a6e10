"""The ``paging:`` section: how hard the outbox tries, how often one person may be paged,
where the acknowledge links point, the templates, the heartbeat."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from core.config import Bool, Duration, FieldValueError, StrictModel
from notify.fallback import RateLimit, RetryPolicy


class HeartbeatConfig(StrictModel):
    """An outbound heartbeat to a dead man's switch (healthchecks-style): if the pings stop,
    the service there tells someone that the appliance itself is gone."""

    url: str
    """The URL pinged with a GET (``https://hc-ping.com/<uuid>``); write it as ``${ENV}``."""
    every: Duration = 60.0
    """Time between pings."""
    timeout: Duration = 10.0
    """Longest one ping may take."""
    allow_private: Bool = False
    """Allow a receiver at a private or loopback address (refused by default, as webhooks)."""


class PagingConfig(StrictModel):
    """Delivery of pages: retries, the per-person rate limit, links in messages, templates."""

    retries: Annotated[int, Field(ge=0, le=5)] = 1
    """Transient failures (timeouts, 5xx, rate limits) retried on the same channel before the
    person's next channel is tried; a permanent failure moves on at once."""
    retry_backoff: list[Duration] = Field(default_factory=lambda: [2.0, 10.0])
    """Seconds before each retry (the last repeats)."""
    rate_limit: Annotated[int, Field(ge=1, le=1000)] = 6
    """Messages one person gets at most per ``rate_window``; what comes over it waits for the
    window and goes as one grouped message (a digest)."""
    rate_window: Duration = 600.0
    """The window of ``rate_limit``."""
    ack_link_lifetime: Duration = 24 * 3600.0
    """How long the acknowledge link in a message works."""
    templates: str | None = None
    """A directory of your own message templates (``opened.zh-CN.txt``, ``opened.en.html``...;
    see docs/notify.md); a kind or language without a file there uses the built-in one."""
    concurrency: Annotated[int, Field(ge=1, le=64)] = 8
    """Messages being sent at once (each holds a thread while its provider answers)."""
    degraded_after: Annotated[int, Field(ge=1, le=100)] = 3
    """A channel whose last this-many attempts all failed shows as degraded."""
    heartbeat: HeartbeatConfig | None = None
    """An outbound heartbeat (off by default)."""

    @model_validator(mode="after")
    def _backoff(self) -> PagingConfig:
        if self.retries and not self.retry_backoff:
            raise FieldValueError("retry_backoff", "give at least one delay when retries > 0")
        return self

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(self.retries, tuple(self.retry_backoff))

    def rate(self) -> RateLimit:
        return RateLimit(self.rate_limit, self.rate_window)
