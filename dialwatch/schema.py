"""The configuration schema of this build: monitor's sections, the sections of the packages
above it, and rules that know the action kinds the installed packages provide.

``RULE_ACTIONS`` is the one place an action kind is registered, as ``PROBES``
is for probe kinds: ``escalate`` (paging, ``notify.rule_action``) and ``run``
(runbooks, ``runbooks.rule_action``).

``SECTIONS`` adds the top-level sections of the packages above monitor, each
built from its registry: ``channels:`` from ``notify.channels.CHANNELS``; ``people:``,
``schedules:``, ``escalations:`` and ``paging:`` from ``notify``; ``failover:`` from
``runbooks.failover``; ``runbooks:`` (steps from ``runbooks.steps.STEPS``) and
``runbook_settings:`` from ``runbooks``.
"""

from __future__ import annotations

from core.registry import config_union
from monitor.config.rules import ActionKind, rule_model
from monitor.config.schema import Section, config_model
from notify.channels import CHANNELS
from notify.channels.disabled import stand_in as channel_stand_in
from notify.customer_settings import CustomersConfig, customers_problems
from notify.people import EscalationConfig, PersonConfig, ScheduleConfig
from notify.roster import paging_problems
from notify.rule_action import ESCALATE
from notify.settings import PagingConfig
from runbooks.config import RunbookConfig, RunbookSettings, runbook_problems
from runbooks.failover.config import FailoverGroupConfig, failover_problems
from runbooks.rule_action import RUN
from runbooks.steps import STEPS

RULE_ACTIONS: dict[str, ActionKind] = {"escalate": ESCALATE, "run": RUN}

SECTIONS: dict[str, Section] = {
    "channels": Section(
        config_union(CHANNELS),
        "Ways of reaching people: each entry has an `id` (named in people's contact lists) "
        "and a `kind` (see docs/notify.md and docs/channels/).",
        registry=CHANNELS,
        unique_ids="channel",
        stand_in=channel_stand_in,
    ),
    "people": Section(
        PersonConfig,
        "Staff who are paged: each tied to a console user, with contact channels in order "
        "(see docs/oncall.md).",
        unique_ids="person",
        check=paging_problems,
    ),
    "schedules": Section(
        ScheduleConfig,
        "On-call rotations: who is on call at any moment (see docs/oncall.md).",
        unique_ids="schedule",
    ),
    "escalations": Section(
        EscalationConfig,
        "Escalation policies: whom to page, level by level, until someone acknowledges "
        "(see docs/oncall.md).",
        unique_ids="escalation",
    ),
    "paging": Section(
        PagingConfig,
        "How pages are delivered: retries, the per-person rate limit, links, templates, "
        "the heartbeat (see docs/notify.md).",
        many=False,
    ),
    "customers": Section(
        CustomersConfig,
        "How the center's customers who subscribed on the status page are told: channels, "
        "auto or manual notices, the all-clear settle time, quiet hours, abuse limits "
        "(see docs/customers.md).",
        many=False,
        check=customers_problems,
    ),
    "failover": Section(
        FailoverGroupConfig,
        "Trunk failover groups: carriers behind one SIP proxy, taken out when their own "
        "health is down and put back when stable (see docs/failover.md).",
        unique_ids="failover group",
        check=failover_problems,
    ),
    "runbooks": Section(
        RunbookConfig,
        "Runbooks: steps that act (a SIP proxy, a host over SSH, a dialer's API...), with "
        "rollback steps and the emergency plan for people (see docs/runbooks.md and "
        "docs/steps/).",
        registry=STEPS,
        unique_ids="runbook",
        check=runbook_problems,
        files_from="runbook_settings.dir",
    ),
    "runbook_settings": Section(
        RunbookSettings,
        "How runbooks may act here: the local commands a shell step may run, how many "
        "runs execute at once (see docs/runbooks.md).",
        many=False,
    ),
}

# Bound here under these names: the isolated loader's child imports ``Config``
# by name and pickle finds both models by theirs.
RuleConfig = rule_model(RULE_ACTIONS, name="RuleConfig", module=__name__)
Config = config_model(RuleConfig, sections=SECTIONS, name="Config", module=__name__)
