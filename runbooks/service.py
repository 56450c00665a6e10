"""Runbooks, live: the engine that executes runs and the rule triggers that start them.

The composition root makes one ``Runbooks`` and adds ``subscriber()`` to the
event dispatcher; the web is given it to wake the engine after a person
started or answered a run (``runbooks.runs`` writes the rows) and to make
dry-run plans.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.clock import Clock
from monitor.dispatcher import DbSubscriber
from monitor.faults import NO_FAULTS, Faults
from monitor.store.repository import StateRepository
from runbooks.engine import PlannedStep, RunbookEngine
from runbooks.runs import RunRow
from runbooks.steps.base import StepServices
from runbooks.triggers import RunTriggers


class Runbooks:
    """The runbook engine and its rule triggers, started and stopped together."""

    def __init__(
        self,
        repo: StateRepository,
        config: Callable[[], Any],
        *,
        clock: Clock,
        services: StepServices | None = None,
        faults: Faults = NO_FAULTS,
        mask: Callable[[str], str] = lambda text: text,
    ) -> None:
        self.repo = repo
        self.engine = RunbookEngine(
            repo, config, clock=clock, services=services, faults=faults, mask=mask
        )
        self.triggers = RunTriggers(config, wake=self.engine.wake)
        self.engine.on_tick.append(lambda now: self.triggers.tick(repo, now))

    def subscriber(self) -> DbSubscriber:
        return self.triggers.subscriber()

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()

    def wake(self) -> None:
        self.engine.wake()

    def plan(self, run: RunRow) -> list[PlannedStep]:
        runbook = self.engine.runbooks()[run.runbook_id]
        return self.engine.plan(run, runbook)
