"""The health state machine: observations in, health and transitions out.

Pure code. ``step`` takes a target's ``HealthState``, one ``Observation`` and
the time, and returns the next state plus at most one ``Transition`` (a change
of the *reported* health) and, when the probe itself could not run, a marker
asking the engine to raise an appliance alert. Nothing here reads a clock or
does I/O; the engine keeps one ``HealthState`` per target in memory and
persists ``HealthState.to_dict()`` in ``target_state.machine``.

The rules (thresholds, warn, error, flapping, dependencies, maintenance) are
described with a diagram in docs/health.md; the comments below say why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Literal

from core.config import TargetBase, format_duration
from core.observation import Observation, Status

STATE_VERSION = 1
"""Version of the ``to_dict`` shape; ``from_dict`` refuses other versions."""


class Health(StrEnum):
    """Health of a target as the state machine derives it."""

    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    UNKNOWN = "unknown"
    MAINTENANCE = "maintenance"


HEALTH_ORDER: tuple[Health, ...] = (
    Health.DOWN,
    Health.DEGRADED,
    Health.UNKNOWN,
    Health.MAINTENANCE,
    Health.UP,
)
"""Every health, worst first: the order of the dashboard's target list and of its health tabs.

``unknown`` (no data yet) sorts above ``maintenance`` and ``up`` because a
target nobody has heard from deserves a look before one known to be fine."""


# Health values a reported change into which carries ``affected_by`` when a parent is down.
_TROUBLE = frozenset({Health.DOWN, Health.DEGRADED})


@dataclass(frozen=True, slots=True)
class FlapPolicy:
    """Flap damping, global for the appliance.

    A target whose health changes at least ``threshold`` times within
    ``window`` seconds is ``flapping``; it stops flapping after ``quiet``
    seconds without a change.
    """

    threshold: int = 5
    window: float = 600.0
    quiet: float = 600.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.threshold < 2:
            raise ValueError("flap threshold must be at least 2 changes")
        if self.window <= 0 or self.quiet <= 0:
            raise ValueError("flap window and quiet period must be positive durations")


@dataclass(frozen=True, slots=True)
class Policy:
    """How one target's observations become health (from its config, plus global flap settings)."""

    fail_after: int = 2
    recover_after: int = 2
    incident_on: Literal["down", "degraded"] = "down"
    flap: FlapPolicy = field(default_factory=FlapPolicy)

    def __post_init__(self) -> None:
        if self.fail_after < 1 or self.recover_after < 1:
            raise ValueError("fail_after and recover_after must be at least 1")
        if self.incident_on not in ("down", "degraded"):
            raise ValueError("incident_on must be 'down' or 'degraded'")

    @classmethod
    def for_target(cls, target: TargetBase, flap: FlapPolicy | None = None) -> Policy:
        return cls(
            fail_after=target.fail_after,
            recover_after=target.recover_after,
            incident_on=target.incident_on,
            flap=flap if flap is not None else FlapPolicy(),
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a target's reported health."""

    target_id: str
    at: float
    from_health: Health
    to_health: Health
    reason: str
    flapping: bool = False
    affected_by: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target_id": self.target_id,
            "at": self.at,
            "from_health": self.from_health.value,
            "to_health": self.to_health.value,
            "reason": self.reason,
            "flapping": self.flapping,
            "affected_by": self.affected_by,
        }


@dataclass(frozen=True, slots=True)
class HealthState:
    """Everything the machine remembers about one target.

    ``health`` is what is reported (dashboard, transitions, incidents).
    ``observed`` is what ok/warn/fail observations say, ignoring probe
    errors; ``probe_error`` is set while the latest observation was an
    ``error``. ``actual`` combines them; it differs from ``health`` only
    while the target is flapping (the reported health is then held).
    """

    target_id: str
    health: Health = Health.UNKNOWN
    since: float | None = None
    observed: Health = Health.UNKNOWN
    probe_error: bool = False
    ok_streak: int = 0
    fail_streak: int = 0
    bad_streak: int = 0  # consecutive warn-or-fail
    live_streak: int = 0  # consecutive ok-or-warn: the target answers
    flapping: bool = False
    changes: tuple[float, ...] = ()  # times of recent changes of ``actual`` (flap window)
    last_change: float | None = None
    affected_by: str | None = None

    @property
    def actual(self) -> Health:
        if self.health is Health.MAINTENANCE:
            return Health.MAINTENANCE
        return Health.UNKNOWN if self.probe_error else self.observed

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict; ``from_dict`` turns it back into an equal state."""
        return {
            "v": STATE_VERSION,
            "target_id": self.target_id,
            "health": self.health.value,
            "since": self.since,
            "observed": self.observed.value,
            "probe_error": self.probe_error,
            "ok_streak": self.ok_streak,
            "fail_streak": self.fail_streak,
            "bad_streak": self.bad_streak,
            "live_streak": self.live_streak,
            "flapping": self.flapping,
            "changes": list(self.changes),
            "last_change": self.last_change,
            "affected_by": self.affected_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HealthState:
        """Restore a state saved by ``to_dict``; ValueError if it is not one."""
        if data.get("v") != STATE_VERSION:
            raise ValueError(
                f"health state version {data.get('v')!r} is not supported (expected {STATE_VERSION})"
            )
        try:
            target_id = data["target_id"]
            if not isinstance(target_id, str):
                raise TypeError("target_id must be a string")
            return cls(
                target_id=target_id,
                health=Health(data.get("health", "unknown")),
                since=_opt_float(data.get("since")),
                observed=Health(data.get("observed", "unknown")),
                probe_error=bool(data.get("probe_error", False)),
                ok_streak=int(data.get("ok_streak", 0)),
                fail_streak=int(data.get("fail_streak", 0)),
                bad_streak=int(data.get("bad_streak", 0)),
                live_streak=int(data.get("live_streak", 0)),
                flapping=bool(data.get("flapping", False)),
                changes=tuple(float(t) for t in data.get("changes", ())),
                last_change=_opt_float(data.get("last_change")),
                affected_by=data.get("affected_by"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a saved health state: {exc}") from exc


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True, slots=True)
class StepResult:
    """What one observation did.

    ``appliance_alert`` is a sentence when the probe could not run: the
    engine raises (or refreshes) an appliance alert with it. ``flapping_cleared``
    is true when flapping ended without a change of reported health (so no
    transition says so).
    """

    state: HealthState
    transition: Transition | None = None
    appliance_alert: str | None = None
    flapping_cleared: bool = False


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _with_detail(text: str, obs: Observation) -> str:
    return f"{text}: {obs.detail}" if obs.detail else text


def _count(state: HealthState, status: Status) -> HealthState:
    """Update the streaks for one ok/warn/fail observation."""
    ok = status is Status.OK
    warn = status is Status.WARN
    fail = status is Status.FAIL
    return replace(
        state,
        ok_streak=state.ok_streak + 1 if ok else 0,
        fail_streak=state.fail_streak + 1 if fail else 0,
        bad_streak=state.bad_streak + 1 if (warn or fail) else 0,
        live_streak=state.live_streak + 1 if (ok or warn) else 0,
    )


def _judge(s: HealthState, status: Status, policy: Policy) -> Health:
    """Observed health after one counted observation (streaks already updated)."""
    h = s.observed
    if status is Status.FAIL:
        if s.fail_streak >= policy.fail_after:
            return Health.DOWN
        # A mix of warnings and failures that reaches fail_after is trouble, but
        # not proof of an outage.
        if h in (Health.UP, Health.UNKNOWN) and s.bad_streak >= policy.fail_after:
            return Health.DEGRADED
        return h
    if status is Status.WARN:
        if h is Health.DOWN:
            # It answers again, with a warning: out of the outage, not yet well.
            return Health.DEGRADED if s.live_streak >= policy.recover_after else h
        if h in (Health.UP, Health.UNKNOWN):
            return Health.DEGRADED if s.bad_streak >= policy.fail_after else h
        return h
    # OK. A target with no confirmed trouble (fresh start, or up before a probe
    # error) is up at once: waiting recover_after would only delay good news.
    if h in (Health.UP, Health.UNKNOWN) or s.ok_streak >= policy.recover_after:
        return Health.UP
    if h is Health.DOWN and s.live_streak >= policy.recover_after:
        return Health.DEGRADED
    return h


def _reason(before: HealthState, after: HealthState, obs: Observation, policy: Policy) -> str:
    """Why ``after.actual`` is what it is, as a human sentence."""
    new = after.actual
    if new is Health.UNKNOWN:
        if after.probe_error:
            return _with_detail("unknown: the probe could not run", obs)
        return _with_detail(
            f"unknown: {_plural(after.bad_streak, 'bad check')} so far, "
            f"{policy.fail_after} needed to decide",
            obs,
        )
    if before.probe_error and after.observed is before.observed:
        return _with_detail(f"the probe runs again; still {new}", obs)
    if new is Health.DOWN:
        n = after.fail_streak
        text = "down after 1 failure" if n == 1 else f"down after {n} consecutive failures"
        return _with_detail(text, obs)
    if new is Health.DEGRADED:
        n = after.bad_streak
        if before.observed is Health.DOWN:
            text = f"answering again after {_plural(after.live_streak, 'check')}, but degraded"
        elif n == 1:
            text = "degraded"
        else:
            text = f"degraded after {n} checks in a row with warnings or failures"
        return _with_detail(text, obs)
    if new is Health.UP:
        if before.observed in (Health.UP, Health.UNKNOWN):
            return _with_detail("up", obs)
        return _with_detail(f"up after {_plural(after.ok_streak, 'successful check')}", obs)
    return str(new)


def _observe(state: HealthState, obs: Observation, policy: Policy) -> HealthState:
    """Apply one observation to streaks and observed health (no reporting)."""
    if obs.status is Status.ERROR:
        # An error says nothing about the target: it neither counts toward a
        # streak nor breaks one.
        return replace(state, probe_error=True)
    counted = _count(replace(state, probe_error=False), obs.status)
    return replace(counted, observed=_judge(counted, obs.status, policy))


def step(
    state: HealthState,
    obs: Observation,
    now: float,
    policy: Policy,
    parents_down: Sequence[str] = (),
    maintenance: str | None = None,
) -> StepResult:
    """Feed one observation of ``state.target_id`` to the machine.

    ``parents_down``: ids of this target's ``depends_on`` parents whose
    reported health is ``down`` right now, in config order.
    ``maintenance``: None outside maintenance; inside a window, its reason
    (may be empty). See docs/health.md for every rule.
    """
    alert = (
        _with_detail(f"the probe for {state.target_id} could not run", obs)
        if obs.status is Status.ERROR
        else None
    )

    if maintenance is not None:
        if state.health is Health.MAINTENANCE:
            return StepResult(state, None, alert)
        # Entering: forget streaks and flap history, so that what happened
        # before the work cannot make the target down right after it.
        entered = HealthState(
            target_id=state.target_id,
            health=Health.MAINTENANCE,
            since=now,
            last_change=now,
        )
        reason = f"in maintenance: {maintenance}" if maintenance else "in maintenance"
        return StepResult(
            entered,
            Transition(state.target_id, now, state.health, Health.MAINTENANCE, reason),
            alert,
        )

    if state.health is Health.MAINTENANCE:
        # Leaving: the observations from now on decide, from a fresh start.
        fresh = HealthState(target_id=state.target_id)
        after = _observe(fresh, obs, policy)
        new = after.actual
        reason = "maintenance ended; " + _reason(fresh, after, obs, policy)
        affected = parents_down[0] if new in _TROUBLE and parents_down else None
        after = replace(after, health=new, since=now, last_change=now, affected_by=affected)
        return StepResult(
            after,
            Transition(state.target_id, now, Health.MAINTENANCE, new, reason, False, affected),
            alert,
        )

    before = state
    after = _observe(state, obs, policy)
    changed = after.actual is not before.actual
    flap = policy.flap

    if changed:
        changes = before.changes
        if flap.enabled:
            changes = tuple(t for t in changes if t > now - flap.window) + (now,)
        after = replace(after, changes=changes, last_change=now)

    if after.flapping:
        if changed:
            # Tracked, not reported: that is the point of damping.
            return StepResult(after, None, alert)
        if after.last_change is None or now - after.last_change < flap.quiet:
            return StepResult(after, None, alert)
        cleared = replace(after, flapping=False, changes=())
        new = cleared.actual
        if new is cleared.health:
            return StepResult(cleared, None, alert, flapping_cleared=True)
        reason = f"stopped flapping (no change for {format_duration(flap.quiet)}); " + _reason(
            before, after, obs, policy
        )
        return _report(cleared, new, now, reason, False, parents_down, alert)

    if not changed:
        return StepResult(after, None, alert)

    new = after.actual
    reason = _reason(before, after, obs, policy)
    # Flapping is declared on a change *into* trouble, so that the health held
    # while flapping is never a misleading "up".
    if flap.enabled and len(after.changes) >= flap.threshold and new is not Health.UP:
        reason = (
            f"flapping: health changed {len(after.changes)} times in "
            f"{format_duration(flap.window)}; {reason}"
        )
        return _report(replace(after, flapping=True), new, now, reason, True, parents_down, alert)
    return _report(after, new, now, reason, False, parents_down, alert)


def _report(
    state: HealthState,
    new: Health,
    now: float,
    reason: str,
    flapping: bool,
    parents_down: Sequence[str],
    alert: str | None,
) -> StepResult:
    """Make ``new`` the reported health and build the transition saying so."""
    if new not in _TROUBLE:
        affected = None
    elif state.health is Health.DOWN:
        # Keep the attribution made when the outage began: a child that went
        # down on its own stays its own outage even if a parent fails later.
        affected = state.affected_by
    else:
        affected = parents_down[0] if parents_down else None
    transition = Transition(state.target_id, now, state.health, new, reason, flapping, affected)
    return StepResult(
        replace(state, health=new, since=now, affected_by=affected), transition, alert
    )
