"""The configuration schema of this build: monitor's sections, with rules that know
the action kinds the installed packages provide.

``RULE_ACTIONS`` is the one place an action kind is registered, as ``PROBES``
is for probe kinds: ``run`` (runbooks) and ``escalate`` (notifications) are
added here when those packages land. Today none is installed, so a rule that
uses one is an error saying so.
"""

from __future__ import annotations

from monitor.config.rules import ActionKind, rule_model
from monitor.config.schema import config_model

RULE_ACTIONS: dict[str, ActionKind] = {}

# Bound here under these names: the isolated loader's child imports ``Config``
# by name and pickle finds both models by theirs.
RuleConfig = rule_model(RULE_ACTIONS, name="RuleConfig", module=__name__)
Config = config_model(RuleConfig, name="Config", module=__name__)
