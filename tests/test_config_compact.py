"""Equal parts of a loaded config are one object; secrets and types stay apart."""

from __future__ import annotations

import datetime as dt
import pickle
from pathlib import Path

from pydantic import Field

from core.config import StrictModel
from monitor.config import load_config
from monitor.config.compact import share_equal_parts
from monitor.config.secrets import Secret


def sip_targets(n: int, extra: str = "") -> str:
    lines = ["targets:"]
    for i in range(n):
        lines += [
            f"  - id: trunk-{i}",
            "    kind: sip",
            f"    uri: sip:192.0.2.{i + 1}:5060",
            "    tags: {carrier: ct}",
            *([extra] if extra else []),
        ]
    return "\n".join(lines) + "\n"


def test_equal_defaults_and_tags_are_shared_and_survive_pickling(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(sip_targets(3), encoding="utf-8")
    loaded = pickle.loads(pickle.dumps(load_config(cfg)))
    a, b, c = loaded.config.targets
    assert a.tls is b.tls is c.tls
    assert a.dns is b.dns
    assert a.warn_codes is b.warn_codes
    assert a.tags is b.tags == {"carrier": "ct"}
    assert a.__pydantic_fields_set__ is b.__pydantic_fields_set__
    # what differs stays different
    assert (a.id, b.id, c.id) == ("trunk-0", "trunk-1", "trunk-2")
    assert a.uri != b.uri


def test_a_secret_is_not_shared_with_an_equal_plain_string(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    text = (
        sip_targets(2)
        .replace(
            "  - id: trunk-1\n",
            "  - id: trunk-1\n    registration: {username: alice, password: '${PW}'}\n",
        )
        .replace(
            "  - id: trunk-0\n",
            "  - id: trunk-0\n    registration: {username: alice, password: alice}\n",
        )
    )
    cfg.write_text(text, encoding="utf-8")
    loaded = load_config(cfg, env={"PW": "alice"})
    plain, secret = (t.registration for t in loaded.config.targets)
    assert type(plain.password) is str
    assert isinstance(secret.password, Secret)
    assert plain is not secret
    assert plain.username is secret.username  # the equal plain string is one object
    assert "password='***'" in repr(secret)


def test_values_of_other_types_are_not_merged(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    text = sip_targets(2)
    text = text.replace("trunk-0\n", "trunk-0\n    fail_after: 1\n    recover_after: 1\n")
    cfg.write_text(text, encoding="utf-8")
    a, b = load_config(cfg).config.targets
    assert (a.fail_after, b.fail_after) == (1, 2)
    assert a.tls is b.tls


class Part(StrictModel):
    name: str
    tags: list[str] = Field(default_factory=list)


class Dated(StrictModel):
    start: dt.date
    """A type the sharer does not know: the part is kept apart."""


class Holder(StrictModel):
    a: Part
    b: Part
    c: Dated
    d: Dated
    e: list[Dated]


def test_equal_parts_are_shared_and_unknown_types_are_left_alone() -> None:
    model = Holder(
        a=Part(name="x", tags=["t"]),
        b=Part(name="x", tags=["t"]),
        c=Dated(start=dt.date(2026, 12, 1)),
        d=Dated(start=dt.date(2026, 12, 2)),
        e=[Dated(start=dt.date(2027, 1, 1))],
    )
    share_equal_parts(model)
    assert model.a is model.b
    # Models that cannot be keyed are never swapped for another unkeyable one (they once
    # all became the first such model met: a schedule turned into a rotation).
    assert (model.c.start, model.d.start) == (dt.date(2026, 12, 1), dt.date(2026, 12, 2))
    assert [x.start for x in model.e] == [dt.date(2027, 1, 1)]
    assert type(model.c) is Dated
