"""The ``runbooks:`` section (what can be done, step by step) and ``runbook_settings:``.

```yaml
runbooks:
  - id: pause-campaigns
    name: {zh-CN: 暂停外呼任务, en: Pause the campaigns}
    emergency_plan: |
      If the dialer API does not answer: log in to the dialer console and press
      Pause on every campaign. Call the carrier NOC: 400-000-0000. Backup channel:
      the DingTalk group "外呼值班".
    parameters:
      campaign: {default: all}
    cooldown: 10m
    steps:
      - {id: pause, kind: http, method: POST, url: "http://dialer.lan/api/campaigns/{{ params.campaign }}/pause"}
      - {kind: approve, role: operator, prompt: "Campaigns paused. Continue?", timeout: 15m}
    rollback:
      - {kind: http, method: POST, url: "http://dialer.lan/api/campaigns/{{ params.campaign }}/resume"}
runbook_settings:
  shell_allow: [/usr/local/bin/switch-carrier]
```

Each step is one of the kinds in ``runbooks.steps.STEPS``; its text fields
are templates (``runbooks.template``) parsed at load, so a syntax error is
a file:line:key error. ``runbook_problems`` checks across sections: rules'
``run:`` name a runbook, ``shell`` steps run an allowed command, step ids
are unique within a runbook.
"""

from __future__ import annotations

import difflib
import shlex
from collections.abc import Iterable
from typing import Annotated, Any

from pydantic import Field, StringConstraints, field_validator, model_validator

from core.config import Bool, Duration, StrictModel, TargetId
from core.registry import config_union
from monitor.config.errors import KeyPath
from runbooks.steps import STEPS

LANGUAGES = ("zh-CN", "en")
ParamName = Annotated[str, StringConstraints(pattern=r"^[a-z_][a-z0-9_]{0,62}$")]
StepEntry = config_union(STEPS)


class ParameterConfig(StrictModel):
    """One value a person (or a rule) gives when starting a run: ``{{ params.<name> }}``."""

    default: str | int | float | bool | None = None
    required: Bool = False
    """A run cannot start without it (a default makes no sense then)."""
    description: str = ""
    choices: list[str] | None = None
    """When given, the value must be one of these."""

    @model_validator(mode="after")
    def _required_or_default(self) -> ParameterConfig:
        if self.required and self.default is not None:
            raise ValueError("a required parameter has no default; drop one of them")
        return self


class RunbookConfig(StrictModel):
    """A runbook: steps, optional rollback steps, and the plan for people."""

    id: TargetId
    name: dict[str, str] = Field(default_factory=dict)
    """Per language: ``{zh-CN: 切换备用线路, en: Switch to the backup carrier}``; default the id."""
    description: str = ""
    emergency_plan: str | dict[str, str] = ""
    """What staff do by hand when automation cannot: who to call, the backup
    communication channels. Shown beside the runbook in the console (per language
    when a mapping)."""
    parameters: dict[ParamName, ParameterConfig] = Field(default_factory=dict)
    steps: Annotated[list[StepEntry], Field(min_length=1, max_length=100)]  # type: ignore[valid-type]
    rollback: Annotated[list[StepEntry], Field(max_length=100)] = Field(default_factory=list)  # type: ignore[valid-type]
    """Run, in order, when a step with ``on_failure: rollback`` fails or a person asks."""
    cooldown: Annotated[Duration, Field(ge=0, le=7 * 86400)] = 300.0
    """After a run for a target ends, a rule does not start this runbook for that target
    again for this long (a flapping trunk cannot make failover ping-pong). A person can."""

    @field_validator("name")
    @classmethod
    def _languages(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = [k for k in value if k not in LANGUAGES]
        if unknown:
            raise ValueError(
                f"unknown language {', '.join(map(repr, unknown))}; allowed: {', '.join(LANGUAGES)}"
            )
        return value

    @field_validator("emergency_plan")
    @classmethod
    def _plan_languages(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(value, dict):
            cls._languages(value)
        return value

    def display_name(self, lang: str = "en") -> str:
        return self.name.get(lang) or self.name.get("en") or self.name.get("zh-CN") or self.id

    def plan_text(self, lang: str = "en") -> str:
        if isinstance(self.emergency_plan, str):
            return self.emergency_plan
        return self.emergency_plan.get(lang) or next(iter(self.emergency_plan.values()), "")

    def step_ids(self, phase: str) -> list[str]:
        steps = self.steps if phase == "main" else self.rollback
        default = "step" if phase == "main" else "rollback"
        return [s.id or f"{default}-{i + 1}" for i, s in enumerate(steps)]


class RunbookSettings(StrictModel):
    """How runbooks may act on this appliance."""

    shell_allow: list[Annotated[str, StringConstraints(min_length=1)]] = Field(default_factory=list)
    """Absolute paths of the local commands a ``shell`` step may run; nothing else."""
    max_parallel: Annotated[int, Field(ge=1, le=64)] = 8
    """Runs executing at once (runs waiting for a person do not count); more wait in the
    queue."""
    dir: str | None = None
    """A directory of runbook files (``*.yaml``, each with a ``runbooks:`` list), beside
    those in the config; relative to the config's directory. Checked like the config,
    with errors naming the file and line; read again on every reload."""

    @field_validator("shell_allow")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not path.startswith("/"):
                raise ValueError(f"{path!r}: give the command's absolute path (/usr/bin/...)")
        return value


def runbook_problems(config: Any) -> Iterable[tuple[KeyPath, str]]:
    """References across sections: rules' ``run:`` and ``shell`` steps' commands."""
    runbooks = list(getattr(config, "runbooks", []))
    ids = sorted(r.id for r in runbooks)
    settings = getattr(config, "runbook_settings", None)
    allowed = set(settings.shell_allow) if settings is not None else set()
    for r, runbook in enumerate(runbooks):
        yield from _parameter_problems(runbook, r)
        seen: set[str] = set()  # one namespace for both lists: steps.<id> in templates
        for phase in ("steps", "rollback"):
            for s, step in enumerate(getattr(runbook, phase)):
                key: KeyPath = ("runbooks", r, phase, s)
                if step.id is not None:
                    if step.id in seen:
                        yield (*key, "id"), f"step id '{step.id}' is used twice in this runbook"
                    seen.add(step.id)
                yield from _reference_problems(config, step, key)
                if step.kind == "shell":
                    command = _argv0(step.command)
                    if command not in allowed:
                        shown = ", ".join(sorted(allowed)) or "none"
                        yield (
                            (*key, "command"),
                            f"'{command}' is not in runbook_settings.shell_allow (allowed: {shown})",
                        )
    by_id = {rb.id: rb for rb in runbooks}
    for r, rule in enumerate(getattr(config, "rules", [])):
        run = getattr(rule, "run", None)
        if run is None:
            continue
        if run.runbook not in ids:
            close = difflib.get_close_matches(run.runbook, ids, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            yield ("rules", r, "run", "runbook"), f"no runbook '{run.runbook}'{hint}"
            continue
        wanted = by_id[run.runbook].parameters
        for name, value in run.params.items():
            key = ("rules", r, "run", "params", name)
            if name not in wanted:
                shown = ", ".join(wanted) or "none"
                yield (
                    key,
                    f"runbook '{run.runbook}' has no parameter '{name}' (parameters: {shown})",
                )
            elif wanted[name].choices is not None and str(value) not in wanted[name].choices:
                yield key, f"'{value}' is not one of {', '.join(wanted[name].choices or [])}"
        for name, spec in wanted.items():
            if spec.required and name not in run.params:
                yield ("rules", r, "run"), f"runbook '{run.runbook}' needs parameter '{name}'"


def _parameter_problems(runbook: RunbookConfig, r: int) -> Iterable[tuple[KeyPath, str]]:
    for name, spec in runbook.parameters.items():
        choices = spec.choices
        if choices is not None and spec.default is not None and str(spec.default) not in choices:
            yield (
                ("runbooks", r, "parameters", name, "default"),
                f"'{spec.default}' is not one of its choices: {', '.join(choices)}",
            )


def _reference_problems(config: Any, step: Any, key: KeyPath) -> Iterable[tuple[KeyPath, str]]:
    """A step's names of targets, people and schedules must be in the config."""
    target = getattr(step, "target", None)
    if step.kind in ("wait_for", "set_maintenance") and target is not None:
        targets = sorted(t.id for t in getattr(config, "targets", []))
        if target not in targets:
            close = difflib.get_close_matches(target, targets, n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            yield (*key, "target"), f"no target '{target}'{hint}"
    if step.kind == "notify":
        known = {
            "person": sorted(p.id for p in getattr(config, "people", [])),
            "schedule": sorted(s.id for s in getattr(config, "schedules", [])),
        }
        for n, recipient in enumerate(step.to):
            kind, _, ident = recipient.partition(":")
            if ident not in known[kind]:
                section = "people" if kind == "person" else "schedules"
                shown = ", ".join(known[kind]) or "none"
                yield (*key, "to", n), f"no {kind} '{ident}' ({section}: {shown})"


def _argv0(command: str | list[str]) -> str:
    if isinstance(command, list):
        return command[0] if command else ""
    try:
        words = shlex.split(command)
    except ValueError:
        return command
    return words[0] if words else ""
