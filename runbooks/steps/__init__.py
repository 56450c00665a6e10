"""Runbook step kinds: one module each, one interface, one literal registry.

``STEPS`` is the only place a step kind is registered, in the shape every
plugin registry has (``core.registry``): kind → its config model, the class
that runs it (``Kind(config)``, see ``runbooks.steps.base``) and a summary.
The ``runbooks:`` config section builds its step union from it.
"""

from __future__ import annotations

from collections.abc import Callable

from core.registry import PluginKind
from runbooks.steps.base import Step, StepConfig
from runbooks.steps.kamailio import KamailioStep, KamailioStepConfig

StepKind = PluginKind[StepConfig, Callable[..., Step]]

STEPS: dict[str, StepKind] = {
    "kamailio": PluginKind(
        "kamailio",
        KamailioStepConfig,
        KamailioStep,
        "a Kamailio dispatcher: set_state, reload or list, over kamcmd (ctl) or JSON-RPC",
    ),
}
