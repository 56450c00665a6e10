"""The generated key reference in docs/configuration.md covers every section, kind and key."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from core.config import Duration
from dialwatch.schema import Config as BuildConfig
from monitor.config import load_config
from monitor.config.reference import END, START, attribute_docs, generate, main, splice, type_name
from monitor.config.schema import Config
from notify.channels import CHANNELS
from probes import PROBES
from probes.tcp import TcpTarget


def test_the_reference_has_every_section_every_kind_and_every_key() -> None:
    reference = generate()
    for section in Config.model_fields:
        assert f"### `{section}:`" in reference
    for kind in PROBES.values():
        assert f"#### `kind: {kind.kind}`" in reference
        for name in kind.model.model_fields:
            assert f"| `{name}` |" in reference, (kind.kind, name)
    for section_field in ("site", "storage", "web", "appliance"):
        model = Config.model_fields[section_field].default_factory()  # type: ignore[misc]
        for name in type(model).model_fields:
            assert f"| `{name}` |" in reference, (section_field, name)


def test_attribute_docstrings_are_read_from_the_model_and_its_bases() -> None:
    docs = attribute_docs(TcpTarget)
    assert docs["address"] == "``host:port`` to connect to."
    assert docs["interval"] == "How often the target is probed."


@pytest.mark.parametrize(
    ("tp", "expected"),
    [
        pytest.param(Duration, "duration", id="duration"),
        pytest.param(list[str], "list of text", id="list"),
        pytest.param(dict[str, int], "mapping of text to integer", id="mapping"),
        pytest.param(bool | None, "true/false", id="optional"),
    ],
)
def test_types_get_readers_names(tp: object, expected: str) -> None:
    assert type_name(tp) == expected


def test_defaults_are_shown_the_way_they_are_written() -> None:
    reference = generate()
    assert "| `interval` | duration ≥ 1s | `30s` | How often the target is probed. |" in reference
    assert "| `address` | text | **required** |" in reference
    assert "| `language` | `zh-CN` \\| `en` | `zh-CN` |" in reference


def test_writing_the_reference_replaces_only_the_text_between_the_markers(tmp_path: Path) -> None:
    doc = tmp_path / "configuration.md"
    doc.write_text(f"# Title\n\nintro\n\n{START}\nstale text\n{END}\n\nafter\n", encoding="utf-8")
    assert main(["--write", str(doc)]) == 0
    once = doc.read_text(encoding="utf-8")
    assert once.startswith("# Title\n\nintro\n\n") and once.endswith(f"{END}\n\nafter\n")
    assert "stale text" not in once and "### `targets:`" in once
    assert main(["--write", str(doc)]) == 0
    assert doc.read_text(encoding="utf-8") == once


def test_a_document_without_markers_is_refused() -> None:
    with pytest.raises(ValueError):
        splice("# no markers\n", "ref")


DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def yaml_blocks(markdown: str) -> list[str]:
    blocks = re.findall(r"(?ms)^([ \t]*)```yaml\n(.*?)^\1```", markdown)
    return [textwrap.dedent(body) for _, body in blocks]


def test_every_yaml_example_in_the_configuration_doc_loads(tmp_path: Path) -> None:
    blocks = yaml_blocks(DOC.read_text(encoding="utf-8"))
    assert blocks
    for index, block in enumerate(blocks):
        path = tmp_path / f"example-{index}.yaml"
        path.write_text(block, encoding="utf-8")
        load_config(path, env={}, schema=BuildConfig)


def test_every_reference_row_has_four_cells() -> None:
    rows = [line for line in generate(BuildConfig).splitlines() if line.startswith("| `")]
    assert rows
    for row in rows:
        assert len(re.findall(r"(?<!\\)\|", row)) == 5, row


def test_the_committed_reference_matches_the_models() -> None:
    # A model field added without regenerating the page fails here, with the fix.
    # The page documents the build's schema: monitor's sections and those above it.
    doc = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"
    text = doc.read_text(encoding="utf-8")
    assert splice(text, generate(BuildConfig)) == text, (
        "docs/configuration.md is out of date: run `.venv/bin/python -m "
        "monitor.config.reference --schema dialwatch.schema:Config --write docs/configuration.md`"
    )


def test_the_build_reference_has_the_sections_of_the_packages_above_monitor() -> None:
    reference = generate(BuildConfig)
    assert "### `channels:`" in reference
    for kind in CHANNELS.values():
        assert f"#### `kind: {kind.kind}` — {kind.summary}" in reference
        for name, field in kind.model.model_fields.items():
            assert f"| `{field.alias or name}` |" in reference, (kind.kind, name)
    assert "### SmtpConfig" in reference


def test_the_schema_to_document_is_named_on_the_command_line(tmp_path: Path) -> None:
    doc = tmp_path / "configuration.md"
    doc.write_text(f"{START}\n{END}\n", encoding="utf-8")
    assert main(["--schema", "dialwatch.schema:Config", "--write", str(doc)]) == 0
    assert "### `channels:`" in doc.read_text(encoding="utf-8")
    with pytest.raises(SystemExit):
        main(["--schema", "monitor.config.schema:Section"])
