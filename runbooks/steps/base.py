"""What every runbook step kind shares: its config fields, what it is given, what it returns.

A step kind is a config model (a ``StepConfig`` with ``kind: Literal[...]``)
and a class built from one rendered config entry, ``Kind(config)``, with

- ``async run(ctx) -> StepResult``: do the work; raise ``StepFailed`` with
  the peer's own words when it did not work (``retry=False`` when trying
  again cannot help: a refusal, a missing file);
- ``plan() -> list[str]``: what it would do, every value resolved, for a
  dry-run (nothing is contacted).

The engine (``runbooks.engine``) renders the fields a kind names in
``TEMPLATED`` (text) and ``SHELL`` (every value shell-quoted) before it
builds the class, so a step sees final values only; it applies the timeout
(the step's task is cancelled at it: a step that runs in a thread must
watch ``ctx.deadline`` itself, and one that starts a remote process must
stop it there too), the retries with back-off and ``on_failure``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import Field, StringConstraints, model_validator

from core.clock import Clock
from core.config import Duration, FieldValueError, StrictModel, format_duration
from core.shared import SharedResources
from runbooks import template

OnFailure = Literal["abort", "continue", "rollback"]
StepId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")]
MAX_OUTPUT = 64 * 1024
"""Characters of a step's output kept in the run (the end, where errors are)."""


StepTimeout = Annotated[Duration, Field(gt=0, le=7 * 86400)]
"""A step's timeout: more than 0, at most 7 days."""


class StepConfig(StrictModel):
    """The fields every step has, whatever its kind."""

    kind: str
    id: StepId | None = None
    """Names the step in the run and to later steps (``{{ steps.<id>.output }}``);
    default ``step-<n>`` (``rollback-<n>`` among the rollback steps); unique in the
    runbook."""
    name: str | None = None
    """What the console shows; default the id."""
    timeout: StepTimeout = 60.0
    """Longest one attempt may take; it is stopped at this time."""
    retries: Annotated[int, Field(ge=0, le=10)] = 0
    """Attempts after the first when it fails (not when it is refused for good)."""
    backoff: Annotated[Duration, Field(ge=0, le=3600)] = 5.0
    """Wait before the first retry; doubled for each next one."""
    on_failure: OnFailure = "abort"
    """``abort`` (the run fails here), ``continue`` (the next step runs), ``rollback``
    (the runbook's rollback steps run, then the run ends as rolled back)."""

    TEMPLATED: ClassVar[tuple[str, ...]] = ()
    """Fields rendered as text templates (strings, and strings inside dicts and lists)."""
    SHELL: ClassVar[tuple[str, ...]] = ()
    """Fields rendered into a shell command: every value is shell-quoted."""
    WAITS_FOR_PERSON: ClassVar[bool] = False
    """A step that waits for a person (approve, manual): never retried."""

    @model_validator(mode="after")
    def _templates_parse(self) -> StepConfig:
        for name in (*self.TEMPLATED, *self.SHELL):
            _check_all(getattr(self, name), name)
        return self

    def title(self, position: int, phase: str = "main") -> str:
        default = "step" if phase == "main" else "rollback"
        return self.name or self.id or f"{default}-{position + 1}"


def _alias(name: str) -> str:
    return {"json_body": "json", "not_": "not", "for_": "for"}.get(name, name)


def _check_all(value: Any, name: str) -> None:
    if isinstance(value, str):
        try:
            template.check(value)
        except template.TemplateRefused as exc:
            raise FieldValueError(_alias(name), str(exc)) from None
    elif isinstance(value, Mapping):
        for item in value.values():
            _check_all(item, name)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_all(item, name)


@dataclass(frozen=True)
class StepResult:
    """A step that worked: one line for the run, its output, values for later steps."""

    summary: str
    output: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


class StepFailed(Exception):
    """A step that did not work, in the peer's own words where there is a peer."""

    def __init__(self, reason: str, *, output: str = "", retry: bool = True) -> None:
        super().__init__(reason)
        self.reason = reason
        self.output = output
        self.retry = retry


@dataclass(frozen=True)
class PersonDecision:
    """What a person said at an ``approve`` or ``manual`` step."""

    decision: Literal["approved", "rejected", "done", "timed_out"]
    by: str | None = None
    note: str = ""
    at: float | None = None
    """When the person answered (epoch seconds)."""


class WaitForPerson(Protocol):
    def __call__(
        self, what: Literal["approve", "manual"], role: str, prompt: str
    ) -> Awaitable[PersonDecision]: ...


@dataclass
class StepServices:
    """What steps use from the running appliance (the composition root fills it in)."""

    shared: SharedResources = field(default_factory=SharedResources)
    """Engine-wide connections: the SSH pool, HTTP pools, AMI sessions."""
    health_of: Callable[[str], Any] = lambda _target: None
    """A target's current ``HealthState`` (``None``: unknown target)."""
    repo: Any = None
    """The state repository, for steps that act through monitor's functions."""
    notify: Callable[[Sequence[str], str, str], list[str]] | None = None
    """``notify(recipients, subject, text)`` sends through paging's outbox and returns
    what it queued; None where paging is not running (the step records its intent)."""
    shell_allow: Sequence[str] = ()
    """Commands (``argv[0]``) a ``shell`` step may run (``runbook_settings.shell_allow``)."""
    data_dir: Any = None
    """The appliance's data directory (known_hosts for SSH lives there)."""


@dataclass
class StepContext:
    """One attempt of one step."""

    run_id: int
    runbook_id: str
    position: int
    target_id: str | None
    incident_id: int | None
    started_by: str
    deadline: float
    """``clock.monotonic()`` at which this attempt is stopped."""
    clock: Clock
    services: StepServices
    log: Callable[[str], None]
    """Append a line to this step's output (masked before it is stored)."""
    wait_for_person: WaitForPerson | None = None
    values: Mapping[str, Any] = field(default_factory=dict)
    """What templates saw (params, incident, target, steps)."""

    def remaining(self) -> float:
        return max(0.0, self.deadline - self.clock.monotonic())


class Step(Protocol):
    async def run(self, ctx: StepContext) -> StepResult: ...

    def plan(self) -> list[str]: ...


def short(text: str, limit: int = 500) -> str:
    """One line of at most ``limit`` characters (for summaries and reasons)."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def tail(text: str, limit: int = MAX_OUTPUT) -> str:
    """The end of ``text`` (errors come last), marked when cut."""
    return text if len(text) <= limit else "…" + text[-(limit - 1) :]


def took(seconds: float) -> str:
    return format_duration(round(seconds, 3)) if seconds >= 1 else f"{seconds * 1000:.0f} ms"
