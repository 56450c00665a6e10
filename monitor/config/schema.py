"""The top-level configuration model, its unions built from the plugin registries.

``targets`` is a union of ``probes.PROBES``' target models and ``metrics`` of
``monitor.sinks.SINKS``' sink models (``core.registry.config_union``): a kind
registered there is accepted here, with no list of models to keep in step.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field

from core.config import SiteConfig, StrictModel, TargetBase
from core.registry import config_union
from monitor.config.models import ComponentConfig, StorageConfig, WebConfig
from monitor.sinks import SINKS
from monitor.sinks.config import unique_sink_names
from probes import PROBES
from probes.appliance import ApplianceConfig

AnyTarget = config_union(PROBES)
AnySink = config_union(SINKS)


class Config(StrictModel):
    """A whole Dialwatch configuration (one file, or a directory of files merged)."""

    site: SiteConfig = Field(default_factory=SiteConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    web: WebConfig = Field(default_factory=WebConfig)
    appliance: ApplianceConfig = Field(default_factory=ApplianceConfig)
    targets: list[AnyTarget] = Field(default_factory=list)  # type: ignore[valid-type]
    components: list[ComponentConfig] = Field(default_factory=list)
    metrics: Annotated[list[AnySink], AfterValidator(unique_sink_names)] = Field(  # type: ignore[valid-type]
        default_factory=list
    )
    """Metric sinks besides the embedded store (InfluxDB v1/v2; see docs/metrics.md)."""

    def target(self, target_id: str) -> TargetBase | None:
        return next((t for t in self.targets if t.id == target_id), None)
