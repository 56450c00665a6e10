"""The sandboxed renderer of runbook values: data in, text out, never code; values in a
command are shell-quoted one by one."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from runbooks.template import TemplateRefused, check, render

VALUES = {
    "params": {"campaign": "c7"},
    "incident": {"cause": "503 ; touch /tmp/dw-pwned $(id) `id` 'quote\" \n newline"},
    "target": {"id": "trunk-a"},
}


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("{{ ''.__class__.__mro__ }}", "unsafe"),
        ("{{ params.__class__ }}", "unsafe"),
        ("{{ incident | attr('__class__') }}", "unsafe"),
        ("{{ params.campaign.upper() }}", "not safely callable"),
        ("{{ range(10) }}", "not safely callable"),
        ("{% include '/etc/passwd' %}", "cannot read files"),
        ("{% import '/etc/passwd' as x %}", "cannot read files"),
        ("{% extends '/etc/passwd' %}", "cannot read files"),
        ("{{ lipsum() }}", "not safely callable"),
        ("{{ cycler }}", "'cycler' is undefined"),
        ("{{ nope }}", "'nope' is undefined"),
    ],
)
def test_code_and_files_are_out_of_reach(text: str, words: str) -> None:
    with pytest.raises(TemplateRefused) as raised:
        render(text, VALUES)
    assert words in str(raised.value)


def test_filters_and_plain_values_work() -> None:
    assert render("{{ params.campaign | upper }}-{{ target.id }}", VALUES) == "C7-trunk-a"
    assert render("{{ incident.eta | default('soon') }}", {"incident": {}}) == "soon"
    assert render("no template here", {}) == "no template here"


def test_a_syntax_error_is_caught_when_the_config_loads() -> None:
    with pytest.raises(TemplateRefused, match="unexpected end of template"):
        check("echo {{ params.x ")


def test_every_value_in_a_command_is_one_shell_word(tmp_path: Path) -> None:
    command = render("printf '%s|' {{ incident.cause }} {{ params.campaign }}", VALUES, shell=True)
    assert shlex.split(command)[-2:] == [VALUES["incident"]["cause"], "c7"]
    out = subprocess.run(
        ["/bin/sh", "-c", command], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout == VALUES["incident"]["cause"] + "|c7|"
    assert not Path("/tmp/dw-pwned").exists()
