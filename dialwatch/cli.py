"""The ``dialwatch`` command: run | check-config | probe | --version."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from core import __version__
from dialwatch.options import parse_listen


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
    return parser


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
    handlers = {"run": cmd_run, "check-config": cmd_check_config, "probe": cmd_probe}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
