"""The dialer probe's pure parts: outcome classification, KPI formulas, judging, config errors."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.observation import ErrorClass, Status
from probes.dialer.cdr import BadRow, CallReader, WindowSample, cap_trunks
from probes.dialer.config import DEFAULT_TRUNK_PATTERN, AbandonRule, DialerTarget
from probes.dialer.evaluate import evaluate
from probes.dialer.kpi import Counts, Kpis, Outcome, classify, classify_cause, kpis, percent

A, C, S = Outcome.ANSWERED, Outcome.CALLEE, Outcome.SYSTEM


@pytest.mark.parametrize(
    ("cause", "expected"),
    [
        (1, C), (3, C), (16, C), (17, C), (18, C), (19, C), (21, C), (27, C), (28, C), (31, C),
        (34, S), (38, S), (41, S), (42, S), (44, S), (47, S), (50, S), (58, S), (63, S),
        (88, S), (102, S), (111, S), (127, S),
        (404, C), (408, C), (480, C), (486, C), (487, C), (600, C), (603, C), (604, C),
        (403, S), (407, S), (488, S), (500, S), (502, S), (503, S), (504, S), (606, S),
        (0, None), (-1, None), (128, None), (200, None), (399, None), (700, None),
    ],
)  # fmt: skip
def test_hangup_causes_map_to_callee_or_system_loss(cause: int, expected: Outcome | None):
    assert classify_cause(cause) is expected


@pytest.mark.parametrize(
    ("disposition", "cause", "expected"),
    [
        pytest.param("ANSWERED", None, A, id="answered"),
        pytest.param("ANSWERED", 34, A, id="answered-wins-over-a-failure-cause"),
        pytest.param("answered ", None, A, id="case-and-space-do-not-matter"),
        pytest.param("NO ANSWER", None, C, id="no-answer"),
        pytest.param("NOANSWER", None, C, id="dialstatus-no-answer"),
        pytest.param("BUSY", None, C, id="busy"),
        pytest.param("CANCEL", None, C, id="cancel"),
        pytest.param("FAILED", None, S, id="failed"),
        pytest.param("CONGESTION", None, S, id="congestion"),
        pytest.param("CHANUNAVAIL", None, S, id="chanunavail"),
        pytest.param("FAILED", 1, C, id="failed-unallocated-number-is-the-callee"),
        pytest.param("FAILED", 16, C, id="failed-normal-clearing-is-the-callee"),
        pytest.param("NO ANSWER", 38, S, id="no-answer-network-out-of-order-is-system"),
        pytest.param("NO ANSWER", 503, S, id="no-answer-sip-503-is-system"),
        pytest.param("BUSY", 0, C, id="cause-zero-means-no-cause"),
        pytest.param("CONGESTION", 200, S, id="meaningless-cause-falls-back"),
        pytest.param("MAYBE", None, None, id="unknown-disposition"),
        pytest.param("", None, None, id="empty-disposition"),
    ],
)
def test_a_cdr_row_outcome_comes_from_disposition_refined_by_cause(
    disposition: str, cause: int | None, expected: Outcome | None
):
    assert classify(disposition, cause) is expected


def k(**counts: float) -> Counts:
    return Counts(**counts)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("counts", "window", "expected"),
    [
        pytest.param(
            k(attempts=100, answered=40, callee_lost=50, system_lost=10, abandoned=2, billsec=2400),
            900,
            Kpis(100, 40, 60, 10, 50, 2, 60.0, 10.0, 50.0, 40.0, 60.0, 5.0, 100 / 15),
            id="typical-window",
        ),
        pytest.param(
            k(),
            900,
            Kpis(0, 0, 0, 0, 0, 0, None, None, None, None, None, None, 0.0),
            id="no-attempts-no-rates",
        ),
        pytest.param(
            k(attempts=8, callee_lost=5, system_lost=3),
            60,
            Kpis(8, 0, 8, 3, 5, 0, 100.0, 37.5, 62.5, 0.0, None, None, 8.0),
            id="nothing-answered-no-acd-no-abandon-rate",
        ),
        pytest.param(
            k(attempts=3, answered=3, abandoned=3, billsec=6),
            300,
            Kpis(3, 3, 0, 0, 0, 3, 0.0, 0.0, 0.0, 100.0, 2.0, 100.0, 0.6),
            id="all-answered-all-abandoned",
        ),
    ],
)
def test_window_kpis_follow_their_formulas(counts: Counts, window: float, expected: Kpis):
    assert kpis(counts, window) == expected


def test_loss_splits_into_system_and_callee_parts_that_add_up():
    result = kpis(k(attempts=7, answered=2, callee_lost=3, system_lost=2, billsec=10), 900)
    assert result.loss_rate == pytest.approx(result.system_loss_rate + result.callee_loss_rate)
    assert result.asr + result.loss_rate == pytest.approx(100.0)


def test_percent_of_nothing_is_no_value():
    assert percent(0, 0) is None and percent(1, 4) == 25.0


def test_counts_survive_their_compact_json_form():
    c = k(attempts=9, answered=4, callee_lost=3, system_lost=2, abandoned=1, billsec=12.5)
    assert Counts.from_list(c.to_list()) == c
    with pytest.raises(ValueError, match="expected 6 counters, got 2"):
        Counts.from_list([1, 2])


@pytest.mark.parametrize(
    ("lastapp", "billsec", "disposition", "rule", "abandoned"),
    [
        pytest.param("Queue", "5", "ANSWERED", AbandonRule(), True, id="queue-short"),
        pytest.param("queue", "0", "ANSWERED", AbandonRule(), True, id="case-insensitive"),
        pytest.param("Queue", "6", "ANSWERED", AbandonRule(), False, id="queue-long-had-an-agent"),
        pytest.param("Playback", "2", "ANSWERED", AbandonRule(), False, id="not-a-queue"),
        pytest.param("Queue", "0", "NO ANSWER", AbandonRule(), False, id="not-answered"),
        pytest.param(
            "DROP", "40", "ANSWERED",
            AbandonRule(column="userfield", values=["DROP"], max_billsec=None), True,
            id="marker-column-any-length",
        ),
        pytest.param("Queue", "1", "ANSWERED", None, False, id="abandon-not-measured"),
    ],
)  # fmt: skip
def test_an_answered_row_is_abandoned_by_the_configured_rule(
    lastapp: str, billsec: str, disposition: str, rule: AbandonRule | None, abandoned: bool
):
    reader = CallReader.from_config(r"^PJSIP/(.+)-[0-9a-f]+$", rule)
    call = reader.read("PJSIP/trunk-a-0000001b", disposition, billsec, None, lastapp)
    assert call.abandoned is abandoned and call.trunk == "trunk-a"


@pytest.mark.parametrize(
    ("channel", "trunk"),
    [
        ("PJSIP/trunk-a-0000001b", "trunk-a"),
        ("SIP/carrier-x-00a1", "carrier-x"),
        ("IAX2/iax-peer-1f", "iax-peer"),
        ("Local/100@from-dialer-0001;2", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
    ],
)
def test_the_trunk_name_is_cut_out_of_the_channel(channel: str | None, trunk: str):
    reader = CallReader.from_config(DEFAULT_TRUNK_PATTERN, None)
    assert reader.trunk(channel) == trunk


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ((None, "ANSWERED", "3"), None),
        (("PJSIP/a-1", None, "3"), "no disposition"),
        (("PJSIP/a-1", "ANSWERED", None), "no billsec"),
        (("PJSIP/a-1", "ANSWERED", " "), "no billsec"),
        (("PJSIP/a-1", "ANSWERED", "abc"), "billsec 'abc' is not a number"),
        (("PJSIP/a-1", "ANSWERED", "-4"), "billsec '-4' is not a number of seconds"),
        (("PJSIP/a-1", "WHO KNOWS", "3"), "unknown disposition 'WHO KNOWS'"),
    ],
)
def test_unreadable_rows_say_why(values: tuple[str | None, ...], reason: str | None):
    reader = CallReader.from_config(r"^PJSIP/(.+)-\d+$", AbandonRule())
    if reason is None:
        reader.read(*values)
        return
    with pytest.raises(BadRow) as info:
        reader.read(*values)
    assert str(info.value) == reason


def test_trunks_beyond_the_limit_are_summed_as_other_busiest_kept():
    trunks = {
        "a": k(attempts=5, answered=5),
        "b": k(attempts=50, answered=10, callee_lost=40),
        "c": k(attempts=5, system_lost=5),
        "other": k(attempts=1, callee_lost=1),
    }
    capped = cap_trunks(trunks, 2)
    assert set(capped) == {"b", "other"}
    assert capped["other"] == k(attempts=11, answered=5, callee_lost=1, system_lost=5)
    assert cap_trunks(trunks, 10) == trunks


# -- judging -------------------------------------------------------------------


def target(**extra: object) -> DialerTarget:
    return DialerTarget.model_validate(
        {"id": "d", "kind": "dialer", "source": {"type": "csv", "path": "/x.csv"}, **extra}
    )


def sample(window: float = 900, **trunks: Counts) -> WindowSample:
    return WindowSample(trunks=trunks, window_seconds=window)


def judge(t: DialerTarget, s: WindowSample):
    return evaluate(s, t.thresholds, t.min_attempts, t.max_trunks)


def healthy(n: int) -> Counts:
    return k(attempts=n, answered=n // 2, callee_lost=n - n // 2, billsec=60.0 * (n // 2))


@pytest.mark.parametrize(
    ("attempts", "status"),
    [(19, Status.OK), (20, Status.FAIL)],
    ids=["below-min-attempts-not-judged", "at-min-attempts-judged"],
)
def test_a_trunk_is_judged_only_with_enough_attempts(attempts: int, status: Status):
    t = target(thresholds={"system_loss_rate": {"warn": None, "fail": 50}})
    obs = judge(t, sample(good=healthy(400), dead=k(attempts=attempts, system_lost=attempts)))
    assert obs.status is status
    if status is Status.FAIL:
        assert obs.error_class is ErrorClass.THRESHOLD
        assert obs.detail.startswith(
            f"trunk dead system loss rate at 100% (fail above 50%) over {attempts} attempts; "
        )


def test_a_value_equal_to_the_limit_is_not_a_crossing():
    t = target(thresholds={"system_loss_rate": {"warn": 10, "fail": None}})
    obs = judge(t, sample(a=k(attempts=100, answered=90, system_lost=10, billsec=900)))
    assert obs.status is Status.OK


def test_the_overall_rate_is_judged_too():
    t = target(thresholds={"asr": {"warn": 30}})
    obs = judge(t, sample(a=healthy(10), b=k(attempts=30, callee_lost=30)))
    assert obs.status is Status.WARN
    assert obs.detail.startswith(
        "trunk b ASR at 0% (warn below 30%) over 30 attempts; ASR at 12.5%"
    )


def test_calls_per_minute_below_the_limit_warns():
    t = target(thresholds={"calls_per_minute": {"warn": 10}})
    obs = judge(t, sample(a=healthy(90)))
    assert obs.status is Status.WARN
    assert obs.detail.startswith("call rate at 6 calls/min (warn below 10 calls/min); 90 attempts")


def test_abandon_rate_is_not_judged_when_not_measured():
    t = target(source={"type": "csv", "path": "/x.csv", "abandon": None})
    obs = evaluate(
        sample(a=k(attempts=50, answered=50, abandoned=50, billsec=10)),
        t.thresholds,
        t.min_attempts,
        t.max_trunks,
        measure_abandon=False,
    )
    assert obs.status is Status.OK and "abandon" not in obs.detail


def test_default_abandon_limit_follows_the_three_percent_rule():
    obs = judge(target(), sample(a=k(attempts=100, answered=100, abandoned=4, billsec=6000)))
    assert obs.status is Status.FAIL
    assert obs.detail.startswith("trunk a abandon rate at 4% (fail above 3%) over 100 attempts")


def test_points_have_fixed_types_and_leave_out_rates_without_a_denominator():
    obs = judge(target(), sample(a=healthy(40), b=k()))
    overall = next(p for p in obs.metrics if p.measurement == "dialer")
    assert isinstance(overall.fields["attempts"], int) and isinstance(overall.fields["asr"], float)
    b = next(p for p in obs.metrics if p.tags.get("trunk") == "b")
    assert "asr" not in b.fields and b.fields["attempts"] == 0
    assert b.fields["calls_per_minute"] == 0.0


# -- configuration ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "extra", "message"),
    [
        pytest.param({"type": "csv", "path": "/x", "trunk_pattern": "(unclosed"}, {},
                     "not a regular expression", id="bad-pattern"),
        pytest.param({"type": "csv", "path": "/x", "trunk_pattern": "^PJSIP/.+$"}, {},
                     "needs a group for the trunk name", id="pattern-without-group"),
        pytest.param({"type": "csv", "path": "/x", "timezone": "Mars/Olympus"}, {},
                     "unknown timezone 'Mars/Olympus'", id="bad-timezone"),
        pytest.param({"type": "sql", "dsn": "sqlite://", "table": "cdr; drop table x"}, {},
                     "must be a table name like cdr or asterisk.cdr", id="bad-table"),
        pytest.param({"type": "sql", "dsn": "sqlite://", "columns": {"billsec": "bill sec"}}, {},
                     "billsec: 'bill sec' is not a column name", id="bad-column"),
        pytest.param({"type": "csv", "path": "/x", "columns": {"hangupcause": "cause"}}, {},
                     "cause not among fields", id="csv-column-not-a-field"),
        pytest.param({"type": "csv", "path": "/x"}, {"thresholds": {"loss": {"warn": 1}}},
                     "unknown metric 'loss'; allowed: abandon_rate, acd, asr", id="unknown-metric"),
        pytest.param({"type": "csv", "path": "/x"},
                     {"thresholds": {"system_loss_rate": {"warn": 20, "fail": 10}}},
                     "system_loss_rate: warn (20) must not be above fail (10)", id="warn-above-fail"),
        pytest.param({"type": "ftp", "path": "/x"}, {}, "does not match any of the expected tags",
                     id="unknown-source-type"),
    ],
)  # fmt: skip
def test_a_bad_dialer_config_is_an_error_saying_why(
    source: dict[str, object], extra: dict[str, object], message: str
):
    with pytest.raises(ValidationError) as info:
        DialerTarget.model_validate({"id": "d", "kind": "dialer", "source": source, **extra})
    assert message in str(info.value)


def test_defaults_watch_system_loss_and_abandon_rate_only():
    t = target()
    assert t.window == 900 and t.interval == 60 and t.min_attempts == 20
    assert t.thresholds["system_loss_rate"].fail == 15
    assert t.thresholds["abandon_rate"].fail == 3
    assert t.thresholds["loss_rate"].off and t.thresholds["asr"].off


def test_a_literal_dsn_password_never_shows_in_repr():
    t = target(source={"type": "sql", "dsn": "mysql+pymysql://cdr:s3cr3t-pw@db:3306/asteriskcdrdb"})
    text = repr(t)
    assert "s3cr3t-pw" not in text and "mysql+pymysql://cdr:***@db:3306/asteriskcdrdb" in text


def test_the_cdr_window_examples_in_the_docs_are_valid_targets():
    import re
    from pathlib import Path

    import yaml

    doc = (Path(__file__).resolve().parent.parent / "docs/probes/dialer.md").read_text()
    section = doc[doc.index("## Call outcomes over a window") : doc.index("## Queues, live")]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.DOTALL)
    assert len(blocks) == 2
    for block in blocks:
        text = re.sub(r"\$\{file:[^}]*\}", "postgresql+psycopg://u@h/cdr", block)
        for item in yaml.safe_load(text)["targets"]:
            DialerTarget.model_validate(item)


def test_a_dsn_from_the_environment_is_a_secret_in_the_loaded_config(tmp_path):
    from monitor.config import load_config

    path = tmp_path / "site.yaml"
    path.write_text(
        "targets:\n"
        "  - id: dialer-calls\n"
        "    kind: dialer\n"
        "    source:\n"
        "      type: sql\n"
        "      dsn: ${CDR_DSN}\n"
    )
    loaded = load_config(path, env={"CDR_DSN": "postgresql+psycopg://cdr:hunter2-pw@db/asterisk"})
    (t,) = [t for t in loaded.config.targets if t.id == "dialer-calls"]
    assert t.source.dsn == "postgresql+psycopg://cdr:hunter2-pw@db/asterisk"
    assert "hunter2-pw" not in repr(loaded.config) and "hunter2-pw" not in str(loaded.redacted())


def test_an_unknown_source_key_names_the_file_line_and_key(tmp_path):
    from monitor.config import load_config
    from monitor.config.errors import ConfigError

    path = tmp_path / "site.yaml"
    path.write_text(
        "targets:\n"
        "  - id: dialer-csv\n"
        "    kind: dialer\n"
        "    source:\n"
        "      type: csv\n"
        "      path: /var/log/asterisk/cdr-csv/Master.csv\n"
        "      tail: yes\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:7: targets[0].source.tail: unknown key" in str(info.value)


def test_a_value_just_over_the_limit_does_not_read_as_the_limit():
    obs = judge(target(), sample(a=k(attempts=99, answered=99, abandoned=3, billsec=990)))
    assert obs.detail.startswith("trunk a abandon rate at 3.03% (fail above 3%) over 99 attempts")


@pytest.mark.parametrize(
    ("read", "skipped", "status"),
    [(1, 1, Status.WARN), (2, 2, Status.WARN), (3, 3, Status.FAIL), (10, 9, Status.WARN)],
    ids=["one-garbled-row", "two-garbled-rows", "three-and-nothing-readable", "one-readable"],
)
def test_only_a_poll_with_nothing_readable_blames_the_layout(
    read: int, skipped: int, status: Status
):
    s = WindowSample(
        {}, 900, skipped=skipped, skipped_example="row at byte 0: no billsec", read_rows=read
    )
    obs = judge(target(), s)
    assert obs.status is status and obs.error_class is ErrorClass.PROTOCOL
    assert obs.detail.startswith("none of the") is (status is Status.FAIL)


def test_more_than_four_crossings_are_summed_up():
    t = target(thresholds={"asr": {"warn": 90}})
    obs = judge(t, sample(**{f"t{i}": healthy(40) for i in range(6)}))
    assert "; 3 more limits crossed; " in obs.detail  # 6 trunks + overall = 7, 4 shown
