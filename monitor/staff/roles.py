"""Staff roles and their order: viewer < operator < admin (pure)."""

from __future__ import annotations

from typing import Literal

from monitor.store.models import ROLES

Role = Literal["viewer", "operator", "admin"]

WHAT_ROLES_MAY = {
    "viewer": "read everything staff can see",
    "operator": (
        "acknowledge, edit incidents, publish customer updates, silence, start and approve runbooks"
    ),
    "admin": "manage users and API tokens, reload the config, change settings",
}


def check_role(role: object) -> Role:
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    return role  # type: ignore[return-value]


def at_least(role: str, needed: str) -> bool:
    """Whether ``role`` may do what ``needed`` may (an unknown role may do nothing)."""
    if role not in ROLES or needed not in ROLES:
        return False
    return ROLES.index(role) >= ROLES.index(needed)


def lower(a: str, b: str) -> str:
    """The lower of two roles: a token never grants more than its owner has."""
    return a if ROLES.index(a) <= ROLES.index(b) else b
