"""Point enrichment: standard tags, time stamping, the series cap and field types."""

from __future__ import annotations

import logging
import math

import pytest

from core.config import TargetBase
from core.observation import MetricPoint
from monitor.points import (
    Enricher,
    FieldType,
    FieldTypes,
    SeriesLimit,
    enrich,
    tag_points,
    type_of,
)

OBS_TIME = 1_700_000_000.25


def target(**tags: str) -> TargetBase:
    # TargetBase itself, so these tests do not depend on any probe module.
    return TargetBase(id="trunk-a", kind="tcp", tags=tags)


def point(fields: dict, tags: dict | None = None, time_ns: int = 0, m: str = "sip") -> MetricPoint:
    return MetricPoint(m, fields, tags or {}, time_ns)


@pytest.mark.parametrize(
    ("configured", "probe_tags", "expected"),
    [
        pytest.param(
            {},
            {},
            {"target": "trunk-a", "kind": "tcp", "site": "sh-1"},
            id="standard-tags-only",
        ),
        pytest.param(
            {"carrier": "unicom"},
            {"gateway": "gw1"},
            {
                "target": "trunk-a",
                "kind": "tcp",
                "site": "sh-1",
                "carrier": "unicom",
                "gateway": "gw1",
            },
            id="configured-and-probe-tags-are-merged",
        ),
        pytest.param(
            {"mount": "from-config"},
            {"mount": "/var"},
            {"target": "trunk-a", "kind": "tcp", "site": "sh-1", "mount": "/var"},
            id="probe-tag-wins-over-configured-tag",
        ),
        pytest.param(
            {"target": "other", "site": "fake"},
            {"kind": "fake"},
            {"target": "trunk-a", "kind": "tcp", "site": "sh-1"},
            id="standard-tags-cannot-be-overridden",
        ),
    ],
)
def test_points_get_standard_configured_and_probe_tags(configured, probe_tags, expected):
    [tagged] = tag_points([point({"v": 1}, probe_tags)], target(**configured), "sh-1", OBS_TIME)
    assert dict(tagged.tags) == expected


@pytest.mark.parametrize(
    ("time_ns", "expected"),
    [
        pytest.param(0, 1_700_000_000_250_000_000, id="zero-time-takes-the-observation-time"),
        pytest.param(1_600_000_000_000_000_123, 1_600_000_000_000_000_123, id="probe-time-is-kept"),
    ],
)
def test_point_time_comes_from_the_observation_when_the_probe_left_it_zero(time_ns, expected):
    [tagged] = tag_points([point({"v": 1}, time_ns=time_ns)], target(), "s", OBS_TIME)
    assert tagged.time_ns == expected


def test_series_over_the_cap_are_dropped_and_counted_with_one_warning(caplog):
    limit = SeriesLimit(max_series=3)
    first = [point({"v": 1}, {"mount": f"/m{i}"}) for i in range(5)]
    with caplog.at_level(logging.WARNING, logger="monitor.points"):
        kept = limit.admit("t1", first)
        kept_again = limit.admit("t1", first)
    assert [p.tags["mount"] for p in kept] == ["/m0", "/m1", "/m2"]
    assert [p.tags["mount"] for p in kept_again] == ["/m0", "/m1", "/m2"]
    assert limit.dropped("t1") == 4
    assert limit.series_count("t1") == 3
    assert len([r for r in caplog.records if "t1" in r.getMessage()]) == 1


def test_series_cap_is_per_target_and_forget_resets_it():
    limit = SeriesLimit(max_series=1)
    limit.admit("t1", [point({"v": 1}, {"i": "1"})])
    assert limit.admit("t2", [point({"v": 1}, {"i": "2"})]) != []
    assert limit.admit("t1", [point({"v": 1}, {"i": "2"})]) == []
    limit.forget("t1")
    assert limit.admit("t1", [point({"v": 1}, {"i": "2"})]) != []
    assert limit.dropped() == 0


def test_same_tags_in_another_measurement_is_another_series():
    limit = SeriesLimit(max_series=1)
    kept = limit.admit("t", [point({"v": 1}, m="a"), point({"v": 1}, m="b")])
    assert [p.measurement for p in kept] == ["a"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(True, FieldType.BOOL, id="bool-is-not-int"),
        pytest.param(3, FieldType.INT, id="int"),
        pytest.param(3.0, FieldType.FLOAT, id="float"),
        pytest.param("up", FieldType.STR, id="str"),
        pytest.param(math.nan, None, id="nan-is-unstorable"),
        pytest.param(math.inf, None, id="inf-is-unstorable"),
    ],
)
def test_type_of_value(value, expected):
    assert type_of(value) is expected


@pytest.mark.parametrize(
    ("first", "later", "expected"),
    [
        pytest.param(1.5, 2, 2.0, id="int-for-float-field-becomes-float"),
        pytest.param(2, 3.0, 3, id="integral-float-for-int-field-becomes-int"),
        pytest.param(2, 3.5, None, id="fractional-float-for-int-field-is-dropped"),
        pytest.param(1.5, "fast", None, id="string-for-numeric-field-is-dropped"),
        pytest.param(2, True, None, id="bool-for-int-field-is-dropped"),
        pytest.param(True, 1, None, id="int-for-bool-field-is-dropped"),
        pytest.param("up", 1, None, id="number-for-string-field-is-dropped"),
        pytest.param(1.5, math.nan, None, id="nan-for-float-field-is-dropped"),
        pytest.param(7, 8, 8, id="int-stays-int"),
    ],
)
def test_field_keeps_the_type_it_first_had(first, later, expected):
    types = FieldTypes()
    types.apply([point({"f": first})])
    out = types.apply([point({"f": later, "other": 1})])
    if expected is None:
        assert "f" not in out[0].fields
        assert types.counts.dropped == 1
    else:
        assert out[0].fields["f"] == expected
        assert type(out[0].fields["f"]) is type(expected)
        assert types.counts.dropped == 0


def test_point_left_without_fields_is_dropped():
    types = FieldTypes({("sip", "rtt_ms"): "float"})
    assert types.apply([point({"rtt_ms": "slow"})]) == []
    assert types.counts.dropped == 1


def test_field_types_are_per_measurement():
    types = FieldTypes()
    out = types.apply([point({"v": 1}, m="a"), point({"v": "x"}, m="b")])
    assert [dict(p.fields) for p in out] == [{"v": 1}, {"v": "x"}]
    assert types.known() == {("a", "v"): FieldType.INT, ("b", "v"): FieldType.STR}


def test_seeded_types_survive_like_a_restart():
    types = FieldTypes({("sip", "rtt_ms"): FieldType.FLOAT})
    [p] = types.apply([point({"rtt_ms": 12})])
    assert p.fields["rtt_ms"] == 12.0 and isinstance(p.fields["rtt_ms"], float)


def test_enricher_tags_types_and_caps_together():
    enricher = Enricher(max_series_per_target=2)
    tgt = target(carrier="ct")
    enricher.enrich([point({"rtt_ms": 1.5}, {"gw": "a"})], tgt, "site", OBS_TIME)
    out = enricher.enrich(
        [
            point({"rtt_ms": 2}, {"gw": "a"}),
            point({"rtt_ms": 3.0}, {"gw": "b"}),
            point({"rtt_ms": 4.0}, {"gw": "c"}),
        ],
        tgt,
        "site",
        OBS_TIME,
    )
    assert [(p.tags["gw"], p.fields["rtt_ms"]) for p in out] == [("a", 2.0), ("b", 3.0)]
    assert all(p.tags["carrier"] == "ct" and p.tags["target"] == "trunk-a" for p in out)
    assert enricher.dropped() == 1


def test_module_enrich_uses_the_given_enricher():
    enricher = Enricher(max_series_per_target=1)
    out = enrich(
        [point({"v": 1}, {"i": "1"}), point({"v": 1}, {"i": "2"})],
        target(),
        "s",
        OBS_TIME,
        enricher,
    )
    assert len(out) == 1 and enricher.series_limit.dropped("trunk-a") == 1
