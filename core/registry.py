"""The one shape of every plugin registry: a literal dict of kind → ``PluginKind``.

Each plugin family — probe kinds (``probes.PROBES``), metric sinks
(``monitor.sinks.SINKS``), and the notification channels and runbook steps to
come — registers a kind as one entry: its name, the config model that
validates one config entry of that kind, what implements it, and a one-line
summary for docs/configuration.md. The config schema builds its unions from the
registries (``config_union``), and code finds a kind's implementation with
``REGISTRY[entry.kind].implementation`` instead of branching on config types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, Field

ModelT = TypeVar("ModelT", bound=BaseModel)
ImplT = TypeVar("ImplT")


@dataclass(frozen=True)
class PluginKind(Generic[ModelT, ImplT]):
    """A registry entry: a kind's name, its config model, its implementation, its summary."""

    kind: str
    """The ``kind:`` value that selects this entry in the config (its registry key)."""
    model: type[ModelT]
    """The config model of one entry of this kind; its ``kind`` field is ``Literal[kind]``."""
    implementation: ImplT
    """What does the work: a probe's check, a sink's factory, a channel, a step."""
    summary: str
    """One line for the docs: what this kind is for."""


def config_union(registry: Mapping[str, PluginKind[Any, Any]]) -> Any:
    """The registry's config models as one union, discriminated on ``kind``.

    Discriminated, so an unknown kind is one clear error listing the known kinds
    (in registry order) instead of one error per member of the union.
    """
    models = tuple(entry.model for entry in registry.values())
    return Annotated[Union[models], Field(discriminator="kind")]  # type: ignore[valid-type]  # noqa: UP007


def registry_mismatches(registry: Mapping[str, PluginKind[Any, Any]]) -> list[str]:
    """Entries whose key, ``kind`` and model's ``kind`` literal disagree (empty when sound)."""
    problems = []
    for key, entry in registry.items():
        field = entry.model.model_fields.get("kind")
        annotation = field.annotation if field is not None else None
        literal = get_args(annotation) if get_origin(annotation) is Literal else ()
        if not (key == entry.kind and literal == (key,)):
            problems.append(
                f"{key!r}: entry kind {entry.kind!r}, {entry.model.__name__}.kind {literal or None}"
            )
    return problems
