"""The one probe signature, and what the runner hands each probe.

Every probe kind is a module in ``probes/`` exposing a target model (a
subclass of ``TargetBase``) and::

    async def check(target: MyTarget, ctx: ProbeContext) -> Observation

A probe never changes health. It returns ``ok``/``warn``/``fail`` with a human
sentence in ``detail``; an unexpected exception is turned into an ``error``
observation by the runner, not by the probe. Sockets, engines and clients are
closed in ``finally``; long-lived ones (a shared UDP socket, an SSH
connection) live in ``ctx.shared`` and are closed by the engine on stop.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, get_args

from core.config import SiteConfig, TargetBase
from core.observation import Observation
from core.registry import PluginKind
from core.shared import SharedResources

T = TypeVar("T")


@dataclass
class ProbeContext:
    """What the runner gives a probe for one run."""

    target_id: str
    timeout: float
    """Seconds this run may take; the runner cancels the probe after it (plus a small grace)."""
    state: dict[str, Any] = field(default_factory=dict)
    """Per-target memory between runs (previous counters, file offsets). JSON-serialisable
    values only: the engine persists it so it survives a restart."""
    shared: SharedResources = field(default_factory=SharedResources)
    site: SiteConfig = field(default_factory=SiteConfig)
    extra: dict[str, Any] = field(default_factory=dict)
    """Engine facts for built-in probes (e.g. the appliance self-check reads engine stats here)."""


Check = Callable[[Any, ProbeContext], Awaitable[Observation]]


@dataclass(frozen=True)
class BuiltinTarget:
    """A target the engine runs though no config lists it (see ``ProbeKind.builtin``)."""

    target: TargetBase
    digest: str
    """Changes when what the target is built from changes, so a reload reschedules it."""


Unit = Literal["", "ms", "s", "%", "d", "B", "B/s", "/s", "/min"]
"""What a metric's value counts: milliseconds, seconds, percent, days, bytes,
bytes per second, events per second or per minute; ``""`` for a bare number
(a count, a status code, a 0/1 flag)."""

UNITS: tuple[str, ...] = get_args(Unit)


@dataclass(frozen=True)
class KeyMetric:
    """A metric that says most about a target of one kind, with its unit.

    The dashboard lists a target's key metrics (the first few its last
    observation has, in the order the kind declares them) and the target page
    charts them first, with the unit on the axis.
    """

    key: str
    """``measurement.field`` (every tag set of it, e.g. each disk of
    ``server_disk.used_percent``) or ``measurement.field[tag=value,...]`` for
    one series only (``snmp_cpu.load_percent[processor=all]``), written as the
    engine flattens an observation's points."""
    unit: Unit = ""

    @property
    def base(self) -> str:
        """``measurement.field`` without the tags."""
        return self.key.split("[", 1)[0]

    def matches(self, flat_key: str) -> bool:
        """Does a flattened metric key (``server_disk.used_percent[mount=/]``) belong to this one?"""
        if "[" in self.key:
            return flat_key == self.key
        return flat_key == self.key or flat_key.startswith(self.key + "[")


@dataclass(frozen=True)
class ProbeKind(PluginKind[TargetBase, Check]):
    """A ``PROBES`` entry: the kind's name, its target model, its check, its summary."""

    builtin: Callable[[Any], BuiltinTarget] | None = None
    """For a kind the engine always runs: given the whole config, its built-in
    target. A configured target of the kind takes the built-in one's place."""
    key_metrics: tuple[KeyMetric, ...] = ()
    """The kind's most telling metrics, most telling first (see ``KeyMetric``)."""

    @property
    def check(self) -> Check:
        """The kind's ``check`` (its ``implementation``)."""
        return self.implementation


class LazyEntries(Mapping[str, T]):
    """``key`` -> ``module.attribute``, the module imported on the first lookup.

    For a probe's source adapters (``server``'s ``via``, ``dialer``'s
    ``source.type``): their libraries (paramiko, pysnmp, urllib3...) are
    imported by a site whose targets use them, not by every engine (engine
    memory at 10,000 targets, see bench/RESULTS.md).
    """

    def __init__(self, modules: Mapping[str, str], attribute: str) -> None:
        self._modules = dict(modules)
        self._attribute = attribute

    def __getitem__(self, key: str) -> T:
        return getattr(importlib.import_module(self._modules[key]), self._attribute)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)
