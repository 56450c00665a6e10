"""Whatever the YAML holds, loading ends in a config or a ConfigError of well-formed lines."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.config import ConfigError, load_config

KEYS = [
    "site",
    "web",
    "targets",
    "components",
    "id",
    "kind",
    "interval",
    "timeout",
    "uri",
    "address",
    "depends_on",
    "tags",
    "name",
    "via",
    "transport",
    "fail_after",
    "x",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 100),
    st.sampled_from(
        [
            "sip",
            "tcp",
            "server",
            "appliance",
            "a",
            "b",
            "10s",
            "-1s",
            "x:1",
            "sip:h",
            "${NOPE}",
            "${A:-1s}",
            "$${x",
            "udp",
            "",
        ]
    ),
    st.text(max_size=8),
)
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), children, max_size=5),
    ),
    max_leaves=25,
)
LINE = re.compile(r"^\S+:\d+: .+$|^\S+: .+$")


TARGET = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["a", "b", "c", "A", 1]),
        "kind": st.sampled_from(["sip", "tcp", "server", "appliance", "nope"]),
    },
    optional={key: VALUES for key in KEYS if key not in ("id", "kind")},
)
TARGETS = st.fixed_dictionaries(
    {"targets": st.lists(TARGET, max_size=4)}, optional={"components": VALUES}
)


@settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=5), TARGETS))
def test_any_yaml_mapping_loads_or_gives_one_line_errors(data: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
        try:
            load_config(path, env={"A": "2s"})
        except ConfigError as exc:
            assert exc.errors
            for line in exc.errors:
                assert "\n" not in line and LINE.match(line), line
