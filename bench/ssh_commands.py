"""Commands per second over SSH: one pooled connection reused vs a fresh connection each time.

Runs the real ``server`` probe ``via: ssh`` (``probes.server.check``: the
asyncio hop into the SSH worker threads, host-key check, login, one channel
per command, parsing) against a real OpenSSH ``sshd`` started on a loopback
port, in the same run for both modes:

- ``reuse``: one ProbeContext for every poll, as the engine runs a target —
  one login, then one channel per command;
- ``fresh``: a new ProbeContext (so a new pool) per poll, closed afterwards —
  TCP connect, key exchange, host-key check and login every time, which is
  what a probe without a pool would pay.

Each poll runs one command (``profiles: []``, one ``commands`` entry), ``true``
by default, so the numbers are the SSH overhead rather than the command's own
work. ``--in-flight`` polls run at once (several targets on one host).
Reported per mode: commands/s, latency percentiles, client CPU per command
(this process) and sshd CPU per command (listener plus every connection
child, reaped or alive), and logins seen by sshd. A ``login`` line times the
connection alone (TCP, key exchange, host-key check, public-key login, close)
— what reuse saves per poll — and a ``shell`` line the login user's shell
start-up (``bash -c '. ~/.bashrc'`` when the shell is bash), which sshd pays
for every command in both modes.

Usage (from the repository root)::

    .venv/bin/python -m bench.ssh_commands --seconds 10 --in-flight 1 8
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import psutil

from core.net.ssh import Endpoint, connect
from core.observation import Observation, Status
from probes.base import ProbeContext
from probes.server import ServerTarget, check
from tests.peers.sshd import SshdServer, start_sshd


def _target(server: SshdServer, known_hosts: Path, command: str) -> ServerTarget:
    return ServerTarget.model_validate(
        {
            "id": "bench-host",
            "kind": "server",
            "via": "ssh",
            "timeout": "30s",
            "interval": "30s",
            "ssh": {
                "host": "127.0.0.1",
                "port": server.port,
                "user": server.user,
                "key_file": str(server.client_key),
                "known_hosts": str(known_hosts),
                "profiles": [],
                "commands": [{"name": "bench", "run": command}],
            },
        }
    )


def _sshd_cpu(server: SshdServer) -> float:
    """CPU seconds of the sshd listener and all its connection processes so far."""
    assert server.process is not None
    listener = psutil.Process(server.process.pid)
    times = listener.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in listener.children(recursive=True):
        try:
            child_times = child.cpu_times()
        except psutil.Error:
            continue  # exited between listing and reading; counted once it is reaped
        total += child_times.user + child_times.system
    return total


async def _run(target: ServerTarget, mode: str, seconds: float, in_flight: int) -> list[float]:
    """Poll for ``seconds`` with ``in_flight`` polls at once; returns each poll's latency."""
    shared_ctx = ProbeContext("bench-host", 30.0)
    latencies: list[float] = []
    failures: list[str] = []
    stop_at = time.monotonic() + seconds

    async def worker() -> None:
        while time.monotonic() < stop_at:
            ctx = shared_ctx if mode == "reuse" else ProbeContext("bench-host", 30.0)
            started = time.perf_counter()
            obs: Observation = await check(target, ctx)
            latencies.append(time.perf_counter() - started)
            if obs.status is not Status.OK:
                failures.append(obs.detail)
            if mode == "fresh":
                await ctx.shared.aclose()

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    await shared_ctx.shared.aclose()
    if failures:
        raise SystemExit(f"{len(failures)} polls failed, first: {failures[0]}")
    return latencies


def measure(
    server: SshdServer, target: ServerTarget, mode: str, seconds: float, in_flight: int
) -> dict[str, float]:
    logins_before = server.logins()
    sshd_before = _sshd_cpu(server)
    cpu_before = time.process_time()
    started = time.perf_counter()
    latencies = asyncio.run(_run(target, mode, seconds, in_flight))
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_before
    time.sleep(0.5)  # let sshd reap the last connection children so their CPU is counted
    sshd_cpu = _sshd_cpu(server) - sshd_before
    ordered = sorted(latencies)
    n = len(ordered)
    return {
        "commands": n,
        "seconds": elapsed,
        "per_second": n / elapsed,
        "p50_ms": statistics.median(ordered) * 1000,
        "p99_ms": ordered[min(n - 1, int(n * 0.99))] * 1000,
        "client_cpu_ms": cpu / n * 1000,
        "sshd_cpu_ms": sshd_cpu / n * 1000,
        "logins": server.logins() - logins_before,
    }


def measure_login(server: SshdServer, known_hosts: Path, count: int) -> dict[str, float]:
    endpoint = Endpoint(
        "127.0.0.1", server.port, server.user, None, str(server.client_key), None, str(known_hosts)
    )
    took: list[float] = []
    cpu_before = time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        connect(endpoint, time.monotonic() + 30).close()
        took.append(time.perf_counter() - started)
    cpu = time.process_time() - cpu_before
    return {"p50_ms": statistics.median(took) * 1000, "client_cpu_ms": cpu / count * 1000}


def measure_shell(count: int) -> float:
    """Median seconds for the login shell to start the way sshd starts it for a command."""
    shell = pwd.getpwuid(os.getuid()).pw_shell or "/bin/sh"
    script = (
        ". ~/.bashrc"
        if shell.endswith("bash") and Path("~/.bashrc").expanduser().exists()
        else "true"
    )
    took: list[float] = []
    for _ in range(count):
        started = time.perf_counter()
        subprocess.run([shell, "-c", script], capture_output=True, check=False)
        took.append(time.perf_counter() - started)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode and concurrency")
    parser.add_argument("--in-flight", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--command", default="true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dialwatch-bench-ssh-") as tmp:
        server = start_sshd(Path(tmp) / "sshd")
        try:
            known = server.write_known_hosts(Path(tmp) / "known_hosts")
            target = _target(server, known, args.command)
            print(f"sshd on 127.0.0.1:{server.port}, command {args.command!r}")
            header = (
                f"{'mode':<6} {'in flight':>9} {'commands':>8} {'cmd/s':>8} {'p50 ms':>8} "
                f"{'p99 ms':>8} {'client cpu ms/cmd':>17} {'sshd cpu ms/cmd':>15} {'logins':>6}"
            )
            login = measure_login(server, known, 20)
            print(
                f"login only (connect + host key + auth + close): p50 {login['p50_ms']:.1f} ms, "
                f"client cpu {login['client_cpu_ms']:.2f} ms"
            )
            print(
                f"login shell start-up (paid per command in both modes): {measure_shell(10) * 1000:.1f} ms"
            )
            print(header)
            for in_flight in args.in_flight:
                for mode in ("reuse", "fresh"):
                    r = measure(server, target, mode, args.seconds, in_flight)
                    print(
                        f"{mode:<6} {in_flight:>9} {r['commands']:>8.0f} {r['per_second']:>8.1f} "
                        f"{r['p50_ms']:>8.1f} {r['p99_ms']:>8.1f} {r['client_cpu_ms']:>17.2f} "
                        f"{r['sshd_cpu_ms']:>15.2f} {r['logins']:>6.0f}"
                    )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
