"""``dialwatch user | token | audit``: staff accounts, API tokens and the audit chain from a shell.

Each command opens the state DB the appliance uses — the config's
``storage.database_url``, or SQLite in the data directory chosen as ``run``
chooses it; without ``--config``, the installed ``/etc/dialwatch/dialwatch.yaml``
— and calls the same ``monitor.staff`` functions as the console,
so every change is checked and audited the same way. It works while the
appliance runs: on SQLite both processes write in WAL mode with ``BEGIN
IMMEDIATE`` (``StateRepository.transaction``), so a write waits for the other
one's instead of failing; on PostgreSQL the audit chain's advisory lock
orders the two writers.

The actor of a change is ``cli:<unix user>`` (the user ``sudo`` was run by,
when it was). A mistake — an unknown user, a weak password, a bad
``--expires`` — is one sentence on stderr and exit status 2, never a
traceback. ``token create`` prints the token, and nothing else, on stdout.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import pwd
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo

from core.config import parse_duration
from dialwatch.options import resolve_data_dir
from monitor import audit
from monitor.events import check_actor
from monitor.staff import sessions, tokens, users
from monitor.store.db import StateDBError, database_url, open_database
from monitor.store.repository import NotFound, StateRepository

Prompt = Callable[[str], str]


class CliError(Exception):
    """What went wrong, in one sentence for stderr (exit status 2)."""


@dataclass
class Io:
    """Where a command reads and writes (the real streams, or a test's)."""

    stdin: IO[str]
    stdout: IO[str]
    stderr: IO[str]
    prompt: Prompt | None = None
    """Asks for a password without echoing it, when stdin is a terminal (default: getpass)."""


@dataclass
class State:
    """The state DB a command works on, and how to show times."""

    repo: StateRepository
    tz: ZoneInfo
    actor: str


# -- running one ----------------------------------------------------------------------
INSTALLED_CONFIG = Path("/etc/dialwatch/dialwatch.yaml")
"""The config ``install.sh --run`` writes: used when ``--config`` is not given."""
READ_ONLY = {("user", "list"), ("token", "list"), ("audit", "verify")}
"""Commands that must not create an empty state DB where none is (a mistyped --data)."""


def main(args: argparse.Namespace, io: Io | None = None) -> int:
    """Run ``dialwatch user|token|audit ...``; returns the exit status."""
    io = io or Io(sys.stdin, sys.stdout, sys.stderr)
    handler = HANDLERS[(args.command, args.action)]
    try:
        with _opened(args, (args.command, args.action) in READ_ONLY) as state:
            return handler(args, state, io)
    except CliError as exc:
        print(str(exc), file=io.stderr)
        return 2
    except (NotFound, ValueError, StateDBError) as exc:
        # NotFound and ValueError carry the staff functions' reasons (an unknown user,
        # the password policy, a role above the owner's, the last admin...).
        print(str(exc), file=io.stderr)
        return 2
        print(str(exc), file=io.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; nothing was changed", file=io.stderr)
        return 2


@contextlib.contextmanager
def _opened(args: argparse.Namespace, read_only: bool) -> Iterator[State]:
    from dialwatch.schema import Config
    from monitor.config import ConfigError, load_config

    config_path = args.config
    if config_path is None:
        if not INSTALLED_CONFIG.exists():
            raise CliError(
                f"no --config given and there is no {INSTALLED_CONFIG}: "
                "give the appliance's config with --config PATH"
            )
        config_path = str(INSTALLED_CONFIG)
    try:
        loaded = load_config(config_path, schema=Config)
    except ConfigError as exc:
        raise CliError("\n".join(exc.errors)) from None
    storage = loaded.config.storage
    data_dir = resolve_data_dir(args.data, storage.data_dir)
    url = database_url(storage.database_url, data_dir)
    if read_only and url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        if not path.exists():
            raise CliError(
                f"there is no state DB at {path}: check --config and --data "
                "(the appliance creates it when it first runs)"
            )
    engine = open_database(storage.database_url, data_dir)
    repo = StateRepository(engine)
    try:
        yield State(repo, _zone(loaded.config.site.timezone), cli_actor())
    except Exception as exc:
        from sqlalchemy.exc import SQLAlchemyError

        if isinstance(exc, SQLAlchemyError):
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise CliError(f"the state DB refused the change: {reason}") from exc
        raise
    finally:
        repo.close()


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ValueError, KeyError):  # an unknown name: show UTC rather than fail a listing
        return ZoneInfo("UTC")


def cli_actor(env: dict[str, str] | None = None, uid: int | None = None) -> str:
    """``cli:<unix user>``: the user sudo was run by when root runs it through sudo."""
    env = dict(os.environ) if env is None else env
    uid = os.geteuid() if uid is None else uid
    name = env.get("SUDO_USER") if uid == 0 else None
    if not name:
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
    actor = f"cli:{name}"
    try:
        return check_actor(actor)
    except ValueError:
        return "cli"


# -- passwords ----------------------------------------------------------------------
def read_new_password(name: str, io: Io) -> str:
    """The first line of stdin (its newline dropped), or asked for twice on a terminal."""
    if io.stdin.isatty():
        prompt = io.prompt or getpass.getpass
        first = prompt(f"New password for {name}: ")
        if prompt("The same password again: ") != first:
            raise CliError("the two passwords differ; nothing was changed")
        return first
    line = io.stdin.readline()
    if not line:
        raise CliError("no password on standard input: give it as the first line")
    return line.removesuffix("\n").removesuffix("\r")


# -- users ------------------------------------------------------------------------------
def user_add(args: argparse.Namespace, state: State, io: Io) -> int:
    password = read_new_password(users.normal_name(args.name), io)
    added = users.add_user(
        state.repo,
        state.actor,
        args.name,
        args.role,
        password,
        display_name=args.display_name,
    )
    print(f"added user {added.name} ({added.role})", file=io.stdout)
    return 0


def user_passwd(args: argparse.Namespace, state: State, io: Io) -> int:
    name = users.normal_name(args.name)
    with state.repo.engine.connect() as conn:
        if users.find_user(conn, name) is None:
            raise NotFound(f"no user named {name!r}")
    users.set_password(state.repo, state.actor, name, read_new_password(name, io))
    print(f"password of {name} changed; their sessions have ended", file=io.stdout)
    return 0


def user_disable(args: argparse.Namespace, state: State, io: Io) -> int:
    ended = users.disable_user(state.repo, state.actor, args.name)
    name = users.normal_name(args.name)
    print(f"disabled {name}; {_sessions(ended)} ended, their tokens stop working", file=io.stdout)
    return 0


def user_enable(args: argparse.Namespace, state: State, io: Io) -> int:
    users.enable_user(state.repo, state.actor, args.name)
    print(f"enabled {users.normal_name(args.name)}", file=io.stdout)
    return 0


def user_sessions_end(args: argparse.Namespace, state: State, io: Io) -> int:
    ended = sessions.end_all_of(state.repo, state.actor, args.name)
    print(f"{_sessions(ended)} of {users.normal_name(args.name)} ended", file=io.stdout)
    return 0


def _sessions(n: int) -> str:
    return f"{n} session{'' if n == 1 else 's'}"


def user_list(args: argparse.Namespace, state: State, io: Io) -> int:
    with state.repo.engine.connect() as conn:
        members = users.list_users(conn)
    if args.json:
        rows = [
            {
                "name": m.name,
                "display_name": m.display_name,
                "role": m.role,
                "disabled": m.disabled,
                "second_factor": m.second_factor,
                "created_at": iso(m.created_at),
                "password_changed_at": iso(m.password_changed_at),
            }
            for m in members
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=2), file=io.stdout)
        return 0
    table = [
        (
            m.name,
            m.role,
            "disabled" if m.disabled else "active",
            "on" if m.second_factor else "off",
            local(m.created_at, state.tz),
            m.display_name,
        )
        for m in members
    ]
    write_table(("NAME", "ROLE", "STATE", "2FA", "CREATED", "DISPLAY NAME"), table, io.stdout)
    return 0


# -- tokens -----------------------------------------------------------------------------
def parse_expires(value: str | None) -> float | None:
    """``--expires 30d`` → seconds; None when not given."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        raise CliError(
            f"--expires must be a duration like 30d, 12h or 90m, not {value!r}"
        ) from None


def token_create(args: argparse.Namespace, state: State, io: Io) -> int:
    expires_in = parse_expires(args.expires)
    info, value = tokens.create_token(
        state.repo, state.actor, args.user, role=args.role, expires_in=expires_in, name=args.name
    )
    # Only the token on stdout, so `TOKEN=$(dialwatch token create ...)` holds just it.
    print(value, file=io.stdout)
    until = f"expires {local(info.expires_at, state.tz)}" if info.expires_at else "never expires"
    print(
        f"token {info.id} for {info.user} ({info.role}), {until}; it is shown only this once",
        file=io.stderr,
    )
    return 0


def token_revoke(args: argparse.Namespace, state: State, io: Io) -> int:
    info = tokens.revoke_token(state.repo, state.actor, args.token_id)
    print(f"revoked token {info.id} of {info.user}", file=io.stdout)
    return 0


def token_list(args: argparse.Namespace, state: State, io: Io) -> int:
    with state.repo.engine.connect() as conn:
        if args.user is not None and users.find_user(conn, args.user) is None:
            raise NotFound(f"no user named {args.user!r}")
        listed = tokens.list_tokens(conn, args.user)
    now = datetime.now(UTC).timestamp()
    if args.json:
        rows = [
            {
                "id": t.id,
                "user": t.user,
                "name": t.name,
                "prefix": t.prefix,
                "role": t.role,
                "state": t.state(now),
                "created_at": iso(t.created_at),
                "created_by": t.created_by,
                "expires_at": iso(t.expires_at),
                "last_used_at": iso(t.last_used_at),
                "revoked_at": iso(t.revoked_at),
            }
            for t in listed
        ]
        print(json.dumps(rows, ensure_ascii=False, indent=2), file=io.stdout)
        return 0
    table = [
        (
            str(t.id),
            t.user,
            t.role,
            t.state(now),
            t.prefix + "…",
            local(t.created_at, state.tz),
            local(t.expires_at, state.tz) if t.expires_at else "never",
            local(t.last_used_at, state.tz) if t.last_used_at else "never",
            t.name,
        )
        for t in listed
    ]
    write_table(
        ("ID", "USER", "ROLE", "STATE", "PREFIX", "CREATED", "EXPIRES", "LAST USED", "NAME"),
        table,
        io.stdout,
    )
    return 0


# -- audit --------------------------------------------------------------------------------
_HEAD = re.compile(r"(\d+):([0-9a-f]{64})")


def audit_verify(args: argparse.Namespace, state: State, io: Io) -> int:
    expected = None
    if args.head is not None:
        match = _HEAD.fullmatch(args.head.strip().lower())
        if match is None:
            raise CliError(
                f"--head must be ID:HASH as the appliance log shows it "
                f"(a number, a colon and 64 hex digits), not {args.head!r}"
            )
        expected = (int(match.group(1)), match.group(2))
    engine = state.repo.engine
    if engine.dialect.name == "postgresql":
        # One snapshot for the whole walk: a retention batch committing between two of
        # its reads must not look like a gap. (SQLite's read transaction is one already.)
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with engine.connect() as conn:
        check = audit.verify(conn)
        found = audit.entry_hash_of(conn, expected[0]) if expected is not None else None
        anchor = audit.anchor(conn)
        head = audit.head(conn)
    if check.broken_at is not None:
        print(
            f"audit chain broken at entry {check.broken_at}: {check.reason} "
            f"({check.checked} earlier {'entry holds' if check.checked == 1 else 'entries hold'})",
            file=io.stdout,
        )
        return 1
    if expected is not None:
        entry_id, digest = expected
        if found is None and anchor is not None and entry_id <= anchor.through_id:
            print(
                f"audit chain holds ({check.checked} entries), but entry {entry_id} was pruned: "
                f"the chain now starts after entry {anchor.through_id}",
                file=io.stdout,
            )
            return 1
        if found != digest:
            what = "does not exist" if found is None else f"has hash {found}"
            print(
                f"audit chain holds ({check.checked} entries), but entry {entry_id} {what}, "
                f"not {digest}: the table was rewritten since that head was logged",
                file=io.stdout,
            )
            return 1
    start = f" after the anchor at entry {anchor.through_id}" if anchor is not None else ""
    print(f"audit chain holds: {check.checked} entries{start}; head {head}", file=io.stdout)
    return 0


# -- output -------------------------------------------------------------------------------
def iso(ts: float | None) -> str | None:
    """Epoch seconds → ISO 8601 in UTC (as the API writes times)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def local(ts: float | None, tz: ZoneInfo) -> str:
    """Epoch seconds → ``2026-12-02 15:04`` in the site's timezone."""
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M")


def write_table(header: Sequence[str], rows: Sequence[Sequence[str]], out: IO[str]) -> None:
    """Columns padded to their widest cell; ``(none)`` for an empty list."""
    if not rows:
        print("(none)", file=out)
        return
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    for row in (header, *rows):
        cells = [str(c).ljust(w) for c, w in zip(row, widths, strict=True)]
        print("  ".join(cells).rstrip(), file=out)


HANDLERS: dict[tuple[str, str], Callable[[argparse.Namespace, State, Io], int]] = {
    ("user", "add"): user_add,
    ("user", "passwd"): user_passwd,
    ("user", "disable"): user_disable,
    ("user", "enable"): user_enable,
    ("user", "sessions-end"): user_sessions_end,
    ("user", "list"): user_list,
    ("token", "create"): token_create,
    ("token", "revoke"): token_revoke,
    ("token", "list"): token_list,
    ("audit", "verify"): audit_verify,
}
