"""The ``ssh`` runbook step: config, dry-run text, and real commands on a real OpenSSH sshd.

Every command runs on ``sshd`` started by ``tests/peers/sshd.py`` on this
machine, so what the step did on the "host" (a file it should not have made,
a process it should have stopped) is checked here directly. Timeouts are
real: a step given 2 s is stopped at 2 s by its ``ctx.deadline``.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from pydantic import ValidationError

from core.clock import SYSTEM_CLOCK
from core.net.ssh import SshPool
from probes.server.ssh import SHARED_KEY
from runbooks import template
from runbooks.steps.base import StepContext, StepFailed, StepResult, StepServices
from runbooks.steps.ssh import SshStep, SshStepConfig, remote_command, remote_limit
from tests.peers import free_port
from tests.peers.sshd import SshdServer, keygen, sshd_factory, sshd_server

__all__ = ["sshd_factory", "sshd_server"]  # fixtures used by name


def config(**fields: Any) -> SshStepConfig:
    return SshStepConfig.model_validate({"kind": "ssh", **fields})


def login(server: SshdServer, known_hosts: Path, **more: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "key_file": str(server.client_key),
        "known_hosts": str(known_hosts),
        **more,
    }


@pytest.fixture
def services() -> Iterator[StepServices]:
    given = StepServices()
    yield given
    asyncio.run(given.shared.aclose())


@pytest.fixture
def known(sshd_server: SshdServer, tmp_path: Path) -> Path:
    return sshd_server.write_known_hosts(tmp_path / "known_hosts")


def context(services: StepServices, timeout: float = 20.0) -> StepContext:
    return StepContext(
        run_id=1,
        runbook_id="restart-asterisk",
        position=0,
        target_id="pbx-host",
        incident_id=None,
        started_by="test",
        deadline=SYSTEM_CLOCK.monotonic() + timeout,
        clock=SYSTEM_CLOCK,
        services=services,
        log=lambda _line: None,
    )


def run(step_config: SshStepConfig, services: StepServices, timeout: float = 20.0) -> StepResult:
    return asyncio.run(SshStep(step_config).run(context(services, timeout)))


def fails(step_config: SshStepConfig, services: StepServices, timeout: float = 20.0) -> StepFailed:
    with pytest.raises(StepFailed) as raised:
        run(step_config, services, timeout)
    return raised.value


def rendered(command: str, values: dict[str, Any]) -> str:
    """The command as the engine hands it to the step (SHELL: values shell-quoted)."""
    assert "command" in SshStepConfig.SHELL
    return template.render(command, values, shell=True)


def gone(pid: int, within: float) -> bool:
    """True once no live process has ``pid`` (a zombie counts as gone)."""
    until = time.monotonic() + within
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        if time.monotonic() >= until:
            return False
        time.sleep(0.05)


def read_pid(path: Path) -> int:
    until = time.monotonic() + 5
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < until, f"the command never wrote {path}"
        time.sleep(0.05)
    return int(path.read_text())


# -- config and plan --------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"host": "h", "user": "u", "command": "true"}, "give key_file or password",
                     id="no-credentials"),
        pytest.param({"host": "h", "user": "u", "password": "p", "command": "  "},
                     "must be a command line", id="blank-command"),
        pytest.param({"host": "h", "user": "u", "password": "p", "command": "echo {{ x"},
                     "template: unexpected end of template", id="broken-template"),
        pytest.param({"host": "h", "user": "u", "password": "p", "command": "x",
                      "expect_exit": 256}, "less than or equal to 255", id="exit-above-255"),
        pytest.param({"host": "h", "user": "u", "password": "p", "command": "x",
                      "expect_exit": []}, "at least 1 item", id="no-exit-codes"),
        pytest.param({"host": "h", "user": "u", "password": "p", "command": "x",
                      "expect_output": "(unclosed"}, "is not a valid regular expression",
                     id="bad-expect-output"),
        pytest.param({"host": "h", "user": "u", "password": "p", "command": "x",
                      "refuse_output": "*"}, "is not a valid regular expression",
                     id="bad-refuse-output"),
        pytest.param({"host": "two words", "user": "u", "password": "p", "command": "x"},
                     "must not be empty or contain spaces", id="host-with-space"),
        pytest.param({"host": "h", "user": "u", "password": "p", "command": "x", "sudo": True},
                     "Extra inputs are not permitted", id="no-sudo-key"),
    ],
)  # fmt: skip
def test_a_bad_ssh_step_is_rejected_with_a_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        config(**fields)
    assert message in str(raised.value)


def test_defaults_are_strict_host_keys_and_exit_zero_and_one_code_becomes_a_list() -> None:
    c = config(host="h", user="u", key_file="/k", command="true")
    assert (c.host_key_policy, c.known_hosts, c.expect_exit, c.timeout) == (
        "strict", "~/.ssh/known_hosts", [0], 60.0,
    )  # fmt: skip
    assert config(host="h", user="u", key_file="/k", command="x", expect_exit=3).expect_exit == [3]
    # A host may come from the run's values; it is checked again once rendered.
    assert config(host="{{ target.host }}", user="u", key_file="/k", command="x").host


def test_the_plan_shows_host_and_command_but_never_the_password() -> None:
    c = config(
        host="10.0.0.21",
        user="ops",
        key_file="/etc/dialwatch/ssh/id_ed25519",
        password="hunter2-secret",
        passphrase="phrase-secret",
        command=rendered("asterisk -rx {{ cli }}", {"cli": "core restart when convenient"}),
        expect_exit=[0, 3],
        expect_output="restart",
        timeout="30s",
    )
    lines = SshStep(c).plan()
    shown = "\n".join(lines)
    assert lines == [
        "ssh ops@10.0.0.21:22: asterisk -rx 'core restart when convenient'",
        "  login: key /etc/dialwatch/ssh/id_ed25519, then password (not shown); host key "
        "strict, known_hosts ~/.ssh/known_hosts",
        "  expect exit 0 or 3, stdout matches /restart/",
        "  stopped on the host at the 30s timeout (timeout: TERM, then KILL 2s later)",
    ]
    assert "hunter2" not in shown + repr(c) and "phrase-secret" not in shown + repr(c)


def test_the_command_reaches_the_host_under_timeout_with_no_input() -> None:
    assert remote_command("echo 'a b'; exit 3", 1.5) == (
        "exec timeout -s TERM -k 2 1.50 sh -c 'echo '\"'\"'a b'\"'\"'; exit 3' </dev/null"
    )
    # Kept back for the shell to start and the exit status to come back: 10 %, 0.5-2 s.
    assert remote_limit(60.0) == 58.0
    assert remote_limit(10.0) == 9.0
    assert remote_limit(2.0) == 1.5
    assert remote_limit(0.6) == 0.3  # never more than half


# -- against sshd -------------------------------------------------------------------


@pytest.mark.peer
def test_a_command_succeeds_with_its_output_and_exit_code(
    sshd_server: SshdServer, known: Path, services: StepServices
) -> None:
    c = config(**login(sshd_server, known), command="echo out-line; echo err-line >&2; exit 3",
               expect_exit=[0, 3])  # fmt: skip
    result = run(c, services)
    assert result.summary.startswith(
        f"exit 3 on {sshd_server.user}@127.0.0.1:{sshd_server.port} in "
    )
    assert result.summary.endswith(": out-line")
    assert result.output == "out-line\nerr-line\n"
    assert result.data == {"exit_code": 3, "stdout": "out-line\n", "stderr": "err-line\n"}


@pytest.mark.peer
def test_an_unexpected_exit_code_fails_with_the_code_and_the_output(
    sshd_server: SshdServer, known: Path, services: StepServices
) -> None:
    c = config(
        **login(sshd_server, known), command="echo restarting; echo 'no such unit' >&2; exit 5"
    )
    failed = fails(c, services)
    assert failed.reason == (
        f"exit 5 on {sshd_server.user}@127.0.0.1:{sshd_server.port} (expected 0): no such unit"
    )
    assert failed.output == "restarting\nno such unit\n"
    assert failed.retry


@pytest.mark.peer
def test_expect_output_must_match_stdout_and_its_groups_are_data(
    sshd_server: SshdServer, known: Path, services: StepServices
) -> None:
    matching = config(**login(sshd_server, known), command="printf '12 active calls\\n'",
                      expect_output=r"(?P<calls>\d+) active calls?")  # fmt: skip
    assert run(matching, services).data["match"] == {"calls": "12"}
    missing = config(**login(sshd_server, known), command="echo 'no calls'; echo '12 active calls' >&2",
                     expect_output=r"\d+ active calls")  # fmt: skip
    failed = fails(missing, services)
    assert failed.reason.startswith(
        f"the output on {sshd_server.user}@127.0.0.1:{sshd_server.port} does not match "
        r"expect_output /\d+ active calls/ (exit 0)"
    )
    assert "no calls" in failed.output


@pytest.mark.peer
def test_refuse_output_fails_on_a_match_in_stdout_or_stderr(
    sshd_server: SshdServer, known: Path, services: StepServices
) -> None:
    c = config(**login(sshd_server, known), command="echo fine; echo 'ERROR: reload failed' >&2",
               refuse_output="ERROR.*")  # fmt: skip
    failed = fails(c, services)
    assert failed.reason == (
        f"the output on {sshd_server.user}@127.0.0.1:{sshd_server.port} has 'ERROR: reload "
        "failed', which refuse_output /ERROR.*/ refuses"
    )


@pytest.mark.peer
@pytest.mark.parametrize(
    "hostile",
    [
        pytest.param("busy; touch {pwned}", id="semicolon"),
        pytest.param("$(touch {pwned})", id="command-substitution"),
        pytest.param("`touch {pwned}`", id="backticks"),
        pytest.param("x' ; touch {pwned} ; echo '", id="closing-quote"),
        pytest.param("x && touch {pwned} | cat > /dev/null", id="and-pipe"),
        pytest.param("a\ntouch {pwned}", id="newline"),
    ],
)
def test_a_value_with_shell_syntax_rendered_into_the_command_is_inert(
    sshd_server: SshdServer, known: Path, services: StepServices, tmp_path: Path, hostile: str
) -> None:
    pwned = tmp_path / "pwned"
    value = hostile.format(pwned=pwned)
    command = rendered("echo {{ params.reason }}", {"params": {"reason": value}})
    result = run(config(**login(sshd_server, known), command=command), services)
    assert result.data["stdout"] == value + "\n"  # one word, printed as it came
    assert not pwned.exists()


@pytest.mark.peer
def test_a_hanging_command_is_stopped_at_its_timeout_and_gone_from_the_host(
    sshd_server: SshdServer, known: Path, services: StepServices, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    c = config(**login(sshd_server, known), command=f"echo $$ > {pid_file}; exec sleep 300",
               timeout="2s")  # fmt: skip
    started = time.monotonic()
    failed = fails(c, services, timeout=2.0)
    took = time.monotonic() - started
    assert took < 2.0, "the host's timeout stops it before the step's deadline"
    assert re.fullmatch(
        f"the command on {sshd_server.user}@127.0.0.1:{sshd_server.port} did not finish "
        r"before the step's timeout: stopped on the host after 1\.\ds \(timeout: TERM, then "
        r"KILL 2s later\)",
        failed.reason,
    ), failed.reason
    assert failed.retry
    pid = read_pid(pid_file)
    assert gone(pid, within=1.0), f"sleep 300 (pid {pid}) still runs on the host"
    assert (
        sshd_server.process is not None and sshd_server.process.poll() is None
    )  # not sshd's doing


@pytest.mark.peer
def test_a_command_that_ignores_term_is_killed_on_the_host_after_the_deadline(
    sshd_server: SshdServer, known: Path, services: StepServices, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    # An ignored signal stays ignored across exec: sleep ignores TERM too.
    c = config(**login(sshd_server, known),
               command=f"trap '' TERM; echo $$ > {pid_file}; exec sleep 300")  # fmt: skip
    started = time.monotonic()
    failed = fails(c, services, timeout=1.5)
    assert time.monotonic() - started < 2.5
    assert failed.reason.startswith(
        f"SSH: a command on 127.0.0.1:{sshd_server.port} did not finish within"
    ), failed.reason
    assert failed.reason.endswith("the host's timeout stops it (KILL at most 2s after TERM)")
    pid = read_pid(pid_file)
    assert gone(pid, within=4.0), f"sleep 300 (pid {pid}) ignored TERM and was never killed"


@pytest.mark.peer
def test_the_engine_cancelling_the_step_at_its_deadline_still_stops_the_remote_command(
    sshd_server: SshdServer, known: Path, services: StepServices, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    c = config(**login(sshd_server, known), command=f"echo $$ > {pid_file}; exec sleep 300")
    ctx = context(services, timeout=1.5)

    async def as_the_engine_does() -> None:
        # Whichever comes first — the step's own failure or the cancellation.
        await asyncio.wait_for(SshStep(c).run(ctx), timeout=ctx.remaining())

    with pytest.raises((StepFailed, TimeoutError)):
        asyncio.run(as_the_engine_does())
    assert gone(read_pid(pid_file), within=3.0)


@pytest.mark.peer
def test_a_changed_host_key_fails_for_good_as_a_possible_man_in_the_middle(
    sshd_server: SshdServer, tmp_path: Path, services: StepServices
) -> None:
    keygen(tmp_path / "other_host_key")
    key_type, blob = (tmp_path / "other_host_key.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd_server.port} {key_type} {blob}\n")
    ran = tmp_path / "ran"
    for policy in ("strict", "accept-new"):
        c = config(**login(sshd_server, known, host_key_policy=policy), command=f"touch {ran}")
        failed = fails(c, services)
        assert failed.reason.startswith(
            f"SSH: host key CHANGED for 127.0.0.1:{sshd_server.port} — possible man-in-the-middle"
        ), failed.reason
        assert failed.retry is False
    assert not ran.exists()
    assert known.read_text().count("\n") == 1  # accept-new did not add the new key


@pytest.mark.peer
def test_an_unknown_host_key_fails_for_good_and_says_how_to_add_it(
    sshd_server: SshdServer, tmp_path: Path, services: StepServices
) -> None:
    known = tmp_path / "known_hosts"
    failed = fails(config(**login(sshd_server, known), command="true"), services)
    assert failed.reason.startswith(
        f"SSH: host key for 127.0.0.1:{sshd_server.port} is not in known_hosts ({known}; "
    )
    assert "ssh-keyscan" in failed.reason
    assert failed.retry is False


@pytest.mark.peer
def test_a_closed_port_fails_with_connection_refused_and_may_be_retried(
    tmp_path: Path, services: StepServices
) -> None:
    port = free_port()
    c = config(host="127.0.0.1", port=port, user="ops", password="pw-secret",
               known_hosts=str(tmp_path / "known_hosts"), command="true")  # fmt: skip
    failed = fails(c, services)
    assert failed.reason == f"SSH: 127.0.0.1:{port}: connection refused"
    assert failed.retry


@pytest.mark.peer
def test_steps_on_one_host_share_the_server_probes_pooled_login(
    sshd_server: SshdServer, known: Path, services: StepServices
) -> None:
    before = sshd_server.logins()
    c = config(**login(sshd_server, known), command="echo hi")
    for _ in range(3):
        assert run(c, services).data["stdout"] == "hi\n"
    pool = services.shared.get(SHARED_KEY)
    assert isinstance(pool, SshPool)
    assert pool.connects == 1
    assert sshd_server.logins() - before == 1


def test_the_example_on_the_ssh_step_page_loads() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs/steps/ssh.md").read_text()
    example = page.split("```yaml\n", 1)[1].split("```", 1)[0]
    (runbook,) = yaml.safe_load(example)["runbooks"]
    (entry,) = runbook["steps"]
    loaded = SshStepConfig.model_validate(entry)
    # As the engine hands it over: the command rendered with shell-quoted values.
    command = rendered(loaded.command, {"params": {"ticket": "INC-42 (night shift)"}})
    plan = page.split("```\nssh ", 1)[1].split("```", 1)[0]
    assert (
        SshStep(loaded.model_copy(update={"command": command})).plan()
        == ("ssh " + plan).splitlines()
    )


def test_a_host_left_unrendered_fails_for_good_without_a_connection(
    services: StepServices,
) -> None:
    c = config(host="{{target.host}}", user="ops", key_file="/k", command="true")
    failed = fails(c, services)
    assert failed.reason == "host '{{target.host}}' is not a host name or address (as rendered)"
    assert failed.retry is False
    assert services.shared.get(SHARED_KEY) is None
