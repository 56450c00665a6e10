"""Runbooks in files of their own (``runbook_settings.dir``), loaded like the config: merged
with those in the config, errors naming the file and line."""

from __future__ import annotations

from pathlib import Path

import pytest

from dialwatch.schema import Config
from monitor.config import ConfigError, load_config

MAIN = """\
targets:
  - {id: pbx, kind: tcp, address: "192.0.2.1:5038"}
runbooks:
  - {id: in-main, steps: [{kind: wait_for, health: [up]}]}
runbook_settings:
  dir: runbooks.d
rules:
  - {id: r, when: {event: opened}, run: restart-pbx}
"""


def write(tmp_path: Path, files: dict[str, str], main: str = MAIN) -> Path:
    (tmp_path / "runbooks.d").mkdir()
    for name, text in files.items():
        (tmp_path / "runbooks.d" / name).write_text(text, encoding="utf-8")
    path = tmp_path / "dialwatch.yaml"
    path.write_text(main, encoding="utf-8")
    return path


def test_runbooks_from_the_directory_join_those_of_the_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"pbx.yaml": "runbooks:\n  - {id: restart-pbx, steps: [{kind: wait_for, health: [up]}]}\n"},
    )
    loaded = load_config(path, env={}, schema=Config)
    assert [r.id for r in loaded.config.runbooks] == ["in-main", "restart-pbx"]
    assert tmp_path / "runbooks.d" / "pbx.yaml" in loaded.files


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"a.yaml": "runbooks:\n  - id: restart-pbx\n    steps:\n      - {kind: wait_for}\n"},
            "runbooks.d/a.yaml:4: runbooks[1].steps[0].health: required",
        ),
        (
            {"a.yaml": "targets: []\nrunbooks: []\n"},
            "runbooks.d/a.yaml:1: targets: a file in runbook_settings.dir",
        ),
        (
            {"a.yaml": "runbooks:\n  - {id: in-main, steps: [{kind: wait_for, health: [up]}]}\n"},
            "runbooks.d/a.yaml:2: runbooks[1].id: duplicate runbook id 'in-main'",
        ),
    ],
    ids=["error-in-a-file", "other-section-in-a-file", "id-used-twice-across-files"],
)
def test_errors_name_the_file_and_line(
    tmp_path: Path, files: dict[str, str], expected: str
) -> None:
    path = write(tmp_path, files)
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={}, schema=Config)
    assert any(expected in e for e in raised.value.errors), raised.value.errors


def test_a_missing_directory_is_an_error_at_its_key(tmp_path: Path) -> None:
    path = tmp_path / "dialwatch.yaml"
    path.write_text(MAIN.replace("runbooks.d", "nowhere"), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={}, schema=Config)
    assert any(":6: runbook_settings.dir: no such directory" in e for e in raised.value.errors)
