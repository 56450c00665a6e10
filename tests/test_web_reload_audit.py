"""``POST /api/v1/reload`` on the running appliance: the ``config.reload`` entry names the
admin's token and client address, with the new config's hash."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from dialwatch.schema import Config as ApplianceConfig
from monitor import audit
from monitor.config import load_config
from monitor.store import queries
from monitor.store.db import open_database
from tests.peers import free_port

PASSWORD = "a long test passphrase"


@pytest.mark.e2e
def test_a_reload_through_the_api_is_audited_as_the_admin_from_their_address(
    tmp_path: Path,
) -> None:
    cfg = tmp_path / "dialwatch.yaml"
    cfg.write_text("targets: []\n", encoding="utf-8")
    first = load_config(cfg, schema=ApplianceConfig).digest
    data = tmp_path / "data"
    output = tmp_path / "dialwatch.out"
    base = [sys.executable, "-m", "dialwatch.cli"]
    where = ["--config", str(cfg), "--data", str(data)]
    port = free_port()

    def entries() -> list[queries.AuditRow]:
        engine = open_database(None, data)
        try:
            return list(queries.audit_entries(engine))
        finally:
            engine.dispose()

    def wait_for(what: str, predicate: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not predicate():
            if time.monotonic() > deadline or proc.poll() is not None:
                raise AssertionError(f"no {what}:\n{output.read_text()[-3000:]}")
            time.sleep(0.1)

    def reload(token: str) -> tuple[int, dict]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/v1/reload",
            method="POST",
            headers={"Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as refused:
            return refused.code, json.load(refused)

    with output.open("wb") as out:
        proc = subprocess.Popen(
            [*base, "run", *where, "--listen", f"127.0.0.1:{port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for("start entry", lambda: any(e.action == "appliance.start" for e in entries()))
        for name, role in (("alice", "admin"), ("otto", "operator")):
            added = subprocess.run(
                [*base, "user", "add", name, "--role", role, *where],
                input=PASSWORD + "\n",
                text=True,
                capture_output=True,
                timeout=60,
            )
            assert added.returncode == 0, added.stderr
        made = {
            name: subprocess.run(
                [*base, "token", "create", "--user", name, *where],
                text=True,
                capture_output=True,
                timeout=60,
                check=True,
            ).stdout.strip()
            for name in ("alice", "otto")
        }
        cfg.write_text("site: {name: NOC}\ntargets: []\n", encoding="utf-8")
        second = load_config(cfg, schema=ApplianceConfig).digest
        assert reload(made["otto"])[0] == 403  # an operator may not
        assert reload(made["alice"]) == (200, {"status": "reloaded"})
        wait_for("reload entry", lambda: any(e.action == "config.reload" for e in entries()))
    finally:
        proc.terminate()
        proc.wait(30)
    (entry,) = [e for e in entries() if e.action == "config.reload"]
    assert (entry.actor, entry.address, entry.result) == ("token:1", "127.0.0.1", "ok")
    assert entry.before == {"digest": first}
    assert entry.after is not None and entry.after["digest"] == second
    assert entry.detail == "via the API"
    engine = open_database(None, data)
    try:
        with engine.connect() as conn:
            assert audit.verify(conn).broken_at is None
    finally:
        engine.dispose()
