"""Checks that span entries: unique ids, dependencies that exist and do not loop,
components that name real targets, rules that select real targets, components and tags.

They run on the merged raw data, not the validated models, so a config with a
bad target still gets its dependency errors reported in the same pass.
Entries too broken to read (no id, not a mapping) are left to validation.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from typing import Any

from monitor.config.errors import KeyPath

Report = Callable[[KeyPath, str], None]
"""Called with the key path of a problem and its message."""


def _ids(entries: Any, section: str) -> list[tuple[int, str]]:
    if not isinstance(entries, list):
        return []
    return [
        (index, entry["id"])
        for index, entry in enumerate(entries)
        if isinstance(entry, dict) and isinstance(entry.get("id"), str)
    ]


def _close(name: str, known: set[str]) -> str:
    """``; did you mean 'x'?`` for the closest known name, or nothing."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _unknown(name: str, known: set[str], what: str) -> str:
    return f"unknown {what} '{name}'{_close(name, known)}"


def _str_list(entry: Any, key: str) -> list[tuple[int, str]]:
    values = entry.get(key) if isinstance(entry, dict) else None
    if not isinstance(values, list):
        return []
    return [(i, v) for i, v in enumerate(values) if isinstance(v, str)]


def check_unique(
    data: dict[str, Any], section: str, what: str, where: Callable[[KeyPath], str], report: Report
) -> None:
    first: dict[str, int] = {}
    for index, ident in _ids(data.get(section), section):
        if ident in first:
            earlier = where((section, first[ident], "id"))
            report((section, index, "id"), f"duplicate {what} id '{ident}' (first at {earlier})")
        else:
            first[ident] = index


def check_dependencies(data: dict[str, Any], report: Report) -> None:
    targets = data.get("targets")
    ids = _ids(targets, "targets")
    known = {ident for _, ident in ids}
    graph: dict[str, list[tuple[KeyPath, str]]] = {}
    for index, ident in ids:
        for dep_index, dep in _str_list(targets[index], "depends_on"):
            path: KeyPath = ("targets", index, "depends_on", dep_index)
            if dep == ident:
                report(path, "a target cannot depend on itself")
            elif dep not in known:
                report(path, _unknown(dep, known, "target"))
            else:
                # Only the first definition of a duplicated id takes part in cycles.
                graph.setdefault(ident, []).append((path, dep))
    for cycle_path, cycle in _cycles(graph):
        report(cycle_path, "dependency cycle: " + " -> ".join(cycle))


def _cycles(graph: dict[str, list[tuple[KeyPath, str]]]) -> list[tuple[KeyPath, list[str]]]:
    """Each dependency cycle once, reported at the edge that closes it (depth-first order).

    Iterative, so a long chain of dependencies cannot hit the recursion limit.
    """
    found: list[tuple[KeyPath, list[str]]] = []
    done: set[str] = set()
    for root in graph:
        if root in done:
            continue
        path: list[str] = [root]
        on_path = {root}
        edges = [iter(graph.get(root, []))]
        while edges:
            step = next(edges[-1], None)
            if step is None:
                edges.pop()
                node = path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            key_path, dep = step
            if dep in on_path:
                found.append((key_path, [*path[path.index(dep) :], dep]))
            elif dep not in done:
                path.append(dep)
                on_path.add(dep)
                edges.append(iter(graph.get(dep, [])))
    return found


def check_components(data: dict[str, Any], report: Report) -> None:
    known = {ident for _, ident in _ids(data.get("targets"), "targets")}
    components = data.get("components")
    for index, _ in _ids(components, "components"):
        for target_index, target in _str_list(components[index], "targets"):
            if target not in known:
                report(
                    ("components", index, "targets", target_index),
                    _unknown(target, known, "target"),
                )


def _when(entry: Any) -> dict[str, Any]:
    when = entry.get("when") if isinstance(entry, dict) else None
    return when if isinstance(when, dict) else {}


def check_rules(data: dict[str, Any], report: Report) -> None:
    """A rule's ``when`` names targets and components that exist, and tags some target has.

    A tag no target carries (a typo, or a value spelt differently) would make
    the rule select nothing and never fire, silently.
    """
    targets = data.get("targets") if isinstance(data.get("targets"), list) else []
    known_targets = {ident for _, ident in _ids(targets, "targets")}
    known_components = {ident for _, ident in _ids(data.get("components"), "components")}
    tag_values: dict[str, set[str]] = {}
    for target in targets:
        tags = target.get("tags") if isinstance(target, dict) else None
        for key, value in tags.items() if isinstance(tags, dict) else ():
            tag_values.setdefault(str(key), set()).add(str(value))
    rules = data.get("rules")
    for index, _ in _ids(rules, "rules"):
        when = _when(rules[index])
        for i, target in _str_list(when, "targets"):
            if target not in known_targets:
                report(
                    ("rules", index, "when", "targets", i),
                    _unknown(target, known_targets, "target"),
                )
        for i, component in _str_list(when, "components"):
            if component not in known_components:
                report(
                    ("rules", index, "when", "components", i),
                    _unknown(component, known_components, "component"),
                )
        tags = when.get("tags")
        for key, value in tags.items() if isinstance(tags, dict) else ():
            path: KeyPath = ("rules", index, "when", "tags", key)
            if key not in tag_values:
                report(path, f"no target has a tag '{key}'{_close(key, set(tag_values))}")
            elif isinstance(value, str) and value not in tag_values[key]:
                values = ", ".join(sorted(tag_values[key]))
                report(
                    path,
                    f"no target has {key}: '{value}'{_close(value, tag_values[key])} "
                    f"(values of {key}: {values})",
                )


def cross_check(
    data: dict[str, Any],
    where: Callable[[KeyPath], str],
    report: Report,
    unique: Mapping[str, str] | None = None,
) -> None:
    """Run every cross-entry check on merged raw config data.

    ``unique``: more sections whose entries' ids must be unique (section →
    what an entry is called), for sections contributed by packages above monitor.
    """
    check_unique(data, "targets", "target", where, report)
    check_unique(data, "components", "component", where, report)
    check_unique(data, "rules", "rule", where, report)
    for section, what in (unique or {}).items():
        check_unique(data, section, what, where, report)
    check_dependencies(data, report)
    check_components(data, report)
    check_rules(data, report)
