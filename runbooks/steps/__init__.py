"""Runbook step kinds: one module each, one interface, one literal registry.

``STEPS`` is the only place a step kind is registered, in the shape every
plugin registry has (``core.registry``): kind → its config model, the class
that runs it (``Kind(config)``, see ``runbooks.steps.base``) and a summary.
The ``runbooks:`` config section builds its step union from it; each kind
has a page in docs/steps/.
"""

from __future__ import annotations

from collections.abc import Callable

from core.registry import PluginKind
from runbooks.steps.ami import AmiStep, AmiStepConfig
from runbooks.steps.approve import ApproveStep, ApproveStepConfig
from runbooks.steps.base import Step, StepConfig
from runbooks.steps.http import HttpStep, HttpStepConfig
from runbooks.steps.incident_update import IncidentUpdateStep, IncidentUpdateStepConfig
from runbooks.steps.kamailio import KamailioStep, KamailioStepConfig
from runbooks.steps.manual import ManualStep, ManualStepConfig
from runbooks.steps.notify import NotifyStep, NotifyStepConfig
from runbooks.steps.set_maintenance import SetMaintenanceStep, SetMaintenanceStepConfig
from runbooks.steps.shell import ShellStep, ShellStepConfig
from runbooks.steps.ssh import SshStep, SshStepConfig
from runbooks.steps.wait_for import WaitForStep, WaitForStepConfig

StepKind = PluginKind[StepConfig, Callable[..., Step]]

STEPS: dict[str, StepKind] = {
    "kamailio": PluginKind(
        "kamailio",
        KamailioStepConfig,
        KamailioStep,
        "a Kamailio dispatcher: set_state, reload or list, over kamcmd (ctl) or JSON-RPC",
    ),
    "ssh": PluginKind(
        "ssh",
        SshStepConfig,
        SshStep,
        "one command on a host over SSH, checked by exit code and output, stopped there at "
        "the timeout",
    ),
    "http": PluginKind(
        "http",
        HttpStepConfig,
        HttpStep,
        "one HTTP request to an API (pause a campaign, switch a carrier): expected status, "
        "JSON values checked",
    ),
    "ami": PluginKind(
        "ami",
        AmiStepConfig,
        AmiStep,
        "one Asterisk manager (AMI) action (Reload, DBPut, Originate, Command), Response: "
        "Success expected",
    ),
    "wait_for": PluginKind(
        "wait_for",
        WaitForStepConfig,
        WaitForStep,
        "wait until a target is in a health (or leaves it), with a timeout",
    ),
    "approve": PluginKind(
        "approve",
        ApproveStepConfig,
        ApproveStep,
        "wait for a person with a role to approve or reject (never the one who started the run)",
    ),
    "manual": PluginKind(
        "manual",
        ManualStepConfig,
        ManualStep,
        "a checklist item a person does by hand and ticks, with a note",
    ),
    "notify": PluginKind(
        "notify",
        NotifyStepConfig,
        NotifyStep,
        "tell people or whoever is on call, through paging's channels and outbox",
    ),
    "set_maintenance": PluginKind(
        "set_maintenance",
        SetMaintenanceStepConfig,
        SetMaintenanceStep,
        "start or end a target's maintenance window",
    ),
    "incident_update": PluginKind(
        "incident_update",
        IncidentUpdateStepConfig,
        IncidentUpdateStep,
        "set the incident's cause and ETA, add a note, publish a customer update",
    ),
    "shell": PluginKind(
        "shell",
        ShellStepConfig,
        ShellStep,
        "a local command from runbook_settings.shell_allow, without a shell, values one word each",
    ),
}
