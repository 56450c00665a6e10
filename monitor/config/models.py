"""Configuration models shared by the loader, the engine and the probes.

Every model is strict (an unknown key is an error) and frozen. Each probe kind
defines its own target model in ``probes/<kind>.py`` by subclassing
``TargetBase``; ``probes.PROBES`` lists them, and the loader builds the
``targets`` union from that registry.
"""

from __future__ import annotations

from pydantic import (
    Field,
)

from core.config import Duration, StrictModel, TagKey, TargetId


class StorageConfig(StrictModel):
    """Where state and the embedded metrics live."""

    data_dir: str | None = None
    """Data directory; ``--data`` and ``DIALWATCH_DATA`` win over this."""
    database_url: str | None = None
    """SQLAlchemy URL of the state DB; default ``sqlite:///<data_dir>/state.db``."""
    raw_retention: Duration = 3 * 3600.0
    """How long raw points are kept in the embedded metrics store."""
    rollup_1m_retention: Duration = 30 * 86400.0
    """How long 1-minute rollups are kept."""
    rollup_1h_retention: Duration = 365 * 86400.0
    """How long 1-hour rollups are kept."""
    max_bytes: int = 2 * 1024**3
    """Disk budget for the embedded metrics store; oldest raw data goes first."""


class WebConfig(StrictModel):
    listen: str = "127.0.0.1:8080"
    """HOST:PORT; on any non-loopback address the dashboard and API need ``token``."""
    token: str | None = None
    """API / dashboard token for non-loopback listeners (use ``${ENV}`` or ``${file:...}``)."""
    public_status: bool = True
    """Serve the public status page without a token."""


class ComponentConfig(StrictModel):
    """A line on the public status page, made of targets."""

    id: TargetId
    """Unique name of the component (same form as a target id)."""
    name: dict[str, str]
    """Per language: ``{zh-CN: 外呼线路, en: Outbound calling}``."""
    description: dict[str, str] = Field(default_factory=dict)
    """Per language, one line under the name on the status page."""
    targets: list[TargetId] = Field(default_factory=list)
    """Target ids that make up this component."""
    selector: dict[TagKey, str] = Field(default_factory=dict)
    """Tag selector: every target whose tags include all of these."""
