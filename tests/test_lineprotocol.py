"""The line-protocol encoder: escaping, types and deterministic handling of bad values."""

from __future__ import annotations

import math

import pytest

from core.observation import MetricPoint
from monitor.sinks.lineprotocol import (
    MAX_NAME_BYTES,
    MAX_STRING_BYTES,
    EncodeError,
    encode_batch,
    encode_point,
)

T = 1_700_000_000_000_000_000

CASES = [
    (
        "plain float",
        MetricPoint("sip", {"rtt_ms": 1.5}, {"target": "a"}, T),
        f"sip,target=a rtt_ms=1.5 {T}",
    ),
    ("int gets the i suffix", MetricPoint("sip", {"status": 2}, {}, T), f"sip status=2i {T}"),
    (
        "bools are words",
        MetricPoint("m", {"up": True, "down": False}, {}, T),
        f"m down=false,up=true {T}",
    ),
    ("integral float stays a float", MetricPoint("m", {"v": 2.0}, {}, T), f"m v=2.0 {T}"),
    (
        "tags are sorted",
        MetricPoint("m", {"v": 1}, {"z": "1", "a": "2", "k": "3"}, T),
        f"m,a=2,k=3,z=1 v=1i {T}",
    ),
    ("fields are sorted", MetricPoint("m", {"b": 1, "a": 2}, {}, T), f"m a=2i,b=1i {T}"),
    (
        "measurement escapes comma and space",
        MetricPoint("my m,x", {"v": 1}, {}, T),
        f"my\\ m\\,x v=1i {T}",
    ),
    (
        "tag escapes comma equals space",
        MetricPoint("m", {"v": 1}, {"a b": "c,d=e f"}, T),
        f"m,a\\ b=c\\,d\\=e\\ f v=1i {T}",
    ),
    ("field key escapes", MetricPoint("m", {"a=b c": 1}, {}, T), f"m a\\=b\\ c=1i {T}"),
    (
        "string field escapes quote and backslash",
        MetricPoint("m", {"s": 'say "hi" \\o/'}, {}, T),
        f'm s="say \\"hi\\" \\\\o/" {T}',
    ),
    (
        "backslash in a tag becomes slash",
        MetricPoint("m", {"v": 1}, {"mount": "C:\\"}, T),
        f"m,mount=C:/ v=1i {T}",
    ),
    (
        "newline in a tag becomes a space",
        MetricPoint("m", {"v": 1}, {"a": "x\ny"}, T),
        f"m,a=x\\ y v=1i {T}",
    ),
    (
        "newline in a string field becomes a space",
        MetricPoint("m", {"s": "a\r\nb"}, {}, T),
        f'm s="a  b" {T}',
    ),
    (
        "empty tag value is left out",
        MetricPoint("m", {"v": 1}, {"a": "", "b": "x"}, T),
        f"m,b=x v=1i {T}",
    ),
    (
        "unicode is kept",
        MetricPoint("外呼", {"v": 1}, {"线路": "电信"}, T),
        f"外呼,线路=电信 v=1i {T}",
    ),
    ("no time means the server's clock", MetricPoint("m", {"v": 1}), "m v=1i"),
    ("empty string field is written", MetricPoint("m", {"s": ""}, {}, T), f'm s="" {T}'),
    ("negative int", MetricPoint("m", {"v": -(2**63)}, {}, T), f"m v=-9223372036854775808i {T}"),
]


@pytest.mark.parametrize(("point", "line"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_point_encodes_to_exact_line(point: MetricPoint, line: str) -> None:
    assert encode_point(point).line.decode() == line


DROPPED = [
    ("nan", math.nan, "nan is not a finite number"),
    ("inf", math.inf, "inf is not a finite number"),
    ("minus inf", -math.inf, "-inf is not a finite number"),
    ("int too big", 2**63, "integer outside the 64-bit range"),
]


@pytest.mark.parametrize(("value", "note"), [d[1:] for d in DROPPED], ids=[d[0] for d in DROPPED])
def test_unstorable_field_is_left_out_with_a_note(value: float, note: str) -> None:
    encoded = encode_point(MetricPoint("m", {"bad": value, "good": 1}, {}, T))
    assert encoded.line.decode() == f"m good=1i {T}"
    assert encoded.notes == (f"field 'bad' left out: {note}",)


def test_point_whose_only_field_is_nan_is_rejected_with_the_reason() -> None:
    with pytest.raises(EncodeError, match="m: no field can be written .*nan is not a finite"):
        encode_point(MetricPoint("m", {"v": math.nan}, {}, T))


@pytest.mark.parametrize(
    "point",
    [
        MetricPoint("", {"v": 1}),
        MetricPoint("m", {}),
        MetricPoint("m", {"": 1}),
        MetricPoint("m", {"time": 1}),
    ],
    ids=["no measurement", "no fields", "empty field key", "reserved field time"],
)
def test_point_with_nothing_writable_is_rejected(point: MetricPoint) -> None:
    with pytest.raises(EncodeError):
        encode_point(point)


def test_very_long_string_is_cut_at_a_character_boundary() -> None:
    encoded = encode_point(MetricPoint("m", {"s": "界" * 40_000}, {}, T)).line.decode()
    value = encoded[len('m s="') : -len(f'" {T}')]
    assert len(value.encode()) <= MAX_STRING_BYTES
    assert set(value) == {"界"}
    assert len(value) == MAX_STRING_BYTES // 3


def test_very_long_tag_value_is_cut() -> None:
    line = encode_point(MetricPoint("m", {"v": 1}, {"t": "x" * 5000}, T)).line.decode()
    assert line == f"m,t={'x' * MAX_NAME_BYTES} v=1i {T}"


def test_batch_keeps_good_points_and_names_the_rejected_ones() -> None:
    batch = encode_batch(
        [
            MetricPoint("a", {"v": 1}, {}, T),
            MetricPoint("b", {"v": math.nan}, {}, T),
            MetricPoint("c", {"v": 2}, {}, T),
        ]
    )
    assert batch.lines == [f"a v=1i {T}".encode(), f"c v=2i {T}".encode()]
    assert [(p.measurement, why) for p, why in batch.rejected] == [
        ("b", "b: no field can be written (field 'v' left out: nan is not a finite number)")
    ]


def test_encoding_is_deterministic_whatever_the_dict_order() -> None:
    a = MetricPoint("m", {"x": 1, "y": 2.5}, {"p": "1", "q": "2"}, T)
    b = MetricPoint("m", {"y": 2.5, "x": 1}, {"q": "2", "p": "1"}, T)
    assert encode_point(a) == encode_point(b)
