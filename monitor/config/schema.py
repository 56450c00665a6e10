"""The top-level configuration model, with the ``targets`` union built from the probe registry.

``Config`` is monitor's own schema: its rules accept no action, since monitor
performs none. The composition root builds the schema of a build with
``config_model`` from the rule model of the installed action kinds
(``monitor.config.rules.rule_model``).
"""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, create_model

from core.config import SiteConfig, StrictModel, TargetBase
from monitor.config.models import ComponentConfig, StorageConfig, WebConfig
from monitor.config.rules import RuleConfig
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
    rules: list[RuleConfig] = Field(default_factory=list)
    """When to act on events, and how: ``when:`` plus one key per action kind (see docs/rules.md)."""

    def target(self, target_id: str) -> TargetBase | None:
        return next((t for t in self.targets if t.id == target_id), None)


def config_model(
    rule: type[RuleConfig], *, name: str = "Config", module: str | None = None
) -> type[Config]:
    """``Config`` whose ``rules`` are ``rule`` models (from ``rule_model``).

    For ``RuleConfig`` itself this is ``Config``. Otherwise a new model: bind
    it at module level in ``module`` under ``name``, beside ``rule``, so that
    pickle (the isolated loader) finds both.
    """
    if rule is RuleConfig:
        return Config
    return create_model(
        name,
        __base__=Config,
        __module__=module or __name__,
        rules=(list[rule], Field(default_factory=list)),  # type: ignore[valid-type]
    )
