"""The configuration schema of this build: monitor's sections, the sections of the packages
above it, and rules that know the action kinds the installed packages provide.

``RULE_ACTIONS`` is the one place an action kind is registered, as ``PROBES``
is for probe kinds: ``run`` (runbooks) and ``escalate`` (notifications) are
added here when those packages land. Today none is installed, so a rule that
uses one is an error saying so.

``SECTIONS`` adds the top-level sections of the packages above monitor, each
built from its registry: ``channels:`` from ``notify.channels.CHANNELS``.
"""

from __future__ import annotations

from core.registry import config_union
from monitor.config.rules import ActionKind, rule_model
from monitor.config.schema import Section, config_model
from notify.channels import CHANNELS

RULE_ACTIONS: dict[str, ActionKind] = {}

SECTIONS: dict[str, Section] = {
    "channels": Section(
        config_union(CHANNELS),
        "Ways of reaching people: each entry has an `id` (named in people's contact lists) "
        "and a `kind` (see docs/notify.md and docs/channels/).",
        registry=CHANNELS,
        unique_ids="channel",
    ),
}

# Bound here under these names: the isolated loader's child imports ``Config``
# by name and pickle finds both models by theirs.
RuleConfig = rule_model(RULE_ACTIONS, name="RuleConfig", module=__name__)
Config = config_model(RuleConfig, sections=SECTIONS, name="Config", module=__name__)
