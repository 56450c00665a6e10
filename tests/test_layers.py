"""Arrows point down: no package of ours imports one above it or beside it.

The layers (DESIGN.md), lowest first::

    core → probes → monitor → {notify, runbooks, analytics} → web → dialwatch

Every ``import`` and ``from … import`` is read with ``ast``, also those inside
functions and under ``TYPE_CHECKING``: a deferred import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LAYER = {
    "core": 0,
    "probes": 1,
    "monitor": 2,
    "notify": 3,
    "runbooks": 3,
    "analytics": 3,
    "web": 4,
    "dialwatch": 5,
}
"""Package → layer; a package may import only packages of a lower layer (and itself)."""

ALLOWED: dict[tuple[str, str], str] = {}
"""(importing file, imported package) → why this upward or sideways import is acceptable."""


def imported_packages(path: Path) -> set[str]:
    """Top-level packages of ours that ``path`` imports, wherever in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names & LAYER.keys()


def wrong_way_imports() -> list[str]:
    found = []
    for package, layer in LAYER.items():
        folder = ROOT / package
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for other in sorted(imported_packages(path)):
                if other == package or LAYER[other] < layer or (rel, other) in ALLOWED:
                    continue
                way = "sideways" if LAYER[other] == layer else "upward"
                found.append(f"{rel} imports {other} ({way}: {package} is layer {layer})")
    return found


def test_no_package_imports_one_above_or_beside_it() -> None:
    assert wrong_way_imports() == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import monitor.engine\n", {"monitor"}),
        ("def f():\n    from web import create_app\n", {"web"}),
        ("if TYPE_CHECKING:\n    from dialwatch.app import run\n", {"dialwatch"}),
        ("from . import sibling\nimport json\n", set()),
    ],
    ids=["top-level", "inside-a-function", "type-checking-only", "relative-and-stdlib"],
)
def test_imports_are_found_wherever_they_are_written(
    tmp_path: Path, source: str, expected: set[str]
) -> None:
    module = tmp_path / "m.py"
    module.write_text(source, encoding="utf-8")
    assert imported_packages(module) == expected


def test_the_checker_reports_an_upward_import(tmp_path: Path) -> None:
    # The check itself must be able to fail: an import of web from core is found.
    module = tmp_path / "m.py"
    module.write_text("from web.access import is_loopback\n", encoding="utf-8")
    assert imported_packages(module) == {"web"}
    assert LAYER["web"] > LAYER["core"]
