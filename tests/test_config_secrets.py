"""``${ENV}`` / ``${file:}`` substitution, and proof that a secret is never printed or logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.config import ConfigError, LoadedConfig, load_config
from probes import PROBES

SECRET = "hunter2-Kx9!q"
FILE_SECRET = "from-a-file-7f3a"


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


SINK = (
    "metrics:\n  - kind: influxdb-v1\n    url: http://127.0.0.1:8086\n    database: dw\n"
    "    token: {}\n"
)
"""A section with a secret-looking key (``token`` on line 5 of a file that starts with it)."""


def token_config(tmp_path: Path, token: str) -> Path:
    return write(tmp_path, "c.yaml", SINK.format(token))


def token_of(config: object) -> object:
    return config.metrics[0].token  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("written", "env", "expected"),
    [
        pytest.param("${TOKEN}", {"TOKEN": "abc"}, "abc", id="a-variable"),
        pytest.param("pre-${TOKEN}-post", {"TOKEN": "abc"}, "pre-abc-post", id="inside-a-string"),
        pytest.param("${A}${B}", {"A": "x", "B": "y"}, "xy", id="two-variables"),
        pytest.param("${TOKEN:-fallback}", {}, "fallback", id="a-default-when-unset"),
        pytest.param("${TOKEN:-fallback}", {"TOKEN": ""}, "fallback", id="a-default-when-empty"),
        pytest.param("${TOKEN:-fallback}", {"TOKEN": "set"}, "set", id="no-default-when-set"),
        pytest.param("${TOKEN:-}", {}, "", id="an-empty-default"),
        pytest.param("${TOKEN}", {"TOKEN": ""}, "", id="a-set-but-empty-variable"),
        pytest.param("cost: $$5 or $${TOKEN}", {}, "cost: $$5 or ${TOKEN}", id="escaped-with-$$"),
    ],
)
def test_environment_references_are_substituted(
    tmp_path: Path, written: str, env: dict[str, str], expected: str
) -> None:
    path = token_config(tmp_path, f'"{written}"')
    assert token_of(load_config(path, env=env).config) == expected


def test_file_references_read_the_file_without_its_final_newline(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "token").write_text(FILE_SECRET + "\n")
    absolute = tmp_path / "abs-token"
    absolute.write_text("line one\nline two\n")
    path = write(
        tmp_path,
        "c.yaml",
        SINK.format("${file:secrets/token}") + "site:\n  name: ${file:" + str(absolute) + "}\n",
    )
    config = load_config(path, env={}).config
    assert token_of(config) == FILE_SECRET
    assert config.site.name == "line one\nline two"


def test_the_os_environment_is_used_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIALWATCH_TEST_TOKEN", SECRET)
    assert token_of(load_config(token_config(tmp_path, "${DIALWATCH_TEST_TOKEN}")).config) == SECRET


def test_substituted_values_are_validated_like_written_ones(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "targets:\n  - id: db\n    kind: tcp\n    address: ${DB}\n"
        "    fail_after: ${N}\n    interval: ${IV}\n",
    )
    target = load_config(path, env={"DB": "192.0.2.1:5432", "N": "4", "IV": "1m"}).config.targets[0]
    assert (target.fail_after, target.interval) == (4, 60.0)
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"DB": "192.0.2.1:5432", "N": "four", "IV": "1m"})
    assert raised.value.errors == [f"{path}:5: targets[0].fail_after: must be a whole number"]


def test_all_failed_references_are_reported_with_where_they_were_used(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        SINK.format("${NO_SUCH_VAR}")
        + "targets:\n  - id: db\n    kind: tcp\n    address: ${file:missing.txt}\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert raised.value.errors == [
        f"{path}:5: metrics[0].token: environment variable NO_SUCH_VAR is not set",
        f"{path}:9: targets[0].address: cannot read secret file {tmp_path}/missing.txt "
        "(No such file or directory)",
    ]


@pytest.fixture
def with_secrets(tmp_path: Path) -> LoadedConfig:
    (tmp_path / "sip-password").write_text(FILE_SECRET + "\n")
    path = write(
        tmp_path,
        "c.yaml",
        SINK.format("${TOKEN}")
        + "targets:\n  - id: trunk-a\n    kind: sip\n    uri: sip:carrier.example.com\n"
        "    tags:\n      account: ${file:sip-password}\n",
    )
    return load_config(path, env={"TOKEN": SECRET})


def assert_no_secret(text: str) -> None:
    assert SECRET not in text
    assert FILE_SECRET not in text


def test_secrets_are_usable_as_their_values(with_secrets: LoadedConfig) -> None:
    config = with_secrets.config
    assert token_of(config) == SECRET
    assert f"Bearer {token_of(config)}" == f"Bearer {SECRET}"
    assert config.targets[0].tags["account"] == FILE_SECRET
    assert SECRET in config.model_dump_json()  # the engine still gets the real value


def test_printing_the_config_never_shows_a_secret(with_secrets: LoadedConfig) -> None:
    config = with_secrets.config
    for text in (
        str(config),
        repr(config),
        repr(config.metrics[0]),
        repr(config.targets[0]),
        repr(config.targets[0].tags),
        repr(token_of(config)),
        str(with_secrets),
        repr(with_secrets),
        repr(with_secrets.redacted()),
    ):
        assert_no_secret(text)
    assert "***" in repr(config.metrics[0])


def test_the_redacted_config_shows_substituted_values_as_stars(with_secrets: LoadedConfig) -> None:
    redacted = with_secrets.redacted()
    assert redacted["metrics"][0]["token"] == "***"
    assert redacted["targets"][0]["tags"] == {"account": "***"}
    assert redacted["targets"][0]["uri"] == "sip:carrier.example.com"
    assert redacted["web"]["listen"] == "127.0.0.1:8080"


def test_logging_the_config_never_shows_a_secret(
    with_secrets: LoadedConfig, caplog: pytest.LogCaptureFixture
) -> None:
    log = logging.getLogger("dialwatch.test")
    with caplog.at_level(logging.DEBUG, logger="dialwatch.test"):
        log.info("loaded %s", with_secrets)
        log.info("config %s", with_secrets.config)
        log.info("config %r", with_secrets.config)
        log.debug(
            "sink %r target %r", with_secrets.config.metrics[0], with_secrets.config.targets[0]
        )
        log.info("redacted %s", with_secrets.redacted())
    assert len(caplog.records) == 5
    assert_no_secret(caplog.text)


def test_literal_values_under_secret_looking_keys_are_hidden_too(tmp_path: Path) -> None:
    loaded = load_config(token_config(tmp_path, SECRET), env={})
    assert token_of(loaded.config) == SECRET
    assert_no_secret(repr(loaded.config))
    assert_no_secret(str(loaded.redacted()))


def test_errors_in_a_config_with_secrets_never_show_them(tmp_path: Path) -> None:
    # Secrets in places whose validation fails: an unknown kind (which the
    # message names), a tag value, and an address the tcp probe rejects.
    path = write(
        tmp_path,
        "c.yaml",
        "web:\n  listen: [bad]\n"
        "targets:\n  - id: a\n    kind: ${TOKEN}\n"
        "  - id: b\n    kind: tcp\n    address: ${TOKEN}\n"
        "  - id: c\n    kind: tcp\n    address: 192.0.2.1:1\n    depends_on: ['${TOKEN}']\n"
        + SINK.format("${TOKEN}"),
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"TOKEN": SECRET})
    errors = raised.value.errors
    assert errors[:2] == [
        f"{path}:2: web.listen: must be text",
        f"{path}:5: targets[0].kind: unknown kind '***'; known kinds: {', '.join(PROBES)}",
    ]
    assert len(errors) >= 4
    for text in (*errors, str(raised.value), repr(raised.value)):
        assert_no_secret(text)


def test_a_changed_secret_changes_the_digest_but_an_unchanged_one_does_not(
    tmp_path: Path,
) -> None:
    path = token_config(tmp_path, "${TOKEN}")
    first = load_config(path, env={"TOKEN": SECRET})
    same = load_config(path, env={"TOKEN": SECRET})
    changed = load_config(path, env={"TOKEN": SECRET + "x"})
    assert first.digest == same.digest
    assert first.digest != changed.digest


def test_the_substituted_texts_are_listed_for_log_filters(with_secrets: LoadedConfig) -> None:
    assert with_secrets.secret_values() == {SECRET, FILE_SECRET}
    assert_no_secret(repr(with_secrets))


def test_a_secret_survives_copying_and_pickling_with_its_mask(with_secrets: LoadedConfig) -> None:
    import copy
    import pickle

    for config in (
        copy.deepcopy(with_secrets.config),
        pickle.loads(pickle.dumps(with_secrets.config)),
        with_secrets.config.model_copy(deep=True),
    ):
        assert token_of(config) == SECRET
        assert_no_secret(repr(config))


def test_check_config_never_prints_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from monitor.config import check_config_main

    monkeypatch.setenv("DIALWATCH_TEST_TOKEN", SECRET)
    good = write(tmp_path, "good.yaml", SINK.format("${DIALWATCH_TEST_TOKEN}"))
    bad = write(
        tmp_path,
        "bad.yaml",
        SINK.format("${DIALWATCH_TEST_TOKEN}")
        + "targets:\n  - id: a\n    kind: ${DIALWATCH_TEST_TOKEN}\n",
    )
    assert check_config_main(good) == 0
    assert check_config_main(bad) == 2
    out, err = capsys.readouterr()
    assert "OK: 0 targets" in out and "unknown kind '***'" in err
    assert_no_secret(out + err)


def test_a_secret_file_that_never_ends_is_refused_not_read_forever(tmp_path: Path) -> None:
    path = token_config(tmp_path, "${file:/dev/zero}")
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert raised.value.errors == [
        f"{path}:5: metrics[0].token: secret file /dev/zero is larger than 64 KiB"
    ]


def test_a_default_written_in_the_config_is_not_scrubbed_from_messages(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "c.yaml",
        "targets:\n  - id: db\n    kind: tcp\n    address: 192.0.2.1:1\n"
        "    interval: ${DB_INTERVAL:-1.5s}\n    timeout: 2.5s\n",
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert raised.value.errors == [
        f"{path}:6: targets[0].timeout: timeout (2.5s) must not be longer than interval (1.5s)"
    ]
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={"DB_INTERVAL": "1.5s"})
    assert raised.value.errors == [
        f"{path}:6: targets[0].timeout: timeout (2.5s) must not be longer than interval (***)"
    ]


def test_the_removed_web_token_says_what_replaced_it_and_is_never_resolved(
    tmp_path: Path,
) -> None:
    # Its ${...} is neither read nor reported: the only error is the one that helps.
    path = write(
        tmp_path, "c.yaml", "web:\n  listen: 127.0.0.1:8080\n  token: ${NOT_SET_ANYWHERE}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert raised.value.errors == [
        f"{path}:3: web.token: removed: API clients and scripts use a named user's token now; "
        "create one with `dialwatch token create --user NAME` (add the user first with "
        "`dialwatch user add`) and delete this key"
    ]
