"""The top-level configuration model, its unions built from the plugin registries.

``targets`` is a union of ``probes.PROBES``' target models and ``metrics`` of
``monitor.sinks.SINKS``' sink models (``core.registry.config_union``): a kind
registered there is accepted here, with no list of models to keep in step.

``Config`` is monitor's own schema: its rules accept no action, since monitor
performs none. The composition root builds the schema of a build with
``config_model`` from the rule model of the installed action kinds
(``monitor.config.rules.rule_model``).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Annotated

from pydantic import AfterValidator, Field, PrivateAttr, create_model

from core.config import SiteConfig, StrictModel, TargetBase
from core.registry import config_union
from monitor.config.models import ComponentConfig, StorageConfig, WebConfig
from monitor.config.rules import RuleConfig
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
    rules: list[RuleConfig] = Field(default_factory=list)
    """When to act on events, and how: ``when:`` plus one key per action kind (see docs/rules.md)."""

    _index: tuple[int, dict[str, TargetBase], dict[str, str]] | None = PrivateAttr(default=None)

    def _targets_index(self) -> tuple[dict[str, TargetBase], dict[str, str]]:
        # Built once per config (it is frozen); a page of the API asked for the names
        # of all 10,000 targets on every request (10 ms of an 18 ms call). Keyed by the
        # list's identity, so a model_copy with other targets gets its own index.
        index = self._index
        if index is None or index[0] != id(self.targets):
            by_id = {t.id: t for t in self.targets}
            index = (id(self.targets), by_id, {t.id: t.display_name for t in self.targets})
            self._index = index
        return index[1], index[2]

    def target(self, target_id: str) -> TargetBase | None:
        return self._targets_index()[0].get(target_id)

    def target_names(self) -> Mapping[str, str]:
        """Every target's display name by id (read-only: it is shared)."""
        return MappingProxyType(self._targets_index()[1])


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
