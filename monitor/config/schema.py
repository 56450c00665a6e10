"""The top-level configuration model, with the ``targets`` union built from the probe registry."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field

from core.config import SiteConfig, StrictModel, TargetBase
from monitor.config.models import ComponentConfig, StorageConfig, WebConfig
from monitor.sinks.config import MetricsConfig
from probes import PROBES
from probes.appliance import ApplianceConfig

# A discriminated union on ``kind``: an unknown kind is one clear error listing
# the known kinds, instead of one error per model of the union.
AnyTarget = Annotated[
    Union[tuple(kind.model for kind in PROBES.values())],  # type: ignore[valid-type]  # noqa: UP007
    Field(discriminator="kind"),
]


class Config(StrictModel):
    """A whole Dialwatch configuration (one file, or a directory of files merged)."""

    site: SiteConfig = Field(default_factory=SiteConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    appliance: ApplianceConfig = Field(default_factory=ApplianceConfig)
    targets: list[AnyTarget] = Field(default_factory=list)
    components: list[ComponentConfig] = Field(default_factory=list)
    metrics: MetricsConfig = Field(default_factory=list)
    """Metric sinks besides the embedded store (InfluxDB v1/v2; see docs/metrics.md)."""

    def target(self, target_id: str) -> TargetBase | None:
        return next((t for t in self.targets if t.id == target_id), None)
