"""Runbooks end to end: ``dialwatch run`` as a process, a rule that starts a runbook when a
real TCP service dies, and a kill -9 in the middle of a step.

The service is a listening socket on loopback; closing it makes the tcp probe
fail, the target goes down and an incident opens; the rule's ``run:`` queues the
runbook for that target and incident. Its first step writes the incident id
(rendered, shell-quoted) to a file; its second starts a long command. The
appliance is killed with SIGKILL during the second step and started again:
the run shows ``interrupted`` at that step and nothing is run again by
itself; an operator resumes it through the API, the step runs once more, and
an abort stops it. The incident's timeline tells the whole story.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from monitor.store import queries
from monitor.store.db import open_database
from runbooks import runs
from tests.failover_lab import wait_for
from tests.peers import free_port

ROOT = Path(__file__).resolve().parent.parent


def config(path: Path, port: int, work: Path) -> None:
    path.write_text(
        f"""\
appliance: {{interval: 24h}}
targets:
  - {{id: pbx, kind: tcp, address: "127.0.0.1:{port}", interval: 1s, timeout: 300ms,
      fail_after: 1, recover_after: 1, tags: {{role: pbx}}}}
runbooks:
  - id: react
    name: {{zh-CN: 处置, en: React}}
    emergency_plan: "Call the PBX vendor."
    steps:
      - id: note
        kind: shell
        command: "/bin/sh -c 'echo \\"$1\\" >> {work}/notes' sh {{{{ incident.id }}}}:{{{{ target.id }}}}"
      - id: long
        kind: shell
        timeout: 1h
        command: "/bin/sh -c 'echo started >> {work}/long; exec /bin/sleep 300'"
runbook_settings:
  shell_allow: [/bin/sh]
rules:
  - {{id: pbx-down, when: {{event: opened, tags: {{role: pbx}}}}, run: react}}
""",
        encoding="utf-8",
    )


class Appliance:
    def __init__(self, tmp_path: Path, cfg: Path, web_port: int) -> None:
        self.cfg, self.data, self.web_port = cfg, tmp_path / "data", web_port
        self.log = (tmp_path / "app.log").open("ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dialwatch.cli", "run", "--config", str(self.cfg),
             "--data", str(self.data), "--listen", f"127.0.0.1:{self.web_port}"],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        wait_for("the web server", self.answers)

    def answers(self) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/healthz", timeout=1).read()
            return True
        except OSError:
            return False

    def cli(self, *args: str, stdin: str = "") -> str:
        done = subprocess.run(
            [sys.executable, "-m", "dialwatch.cli", *args, "--config", str(self.cfg),
             "--data", str(self.data)],
            cwd=ROOT, input=stdin, capture_output=True, text=True, check=True, timeout=60,
        )  # fmt: skip
        return done.stdout.strip()

    def api(self, token: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}{path}", method=method,
            data=json.dumps(body).encode() if body is not None else None,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                assert self.proc.wait(30) == 0
            finally:
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()


def the_run(data: Path) -> tuple[runs.RunRow, list[runs.StepRow]] | None:
    engine = open_database(None, data)
    try:
        with engine.connect() as conn:
            found = runs.runs(conn, limit=5)
            return (found[0], runs.steps_of(conn, found[0].id)) if found else None
    finally:
        engine.dispose()


def timeline(data: Path, incident: int) -> list[str]:
    engine = open_database(None, data)
    try:
        with engine.connect() as conn:
            return [e.text for e in queries.incident_events(conn, incident) if e.kind == "runbook"]
    finally:
        engine.dispose()


@pytest.mark.e2e
def test_a_rule_runs_a_runbook_and_a_kill_9_mid_step_leaves_it_interrupted_until_resumed(
    tmp_path: Path,
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    service = socket.create_server(("127.0.0.1", 0))
    port = service.getsockname()[1]
    cfg = tmp_path / "dialwatch.yaml"
    config(cfg, port, work)
    app = Appliance(tmp_path, cfg, free_port())
    app.start()
    try:
        service.close()  # the PBX dies: the probe's connect is refused
        wait_for("the second step", lambda: (work / "long").exists())
        run, steps = the_run(app.data)  # type: ignore[misc]
        assert (run.runbook_id, run.target_id, run.started_by) == ("react", "pbx", "rule:pbx-down")
        assert (work / "notes").read_text() == f"{run.incident_id}:pbx\n"
        assert [s.state for s in steps] == ["succeeded", "running"]
        app.kill()  # kill -9 while the second step runs

        app.start()
        interrupted = wait_for(
            "the run marked interrupted",
            lambda: (r := the_run(app.data)) and r[0].state == "interrupted" and r,
        )
        run, steps = interrupted  # type: ignore[misc]
        assert run.position == 1 and [s.state for s in steps] == ["succeeded", "interrupted"]
        assert (work / "long").read_text() == "started\n"  # nothing re-ran it by itself
        assert any("interrupted at step 2" in line for line in timeline(app.data, run.incident_id))

        app.cli("user", "add", "wang", "--role", "operator", stdin="Tiger-Orbit-Cobalt-42\n")
        token = app.cli("token", "create", "--user", "wang", "--role", "operator")
        status, body = app.api(token, "POST", f"/api/v1/runs/{run.id}/resume")
        assert status == 200, body
        wait_for("the step run again", lambda: (work / "long").read_text() == "started\nstarted\n")
        status, body = app.api(token, "POST", f"/api/v1/runs/{run.id}/abort")
        assert status == 200, body
        done = wait_for(
            "the run aborted", lambda: (r := the_run(app.data)) and r[0].state == "aborted" and r
        )
        status, shown = app.api(token, "GET", f"/api/v1/runs/{run.id}")
        assert status == 200 and shown["state"] == "aborted"
        assert [s["state"] for s in shown["steps"]] == ["succeeded", "interrupted", "aborted"]
        assert done
    finally:
        app.stop()


@pytest.mark.e2e
def test_a_carriers_503_reason_phrase_reaches_a_command_as_one_inert_word(tmp_path: Path) -> None:
    from tests.peers.sipp import sipp_options_uas

    work = tmp_path / "work"
    work.mkdir()
    pwned = tmp_path / "pwned"
    phrase = f"; touch {pwned}"
    cfg = tmp_path / "dialwatch.yaml"
    with sipp_options_uas(tmp_path, code=503, reason=phrase) as carrier:
        cfg.write_text(
            f"""\
appliance: {{interval: 24h}}
targets:
  - {{id: trunk-a, kind: sip, uri: "{carrier.uri}", interval: 1s, timeout: 500ms,
      fail_after: 1, recover_after: 1, tags: {{role: trunk}}}}
runbooks:
  - id: tell
    steps:
      - kind: shell
        command: "/bin/sh -c 'printf %s \\"$1\\" > {work}/said' sh {{{{ target.detail }}}}"
runbook_settings:
  shell_allow: [/bin/sh]
rules:
  - {{id: trunk-down, when: {{event: opened, tags: {{role: trunk}}}}, run: tell}}
""",
            encoding="utf-8",
        )
        app = Appliance(tmp_path, cfg, free_port())
        app.start()
        try:
            said = wait_for("the step's file", lambda: (work / "said").exists() and
                            (work / "said").read_text())  # fmt: skip
            run, steps = wait_for(
                "the run to end", lambda: (r := the_run(app.data)) and r[0].ended_at and r
            )  # type: ignore[misc]
        finally:
            app.stop()
    assert phrase in str(said)  # the whole phrase arrived, as one argument
    assert not pwned.exists()  # and the shell never ran it
    assert run.state == "succeeded" and steps[0].state == "succeeded"
