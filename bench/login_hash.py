"""How long one password check costs at login: our Argon2id against a PBKDF2 reference.

A login pays one verification; so does an attacker per guess against a
stolen hash. The target for ours is 50–250 ms on the appliance. The
reference is PBKDF2-HMAC-SHA256 at OWASP's 2023 recommendation (600,000
iterations), measured in the same run on the same machine; memory is what
separates them (Argon2id needs 64 MiB per guess, PBKDF2 next to none, which
is why GPUs eat PBKDF2).

    .venv/bin/python bench/login_hash.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import time
from collections.abc import Callable

from monitor.staff import passwords

PBKDF2_ITERATIONS = 600_000
PASSWORD = "a typical long passphrase"


def timed(fn: Callable[[], object], rounds: int) -> list[float]:
    fn()  # warm up (allocator, first-call costs)
    out = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        out.append(time.perf_counter() - start)
    return out


def report(name: str, times: list[float]) -> None:
    times = sorted(times)
    p95 = times[min(len(times) - 1, int(len(times) * 0.95))]
    print(
        f"{name:<34} median {statistics.median(times) * 1000:7.1f} ms   "
        f"p95 {p95 * 1000:7.1f} ms   min {times[0] * 1000:7.1f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    p = passwords.PARAMETERS
    print(
        f"Argon2id t={p.time_cost} m={p.memory_cost // 1024} MiB p={p.parallelism}; "
        f"PBKDF2-SHA256 {PBKDF2_ITERATIONS:,} iterations; {os.cpu_count()} CPUs; "
        f"{args.rounds} rounds"
    )
    stored = passwords.hash_password(PASSWORD)
    salt = os.urandom(16)
    report(
        "argon2id hash (set a password)",
        timed(lambda: passwords.hash_password(PASSWORD), args.rounds),
    )
    report(
        "argon2id verify (a login)",
        timed(lambda: passwords.verify_password(stored, PASSWORD), args.rounds),
    )
    report(
        "argon2id verify, unknown user",
        timed(lambda: passwords.verify_password(None, PASSWORD), args.rounds),
    )
    report(
        "pbkdf2-sha256 (reference)",
        timed(
            lambda: hashlib.pbkdf2_hmac("sha256", PASSWORD.encode(), salt, PBKDF2_ITERATIONS),
            args.rounds,
        ),
    )
    print(
        f"memory per Argon2 check: {p.memory_cost // 1024} MiB (by its parameters); "
        "PBKDF2: a few hundred bytes"
    )


if __name__ == "__main__":
    main()
