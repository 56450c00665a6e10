"""A real MariaDB server for tests: its own data directory in a temp dir on a free loopback port.

``mariadb_server`` (session scope) runs ``mariadb-install-db`` and
``mariadbd`` from the Debian ``mariadb-server`` package with ``--no-defaults``
(no /etc/mysql config, no stock service touched). The root account logs in
over the server's own unix socket only; tests connect over TCP as ``USER``
with ``PASSWORD`` (a real password check, so wrong credentials can be
tested). ``MariaDbServer.create_database()`` gives each test an empty
database of its own. Tuned for tests (no flushing at commit), never for data.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.peers import free_port, require_binary, stop_process

USER = "dialwatch"
PASSWORD = "cdr-test-pw"
START_TIMEOUT = 30.0


@dataclass
class MariaDbServer:
    """A running test server; ``USER``/``PASSWORD`` may do anything on 127.0.0.1."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]
    client: str
    _names: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def socket(self) -> Path:
        return self.root / "mariadb.sock"

    def url(self, database: str, password: str = PASSWORD) -> str:
        return f"mysql+pymysql://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def sql(self, statement: str) -> str:
        """Run SQL as root over the unix socket with the ``mariadb`` client; returns its output."""
        done = subprocess.run(
            [self.client, "--no-defaults", "-S", str(self.socket), "-uroot", "-e", statement],
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise RuntimeError(f"mariadb client failed: {done.stderr.strip()}")
        return done.stdout

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL (pymysql driver)."""
        name = f"test_{os.getpid()}_{next(self._names)}"
        self.sql(f"CREATE DATABASE `{name}`")
        return self.url(name)

    def log(self) -> str:
        path = self.root / "mariadb.err"
        return path.read_text(errors="replace") if path.exists() else ""


def _binaries() -> tuple[str, str, str]:
    for name in ("mariadbd", "mariadb-install-db", "mariadb"):
        if shutil.which(name) is None and not Path("/usr/sbin", name).exists():
            pytest.fail(
                f"{name} is not installed: run `sudo apt-get install -y mariadb-server` "
                "(or ./install.sh --test, which installs every test peer)",
                pytrace=False,
            )
    return (
        require_binary("mariadbd"),
        require_binary("mariadb-install-db"),
        require_binary("mariadb"),
    )


def _wait_ready(server: MariaDbServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if server.process.poll() is not None:
            raise RuntimeError(f"mariadbd exited with {server.process.returncode}:\n{server.log()}")
        if server.socket.exists():
            with contextlib.suppress(RuntimeError):
                server.sql("SELECT 1")
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"mariadbd not ready within {START_TIMEOUT}s:\n{server.log()}")
        time.sleep(0.1)


@contextlib.contextmanager
def run_mariadb() -> Iterator[MariaDbServer]:
    """Start a throwaway server; stop it and delete its files on exit."""
    mariadbd, install_db, client = _binaries()
    root = Path(tempfile.mkdtemp(prefix="dialwatch-mariadb-"))
    process: subprocess.Popen[bytes] | None = None
    # As root, mariadbd must be told to stay root (it refuses otherwise); as
    # anyone else it runs as that user.
    user = ["--user=root"] if os.geteuid() == 0 else []
    try:
        data = root / "data"
        subprocess.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={data}",
                *user,
                "--auth-root-authentication-method=socket",
                "--skip-test-db",
                "--skip-name-resolve",
            ],
            check=True,
            capture_output=True,
            cwd=root,
        )
        port = free_port()
        process = subprocess.Popen(
            [
                mariadbd,
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={root / 'mariadb.sock'}",
                f"--port={port}",
                "--bind-address=127.0.0.1",
                f"--pid-file={root / 'mariadb.pid'}",
                f"--log-error={root / 'mariadb.err'}",
                "--skip-name-resolve",
                # A test server: durability is not worth the flushes.
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=64M",
                *user,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=root,
        )
        server = MariaDbServer(port=port, root=root, process=process, client=client)
        _wait_ready(server)
        server.sql(
            f"CREATE USER '{USER}'@'127.0.0.1' IDENTIFIED BY '{PASSWORD}'; "
            f"GRANT ALL ON *.* TO '{USER}'@'127.0.0.1'; FLUSH PRIVILEGES;"
        )
        yield server
    finally:
        if process is not None and process.poll() is None:
            stop_process(process, 20)  # SIGTERM: normal shutdown
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDbServer]:
    """One MariaDB server for the test session; use ``create_database()`` per test."""
    with run_mariadb() as server:
        yield server
