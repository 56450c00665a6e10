"""Changes made from the web: the monitor's own function, as the person asking, audited.

Pages and API routes alike call ``perform``: it runs an incident action (or
any function of the same shape) as ``who().actor`` with the appliance's
clock, writes the audit entry in the same transaction when it succeeds, and
a ``failed`` / ``denied`` entry in its own transaction when it is refused —
so the audit log shows attempts, not only successes. The staff functions
(``monitor.staff``: users, tokens, sessions) write their own entry with the
client address, in a transaction of their own that keeps the slow password
hash outside it: ``perform(..., self_audited=True)`` passes them
``address=`` and writes only the refusal's entry. The refusal comes back
as an ``ActionRefused`` with the HTTP status it deserves: 404 for something
that does not exist, 409 for a change that does not fit the current state
(``incident_actions.Conflict``), 400 for bad input.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from monitor import audit
from monitor.incident_actions import Conflict
from monitor.store.repository import NotFound
from web.guard import client_address, repo, services, who

T = TypeVar("T")


class ActionRefused(Exception):
    """An action the monitor refused, with the status and the monitor's own reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def status_of(exc: Exception) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, Conflict):
        return 409
    return 400


def perform(
    action: str,
    object: str,
    fn: Callable[..., T],
    *args: Any,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    self_audited: bool = False,
    **kwargs: Any,
) -> T:
    """``fn(repo, actor, *args, at=now, **kwargs)`` and its audit entry, in one transaction.

    ``self_audited``: ``fn`` records its own entry (it is called with ``address=``
    too, outside any transaction of ours); only a refusal is recorded here.
    """
    current = who()
    if current is None:  # the guard lets no anonymous caller reach a staff route
        raise ActionRefused(401, "log in first")
    now = services().clock()
    state = repo()
    try:
        if self_audited:
            return fn(state, current.actor, *args, at=now, address=client_address(), **kwargs)
        with state.transaction() as conn:
            result = fn(state, current.actor, *args, at=now, **kwargs)
            audit.record(
                conn,
                at=now,
                actor=current.actor,
                address=client_address(),
                action=action,
                object=object,
                before=before,
                after=after,
            )
            return result
    except (ValueError, NotFound) as exc:
        status = status_of(exc)
        with state.transaction() as conn:
            audit.record(
                conn,
                at=now,
                actor=current.actor,
                address=client_address(),
                action=action,
                object=object,
                result="failed",
                detail=str(exc),
                after=after,
            )
        raise ActionRefused(status, str(exc)) from exc
