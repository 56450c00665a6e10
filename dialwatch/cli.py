"""The ``dialwatch`` command: run | check-config | probe | user | token | audit | --version.

A thin parser and dispatch; the staff and audit commands live in ``dialwatch.staff_cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from core import __version__
from dialwatch.options import parse_listen

ROLES = ("admin", "operator", "viewer")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dialwatch",
        description="Monitoring and resilience appliance for outbound call centers.",
    )
    parser.add_argument("--version", action="version", version=f"dialwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the appliance (engine + web)")
    run.add_argument("--config", required=True, help="config file or directory of *.yaml files")
    run.add_argument(
        "--listen",
        type=parse_listen,
        default=None,
        help="HOST:PORT (default: web.listen, 127.0.0.1:8080)",
    )
    run.add_argument("--data", default=None, help="data directory (state DB, metrics, logs)")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    check = sub.add_parser("check-config", help="validate a config; exit 0 when valid, 2 when not")
    check.add_argument("path")

    probe = sub.add_parser("probe", help="run one probe once and print the observation")
    probe.add_argument("--config", required=True)
    probe.add_argument("target_id", metavar="TARGET_ID")
    probe.add_argument("--json", action="store_true", help="print the Observation as JSON")

    key = sub.add_parser(
        "vapid-key",
        help="make the web push (VAPID) key in the data directory when missing; "
        "print its public key",
    )
    key.add_argument("--data", default=None, help="data directory (as for `run`)")

    _staff_parsers(sub)
    return parser


def _state_db_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        default=None,
        help="the appliance's config file or directory (default: /etc/dialwatch/dialwatch.yaml)",
    )
    parser.add_argument("--data", default=None, help="data directory (as for `run`)")


def _staff_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """``user``, ``token`` and ``audit``: run by ``dialwatch.staff_cli``."""
    user = sub.add_parser("user", help="staff users: add, passwd, disable, enable, list")
    user_sub = user.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = user_sub.add_parser(
        "add", help="add a user; the password is read from stdin (asked twice on a terminal)"
    )
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--display-name", default="", help="the name the console shows")
    _state_db_options(add)
    for action, text in (
        ("passwd", "set a user's password (stdin, or asked twice); ends their sessions"),
        ("disable", "disable a user: no login, their sessions end, their tokens stop working"),
        ("enable", "enable a disabled user again"),
        ("sessions-end", "end every session of a user (log them out everywhere)"),
    ):
        one = user_sub.add_parser(action, help=text)
        one.add_argument("name", metavar="NAME")
        _state_db_options(one)
    listing = user_sub.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _state_db_options(listing)

    token = sub.add_parser("token", help="API tokens: create, revoke, list")
    token_sub = token.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = token_sub.add_parser("create", help="create a token; prints only the token on stdout")
    create.add_argument("--user", required=True, metavar="NAME")
    create.add_argument(
        "--role", choices=ROLES, default=None, help="at most the user's role (default: theirs)"
    )
    create.add_argument(
        "--expires", default=None, metavar="DURATION", help="like 30d or 12h (default: never)"
    )
    create.add_argument("--name", default="", metavar="LABEL", help="what the token is for")
    _state_db_options(create)
    revoke = token_sub.add_parser("revoke", help="revoke a token by its id")
    revoke.add_argument("token_id", metavar="ID", type=_token_id)
    _state_db_options(revoke)
    tlist = token_sub.add_parser("list", help="list tokens (never their values)")
    tlist.add_argument("--user", default=None, metavar="NAME")
    tlist.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _state_db_options(tlist)

    aud = sub.add_parser("audit", help="the audit log")
    audit_sub = aud.add_subparsers(dest="action", required=True, metavar="ACTION")
    verify = audit_sub.add_parser(
        "verify", help="check the hash chain: exit 0 when it holds, 1 naming the first broken entry"
    )
    verify.add_argument(
        "--head",
        default=None,
        metavar="ID:HASH",
        help="also check that entry ID still has HASH (a chain head from the appliance log)",
    )
    _state_db_options(verify)


def _token_id(value: str) -> int:
    if not value.isascii() or not value.isdigit():
        raise argparse.ArgumentTypeError(f"a token id is a number, not {value!r}")
    return int(value)


def cmd_check_config(args: argparse.Namespace) -> int:
    from dialwatch.schema import Config
    from monitor.config import check_config_main

    return check_config_main(args.path, Config)


def cmd_probe(args: argparse.Namespace) -> int:
    from dialwatch.schema import Config
    from monitor.config import ConfigError, load_config
    from probes import PROBES, ProbeContext

    try:
        loaded = load_config(args.config, schema=Config)
    except ConfigError as exc:
        print("\n".join(exc.errors), file=sys.stderr)
        return 2
    target = loaded.config.target(args.target_id)
    if target is None:
        known = ", ".join(t.id for t in loaded.config.targets) or "none"
        print(f"no target with id {args.target_id!r}; known: {known}", file=sys.stderr)
        return 2

    from monitor.runner import ProbeRunner

    async def once() -> object:
        ctx = ProbeContext(target_id=target.id, timeout=target.timeout, site=loaded.config.site)
        try:
            return await ProbeRunner(concurrency=1).run(PROBES[target.kind].check, target, ctx)
        finally:
            await ctx.shared.aclose()

    obs = asyncio.run(once())
    if args.json:
        print(json.dumps(obs.to_json(), ensure_ascii=False, indent=2))
    else:
        latency = f"{obs.latency * 1000:.1f} ms" if obs.latency is not None else "-"
        print(
            f"{obs.status.value.upper():5} {latency:>10}  {target.kind} {target.id}  {obs.detail}"
        )
        for point in obs.metrics:
            tags = ",".join(f"{k}={v}" for k, v in point.tags.items())
            fields = " ".join(f"{k}={v}" for k, v in point.fields.items())
            print(f"      {point.measurement}{',' + tags if tags else ''} {fields}")
    return 0 if obs.status.value in ("ok", "warn") else 1


def cmd_vapid_key(args: argparse.Namespace) -> int:
    """``install.sh`` runs it, so the key exists before the first start (as the service's
    user: the file must be the appliance's own, 0600)."""
    from dialwatch.options import resolve_data_dir
    from notify import vapid

    data_dir = resolve_data_dir(args.data, None)
    previous = os.umask(0o077)  # a data directory made here is the appliance's own too
    try:
        key = vapid.load_or_create(vapid.key_path(data_dir))
    except vapid.VapidKeyError as exc:
        print(exc, file=sys.stderr)
        return 2
    finally:
        os.umask(previous)
    print(key.public_key)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from dialwatch.app import run_appliance

    return run_appliance(
        config_path=args.config,
        data_arg=args.data,
        listen=args.listen,
        log_level=args.log_level,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handlers = {
        "run": cmd_run,
        "check-config": cmd_check_config,
        "probe": cmd_probe,
        "vapid-key": cmd_vapid_key,
    }
    if args.command in handlers:
        return handlers[args.command](args)
    from dialwatch import staff_cli  # argon2, SQLAlchemy: loaded only by these commands

    return staff_cli.main(args)


if __name__ == "__main__":
    sys.exit(main())
