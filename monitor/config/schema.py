"""The top-level configuration model, its unions built from the plugin registries.

``targets`` is a union of ``probes.PROBES``' target models and ``metrics`` of
``monitor.sinks.SINKS``' sink models (``core.registry.config_union``): a kind
registered there is accepted here, with no list of models to keep in step.

``Config`` is monitor's own schema: its rules accept no action, since monitor
performs none, and it has only monitor's sections. The composition root
builds the schema of a build with ``config_model`` from the rule model of
the installed action kinds (``monitor.config.rules.rule_model``) and the
sections that packages above monitor contribute (``Section``: ``channels:``
from notify...), which monitor validates, reports and documents like its
own without knowing them by name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field, PrivateAttr, create_model

from core.config import SiteConfig, StrictModel, TargetBase
from core.registry import PluginKind, config_union
from monitor.config.errors import KeyPath
from monitor.config.models import ComponentConfig, StorageConfig, WebConfig
from monitor.config.rules import RuleConfig
from monitor.sinks import SINKS
from monitor.sinks.config import unique_sink_names
from probes import PROBES
from probes.appliance import ApplianceConfig

AnyTarget = config_union(PROBES)
AnySink = config_union(SINKS)


@dataclass(frozen=True)
class Section:
    """A top-level list section contributed by a package above monitor (``channels:``).

    Each entry of the list is validated as ``entry`` (a registry's union,
    ``core.registry.config_union``), with the same file:line:key errors as
    monitor's own sections.
    """

    entry: Any
    """The type of one entry of the list."""
    doc: str
    """What the section is for: shown under its heading in docs/configuration.md."""
    registry: Mapping[str, PluginKind[Any, Any]] | None = None
    """The registry ``entry`` is built from, for each kind's summary in the docs."""
    unique_ids: str | None = None
    """When entries have an ``id`` that must be unique: what one is called in the error
    (``channel`` → "duplicate channel id 'mail' (first at ...)")."""
    many: bool = True
    """A list of ``entry`` (``channels:``); False: one ``entry`` mapping (``paging:``),
    whose defaults apply when the section is left out."""
    check: Callable[[Any], Iterable[tuple[KeyPath, str]]] | None = None
    """Checks across sections on the validated config (references between people,
    schedules, channels...): each problem as (key path, message), given file and line
    by the loader like any other error."""
    files_from: str | None = None
    """``outer.key`` naming a directory whose ``*.yaml`` files hold more entries of this
    list section (``runbook_settings.dir`` for ``runbooks:``): each such file has this
    section's key only, and its errors name that file and line."""
    stand_in: Callable[[str, str], Mapping[str, Any]] | None = None
    """For a list section whose bad entries must not stop the rest (``channels:``): the
    entry that takes the place of one that does not validate, made from its ``id`` and
    the error lines. The loader then loads the config with the stand-in and lists the
    error lines in ``LoadedConfig.disabled``; without it a bad entry refuses the config."""


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

    sections: ClassVar[Mapping[str, Section]] = {}
    """The sections contributed by packages above monitor (set by ``config_model``)."""

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
    rule: type[RuleConfig],
    *,
    sections: Mapping[str, Section] | None = None,
    name: str = "Config",
    module: str | None = None,
) -> type[Config]:
    """``Config`` whose ``rules`` are ``rule`` models (from ``rule_model``), with ``sections`` added.

    For ``RuleConfig`` itself and no sections this is ``Config``. Otherwise a
    new model: bind it at module level in ``module`` under ``name``, beside
    ``rule``, so that pickle (the isolated loader) finds both. A section may
    not take the name of one of monitor's.
    """
    sections = dict(sections or {})
    if rule is RuleConfig and not sections:
        return Config
    fields: dict[str, Any] = {}
    if rule is not RuleConfig:
        fields["rules"] = (list[rule], Field(default_factory=list))  # type: ignore[valid-type]
    for key, section in sections.items():
        if key in Config.model_fields or hasattr(Config, key):
            raise ValueError(f"section '{key}' is taken by one of monitor's sections or attributes")
        if section.many:
            fields[key] = (
                list[section.entry],
                Field(default_factory=list, description=section.doc),
            )
        else:
            fields[key] = (
                section.entry,
                Field(default_factory=section.entry, description=section.doc),
            )
    model = create_model(name, __base__=Config, __module__=module or __name__, **fields)
    model.sections = sections
    return model
