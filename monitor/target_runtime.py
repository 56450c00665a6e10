"""What the engine knows about one target while running: the in-memory truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.config import TargetBase
from core.observation import Observation
from monitor.health import HealthState, Policy
from monitor.maintenance import MaintenanceCheck
from monitor.store.writer import RowSnapshot


@dataclass
class TargetRuntime:
    """What the engine knows about one target while running."""

    target: TargetBase
    policy: Policy
    state: HealthState
    digest: str
    probe_state: dict[str, Any] = field(default_factory=dict)
    last: Observation | None = None
    last_metrics: dict[str, Any] = field(default_factory=dict)
    probes_run: int = 0
    probes_failed: int = 0
    probes_errored: int = 0
    suspect: bool = False
    dirty: bool = False
    maintenance: MaintenanceCheck | None = None
    """Cached answer of check_maintenance, valid until its ``until``."""

    def snapshot(self) -> RowSnapshot:
        """The parts of the row, as references to immutable values: cheap on the
        loop; the DB thread builds the row from it (``state_row``)."""
        return RowSnapshot(
            self.target.id,
            self.target.kind,
            self.state,
            self.last,
            self.last_metrics,
            self.probes_run,
            self.probes_failed,
            self.probes_errored,
            self.digest,
        )
