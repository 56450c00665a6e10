"""Each invalid config in tests/config_cases/ gives exactly the errors its ``# expect:`` lines say.

One file (or directory) per error class. In an expectation, ``{file}`` stands
for the file's path as loaded and ``{dir}`` for its directory; ``{kinds}`` (the
registered probe kinds), ``{tcp_keys}`` (the keys a tcp target allows) and
``{sections}`` (the top-level sections) grow as other probes, fields and
sections land. Cases are loaded with the build's schema (``dialwatch.schema``:
monitor's sections and those of the packages above it, such as ``channels``)
and an empty environment, so ``${...}`` lookups do not depend on the machine.
``{channel_kinds}`` lists the registered channel kinds.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dialwatch.schema import Config
from monitor.config import ConfigError, load_config
from notify.channels import CHANNELS
from probes import PROBES
from probes.tcp import TcpTarget

CASES = Path(__file__).parent / "config_cases"
EXPECT = "# expect: "


def _case_paths() -> list[Path]:
    return sorted(p for p in CASES.iterdir() if p.suffix == ".yaml" or p.is_dir())


def expected_errors(case: Path) -> list[str]:
    files = sorted(case.glob("*.yaml")) if case.is_dir() else [case]
    expected = []
    for file in files:
        for line in file.read_text(encoding="utf-8").splitlines():
            if line.startswith(EXPECT):
                text = line.removeprefix(EXPECT)
                for placeholder, value in (
                    ("{file}", str(file)),
                    ("{dir}", str(file.parent)),
                    ("{kinds}", ", ".join(PROBES)),
                    ("{channel_kinds}", ", ".join(CHANNELS)),
                    ("{tcp_keys}", ", ".join(sorted(TcpTarget.model_fields))),
                    ("{sections}", ", ".join(sorted(Config.model_fields))),
                ):
                    text = text.replace(placeholder, value)
                expected.append(text)
    return expected


def test_every_case_says_what_it_expects() -> None:
    cases = _case_paths()
    assert len(cases) >= 30
    assert [c.name for c in cases if not expected_errors(c)] == []


@pytest.mark.parametrize("case", _case_paths(), ids=lambda p: p.name.removesuffix(".yaml"))
def test_invalid_config_gives_exactly_the_expected_errors(case: Path) -> None:
    try:
        loaded = load_config(case, env={}, schema=Config)
    except ConfigError as exc:
        errors = exc.errors
    else:
        # A bad channel entry does not refuse the config: the channel is off with the
        # errors as its reason (check-config still reports them and exits 2).
        errors = list(loaded.disabled)
        assert errors, "the case loaded without an error"
        off = [c for c in loaded.config.channels if c.kind == "disabled"]  # type: ignore[attr-defined]
        assert off and all("its config does not load: " in c.reason for c in off)
    assert errors == expected_errors(case)
