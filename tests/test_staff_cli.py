"""``dialwatch user | token | audit``: every command, on SQLite and PostgreSQL (the ``db`` fixture).

Most cases run ``main`` in this process with their own stdin, stdout and stderr
(a terminal is a stdin whose ``isatty`` says so, with a prompt that answers);
a few run the real console script, with the password on a pipe, and one
while another connection keeps writing to the same state DB.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine, select, update

from dialwatch.cli import build_parser
from dialwatch.staff_cli import Io, cli_actor, main
from monitor import audit
from monitor.staff import sessions, tokens, users
from monitor.store import queries
from monitor.store.models import AuditEntry
from monitor.store.repository import StateRepository

GOOD = "correct horse battery"
OTHER = "another good passphrase"
POLICY = sessions.SessionPolicy()


@dataclass
class Run:
    code: int
    out: str
    err: str


class Terminal(io.StringIO):
    """A stdin that is a terminal: nothing is read from it, the prompt answers."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def repo(db: Engine) -> StateRepository:
    return StateRepository(db)


@pytest.fixture
def config(db: Engine, tmp_path: Path) -> Path:
    url = db.url.render_as_string(hide_password=False)
    path = tmp_path / "dialwatch.yaml"
    path.write_text(
        f"site: {{name: NOC, timezone: Asia/Shanghai}}\nstorage:\n  database_url: '{url}'\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def cli(config: Path) -> Callable[..., Run]:
    def run(*argv: str, stdin: str = "", prompts: tuple[str, ...] | None = None) -> Run:
        answers = iter(prompts or ())
        streams = Io(
            Terminal() if prompts is not None else io.StringIO(stdin),
            io.StringIO(),
            io.StringIO(),
            prompt=lambda _text: next(answers),
        )
        args = build_parser().parse_args([*argv, "--config", str(config)])
        code = main(args, streams)
        return Run(code, streams.stdout.getvalue(), streams.stderr.getvalue())  # type: ignore[attr-defined]

    return run


def audited(repo: StateRepository) -> list[tuple[str, str, str, str]]:
    with repo.engine.connect() as conn:
        rows = conn.execute(select(AuditEntry).order_by(AuditEntry.id)).all()
    return [(r.actor, r.action, r.object, r.result) for r in rows]


def console_script(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dialwatch.cli", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


# -- users ---------------------------------------------------------------------------
def test_user_add_reads_the_password_from_stdin_and_audits_the_unix_user(
    cli: Callable[..., Run], repo: StateRepository
) -> None:
    run = cli("user", "add", "Alice", "--role", "admin", stdin=GOOD + "\n")
    assert (run.code, run.out, run.err) == (0, "added user alice (admin)\n", "")
    assert users.check_login(repo, "alice", GOOD) is not None
    assert audited(repo) == [(cli_actor(), "user.add", "user:alice", "ok")]
    assert cli_actor().startswith("cli:")


def test_a_password_from_windows_line_endings_loses_only_its_line_end(
    cli: Callable[..., Run], repo: StateRepository
) -> None:
    assert cli("user", "add", "bob", "--role", "viewer", stdin=f" {GOOD} \r\n").code == 0
    assert users.check_login(repo, "bob", f" {GOOD} ") is not None


def test_on_a_terminal_the_password_is_asked_for_twice(
    cli: Callable[..., Run], repo: StateRepository
) -> None:
    run = cli("user", "add", "carol", "--role", "operator", prompts=(GOOD, GOOD))
    assert run.code == 0
    assert users.check_login(repo, "carol", GOOD) is not None
    differ = cli("user", "add", "dave", "--role", "operator", prompts=(GOOD, OTHER))
    assert (differ.code, differ.err) == (2, "the two passwords differ; nothing was changed\n")
    with repo.engine.connect() as conn:
        assert users.find_user(conn, "dave") is None


@pytest.mark.parametrize(
    ("name", "password", "error"),
    [
        pytest.param("erin", "short", "a password needs at least 12 characters", id="too-short"),
        pytest.param(
            "erin", "erin-at-the-noc-42", "a password must not contain the user name", id="name"
        ),
        pytest.param(
            "erin", "password1234!", "this password is on the list of common passwords", id="common"
        ),
        pytest.param("bad name", GOOD, "user name 'bad name' must be 1 to 64", id="bad-name"),
    ],
)
def test_a_refused_user_is_one_line_on_stderr_and_exit_2(
    cli: Callable[..., Run], repo: StateRepository, name: str, password: str, error: str
) -> None:
    run = cli("user", "add", name, "--role", "viewer", stdin=password + "\n")
    assert run.code == 2 and run.out == ""
    assert run.err.startswith(error) and run.err.count("\n") == 1
    assert "Traceback" not in run.err
    assert audited(repo) == []


def test_no_password_on_stdin_is_refused(cli: Callable[..., Run]) -> None:
    run = cli("user", "add", "frank", "--role", "viewer", stdin="")
    assert (run.code, run.err) == (2, "no password on standard input: give it as the first line\n")


def test_a_user_name_is_taken_once(cli: Callable[..., Run]) -> None:
    assert cli("user", "add", "gina", "--role", "viewer", stdin=GOOD).code == 0
    run = cli("user", "add", "GINA", "--role", "admin", stdin=GOOD)
    assert (run.code, run.err) == (2, "a user named 'gina' exists already\n")


def test_passwd_sets_a_new_password_and_ends_the_users_sessions(
    cli: Callable[..., Run], repo: StateRepository
) -> None:
    cli("user", "add", "alice", "--role", "admin", stdin=GOOD)
    alice = users.check_login(repo, "alice", GOOD)
    assert alice is not None
    cookie = sessions.start(repo, alice.id, stage="full", policy=POLICY)
    run = cli("user", "passwd", "alice", stdin=OTHER + "\n")
    assert (run.code, run.out) == (0, "password of alice changed; their sessions have ended\n")
    assert users.check_login(repo, "alice", GOOD) is None
    assert users.check_login(repo, "alice", OTHER) is not None
    assert sessions.resolve(repo, cookie, policy=POLICY) is None
    assert audited(repo)[-1][1:] == ("user.password", "user:alice", "ok")


def test_passwd_of_an_unknown_user_asks_for_nothing(cli: Callable[..., Run]) -> None:
    run = cli("user", "passwd", "ghost", prompts=())  # a prompt would raise StopIteration
    assert (run.code, run.err) == (2, "no user named 'ghost'\n")


def test_disable_and_enable_a_user_but_never_the_last_admin(
    cli: Callable[..., Run], repo: StateRepository
) -> None:
    cli("user", "add", "alice", "--role", "admin", stdin=GOOD)
    cli("user", "add", "bob", "--role", "operator", stdin=GOOD)
    bob = users.check_login(repo, "bob", GOOD)
    assert bob is not None
    sessions.start(repo, bob.id, stage="full", policy=POLICY)
    run = cli("user", "disable", "bob")
    assert run.out == "disabled bob; 1 session ended, their tokens stop working\n"
    assert users.check_login(repo, "bob", GOOD) is None
    assert cli("user", "disable", "bob").err == "user bob is disabled already\n"
    assert cli("user", "enable", "bob").out == "enabled bob\n"
    assert users.check_login(repo, "bob", GOOD) is not None
    last = cli("user", "disable", "alice")
    assert (last.code, last.err) == (2, "alice is the last admin: make another admin first\n")


def test_sessions_end_logs_a_user_out_everywhere(
    cli: Callable[..., Run], repo: StateRepository
) -> None:
    cli("user", "add", "alice", "--role", "admin", stdin=GOOD)
    alice = users.check_login(repo, "alice", GOOD)
    assert alice is not None
    cookies = [sessions.start(repo, alice.id, stage="full", policy=POLICY) for _ in range(2)]
    assert cli("user", "sessions-end", "alice").out == "2 sessions of alice ended\n"
    assert all(sessions.resolve(repo, c, policy=POLICY) is None for c in cookies)
    assert cli("user", "sessions-end", "nobody").code == 2


def test_user_list_as_a_table_and_as_json(cli: Callable[..., Run]) -> None:
    assert cli("user", "list").out == "(none)\n"
    cli("user", "add", "alice", "--role", "admin", "--display-name", "Alice 李", stdin=GOOD)
    cli("user", "add", "bob", "--role", "viewer", stdin=GOOD)
    cli("user", "disable", "bob")
    table = cli("user", "list").out.splitlines()
    assert table[0].split() == ["NAME", "ROLE", "STATE", "2FA", "CREATED", "DISPLAY", "NAME"]
    assert table[1].split()[:4] == ["alice", "admin", "active", "off"]
    assert table[1].endswith("Alice 李")
    assert table[2].split()[:4] == ["bob", "viewer", "disabled", "off"]
    listed = json.loads(cli("user", "list", "--json").out)
    assert [(u["name"], u["role"], u["disabled"]) for u in listed] == [
        ("alice", "admin", False),
        ("bob", "viewer", True),
    ]
    assert listed[0]["display_name"] == "Alice 李" and listed[0]["created_at"].endswith("Z")


# -- tokens ----------------------------------------------------------------------------
def test_token_create_prints_only_the_token(cli: Callable[..., Run], repo: StateRepository) -> None:
    cli("user", "add", "alice", "--role", "admin", stdin=GOOD)
    run = cli(
        "token", "create", "--user", "alice", "--role", "operator", "--expires", "30d",
        "--name", "grafana",
    )  # fmt: skip
    assert run.code == 0
    value = run.out.removesuffix("\n")
    assert run.out == value + "\n" and "\n" not in value and value.startswith("dw_")
    who = tokens.authenticate(repo, value)
    assert who is not None and (who.user, who.role) == ("alice", "operator")
    assert run.err.startswith("token 1 for alice (operator), expires ")
    assert value not in run.err
    with repo.engine.connect() as conn:
        [info] = tokens.list_tokens(conn)
    assert info.name == "grafana"
    assert info.expires_at is not None
    assert info.expires_at - info.created_at == pytest.approx(30 * 86400)


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        pytest.param(
            ("--user", "alice", "--expires", "soon"),
            "--expires must be a duration like 30d, 12h or 90m, not 'soon'",
            id="bad-expires",
        ),
        pytest.param(
            ("--user", "alice", "--expires", "0d"),
            "--expires must be a duration like 30d, 12h or 90m, not '0d'",
            id="zero-expires",
        ),
        pytest.param(("--user", "ghost"), "no user named 'ghost'", id="unknown-user"),
        pytest.param(
            ("--user", "vic", "--role", "admin"),
            "a token cannot have more than its owner's role (vic is viewer)",
            id="above-the-owner",
        ),
    ],
)
def test_a_refused_token_is_one_line_and_exit_2(
    cli: Callable[..., Run], repo: StateRepository, argv: tuple[str, ...], error: str
) -> None:
    cli("user", "add", "alice", "--role", "admin", stdin=GOOD)
    cli("user", "add", "vic", "--role", "viewer", stdin=GOOD)
    run = cli("token", "create", *argv)
    assert (run.code, run.out, run.err) == (2, "", error + "\n")
    with repo.engine.connect() as conn:
        assert tokens.list_tokens(conn) == []


def test_token_revoke_and_list(cli: Callable[..., Run], repo: StateRepository) -> None:
    cli("user", "add", "alice", "--role", "admin", stdin=GOOD)
    cli("user", "add", "bob", "--role", "viewer", stdin=GOOD)
    first = cli("token", "create", "--user", "alice", "--name", "ci").out.strip()
    cli("token", "create", "--user", "bob", "--expires", "12h")
    assert cli("token", "revoke", "1").out == "revoked token 1 of alice\n"
    assert tokens.authenticate(repo, first) is None
    again = cli("token", "revoke", "1")
    assert (again.code, again.err) == (2, "token 1 was revoked already\n")
    assert cli("token", "revoke", "99").err == "no token 99\n"
    table = cli("token", "list").out.splitlines()
    assert table[0].split()[:4] == ["ID", "USER", "ROLE", "STATE"]
    assert [line.split()[:4] for line in table[1:]] == [
        ["1", "alice", "admin", "revoked"],
        ["2", "bob", "viewer", "active"],
    ]
    assert first not in "\n".join(table)
    mine = json.loads(cli("token", "list", "--user", "bob", "--json").out)
    assert [(t["id"], t["user"], t["state"], t["expires_at"] is not None) for t in mine] == [
        (2, "bob", "active", True)
    ]
    assert cli("token", "list", "--user", "ghost").err == "no user named 'ghost'\n"


def test_a_token_id_that_is_not_a_number_is_a_usage_error(config: Path) -> None:
    with pytest.raises(SystemExit) as raised:
        build_parser().parse_args(["token", "revoke", "x", "--config", str(config)])
    assert raised.value.code == 2


# -- audit verify ------------------------------------------------------------------------------
def test_audit_verify_holds_then_names_the_changed_entry(
    cli: Callable[..., Run], repo: StateRepository
) -> None:
    cli("user", "add", "alice", "--role", "admin", stdin=GOOD)
    cli("user", "add", "bob", "--role", "viewer", stdin=GOOD)
    cli("token", "create", "--user", "bob")
    ok = cli("audit", "verify")
    with repo.engine.connect() as conn:
        head = audit.head(conn)
    assert (ok.code, ok.out) == (0, f"audit chain holds: 3 entries; head {head}\n")
    assert cli("audit", "verify", "--head", str(head)).code == 0
    with repo.transaction() as conn:
        conn.execute(update(AuditEntry).where(AuditEntry.id == 2).values(object="user:eve"))
    broken = cli("audit", "verify")
    assert broken.code == 1
    assert broken.out == (
        "audit chain broken at entry 2: entry 2 was changed after it was written "
        "(1 earlier entry holds)\n"
    )


def test_audit_verify_with_a_logged_head_sees_a_rewritten_table(
    cli: Callable[..., Run], repo: StateRepository
) -> None:
    cli("user", "add", "alice", "--role", "admin", stdin=GOOD)
    with repo.engine.connect() as conn:
        logged = audit.head(conn)
    # Someone rewrites the whole chain consistently: every hash holds again.
    with repo.transaction() as conn:
        row = conn.execute(select(AuditEntry)).one()
        fields = {name: getattr(row, name) for name in audit._FIELDS} | {"actor": "cli:eve"}
        conn.execute(
            update(AuditEntry)
            .where(AuditEntry.id == row.id)
            .values(actor="cli:eve", hash=audit.entry_hash(row.prev_hash, fields))
        )
    assert cli("audit", "verify").code == 0
    run = cli("audit", "verify", "--head", str(logged))
    assert run.code == 1
    assert f"but entry {logged.id} has hash " in run.out and "rewritten" in run.out
    bad = cli("audit", "verify", "--head", "12:xyz")
    assert bad.code == 2 and bad.err.startswith("--head must be ID:HASH")


# -- the state DB the commands find ----------------------------------------------------------------
def test_a_listing_never_creates_a_state_db_where_there_is_none(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("targets: []\n", encoding="utf-8")
    data = tmp_path / "typo"
    args = build_parser().parse_args(["user", "list", "--config", str(config), "--data", str(data)])
    streams = Io(io.StringIO(), io.StringIO(), io.StringIO())
    assert main(args, streams) == 2
    assert streams.stderr.getvalue().startswith(f"there is no state DB at {data}/state.db")  # type: ignore[attr-defined]
    assert not data.exists()


def test_a_config_with_errors_is_reported_as_check_config_would(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("web:\n  token: abc\n", encoding="utf-8")
    args = build_parser().parse_args(["user", "list", "--config", str(config)])
    streams = Io(io.StringIO(), io.StringIO(), io.StringIO())
    assert main(args, streams) == 2
    assert "web.token: removed:" in streams.stderr.getvalue()  # type: ignore[attr-defined]


def test_without_config_the_installed_one_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dialwatch import staff_cli

    installed = tmp_path / "etc" / "dialwatch.yaml"
    monkeypatch.setattr(staff_cli, "INSTALLED_CONFIG", installed)
    args = build_parser().parse_args(["user", "list", "--data", str(tmp_path / "data")])
    streams = Io(io.StringIO(), io.StringIO(), io.StringIO())
    assert main(args, streams) == 2
    assert streams.stderr.getvalue() == (  # type: ignore[attr-defined]
        f"no --config given and there is no {installed}: "
        "give the appliance's config with --config PATH\n"
    )
    installed.parent.mkdir()
    installed.write_text(f"storage:\n  data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    add = build_parser().parse_args(["user", "add", "alice", "--role", "admin"])
    assert main(add, Io(io.StringIO(GOOD), io.StringIO(), io.StringIO())) == 0
    assert (tmp_path / "data" / "state.db").exists()


def test_the_actor_is_the_user_that_ran_sudo() -> None:
    assert cli_actor({"SUDO_USER": "alice"}, uid=0) == "cli:alice"
    assert cli_actor({"SUDO_USER": "alice"}, uid=os.geteuid() or 1).startswith("cli:")
    assert cli_actor({}, uid=0) == "cli:root"


# -- the real console script ------------------------------------------------------------------------
def test_the_console_script_takes_the_password_on_a_pipe_and_prints_only_the_token(
    config: Path, repo: StateRepository
) -> None:
    added = console_script(
        "user", "add", "alice", "--role", "admin", "--config", str(config), stdin=GOOD + "\n"
    )
    assert (added.returncode, added.stdout) == (0, "added user alice (admin)\n"), added.stderr
    made = console_script("token", "create", "--user", "alice", "--config", str(config))
    assert made.returncode == 0, made.stderr
    value = made.stdout.removesuffix("\n")
    assert made.stdout == value + "\n" and tokens.authenticate(repo, value) is not None
    refused = console_script("token", "create", "--user", "ghost", "--config", str(config))
    assert (refused.returncode, refused.stdout) == (2, "")
    assert refused.stderr == "no user named 'ghost'\n"


def test_the_cli_writes_while_another_connection_keeps_writing(
    config: Path, repo: StateRepository
) -> None:
    """The appliance's case: its writer appends audit entries without pause while the
    CLI adds a user and makes a token in another process; nobody fails and the chain
    does not fork."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys\n"
            "base = [sys.executable, '-m', 'dialwatch.cli']\n"
            f"cfg = ['--config', {str(config)!r}]\n"
            "a = subprocess.run(base + ['user', 'add', 'alice', '--role', 'admin'] + cfg,"
            f" input={GOOD!r} + '\\n', text=True, capture_output=True)\n"
            "t = subprocess.run(base + ['token', 'create', '--user', 'alice'] + cfg,"
            " text=True, capture_output=True)\n"
            "print(a.returncode, t.returncode, a.stderr + t.stderr, file=sys.stderr)\n"
            "sys.exit(a.returncode or t.returncode)\n",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    written = 0
    while proc.poll() is None or written == 0:
        with repo.transaction() as conn:
            audit.record(conn, at=1.0 + written, actor="engine", action="exception")
        written += 1
    _out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    with repo.engine.connect() as conn:
        check = audit.verify(conn)
    assert (check.checked, check.broken_at) == (written + 2, None)
    rows, total = queries.audit_page(repo.engine, actor=cli_actor())
    assert total == 2 and {r.action for r in rows} == {"user.add", "token.create"}


@pytest.fixture(autouse=True)
def _no_dialwatch_data(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The commands find the state DB through the config alone, not the environment."""
    monkeypatch.delenv("DIALWATCH_DATA", raising=False)
    yield
