"""Keys this build no longer has, and what to use instead (pure).

A removed key is reported where it is written, with a sentence saying what
replaced it, rather than as a bare "unknown key"; it is taken out of the data
before ``${...}`` substitution, so a reference in it is neither resolved nor
reported. Entries stay here for a few releases after the key goes.
"""

from __future__ import annotations

from monitor.config.errors import KeyPath, Problem
from monitor.config.source import SourceFile

REMOVED: dict[KeyPath, str] = {
    ("web", "token"): (
        "removed: API clients and scripts use a named user's token now; create one with "
        "`dialwatch token create --user NAME` (add the user first with `dialwatch user add`) "
        "and delete this key"
    ),
}


def take_removed(source: SourceFile) -> list[Problem]:
    """Report the removed keys written in ``source`` and drop them from its data."""
    problems = []
    for path, message in REMOVED.items():
        parent = source.data
        for part in path[:-1]:
            parent = parent.get(part) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and path[-1] in parent:
            problems.append(Problem(source.location(path), path, message))
            del parent[path[-1]]
    return problems
