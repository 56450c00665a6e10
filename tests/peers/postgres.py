"""A real PostgreSQL server for tests: its own cluster in a temp dir on a free loopback port.

``postgres_server`` (session scope) runs ``initdb`` and ``postgres`` from the
Debian ``postgresql`` package; ``PostgresServer.create_database()`` gives each
test an empty database of its own. PostgreSQL refuses to run as root, so
under root (CI) both run as the ``postgres`` system user, which owns the
temp dir. The cluster is tuned for tests (no fsync), never for data.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.peers import free_port, stop_process

PG_LIB = Path("/usr/lib/postgresql")
PREFERRED_MAJOR = "15"
SUPERUSER = "dialwatch"
START_TIMEOUT = 30.0


def postgres_bin_dir() -> Path:
    """Where ``initdb`` and ``postgres`` are (version 15 if there are several), or fail."""
    candidates = sorted(
        (p for p in PG_LIB.glob("*/bin") if (p / "postgres").exists()),
        key=lambda p: (p.parent.name == PREFERRED_MAJOR, p.parent.name),
    )
    if not candidates:
        pytest.fail(
            "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/postgres): run "
            "`sudo apt-get install -y postgresql` (or ./install.sh --test, which installs "
            "every test peer)",
            pytrace=False,
        )
    return candidates[-1]


def _run_as() -> str | None:
    """The user to run PostgreSQL as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    pytest.fail("running as root and there is no postgres or nobody user to run PostgreSQL as")


@dataclass
class PostgresServer:
    """A running test cluster; ``trust`` auth on 127.0.0.1 for ``SUPERUSER``."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"test_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self._dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def _dsn(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def log(self) -> str:
        path = self.root / "postgres.log"
        return path.read_text(errors="replace") if path.exists() else ""


def _wait_ready(server: PostgresServer) -> None:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"postgres exited with {server.process.returncode}:\n{server.log()}")
        try:
            with psycopg.connect(server._dsn(), connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"postgres did not accept connections within {START_TIMEOUT}s:\n{server.log()}"
                ) from None
            time.sleep(0.1)


@contextlib.contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """Start a throwaway cluster; stop it and delete its files on exit."""
    bin_dir = postgres_bin_dir()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="dialwatch-pg-"))
    process: subprocess.Popen[bytes] | None = None
    try:
        if user is not None:
            pw = pwd.getpwnam(user)
            os.chown(root, pw.pw_uid, pw.pw_gid)
        as_user = (
            {"user": user, "group": pwd.getpwnam(user).pw_gid, "extra_groups": []} if user else {}
        )
        data = root / "data"
        subprocess.run(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            cwd=root,
            **as_user,
        )
        port = free_port()
        with open(root / "postgres.log", "wb") as log:
            process = subprocess.Popen(
                [
                    str(bin_dir / "postgres"),
                    "-D",
                    str(data),
                    "-k",
                    str(root),
                    "-p",
                    str(port),
                    "-h",
                    "127.0.0.1",
                    # A test cluster: durability is not worth the fsyncs.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
                **as_user,
            )
        server = PostgresServer(port=port, root=root, process=process)
        _wait_ready(server)
        yield server
    finally:
        if process is not None and process.poll() is None:
            stop_process(
                process, 15, sig=signal.SIGINT
            )  # "fast" shutdown: disconnect clients, stop
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the test session; use ``create_database()`` per test."""
    with run_postgres() as server:
        yield server
