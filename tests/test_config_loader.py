"""Loading configs: directory merging, line marks across files, YAML details, digests,
check-config, and the shipped starter and example configs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from monitor.config import ConfigError, LoadedConfig, check_config_main, load_config
from probes.tcp import TcpTarget

REPO = Path(__file__).resolve().parent.parent
STARTER = REPO / "config" / "dialwatch.yaml"
EXAMPLES = REPO / "config" / "examples"

TCP = "kind: tcp\n    address: 192.0.2.1:22"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path) -> LoadedConfig:
    return load_config(path, env={})


def errors_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as raised:
        load(path)
    return raised.value.errors


def test_a_directory_joins_targets_and_components_in_file_name_order(tmp_path: Path) -> None:
    write(tmp_path, "b.yaml", f"targets:\n  - id: second\n    {TCP}\n")
    write(tmp_path, "a.yaml", f"targets:\n  - id: first\n    {TCP}\n")
    write(
        tmp_path,
        "c.yml",
        f"targets:\n  - id: third\n    {TCP}\n"
        "components:\n  - id: calling\n    name: {zh-CN: 呼叫, en: Calling}\n    targets: [first, third]\n",
    )
    loaded = load(tmp_path)
    assert [t.id for t in loaded.config.targets] == ["first", "second", "third"]
    assert [c.id for c in loaded.config.components] == ["calling"]
    assert loaded.files == [tmp_path / "a.yaml", tmp_path / "b.yaml", tmp_path / "c.yml"]


def test_a_directory_ignores_hidden_and_other_files(tmp_path: Path) -> None:
    write(tmp_path, "site.yaml", "site:\n  name: Shanghai\n")
    write(tmp_path, ".site.yaml.swp", "site: [not, yaml")
    write(tmp_path, ".hidden.yaml", "site: oops\n")
    write(tmp_path, "notes.txt", "site: oops\n")
    assert load(tmp_path).config.site.name == "Shanghai"


def test_an_error_in_a_later_file_names_that_file_and_its_own_line(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", f"targets:\n  - id: one\n    {TCP}\n  - id: two\n    {TCP}\n")
    b = write(tmp_path, "b.yaml", "\ntargets:\n  - id: three\n    kind: tcp\n    addres: x:1\n")
    assert errors_of(tmp_path) == [
        f"{b}:3: targets[2].address: required",
        f"{b}:5: targets[2].addres: unknown key; allowed: "
        + ", ".join(sorted(TcpTarget.model_fields)),
    ]


def test_targets_may_depend_on_targets_in_another_file(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", f"targets:\n  - id: trunk\n    {TCP}\n    depends_on: [router]\n")
    write(tmp_path, "b.yaml", f"targets:\n  - id: router\n    {TCP}\n")
    assert load(tmp_path).config.target("trunk").depends_on == ["router"]  # type: ignore[union-attr]


def test_every_error_is_reported_at_once_not_only_the_first(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "site:\n  language: fr\n"
        f"targets:\n  - id: a\n    {TCP}\n    interval: often\n"
        f"  - id: a\n    {TCP}\n    depends_on: [nowhere]\n",
    )
    assert errors_of(path) == [
        f"{path}:2: site.language: must be one of: zh-CN, en",
        f"{path}:7: targets[0].interval: must be a duration like 10s",
        f"{path}:8: targets[1].id: duplicate target id 'a' (first at {path}:4)",
        f"{path}:11: targets[1].depends_on[0]: unknown target 'nowhere'",
    ]


def test_error_lines_all_have_the_file_line_key_message_shape(tmp_path: Path) -> None:
    path = write(tmp_path, "c.yaml", "web:\n  listen: [1]\n  x: 1\ntargets:\n  - id: A\n")
    errors = errors_of(path)
    assert len(errors) == 3  # web.listen, web.x, targets[0].kind
    for line in errors:
        assert re.match(rf"^{re.escape(str(path))}:\d+: [a-z_\[\]0-9.]+: \S.*$", line), line


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", [], id="an-empty-file-is-all-defaults"),
        pytest.param("# only comments\n", [], id="a-file-of-comments-is-all-defaults"),
        pytest.param(
            "site:\ntargets:\n  # - id: db\ncomponents:\n", [], id="empty-sections-are-defaults"
        ),
    ],
)
def test_an_empty_file_loads_with_defaults(tmp_path: Path, text: str, expected: list) -> None:
    loaded = load(write(tmp_path, "c.yaml", text))
    assert loaded.config.targets == expected
    assert loaded.config.site.timezone == "UTC"


def test_an_empty_directory_is_an_error(tmp_path: Path) -> None:
    assert errors_of(tmp_path) == [f"{tmp_path}: no *.yaml files in this directory"]


def test_a_missing_path_is_an_error(tmp_path: Path) -> None:
    assert errors_of(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: no such file or directory"
    ]


def test_a_file_that_is_not_utf8_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_bytes("site:\n  name: 呼叫中心\n".encode("gb18030"))
    [error] = errors_of(path)
    assert error.startswith(f"{path}: not UTF-8 text")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("NO", "NO", id="norway-stays-text"),
        pytest.param("yes", "yes", id="yes-stays-text"),
        pytest.param("12:30", "12:30", id="a-clock-time-is-not-sexagesimal"),
        pytest.param("2026-12-01", "2026-12-01", id="a-date-stays-text"),
        pytest.param('"true"', "true", id="a-quoted-boolean-is-text"),
    ],
)
def test_yaml_scalars_that_yaml_1_1_would_retype_stay_text(
    tmp_path: Path, value: str, expected: str
) -> None:
    path = write(
        tmp_path, "c.yaml", f"targets:\n  - id: db\n    {TCP}\n    tags:\n      v: {value}\n"
    )
    assert load(path).config.targets[0].tags == {"v": expected}


def test_top_level_x_keys_hold_anchors_and_explicit_keys_override_merged_ones(
    tmp_path: Path,
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "x-defaults: &d\n  kind: tcp\n  address: 192.0.2.1:22\n  interval: 20s\n"
        "targets:\n  - id: a\n    <<: *d\n  - id: b\n    <<: *d\n    interval: 40s\n",
    )
    targets = load(path).config.targets
    assert [(t.id, t.interval) for t in targets] == [("a", 20.0), ("b", 40.0)]


def test_the_digest_is_of_the_effective_config_not_the_text(tmp_path: Path) -> None:
    terse = write(tmp_path, "a.yaml", f"targets:\n  - id: db\n    {TCP}\n")
    explicit = write(
        tmp_path,
        "b.yaml",
        "# the same, with defaults spelled out\nsite: {timezone: UTC}\n"
        "targets:\n  - address: 192.0.2.1:22\n    kind: tcp\n    id: db\n    interval: 30s\n",
    )
    assert load(terse).digest == load(explicit).digest
    assert load(terse).target_digest("db") == load(explicit).target_digest("db")


def test_a_changed_target_changes_its_own_digest_and_no_other(tmp_path: Path) -> None:
    before = load(
        write(tmp_path, "a.yaml", f"targets:\n  - id: a\n    {TCP}\n  - id: b\n    {TCP}\n")
    )
    after = load(
        write(
            tmp_path,
            "b.yaml",
            f"targets:\n  - id: a\n    {TCP}\n  - id: b\n    {TCP}\n    fail_after: 5\n",
        )
    )
    assert before.digest != after.digest
    assert before.target_digest("a") == after.target_digest("a")
    assert before.target_digest("b") != after.target_digest("b")
    with pytest.raises(KeyError):
        before.target_digest("c")


def test_check_config_prints_a_summary_and_returns_0_for_a_valid_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        f"targets:\n  - id: db\n    {TCP}\n  - id: app\n    {TCP}\n"
        "components:\n  - id: calling\n    name: {zh-CN: 呼叫, en: Calling}\n",
    )
    assert check_config_main(path) == 0
    out, err = capsys.readouterr()
    assert out == f"OK: 2 targets, 1 components ({path})\n"
    assert err == ""


def test_check_config_prints_every_error_to_stderr_and_returns_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path, "c.yaml", "site:\n  colour: red\n  language: fr\n")
    assert check_config_main(str(path)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{path}:2: site.colour: unknown key; allowed: language, name, timezone",
        f"{path}:3: site.language: must be one of: zh-CN, en",
    ]


def test_a_long_chain_of_dependencies_is_checked_without_recursion_limits(tmp_path: Path) -> None:
    n = 3000
    lines = ["targets:"]
    for i in range(n):
        lines += [f"  - id: t{i}", "    kind: tcp", "    address: 192.0.2.1:22"]
        lines.append(f"    depends_on: [t{(i + 1) % n}]")
    path = write(tmp_path, "c.yaml", "\n".join(lines) + "\n")
    [error] = errors_of(path)
    assert error.startswith(
        f"{path}:{4 * n + 1}: targets[{n - 1}].depends_on[0]: dependency cycle: t0 -> t1 -> "
    )
    assert error.endswith(f"t{n - 1} -> t0")


def test_the_starter_config_loads_with_no_errors() -> None:
    loaded = load(STARTER)
    kinds = {t.id: t.kind for t in loaded.config.targets}
    assert kinds == {"this-server": "server", "dialwatch": "appliance"}
    assert loaded.config.site.timezone == "Asia/Shanghai"


def uncomment_examples(text: str) -> str:
    """The starter's commented-out YAML, switched on (prose comments stay comments).

    The rules example stays a comment: its actions come with packages this
    build does not have (tests/test_rules_config.py checks it with stand-ins).
    """
    head, rules, tail = text.partition("\n# Rules")
    return re.sub(r"(?m)^(\s*)# (components:|- |  )", r"\1\2", head) + rules + tail


def test_the_starter_configs_commented_trunk_and_component_load_when_uncommented(
    tmp_path: Path,
) -> None:
    text = uncomment_examples(STARTER.read_text(encoding="utf-8"))
    assert "\n  - id: trunk-a\n" in text and "\ncomponents:\n" in text
    loaded = load(write(tmp_path, "dialwatch.yaml", text))
    trunk = loaded.config.target("trunk-a")
    assert trunk is not None and trunk.kind == "sip" and trunk.depends_on == ["this-server"]
    assert [c.targets for c in loaded.config.components] == [["trunk-a"]]


# The variables the examples say to set.
EXAMPLE_ENV = {
    "INFLUX_TOKEN": "example-influx-token",
    "DIALER_TOKEN": "example-dialer-token",
    "NOC_WEBHOOK_SECRET": "example-webhook-secret-0123",
}


@pytest.mark.parametrize("example", sorted(EXAMPLES.iterdir()), ids=lambda p: p.name)
def test_every_shipped_example_loads(example: Path) -> None:
    # With the appliance's schema, as `dialwatch check-config` and `run` load them:
    # channels, runbooks, failover groups and rule actions included.
    from dialwatch.schema import Config as ApplianceConfig

    loaded = load_config(example, env=EXAMPLE_ENV, schema=ApplianceConfig)
    assert loaded.config.targets
    for value in EXAMPLE_ENV.values():
        assert value not in str(loaded.redacted())


def test_loading_in_a_child_process_gives_the_same_config_digests_and_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.config import ConfigError, load_config, load_config_isolated

    monkeypatch.setenv("DW_ISOLATED_SECRET", "s3cret-value")
    cfg = tmp_path / "site.yaml"
    cfg.write_text(
        "targets:\n"
        "  - id: crm\n    kind: http\n    url: https://crm.example/health\n"
        "    auth: {bearer_token: '${DW_ISOLATED_SECRET}'}\n"
        "  - id: router\n    kind: tcp\n    address: 192.0.2.1:22\n",
        encoding="utf-8",
    )
    here, child = load_config(cfg), load_config_isolated(cfg)
    assert child.digest == here.digest
    assert child.target_digest("crm") == here.target_digest("crm")  # the secret-bearing one
    assert child.secret_values() == here.secret_values()
    cfg.write_text("targets:\n  - id: x\n    kind: tcp\n    address: nope\n", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config_isolated(cfg)
    assert raised.value.errors[0].startswith(f"{cfg}:4: targets[0].address:")


def test_the_starter_configs_commented_paging_example_loads(tmp_path: Path) -> None:
    """The paging example in config/dialwatch.yaml, uncommented, is a valid config."""
    from dialwatch.schema import Config as ApplianceConfig

    text = STARTER.read_text(encoding="utf-8")
    start = text.index("# rules:\n")
    lines = [line[2:] if line.startswith("# ") else "" for line in text[start:].splitlines()]
    # Keep the YAML, drop the prose between the blocks ("On-call paging (值班呼叫) — see ...").
    block = [line for line in lines if re.match(r"^([a-z_]+:|\s|$)", line)]
    path = tmp_path / "paging.yaml"
    target = (
        "targets:\n  - {id: trunk-a, kind: tcp, address: '192.0.2.1:5060', tags: {role: trunk}}\n"
    )
    path.write_text(target + "\n".join(block) + "\n", encoding="utf-8")
    env = {"DEADMAN_URL": "https://hc-ping.com/0000"}
    (tmp_path / "smtp").write_text("pw", encoding="utf-8")
    (tmp_path / "webhook").write_text("0123456789abcdef0123", encoding="utf-8")
    (tmp_path / "dingtalk-url").write_text(
        "https://oapi.dingtalk.com/robot/send?access_token=0123", encoding="utf-8"
    )
    (tmp_path / "dingtalk-secret").write_text("SEC0123456789abcdef", encoding="utf-8")
    path.write_text(
        path.read_text(encoding="utf-8").replace("/etc/dialwatch/secrets", str(tmp_path)),
        encoding="utf-8",
    )
    config = load_config(path, env=env, schema=ApplianceConfig).config
    assert [p.id for p in config.people] == ["zhang", "chen"]  # type: ignore[attr-defined]
    assert config.rules[0].escalate.policy == "trunks"  # type: ignore[attr-defined]
