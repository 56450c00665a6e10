"""Logging: a rotating file in the data directory, and secrets masked in every record."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monitor.config import load_config
from monitor.logs import secret_mask, setup_logging


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        handler.close()
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    secret_mask.update(())


def test_a_substituted_secret_never_reaches_the_log_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restore_logging: None
) -> None:
    token = "s3cr3t-t0ken-value-42"
    monkeypatch.setenv("DW_TEST_TOKEN", token)
    cfg = tmp_path / "site.yaml"
    cfg.write_text(
        "metrics:\n  - kind: influxdb-v1\n    url: http://127.0.0.1:8086\n    database: dw\n"
        "    token: ${DW_TEST_TOKEN}\n",
        encoding="utf-8",
    )
    loaded = load_config(cfg)
    secret_mask.update(loaded.secret_values())
    log_file = setup_logging(tmp_path / "data", "INFO")
    assert log_file == tmp_path / "data" / "logs" / "dialwatch.log"

    log = logging.getLogger("dialwatch.test")
    log.info("connecting with token %s", token)
    log.warning(f"config is {loaded.config!r}")
    try:
        raise RuntimeError(f"server said: bad token {token}")
    except RuntimeError:
        log.exception("write failed")
    for handler in logging.getLogger().handlers:
        handler.flush()

    text = log_file.read_text(encoding="utf-8")
    assert token not in text
    assert "connecting with token ***" in text
    assert "bad token ***" in text


def test_short_values_are_not_masked_so_ordinary_words_survive(restore_logging: None) -> None:
    secret_mask.update(["ok", "abc"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "status ok abc", None, None)
    assert secret_mask.filter(record)
    assert record.getMessage() == "status ok abc"
