"""What the config accepts at its edges, for every model and every probe kind.

Strict booleans in every model, the interval and timeout minimums, the
default timeout under a short interval, timezones this machine knows and
component names in every language. The exact error lines are in
tests/config_cases/; these tests check that no model or kind escapes the rule.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from core.config import LANGUAGES, check_timezone
from dialwatch.schema import Config
from monitor.config import ConfigError, load_config
from probes import PROBES
from web.i18n import LANGUAGE_NAMES, LOCALES

TRANSLATIONS = Path(__file__).resolve().parent.parent / "web" / "translations"

# The fewest keys a target of each kind needs besides id and kind.
MINIMAL: dict[str, dict[str, Any]] = {
    "sip": {"uri": "sip:192.0.2.10:5060"},
    "server": {"via": "local"},
    "tcp": {"address": "192.0.2.1:22"},
    "http": {"url": "http://192.0.2.1/"},
    "tls": {"address": "192.0.2.1:443"},
    "dns": {"query": "example.com"},
    "dialer": {"source": {"type": "csv", "path": "/var/log/asterisk/cdr-csv/Master.csv"}},
    "appliance": {},
}


def _models(tp: Any, seen: dict[type[BaseModel], None]) -> None:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        if tp not in seen:
            seen[tp] = None
            for field in tp.model_fields.values():
                _models(field.annotation, seen)
        return
    for arg in typing.get_args(tp):
        _models(arg, seen)


def _field_type(field: FieldInfo) -> Any:
    return (
        typing.Annotated[(field.annotation, *field.metadata)]
        if field.metadata
        else field.annotation
    )


def _mentions_bool(tp: Any) -> bool:
    args = [a for a in typing.get_args(tp) if not isinstance(a, str)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and str in args:
        # A value that may be text or a number or true/false (a runbook parameter, a
        # header): "yes" is text there, not a boolean written loosely.
        return False
    return tp is bool or any(_mentions_bool(a) for a in args)


def _boolean_fields() -> list[Any]:
    seen: dict[type[BaseModel], None] = {}
    _models(Config, seen)
    return [
        pytest.param(_field_type(field), id=f"{model.__name__}.{name}")
        for model in seen
        for name, field in model.model_fields.items()
        if _mentions_bool(field.annotation)
    ]


def test_the_walk_finds_the_boolean_keys_of_every_section() -> None:
    ids = {p.id for p in _boolean_fields()}
    assert {"TcpTarget.enabled", "WebConfig.public_status", "TlsOptions.verify"} <= ids
    assert len(ids) >= 15


@pytest.mark.parametrize("field_type", _boolean_fields())
@pytest.mark.parametrize("written", ["yes", "no", "on", "off", "y", "1", 1, 0])
def test_every_boolean_key_takes_only_true_or_false(field_type: Any, written: object) -> None:
    adapter = TypeAdapter(field_type)
    assert adapter.validate_python(True) is True and adapter.validate_python(False) is False
    with pytest.raises(ValidationError) as raised:
        adapter.validate_python(written)
    assert raised.value.errors()[0]["type"] == "bool_type"


def test_the_minimal_targets_cover_every_probe_kind() -> None:
    assert sorted(MINIMAL) == sorted(PROBES)


@pytest.mark.parametrize("kind", sorted(PROBES))
@pytest.mark.parametrize(
    ("key", "too_short", "shortest", "seconds"),
    [
        pytest.param("interval", "999ms", "1s", 1.0, id="interval"),
        pytest.param("timeout", "99ms", "100ms", 0.1, id="timeout"),
    ],
)
def test_every_kind_refuses_an_interval_under_1s_and_a_timeout_under_100ms(
    kind: str, key: str, too_short: str, shortest: str, seconds: float
) -> None:
    model = PROBES[kind].model
    base = {"id": "t", "kind": kind, **MINIMAL[kind]}
    with pytest.raises(ValidationError) as raised:
        model.model_validate({**base, key: too_short})
    [error] = raised.value.errors()
    assert (error["loc"], error["msg"]) == (
        (key,),
        f"Value error, must be at least {shortest} (got {too_short})",
    )
    assert getattr(model.model_validate({**base, key: shortest}), key) == seconds


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_a_short_interval_alone_makes_the_default_timeout_the_interval(kind: str) -> None:
    model = PROBES[kind].model
    base = {"id": "t", "kind": kind, **MINIMAL[kind]}
    default = model.model_fields["timeout"].default
    fast = model.model_validate({**base, "interval": "1s"})
    assert (fast.interval, fast.timeout) == (1.0, 1.0)
    slow = model.model_validate({**base, "interval": "10m"})
    assert slow.timeout == default
    written = model.model_validate({**base, "interval": "2s", "timeout": "500ms"})
    assert written.timeout == 0.5


def test_a_timeout_written_longer_than_a_short_interval_is_still_an_error() -> None:
    with pytest.raises(ValidationError) as raised:
        PROBES["server"].model.model_validate(
            {"id": "t", "kind": "server", "interval": "1s", "timeout": "5s"}
        )
    assert "timeout (5s) must not be longer than interval (1s)" in str(raised.value)


def test_a_server_probed_every_second_passes_check_config(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "targets:\n  - id: this-server\n    kind: server\n    via: local\n    interval: 1s\n",
        encoding="utf-8",
    )
    [target] = load_config(path, env={}).config.targets
    assert (target.interval, target.timeout) == (1.0, 1.0)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        pytest.param(
            "Mars/Olympus", "use an IANA name like Asia/Shanghai or UTC", id="no-such-zone"
        ),
        pytest.param("Asia/Shanghia", "did you mean Asia/Shanghai?", id="a-typo"),
        pytest.param("asia/shanghai", "did you mean Asia/Shanghai?", id="lower-case"),
        pytest.param("../../etc/passwd", "use an IANA name like Asia/Shanghai or UTC", id="a-path"),
        pytest.param("", "use an IANA name like Asia/Shanghai or UTC", id="empty"),
    ],
)
def test_an_unknown_timezone_is_refused_with_a_hint(name: str, hint: str) -> None:
    with pytest.raises(ValueError) as raised:
        check_timezone(name)
    assert str(raised.value) == f"unknown timezone {name!r}; {hint}"


@pytest.mark.parametrize("name", ["Asia/Shanghai", "UTC", "Europe/Berlin", "America/New_York"])
def test_known_timezones_are_accepted(name: str) -> None:
    assert check_timezone(name) == name


def test_the_languages_a_name_needs_are_the_ones_the_pages_offer() -> None:
    # Each has a catalog and a link in the language switch.
    assert sorted(LANGUAGE_NAMES) == sorted(LANGUAGES) == sorted(LOCALES.values())
    assert all(
        (TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo").is_file() for locale in LOCALES
    )


def test_a_component_named_in_every_language_loads(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "components:\n  - id: calls\n    name: {zh-CN: 外呼, en: Calls}\n"
        "    description: {en: Outbound calls}\n",
        encoding="utf-8",
    )
    [component] = load_config(path, env={}).config.components
    assert component.name == {"zh-CN": "外呼", "en": "Calls"}


def test_a_blank_name_in_one_language_counts_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        'components:\n  - id: calls\n    name: {zh-CN: " ", en: Calls}\n', encoding="utf-8"
    )
    with pytest.raises(ConfigError) as raised:
        load_config(path, env={})
    assert raised.value.errors == [
        f"{path}:3: components[0].name: needs a name in every language the pages offer "
        "(zh-CN, en); missing: zh-CN"
    ]


@pytest.mark.parametrize("country", ["NO", "no", "yes", "off", "ON"])
def test_words_yaml_1_1_reads_as_booleans_stay_text_where_text_is_wanted(
    tmp_path: Path, country: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "site: {name: NO}\n"
        "targets:\n  - id: oslo\n    kind: tcp\n    address: 192.0.2.1:22\n"
        f"    enabled: true\n    tags:\n      country: {country}\n",
        encoding="utf-8",
    )
    config = load_config(path, env={}).config
    assert config.site.name == "NO"
    assert config.targets[0].tags == {"country": country}
    assert config.targets[0].enabled is True
