"""How key paths and error lines are written."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.config.errors import ConfigError, Location, Problem, format_path, render_all


@pytest.mark.parametrize(
    ("path", "written"),
    [
        pytest.param((), "(top level)", id="the-root"),
        pytest.param(("site",), "site", id="a-section"),
        pytest.param(("targets", 2, "interval"), "targets[2].interval", id="a-list-entry-key"),
        pytest.param(
            ("targets", 0, "depends_on", 1), "targets[0].depends_on[1]", id="nested-lists"
        ),
        pytest.param(("components", 0, "name", "zh-CN"), "components[0].name.zh-CN", id="dashes"),
        pytest.param(("tags", "a.b"), 'tags["a.b"]', id="a-key-with-a-dot-is-quoted"),
        pytest.param(("tags", 'say "hi"'), 'tags["say \\"hi\\""]', id="quotes-are-escaped"),
    ],
)
def test_key_paths_are_written_like_the_yaml_reads(path: tuple, written: str) -> None:
    assert format_path(path) == written


def test_error_lines_are_sorted_by_file_and_line_and_never_span_lines() -> None:
    a, b = Path("a.yaml"), Path("b.yaml")
    problems = [
        Problem(Location(b, 1), ("site",), "second file"),
        Problem(Location(a, 9), ("targets", 0), "later\nline"),
        Problem(Location(a, 2), None, "invalid YAML: oops"),
        Problem(None, None, "cannot read: Permission denied", file=Path("c.yaml")),
    ]
    assert render_all(problems) == [
        "a.yaml:2: invalid YAML: oops",
        "a.yaml:9: targets[0]: later line",
        "b.yaml:1: site: second file",
        "c.yaml: cannot read: Permission denied",
    ]


def test_secret_values_are_scrubbed_from_error_lines() -> None:
    problem = Problem(Location(Path("a.yaml"), 3), ("web", "token"), "bad value 'hunter2'")
    assert render_all([problem], scrub={"hunter2"}) == ["a.yaml:3: web.token: bad value '***'"]


def test_a_config_error_carries_every_line() -> None:
    error = ConfigError(["a.yaml:1: site: x", "a.yaml:2: web: y"])
    assert error.errors == ["a.yaml:1: site: x", "a.yaml:2: web: y"]
    assert str(error) == "2 config error(s):\na.yaml:1: site: x\na.yaml:2: web: y"
    assert str(ConfigError(["a.yaml:1: site: x"])) == "a.yaml:1: site: x"
