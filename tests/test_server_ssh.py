"""The ``server`` probe ``via: ssh``: config, output parsers, and polls of a real OpenSSH sshd.

Parsers are fed real output (the basic script run on this machine, the real
``systemctl``) and small tables of edge cases; everything about connections —
host keys, logins, reuse, reconnect, timeouts — runs against ``sshd`` started
by ``tests/peers/sshd.py``. The one stand-in is a local TCP server that accepts
and never speaks, named as such: no real sshd can be made to hang that way.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from pydantic import ValidationError

from core.net.ssh import CommandResult, SshPool
from core.observation import ErrorClass, MetricPoint, Observation, Status
from monitor.config import load_config
from monitor.config.secrets import Secret
from probes.base import ProbeContext
from probes.server import ServerTarget, check
from probes.server.findings import Finding, with_findings
from probes.server.ssh import SHARED_KEY
from probes.server.ssh_config import SshCommand
from probes.server.ssh_profiles import (
    ParseError,
    basic_script,
    judge_command,
    judge_services,
    parse_basic,
    parse_df,
    parse_meminfo,
    services_command,
)
from tests.peers import free_port
from tests.peers.sshd import (
    PasswordSshServer,
    SshdServer,
    keygen,
    password_ssh_server,
    sshd_factory,
    sshd_server,
)

__all__ = ["password_ssh_server", "sshd_factory", "sshd_server"]  # fixtures used by name

QUIET = {"cpu_percent": None, "load_per_core": None, "memory_percent": None}
"""Thresholds off for values a busy test machine may cross; these tests are about SSH."""


def target(**ssh: Any) -> ServerTarget:
    fields: dict[str, Any] = {"thresholds": QUIET}
    fields.update(ssh.pop("target_fields", {}))
    return ServerTarget.model_validate(
        {"id": "pbx-host", "kind": "server", "via": "ssh", "ssh": ssh, **fields}
    )


def login(server: SshdServer, known_hosts: Path, **more: Any) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "user": server.user,
        "key_file": str(server.client_key),
        "known_hosts": str(known_hosts),
        **more,
    }


def poll(t: ServerTarget, ctx: ProbeContext) -> Observation:
    return asyncio.run(check(t, ctx))


@pytest.fixture
def ctx() -> Iterator[ProbeContext]:
    context = ProbeContext("pbx-host", 20.0)
    yield context
    asyncio.run(context.shared.aclose())


def pool_of(ctx: ProbeContext) -> SshPool:
    pool = ctx.shared.get(SHARED_KEY)
    assert isinstance(pool, SshPool)
    return pool


def sshd_sessions(server: SshdServer) -> int:
    """Connections sshd is serving: one child process of the listener each."""
    assert server.process is not None
    return len(psutil.Process(server.process.pid).children())


def points(obs: Observation, measurement: str) -> list[MetricPoint]:
    return [p for p in obs.metrics if p.measurement == measurement]


# -- config ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"via": "ssh"}, "via: ssh needs an ssh section"),
        (
            {"ssh": {"host": "h", "user": "u", "password": "p"}},
            "the ssh section is only used with via: ssh",
        ),
        ({"via": "ssh", "ssh": {"host": "h", "user": "u"}}, "give key_file or password"),
        (
            {"via": "ssh", "ssh": {"host": "h", "user": "u", "password": "p", "profiles": ["services"]}},
            "the services profile needs services",
        ),
        (
            {"via": "ssh", "ssh": {"host": "h", "user": "u", "password": "p", "services": ["asterisk"]}},
            "only checked with the services profile",
        ),
        (
            {"via": "ssh", "ssh": {"host": "h", "user": "u", "password": "p", "host_key_policy": "no"}},
            "strict",
        ),
        (
            {"via": "ssh", "ssh": {"host": "h", "user": "u", "password": "p",
                                   "commands": [{"name": "q", "run": "x", "parse": "regex", "pattern": "(\\d+)"}]}},
            "needs at least one named group",
        ),
        (
            {"via": "ssh", "ssh": {"host": "h", "user": "u", "password": "p",
                                   "commands": [{"name": "q", "run": "x", "parse": "number",
                                                 "thresholds": {"waiting": {"warn": 1}}}]}},
            "thresholds name 'waiting', which this command does not produce",
        ),
        (
            {"via": "ssh", "ssh": {"host": "h", "user": "u", "password": "p",
                                   "commands": [{"name": "q", "run": "x", "parse": "json"}]}},
            "parse: json needs fields",
        ),
        (
            {"via": "ssh", "ssh": {"host": "h", "user": "u", "password": "p",
                                   "commands": [{"name": "q", "run": "x", "parse": "number",
                                                 "thresholds": {"value": {"warn": 10, "fail": 5}}}]}},
            "warn must not be above fail",
        ),
    ],
    ids=[
        "via-ssh-without-ssh-section",
        "ssh-section-with-via-local",
        "no-credentials",
        "services-profile-without-services",
        "services-without-the-profile",
        "unknown-host-key-policy",
        "regex-without-named-groups",
        "thresholds-on-a-field-the-command-does-not-produce",
        "json-without-fields",
        "warn-past-fail",
    ],
)  # fmt: skip
def test_bad_ssh_config_is_rejected_with_a_reason(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as raised:
        ServerTarget.model_validate({"id": "h", "kind": "server", **fields})
    assert message in str(raised.value)


def test_host_key_verification_is_strict_unless_configured_otherwise() -> None:
    t = target(host="h", user="u", password="p")
    assert t.ssh is not None
    assert t.ssh.host_key_policy == "strict"
    assert t.ssh.known_hosts == "~/.ssh/known_hosts"


def test_the_password_and_passphrase_never_show_in_the_config_repr() -> None:
    t = target(host="h", user="u", password="hunter2-pw", key_file="/k", passphrase="pass-phrase")
    shown = repr(t) + str(t)
    assert "hunter2-pw" not in shown
    assert "pass-phrase" not in shown


# -- parsers --------------------------------------------------------------------


def test_the_basic_script_run_on_this_machine_parses_to_what_psutil_sees() -> None:
    t = target(
        host="h", user="u", password="p", target_fields={"processes": ["sh", "no-such-proc"]}
    )
    script = basic_script(t)
    assert script.startswith("/bin/sh -c ")
    output = subprocess.run(script, shell=True, capture_output=True, text=True, check=True).stdout
    readings = parse_basic(output, t)
    assert readings.cpu_count == psutil.cpu_count(logical=True)
    assert readings.load is not None and len(readings.load) == 3
    assert readings.memory_percent is not None
    assert abs(readings.memory_percent - psutil.virtual_memory().percent) < 10
    assert readings.boot_time is not None
    assert abs(readings.boot_time - psutil.boot_time()) < 5
    assert readings.cpu is not None and 0 < readings.cpu.busy < readings.cpu.total
    assert "/" in [d.mount for d in readings.disks]
    assert readings.processes is not None and readings.processes["no-such-proc"] == 0
    assert readings.processes["sh"] >= 1  # the shell running the script itself


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (["MemTotal: 1000 kB", "MemAvailable: 250 kB", "SwapTotal: 0 kB", "SwapFree: 0 kB"],
         {"memory_percent": 75.0, "memory_available_bytes": 256000, "swap_percent": 0.0}),
        (["MemTotal: 1000 kB", "MemFree: 100 kB", "Buffers: 100 kB", "Cached: 300 kB",
          "SwapTotal: 200 kB", "SwapFree: 150 kB"],
         {"memory_percent": 50.0, "memory_available_bytes": 512000, "swap_percent": 25.0}),
    ],
    ids=["available-and-no-swap", "old-kernel-without-memavailable"],
)  # fmt: skip
def test_meminfo_counts_memory_like_via_local(lines: list[str], expected: dict[str, float]) -> None:
    assert parse_meminfo(lines) == expected


def test_df_keeps_mount_points_with_spaces_and_skips_pseudo_filesystems() -> None:
    t = target(host="h", user="u", password="p")
    lines = [
        "Filesystem     Type     1024-blocks    Used Available Capacity Mounted on",
        "/dev/sda1      ext4        1000000  930000     70000      94% /",
        "tmpfs          tmpfs         10000       0     10000       0% /dev/shm",
        "/dev/sdb1      xfs          500000  100000    400000      20% /srv/call recordings",
    ]
    disks = parse_df(lines, t)
    assert [(d.mount, d.fstype) for d in disks] == [("/", "ext4"), ("/srv/call recordings", "xfs")]
    assert disks[0].free_bytes == 70000 * 1024
    assert round(disks[0].percent) == 93


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ("", "stopped before the end"),
        ("@@loadavg\n@@end\n", "printed none of"),
        (
            "@@loadavg\nbanana split\n@@meminfo\nMemTotal: 10 kB\n@@end\n",
            "/proc/loadavg is unreadable",
        ),
        ("@@meminfo\nHello: world\n@@end\n", "/proc/meminfo has no MemTotal"),
        ("@@df\n/dev/sda1 ext4 lots\n@@end\n", "df printed a line it should not"),
        ("@@meminfo\nMemTotal: 10 kB\n@@ps\n@@args\n@@end\n", "ps printed no processes"),
    ],
    ids=[
        "nothing",
        "empty-sections",
        "garbage-loadavg",
        "meminfo-without-total",
        "garbage-df",
        "ps-printed-nothing",
    ],
)
def test_garbage_basic_output_is_a_parse_error_naming_the_part(output: str, message: str) -> None:
    t = target(host="h", user="u", password="p", target_fields={"processes": ["asterisk"]})
    with pytest.raises(ParseError, match=message):
        parse_basic(output, t)


def cmd(**fields: Any) -> SshCommand:
    return SshCommand.model_validate({"name": "queue", "run": "x", **fields})


def result(stdout: str = "", exit_code: int = 0, stderr: str = "") -> CommandResult:
    return CommandResult(exit_code, stdout, stderr, 0.01)


@pytest.mark.parametrize(
    ("command", "outcome", "status", "detail", "fields"),
    [
        (cmd(), result(), Status.OK, "queue exit 0", {}),
        (cmd(), result(exit_code=2, stderr="backup is 3 days old\n"), Status.FAIL,
         "command queue exited with 2 (fail above 0): backup is 3 days old", {}),
        (cmd(thresholds={"exit_code": {"warn": 0, "fail": 1}}), result(exit_code=1), Status.WARN,
         "command queue exited with 1 (warn above 0)", {}),
        (cmd(parse="number", thresholds={"value": {"warn": 10, "fail": 20}}), result(" 7\n"),
         Status.OK, "queue 7", {"value": 7.0}),
        (cmd(parse="number", thresholds={"value": {"warn": 10, "fail": 20}}), result("25\n"),
         Status.FAIL, "queue value at 25 (fail above 20)", {"value": 25.0}),
        (cmd(parse="number"), result("lots\n"), Status.FAIL,
         "command queue: output is not a number ('lots')", {}),
        (cmd(parse="number"), result("5", exit_code=1, stderr="no such queue"), Status.FAIL,
         "command queue exited with 1: no such queue", {}),
        (cmd(parse="number", ok_exit=[0, 1]), result("5", exit_code=1), Status.OK, "queue 5",
         {"value": 5.0}),
        (cmd(parse="regex", pattern=r"waiting=(?P<waiting>\d+) agents=(?P<agents>\d+)",
             thresholds={"agents": {"fail": 2, "below": True}}),
         result("queue sales waiting=4 agents=1\n"), Status.FAIL,
         "queue agents at 1 (fail below 2)", {"waiting": 4.0, "agents": 1.0}),
        (cmd(parse="regex", pattern=r"waiting=(?P<waiting>\d+)"), result("nothing here"),
         Status.FAIL, "command queue: output does not match the pattern ('nothing here')", {}),
        (cmd(parse="json", fields={"waiting": "queues.0.waiting", "up": "healthy"}),
         result('{"queues": [{"waiting": "3"}], "healthy": true}'), Status.OK,
         "queue waiting 3, up 1", {"waiting": 3.0, "up": 1.0}),
        (cmd(parse="json", fields={"waiting": "queues.1.waiting"}), result('{"queues": []}'),
         Status.FAIL, "command queue: the JSON output has nothing at queues.1.waiting", {}),
        (cmd(parse="json", fields={"waiting": "w"}), result("<html>"), Status.FAIL,
         "command queue: output is not JSON (Expecting value: '<html>')", {}),
    ],
    ids=[
        "exit-zero-is-ok",
        "non-zero-exit-fails-with-stderr",
        "nagios-style-exit-warns",
        "number-under-warn",
        "number-over-fail",
        "number-from-garbage-is-a-protocol-failure",
        "number-with-bad-exit-fails",
        "number-with-allowed-exit",
        "regex-group-below-lower-limit",
        "regex-without-match",
        "json-paths-with-string-and-bool",
        "json-path-missing",
        "json-from-garbage",
    ],
)  # fmt: skip
def test_own_commands_become_fields_and_a_status(
    command: SshCommand,
    outcome: CommandResult,
    status: Status,
    detail: str,
    fields: dict[str, float],
) -> None:
    finding = judge_command(command, outcome)
    assert (finding.status, finding.sentence) == (status, detail)
    (point,) = finding.points
    assert point.tags == {"command": "queue"}
    assert point.fields["exit_code"] == outcome.exit_code
    assert {
        k: v for k, v in point.fields.items() if k not in ("exit_code", "duration_ms")
    } == fields


@pytest.mark.parametrize(
    ("stdout", "status", "sentence"),
    [
        ("active\nactive\n", Status.OK, "services active: asterisk, kamailio"),
        ("active\nfailed\n", Status.FAIL, "service kamailio is failed"),
        ("inactive\nactivating\n", Status.FAIL,
         "service asterisk is inactive; service kamailio is activating"),
        ("active\n", Status.FAIL, "could not check services"),
    ],
    ids=["all-active", "one-failed", "two-not-active", "one-line-short"],
)  # fmt: skip
def test_systemctl_states_fail_unless_active(stdout: str, status: Status, sentence: str) -> None:
    finding = judge_services(["asterisk", "kamailio"], result(stdout, exit_code=3))
    assert finding.status is status
    assert finding.sentence.startswith(sentence)


def test_the_real_systemctl_here_is_parsed_or_reported_in_its_own_words() -> None:
    # The exact command the services profile sends, run by this machine's /bin/sh.
    unit = "dialwatch-no-such-unit.service"
    done = subprocess.run(
        services_command("systemctl", [unit]), shell=True, capture_output=True, text=True
    )
    finding = judge_services([unit], CommandResult(done.returncode, done.stdout, done.stderr, 0.1))
    assert finding.status is Status.FAIL
    if Path("/run/systemd/system").is_dir():  # systemd is running: a real state line
        assert finding.sentence == f"service {unit} is inactive"
    elif shutil.which("systemctl") is None:
        assert done.returncode == 127
        assert finding.sentence.startswith(
            "could not check services: systemctl is-active answered 'command not found'"
        )
    else:  # systemctl without systemd (a container): its own words are passed on
        first = (done.stderr or done.stdout).strip().splitlines()[0]
        assert finding.sentence.startswith("could not check services")
        assert first in finding.sentence


def test_findings_fold_into_the_observation_problems_first() -> None:
    base = Observation(
        Status.WARN, "memory at 88% (warn above 85%)", error_class=ErrorClass.THRESHOLD
    )
    ok = Finding(Status.OK, "queue 3", (MetricPoint("server_command", {"value": 3.0}),))
    bad = Finding(Status.FAIL, "service asterisk is failed", (), ErrorClass.THRESHOLD)
    merged = with_findings(base, [ok, bad])
    assert merged.status is Status.FAIL
    assert merged.detail == "service asterisk is failed; memory at 88% (warn above 85%)"
    assert len(merged.metrics) == 1
    calm = with_findings(Observation(Status.OK, "cpu 3%"), [ok])
    assert (calm.status, calm.detail) == (Status.OK, "cpu 3%, queue 3")


# -- against a real sshd --------------------------------------------------------


@pytest.mark.peer
def test_basic_profile_over_ssh_reports_the_same_points_as_via_local(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    t = target(**login(sshd_server, known), target_fields={"processes": ["sshd"]})
    first = poll(t, ctx)
    assert first.status is Status.OK, first.detail
    (server,) = points(first, "server")
    assert server.fields["cpu_count"] == psutil.cpu_count(logical=True)
    assert isinstance(server.fields["memory_available_bytes"], int)
    assert "cpu_percent" not in server.fields  # the first poll only primes the counters
    assert "/" in [p.tags["mount"] for p in points(first, "server_disk")]
    (process,) = points(first, "server_process")
    assert process.fields["count"] >= 1  # the sshd serving this very login
    second = poll(t, ctx)
    (server,) = points(second, "server")
    assert 0 <= server.fields["cpu_percent"] <= 100


@pytest.mark.peer
def test_one_connection_serves_many_polls(
    sshd_factory: Any, tmp_path: Path, ctx: ProbeContext
) -> None:
    server = sshd_factory()
    known = server.write_known_hosts(tmp_path / "known_hosts")
    t = target(**login(server, known, commands=[{"name": "up", "run": "true"}]))
    for _ in range(4):
        assert poll(t, ctx).status is Status.OK
    assert server.logins() == 1
    assert pool_of(ctx).connects == 1


@pytest.mark.peer
def test_the_next_poll_reconnects_after_sshd_restarts(
    sshd_factory: Any, tmp_path: Path, ctx: ProbeContext
) -> None:
    server = sshd_factory()
    known = server.write_known_hosts(tmp_path / "known_hosts")
    t = target(**login(server, known, profiles=[], commands=[{"name": "up", "run": "true"}]))
    assert poll(t, ctx).status is Status.OK
    server.restart()  # kills the session's sshd child too: the pooled connection is dead
    after = poll(t, ctx)
    assert after.status is Status.OK, after.detail
    assert server.logins() == 2


@pytest.mark.peer
def test_a_stopped_sshd_fails_with_refused_and_the_poll_after_its_return_works(
    sshd_factory: Any, tmp_path: Path, ctx: ProbeContext
) -> None:
    server = sshd_factory()
    known = server.write_known_hosts(tmp_path / "known_hosts")
    t = target(**login(server, known, profiles=[], commands=[{"name": "up", "run": "true"}]))
    assert poll(t, ctx).status is Status.OK
    server.stop()
    down = poll(t, ctx)
    assert (down.status, down.error_class) == (Status.FAIL, ErrorClass.REFUSED)
    assert down.detail == f"SSH: 127.0.0.1:{server.port}: connection refused"
    server.start()
    assert poll(t, ctx).status is Status.OK


@pytest.mark.peer
def test_an_unknown_host_key_fails_and_is_not_recorded(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = tmp_path / "known_hosts"
    obs = poll(target(**login(sshd_server, known)), ctx)
    assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.AUTH)
    assert obs.detail.startswith(
        f"SSH: host key for 127.0.0.1:{sshd_server.port} is not in known_hosts ({known}; "
        "the server offered ssh-ed25519 SHA256:"
    )
    assert not known.exists()
    assert not obs.metrics


@pytest.mark.peer
def test_a_changed_host_key_fails_as_a_possible_man_in_the_middle(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    other = keygen(tmp_path / "other_host_key")
    key_type, blob = (tmp_path / "other_host_key.pub").read_text().split()[:2]
    known = tmp_path / "known_hosts"
    known.write_text(f"[127.0.0.1]:{sshd_server.port} {key_type} {blob}\n")
    for policy in ("strict", "accept-new"):
        obs = poll(target(**login(sshd_server, known, host_key_policy=policy)), ctx)
        assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.AUTH)
        assert obs.detail.startswith(
            f"SSH: host key CHANGED for 127.0.0.1:{sshd_server.port} — possible man-in-the-middle"
        ), obs.detail
    assert known.read_text().count("\n") == 1  # accept-new did not add the new key
    assert other.exists()


@pytest.mark.peer
def test_accept_new_records_the_key_which_strict_then_trusts(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = tmp_path / "ssh" / "known_hosts"
    first = poll(target(**login(sshd_server, known, host_key_policy="accept-new")), ctx)
    assert first.status is Status.OK, first.detail
    assert known.read_text() == sshd_server.known_hosts_line()
    assert (known.stat().st_mode & 0o777) == 0o600
    strict = poll(target(**login(sshd_server, known)), ProbeContext("other", 20.0))
    assert strict.status is Status.OK, strict.detail


@pytest.mark.peer
def test_a_key_the_server_does_not_know_fails_authentication_without_showing_secrets(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    stranger = keygen(tmp_path / "stranger")
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    password = Secret("correct-horse-battery")
    t = target(**login(sshd_server, known, key_file=str(stranger), password=password))
    obs = poll(t, ctx)
    assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.AUTH)
    assert obs.detail == (
        f"SSH: authentication failed for {sshd_server.user}@127.0.0.1:{sshd_server.port} "
        "(tried publickey, password; the server allows publickey)"
    )
    assert "correct-horse" not in repr(t) + repr(obs)


@pytest.mark.peer
def test_a_missing_key_file_is_a_sentence_not_a_crash(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    obs = poll(target(**login(sshd_server, known, key_file=str(tmp_path / "nope"))), ctx)
    assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.AUTH)
    assert obs.detail == f"SSH: cannot load key file {tmp_path / 'nope'} (no such file)"


@pytest.fixture
def scripted_tcp_server() -> Iterator[Any]:
    """Local TCP servers that are not SSH servers: each accepts, sends ``greeting``
    (maybe nothing), then stays silent or hangs up — hung or misconfigured hosts."""
    listeners: list[socket.socket] = []
    accepted: list[socket.socket] = []
    threads: list[threading.Thread] = []
    stop = threading.Event()

    def start(greeting: bytes, hang_up: bool) -> int:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.1)
        listeners.append(listener)

        def serve() -> None:
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                conn.sendall(greeting)
                if hang_up:
                    conn.close()
                else:
                    accepted.append(conn)

        threads.append(threading.Thread(target=serve, daemon=True))
        threads[-1].start()
        return listener.getsockname()[1]

    yield start
    stop.set()
    for thread in threads:
        thread.join()
    for conn in accepted + listeners:
        conn.close()


@pytest.mark.peer
@pytest.mark.parametrize(
    ("greeting", "hang_up", "error_class", "detail"),
    [
        (b"", False, ErrorClass.TIMEOUT,
         "SSH: 127.0.0.1:{port} accepted the connection but sent no SSH greeting within 1.5s"),
        (b"SSH-2.0-OpenSSH_9.2p1\r\n", False, ErrorClass.TIMEOUT,
         "SSH: 127.0.0.1:{port} accepted the connection but did not finish the SSH handshake "
         "within 1.5s"),
        (b"HTTP/1.1 400 Bad Request\r\n\r\n", True, ErrorClass.PROTOCOL,
         "SSH: handshake with 127.0.0.1:{port} failed (Error reading SSH protocol banner"),
    ],
    ids=["accepts-and-never-speaks", "greets-then-stalls", "speaks-http-and-hangs-up"],
)  # fmt: skip
def test_a_host_that_is_not_a_working_ssh_server_fails_and_the_next_poll_works(
    scripted_tcp_server: Any,
    sshd_server: SshdServer,
    tmp_path: Path,
    greeting: bytes,
    hang_up: bool,
    error_class: ErrorClass,
    detail: str,
) -> None:
    port = scripted_tcp_server(greeting, hang_up)
    ctx = ProbeContext("pbx-host", 1.5)
    try:
        broken = ServerTarget.model_validate(
            {"id": "hung", "kind": "server", "via": "ssh", "timeout": "1500ms",
             "ssh": {"host": "127.0.0.1", "port": port, "user": "u",
                     "password": "p", "known_hosts": str(tmp_path / "kh")}}
        )  # fmt: skip
        obs = poll(broken, ctx)
        assert (obs.status, obs.error_class) == (Status.FAIL, error_class)
        assert obs.detail.startswith(detail.format(port=port)), obs.detail
        known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
        ctx.timeout = 20.0
        assert poll(target(**login(sshd_server, known)), ctx).status is Status.OK
    finally:
        asyncio.run(ctx.shared.aclose())


@pytest.mark.peer
def test_stopping_the_engine_closes_the_pooled_connections(
    sshd_factory: Any, tmp_path: Path
) -> None:
    sshd_server = sshd_factory()
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    ctx = ProbeContext("pbx-host", 20.0)
    assert (
        poll(
            target(
                **login(sshd_server, known, profiles=[], commands=[{"name": "up", "run": "true"}])
            ),
            ctx,
        ).status
        is Status.OK
    )
    assert pool_of(ctx).open_count() == 1
    assert sshd_sessions(sshd_server) == 1
    asyncio.run(ctx.shared.aclose())
    deadline = time.monotonic() + 10
    while sshd_sessions(sshd_server) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sshd_sessions(sshd_server) == 0
    assert ctx.shared.get(SHARED_KEY) is None


@pytest.mark.peer
def test_a_command_that_never_ends_fails_and_its_connection_is_dropped(
    sshd_factory: Any, tmp_path: Path, ctx: ProbeContext
) -> None:
    server = sshd_factory()
    known = server.write_known_hosts(tmp_path / "known_hosts")
    t = target(
        **login(
            server,
            known,
            profiles=[],
            commands=[
                {"name": "stuck", "run": "sleep 60", "timeout": "1s"},
                {"name": "after", "run": "echo 5", "parse": "number"},
            ],
        )
    )
    obs = poll(t, ctx)
    assert obs.status is Status.FAIL
    assert obs.detail == "command stuck did not finish within 1s"
    assert obs.error_class is ErrorClass.TIMEOUT
    # The second command ran on a fresh login: the timed-out one was dropped.
    assert [p.tags["command"] for p in points(obs, "server_command")] == ["after"]
    assert pool_of(ctx).connects == 2
    assert server.logins() == 2


@pytest.mark.peer
def test_a_poll_that_runs_out_of_time_fails_with_a_timeout(
    sshd_server: SshdServer, tmp_path: Path
) -> None:
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    ctx = ProbeContext("pbx-host", 20.0)
    try:
        t = target(
            **login(sshd_server, known, profiles=[], commands=[{"name": "up", "run": "true"}])
        )
        assert poll(t, ctx).status is Status.OK  # logged in; the next poll reuses it
        slow = target(
            **login(sshd_server, known, profiles=[], commands=[{"name": "s", "run": "sleep 60"}])
        )
        ctx.timeout = 1.0
        obs = poll(slow, ctx)
        assert (obs.status, obs.error_class) == (Status.FAIL, ErrorClass.TIMEOUT)
        assert obs.detail.startswith(
            f"SSH: a command on 127.0.0.1:{sshd_server.port} did not finish"
        )
        assert pool_of(ctx).open_count() == 0
    finally:
        asyncio.run(ctx.shared.aclose())


@pytest.mark.peer
def test_own_commands_parse_real_output_and_garbage_fails_alone(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    t = target(
        **login(
            sshd_server,
            known,
            commands=[
                {"name": "calls", "run": "printf 'active calls: 17\\n'", "parse": "regex",
                 "pattern": r"active calls: (?P<calls>\d+)", "thresholds": {"calls": {"warn": 15}}},
                {"name": "stats", "run": "echo '{\"agents\": {\"ready\": 9}}'", "parse": "json",
                 "fields": {"ready": "agents.ready"}},
                {"name": "junk", "run": "head -c 40 /dev/urandom | base64", "parse": "number"},
            ],
        )
    )  # fmt: skip
    obs = poll(t, ctx)
    assert obs.status is Status.FAIL
    assert obs.error_class is ErrorClass.PROTOCOL
    assert obs.detail.startswith("command junk: output is not a number (")
    assert obs.detail.endswith("; calls calls at 17 (warn above 15)")
    fields = {p.tags["command"]: dict(p.fields) for p in points(obs, "server_command")}
    assert fields["calls"]["calls"] == 17.0
    assert fields["stats"]["ready"] == 9.0
    assert points(obs, "server")  # the basic readings are still there


SYSTEMCTL_STANDIN = """\
#!/bin/sh
# Answers like `systemctl is-active UNIT...`: one state per unit, exit 3 unless all are active.
[ "$1" = is-active ] || exit 64
shift
[ "$1" = -- ] && shift
rc=0
for unit in "$@"; do
  case "$unit" in
    asterisk|kamailio.service) echo active ;;
    dialer) echo failed; rc=3 ;;
    *) echo inactive; rc=3 ;;
  esac
done
exit $rc
"""


@pytest.mark.peer
@pytest.mark.parametrize(
    ("services", "status", "detail"),
    [
        (["asterisk", "kamailio.service"], Status.OK, "services active: asterisk, kamailio.service"),
        (["asterisk", "dialer", "crm"], Status.FAIL, "service dialer is failed; service crm is inactive"),
    ],
    ids=["all-active", "failed-and-inactive-units"],
)  # fmt: skip
def test_services_profile_runs_systemctl_is_active_on_the_host(
    sshd_server: SshdServer,
    tmp_path: Path,
    ctx: ProbeContext,
    services: list[str],
    status: Status,
    detail: str,
) -> None:
    script = tmp_path / "systemctl"
    script.write_text(SYSTEMCTL_STANDIN)
    script.chmod(0o755)
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    t = target(
        **login(sshd_server, known, profiles=["services"], services=services, systemctl=str(script))
    )
    obs = poll(t, ctx)
    assert (obs.status, obs.detail) == (status, detail)
    states = {p.tags["service"]: p.fields["active"] for p in points(obs, "server_service")}
    assert list(states) == services
    assert not points(obs, "server")  # no basic profile asked for


@pytest.mark.peer
def test_services_profile_with_the_hosts_own_systemctl(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    unit = "dialwatch-no-such-unit"
    t = target(**login(sshd_server, known, profiles=["services"], services=[unit]))
    obs = poll(t, ctx)
    assert obs.status is Status.FAIL
    if Path("/run/systemd/system").is_dir():
        assert obs.detail == f"service {unit} is inactive"
    else:  # a container without systemd: systemctl says so, and we repeat it
        assert obs.detail.startswith("could not check services: systemctl is-active answered")
        assert obs.error_class is ErrorClass.RESPONSE


@pytest.mark.peer
def test_nothing_listening_is_refused(tmp_path: Path, ctx: ProbeContext) -> None:
    port = free_port()
    t = target(host="127.0.0.1", port=port, user="u", password="p", known_hosts=str(tmp_path / "k"))
    obs = poll(t, ctx)
    assert (obs.status, obs.error_class, obs.detail) == (
        Status.FAIL,
        ErrorClass.REFUSED,
        f"SSH: 127.0.0.1:{port}: connection refused",
    )


@pytest.mark.peer
def test_many_targets_on_one_host_polled_at_once_share_one_login(
    sshd_factory: Any, tmp_path: Path, ctx: ProbeContext
) -> None:
    server = sshd_factory()
    known = server.write_known_hosts(tmp_path / "known_hosts")
    # More concurrent commands than sshd's MaxSessions default allows on one connection.
    commands = [{"name": "up", "run": "sleep 0.2"}]
    targets = [target(**login(server, known, profiles=[], commands=commands)) for _ in range(12)]

    async def all_at_once() -> list[Observation]:
        return await asyncio.gather(*(check(t, ctx) for t in targets))

    observations = asyncio.run(all_at_once())
    assert [o.status for o in observations] == [Status.OK] * 12, [o.detail for o in observations]
    assert server.logins() == 1


@pytest.mark.peer
def test_password_login_works_and_a_wrong_password_fails_without_showing_it(
    password_ssh_server: PasswordSshServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(password_ssh_server.known_hosts_line())
    fields = {
        "host": "127.0.0.1",
        "port": password_ssh_server.port,
        "user": password_ssh_server.user,
        "known_hosts": str(known),
    }
    good = poll(target(**fields, password=Secret(password_ssh_server.password)), ctx)
    assert good.status is Status.OK, good.detail
    assert points(good, "server")
    wrong = poll(target(**fields, password=Secret("not-the-passw0rd")), ctx)
    assert (wrong.status, wrong.error_class) == (Status.FAIL, ErrorClass.AUTH)
    assert wrong.detail == (
        f"SSH: authentication failed for operator@127.0.0.1:{password_ssh_server.port} "
        "(tried password)"
    )
    assert password_ssh_server.interface.logins == 1


def test_the_via_ssh_example_in_the_docs_loads_and_hides_the_passphrase(tmp_path: Path) -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs/probes/server.md").read_text()
    section = doc[doc.index("\n## via: ssh") :]
    example = section[
        section.index("```yaml\n") + 8 : section.index("```", section.index("```yaml\n") + 8)
    ]
    path = tmp_path / "site.yaml"
    path.write_text(example)
    loaded = load_config(path, env={"SSH_KEY_PASSPHRASE": "the-passphrase-value"})
    (t,) = [t for t in loaded.config.targets if t.id == "dialer-db"]
    assert t.ssh is not None and t.ssh.passphrase == "the-passphrase-value"
    assert [c.parse for c in t.ssh.commands] == ["number", "json", "exit"]
    assert "the-passphrase-value" not in repr(loaded.config) + str(loaded.redacted())


@pytest.mark.peer
def test_accept_any_logs_in_without_a_known_hosts_file_and_records_nothing(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = tmp_path / "known_hosts"
    obs = poll(target(**login(sshd_server, known, host_key_policy="accept-any")), ctx)
    assert obs.status is Status.OK, obs.detail
    assert not known.exists()


@pytest.mark.peer
@pytest.mark.parametrize("known_type", ["rsa", "ed25519"])
def test_the_host_key_type_known_hosts_holds_is_the_one_asked_for(
    sshd_factory: Any, tmp_path: Path, ctx: ProbeContext, known_type: str
) -> None:
    # A host with several keys offers the client's preferred type; paramiko prefers
    # Ed25519, so without asking for the recorded type an RSA entry would look wrong.
    server = sshd_factory(("ed25519", "rsa"))
    known = tmp_path / "known_hosts"
    known.write_text(server.known_hosts_line(known_type))
    obs = poll(target(**login(server, known)), ctx)
    assert obs.status is Status.OK, obs.detail


@pytest.mark.peer
def test_hashed_known_hosts_entries_are_recognised(
    sshd_server: SshdServer, tmp_path: Path, ctx: ProbeContext
) -> None:
    known = sshd_server.write_known_hosts(tmp_path / "known_hosts")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(known)], check=True, capture_output=True)
    assert "127.0.0.1" not in known.read_text()  # hashed like HashKnownHosts yes
    obs = poll(target(**login(sshd_server, known)), ctx)
    assert obs.status is Status.OK, obs.detail
