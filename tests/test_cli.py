"""The dialwatch command line, run as a real subprocess."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from dialwatch.options import resolve_data_dir

REPO = Path(__file__).resolve().parent.parent


def dialwatch(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialwatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_probe_json_prints_the_observation_of_one_target(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"targets:\n  - id: crm\n    kind: tcp\n    address: 127.0.0.1:{port}\n",
            encoding="utf-8",
        )
        out = dialwatch("probe", "--config", str(cfg), "crm", "--json")
    assert out.returncode == 0, out.stderr
    obs = json.loads(out.stdout)
    assert obs["status"] == "ok"
    assert obs["latency"] > 0
    assert obs["detail"].startswith("connected in")
    assert obs["metrics"][0]["measurement"] == "tcp"
    assert obs["metrics"][0]["fields"]["connect_ms"] > 0


def test_probe_of_a_dead_target_exits_1_with_a_human_reason(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        cfg = tmp_path / "c.yaml"
        cfg.write_text(
            f"targets:\n  - id: crm\n    kind: tcp\n    address: 127.0.0.1:{port}\n",
            encoding="utf-8",
        )
        out = dialwatch("probe", "--config", str(cfg), "crm")
    assert out.returncode == 1
    assert "FAIL" in out.stdout and "connection refused" in out.stdout


def test_probe_of_an_unknown_target_names_the_known_ones(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "targets:\n  - id: crm\n    kind: tcp\n    address: 127.0.0.1:1\n", encoding="utf-8"
    )
    out = dialwatch("probe", "--config", str(cfg), "nope")
    assert out.returncode == 2
    assert "no target with id 'nope'; known: crm" in out.stderr


@pytest.mark.parametrize(
    ("text", "code", "expected"),
    [
        ("targets:\n  - id: a\n    kind: tcp\n    address: 127.0.0.1:1\n", 0, "OK: 1 targets"),
        (
            "targets:\n  - id: a\n    kind: tcp\n    address: 127.0.0.1:1\n    interval: soon\n",
            2,
            "c.yaml:5: targets[0].interval: must be a duration like 10s",
        ),
    ],
    ids=["valid-exits-0", "invalid-exits-2-naming-file-line-key"],
)
def test_check_config_exit_codes(tmp_path: Path, text: str, code: int, expected: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text, encoding="utf-8")
    out = dialwatch("check-config", str(cfg))
    assert out.returncode == code
    assert expected in (out.stdout + out.stderr)


def test_the_starter_config_is_valid() -> None:
    out = dialwatch("check-config", str(REPO / "config" / "dialwatch.yaml"))
    assert out.returncode == 0, out.stderr


def test_run_refuses_a_public_listener_that_names_no_host(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("targets: []\n", encoding="utf-8")
    out = dialwatch(
        "run", "--config", str(cfg), "--data", str(tmp_path / "d"), "--listen", "0.0.0.0:0"
    )
    assert out.returncode == 2
    assert "needs web.base_url (or web.allowed_hosts)" in out.stderr


def test_data_dir_comes_from_the_flag_then_the_environment_then_the_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIALWATCH_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(str(tmp_path / "flag"), str(tmp_path / "cfg")) == tmp_path / "flag"
    assert resolve_data_dir(None, str(tmp_path / "cfg")) == tmp_path / "env"
    monkeypatch.delenv("DIALWATCH_DATA")
    assert resolve_data_dir(None, str(tmp_path / "cfg")) == tmp_path / "cfg"
