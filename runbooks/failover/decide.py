"""What a trunk failover group should do now: pure, table-tested.

Given each member's health as the engine sees it, the state Dialwatch last
wanted for it in the proxy and the clock, ``decide`` says which members to
take out of the proxy (``disable``), which to put back (``enable``), which
wait for an approval, and why nothing happens when nothing may:

- a member whose **own** health is down is disabled, so calls move to the
  others; a member that is down only because a parent is (``affected_by``:
  the appliance's own uplink, say) is never disabled: the trunk is probably
  fine and the problem is ours;
- when every member is down, nothing is disabled (there is nowhere to move
  calls to, and a proxy with no destination refuses every call), and a
  member taken out earlier is put back;
- a member taken out that is up again while no member in the proxy is up
  goes back at once (without ``failback_after`` or an approval: it is
  better than none);
- at least ``min_active`` members stay active, counting only members that
  are up as places calls can go;
- a disabled member that has been up for ``failback_after`` is enabled
  again (``failback: auto``) or waits for a person (``approve``);
- unknown, degraded and maintenance change nothing: only a clear verdict
  moves traffic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from monitor.health import Health


class Wanted(StrEnum):
    """The state Dialwatch wants a member to have in the proxy."""

    ACTIVE = "active"
    INACTIVE = "inactive"


@dataclass(frozen=True)
class MemberView:
    """One member as the decision sees it."""

    target: str
    health: Health
    since: float | None
    """When the target entered ``health`` (epoch seconds); None: not known."""
    affected_by: str | None
    """The parent whose failure this one follows; None: its health is its own."""
    wanted: Wanted = Wanted.ACTIVE
    approved: bool = False
    """A person approved putting it back (``failback: approve``)."""


@dataclass(frozen=True)
class Change:
    target: str
    to: Wanted
    reason: str


@dataclass(frozen=True)
class Decision:
    changes: tuple[Change, ...] = ()
    waiting: tuple[str, ...] = ()
    """Members ready to take traffic again, waiting for an approval."""
    notes: tuple[str, ...] = ()
    """Why something that could have happened did not (every member down...)."""


@dataclass(frozen=True)
class GroupRules:
    failback_after: float = 300.0
    failback: Literal["auto", "approve"] = "auto"
    min_active: int = 1


def own_down(member: MemberView) -> bool:
    return member.health is Health.DOWN and not member.affected_by


def decide(members: Sequence[MemberView], rules: GroupRules, now: float) -> Decision:
    """The changes to make now (pure: same inputs, same answer)."""
    changes: list[Change] = []
    waiting: list[str] = []
    notes: list[str] = []

    # Put back first: a member coming back makes room to take another out.
    active_up = {m.target for m in members if m.wanted is Wanted.ACTIVE and m.health is Health.UP}
    nothing_in_works = not active_up
    every_down = all(m.health is Health.DOWN for m in members)
    for member in members:
        if member.wanted is not Wanted.INACTIVE:
            continue
        if every_down:
            # Taken out when another could take its calls; now none can, so nothing stays
            # disabled: the proxy has every member again, as if none had failed.
            changes.append(
                Change(member.target, Wanted.ACTIVE, "every member is down: none stays taken out")
            )
            continue
        if member.health is not Health.UP:
            continue
        if nothing_in_works:
            # The members in the proxy are all failing: a trunk that is up again is
            # better than none, stable or approved or not.
            changes.append(
                Change(
                    member.target,
                    Wanted.ACTIVE,
                    "up again while no member in the proxy is: put back at once",
                )
            )
            active_up.add(member.target)
            continue
        stable_for = now - member.since if member.since is not None else 0.0
        if stable_for < rules.failback_after:
            continue
        if rules.failback == "approve" and not member.approved:
            waiting.append(member.target)
            continue
        changes.append(
            Change(
                member.target,
                Wanted.ACTIVE,
                f"up for {_duration(stable_for)} (failback after {_duration(rules.failback_after)})",
            )
        )
        active_up.add(member.target)

    down = [m for m in members if m.wanted is Wanted.ACTIVE and own_down(m)]
    for member in members:
        if member.wanted is Wanted.ACTIVE and member.health is Health.DOWN and member.affected_by:
            notes.append(
                f"{member.target} is down because {member.affected_by} is: not taken out "
                "(the trunk itself may be fine)"
            )
    if down and not active_up:
        notes.append(
            "every member is down: none is taken out of the proxy (there is nowhere to move "
            "calls to)"
        )
        return Decision(tuple(changes), tuple(waiting), tuple(notes))
    # Calls can go to the members that are active and up; keep at least min_active of
    # the active ones in the proxy.
    active_after = sum(1 for m in members if m.wanted is Wanted.ACTIVE) + sum(
        1 for c in changes if c.to is Wanted.ACTIVE
    )
    for member in down:
        if active_after - 1 < rules.min_active:
            notes.append(
                f"{member.target} is down but stays in the proxy: taking it out would leave "
                f"fewer than min_active ({rules.min_active}) active members"
            )
            continue
        changes.append(Change(member.target, Wanted.INACTIVE, "its own health is down"))
        active_after -= 1
    return Decision(tuple(changes), tuple(waiting), tuple(notes))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"
