"""Reading one YAML config file into plain data plus the line of every key.

PyYAML's node tree keeps marks; the data it constructs does not. So we compose
the node tree and build the data ourselves, recording for each dotted key path
(``('targets', 2, 'interval')``) the line it was written on.

Scalars follow YAML 1.2 rather than PyYAML's YAML 1.1 defaults, because the
1.1 rules surprise operators: only ``true``/``false`` are booleans (``NO`` as
a country tag stays ``"NO"``), ``12:30`` is not the integer 750, and dates
stay strings (the models parse them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.config.errors import KeyPath, Location, Problem

_BASE_LOADER: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_STR = "tag:yaml.org,2002:str"


class _Loader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """A safe loader with YAML 1.2-style implicit types (see the module docstring)."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._tags: dict[tuple[str, tuple[bool, bool]], str] = {}

    def resolve(self, kind: type, value: Any, implicit: Any) -> str:
        # Resolving a scalar's tag runs a regex per candidate type; with
        # thousands of targets the same keys and values recur, so remember them.
        if kind is not yaml.ScalarNode or not isinstance(implicit, tuple):
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = self._tags.get(key)
        if tag is None:
            tag = self._tags[key] = super().resolve(kind, value, implicit)
        return tag


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _INT, _FLOAT, _TIMESTAMP)]
    for first, resolvers in _BASE_LOADER.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    _INT, re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+)$"), list("-+0123456789")
)
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?(?:[0-9][0-9_]*\.[0-9_]*|\.[0-9_]+)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    list("-+0123456789."),
)


@dataclass
class SourceFile:
    """One file's data and where each key came from."""

    path: Path
    data: dict[str, Any]
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line_of(self, path: KeyPath) -> int:
        """Line of ``path``, or of its nearest ancestor written in the file (a missing key)."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def location(self, path: KeyPath) -> Location:
        return Location(self.path, self.line_of(path))


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


class _Builder:
    """Builds plain data from a composed node tree, recording lines and problems."""

    def __init__(self, loader: Any, path: Path) -> None:
        self.loader = loader
        self.path = path
        self.lines: dict[KeyPath, int] = {(): 1}
        self.problems: list[Problem] = []
        self._stack: set[int] = set()

    def problem(self, node: yaml.Node, key: KeyPath | None, message: str) -> None:
        self.problems.append(Problem(Location(self.path, _line(node)), key, message))

    def build(self, node: yaml.Node, key: KeyPath) -> Any:
        if id(node) in self._stack:
            self.problem(node, key, "an alias refers to itself (recursive YAML anchor)")
            return None
        self._stack.add(id(node))
        try:
            if isinstance(node, yaml.MappingNode):
                return self._mapping(node, key)
            if isinstance(node, yaml.SequenceNode):
                out = []
                for index, item in enumerate(node.value):
                    self.lines[(*key, index)] = _line(item)
                    out.append(self.build(item, (*key, index)))
                return out
            return self._scalar(node, key)
        finally:
            self._stack.discard(id(node))

    def _scalar(self, node: yaml.Node, key: KeyPath) -> Any:
        if node.tag == _STR and isinstance(node, yaml.ScalarNode):
            return node.value  # most values: skip the generic constructor (10k targets add up)
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc)
            self.problem(node, key, f"cannot read this value: {problem}")
            return None

    def _mapping(self, node: yaml.MappingNode, key: KeyPath) -> dict[str, Any]:
        # Keys written here, as opposed to brought in by a ``<<`` merge: a written
        # key overrides a merged one (YAML merge semantics); two written ones clash.
        written = {id(k) for k, _ in node.value}
        try:
            # Resolves ``<<: *anchor`` merge keys in place, as PyYAML itself does.
            self.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.problem(node, key, f"bad merge key: {getattr(exc, 'problem', exc)}")
        out: dict[str, Any] = {}
        first_line: dict[str, int] = {}
        first_written: dict[str, bool] = {}
        for key_node, value_node in node.value:
            name = self._scalar(key_node, key) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(name, str):
                self.problem(
                    key_node, key, "keys must be text (put the key in quotes if it is a number)"
                )
                continue
            child = (*key, name)
            if name in out and id(key_node) in written and first_written.get(name, False):
                self.problem(key_node, child, f"duplicate key (first at line {first_line[name]})")
                continue
            first_written[name] = id(key_node) in written
            first_line[name] = _line(key_node)
            self.lines[child] = _line(key_node)
            out[name] = self.build(value_node, child)
        return out


def read_yaml(path: Path) -> tuple[SourceFile | None, list[Problem]]:
    """Parse one config file. Returns the file (None when unusable) and the problems found."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        return None, [Problem(None, None, f"not UTF-8 text ({exc.reason})", file=path)]
    except OSError as exc:
        return None, [Problem(None, None, f"cannot read: {exc.strerror or exc}", file=path)]
    loader = _Loader(text)
    try:
        return _parse(loader, path)
    finally:
        loader.dispose()


def _parse(loader: Any, path: Path) -> tuple[SourceFile | None, list[Problem]]:
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        what = exc.problem or exc.context or "syntax error"
        if exc.context and exc.problem and exc.context_mark is not None:
            # Where the unclosed bracket or block began is often the real mistake.
            what += f" ({exc.context} started at line {exc.context_mark.line + 1})"
        return None, [Problem(Location(path, line), None, f"invalid YAML: {what}")]
    except yaml.YAMLError as exc:
        return None, [Problem(Location(path, 1), None, f"invalid YAML: {exc}")]
    if node is None:  # an empty file (or only comments) configures nothing
        return SourceFile(path, {}), []
    builder = _Builder(loader, path)
    data = builder.build(node, ())
    if not isinstance(data, dict):
        builder.problem(
            node,
            None,
            "the top level must be a mapping of sections (site:, targets:, components:, ...)",
        )
        return None, builder.problems
    return SourceFile(path, data, builder.lines), builder.problems
