"""A test action kind registered the way a package above monitor registers its own.

Monitor registers no action in production; tests need one to exercise the
path from registry to schema to loaded rule. The assembled models are bound
here under their names so the isolated loader's child (which imports
``tests.rule_actions:Config``) and pickle find them.
"""

from __future__ import annotations

from core.config import StrictModel
from monitor.config.rules import ActionKind, rule_model
from monitor.config.schema import config_model


class PageAction(StrictModel):
    """Page someone (a test action)."""

    who: str
    """Whom to page."""
    urgent: bool = False
    """Page at once, not in the next digest."""


ACTIONS = {"page": ActionKind("page", PageAction, "page someone (test action)")}

RuleConfig = rule_model(ACTIONS, name="RuleConfig", module=__name__)
Config = config_model(RuleConfig, name="Config", module=__name__)
