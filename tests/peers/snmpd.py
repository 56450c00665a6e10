"""A real Net-SNMP ``snmpd`` for tests: its own config, v2c communities and a v3 user, in a temp dir.

``snmpd_factory`` starts agents on free 127.0.0.1 UDP ports and stops them at
teardown; ``snmpd_agent`` is one agent shared by a test module. Each agent
runs in the foreground (``snmpd -f -Lo -C -c CONFIG udp:127.0.0.1:PORT``):
``-C`` ignores the system's snmpd.conf, the address is given only on the
command line (an ``agentAddress`` line as well makes it exit), and its
persistent state (engine boots, v3 user keys) goes to the temp dir instead of
/var/lib/snmp. The agent prints many harmless "Cannot find module" lines —
no MIB files are installed; it needs none.

Net-SNMP fills hrProcessorLoad only after about a minute of its own CPU
history, so a fresh agent has no processor rows yet.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.peers import free_port, require_binary

START_TIMEOUT = 10.0

COMMUNITY = "dw-test-community"
V3_USER = "dwmonitor"
V3_AUTH_KEY = "auth-secret-1"
V3_PRIV_KEY = "priv-secret-1"

CONFIG = """\
rocommunity {community} 127.0.0.1
rocommunity6 {community} ::1
view no-ifx included .1
view no-ifx excluded .1.3.6.1.2.1.31
rocommunity {community}-no-ifx 127.0.0.1 -V no-ifx
createUser {user} SHA "{auth_key}" AES "{priv_key}"
rouser {user} priv
persistentDir {root}/persist
"""


@dataclass
class SnmpdAgent:
    """A running snmpd answering v2c ``community`` and v3 ``user`` (authPriv SHA/AES)."""

    port: int
    root: Path
    binary: str
    community: str = COMMUNITY
    user: str = V3_USER
    auth_key: str = V3_AUTH_KEY
    priv_key: str = V3_PRIV_KEY
    ipv6: bool = False
    """Also listen on udp6:[::1]:port (the same port number)."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def listen(self) -> str:
        """snmpd's transport specification (given only on the command line)."""
        v4 = f"udp:127.0.0.1:{self.port}"
        return f"{v4},udp6:[::1]:{self.port}" if self.ipv6 else v4

    @property
    def log(self) -> Path:
        return self.root / "snmpd.log"

    def v2c(self, **options: object) -> dict[str, object]:
        """An ``snmp:`` section for this agent with the v2c community."""
        return {"host": "127.0.0.1", "port": self.port, "community": self.community, **options}

    def v2c_without_ifxtable(self, **options: object) -> dict[str, object]:
        """An ``snmp:`` section whose community's view hides IF-MIB's ifXTable (ifName,
        the 64-bit counters), as an SNMPv1-era agent would."""
        return self.v2c(community=f"{self.community}-no-ifx", **options)

    def v3(self, **options: object) -> dict[str, object]:
        """An ``snmp:`` section for this agent's v3 user, authPriv SHA/AES."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "version": 3,
            "user": self.user,
            "auth_protocol": "SHA",
            "auth_key": self.auth_key,
            "priv_protocol": "AES",
            "priv_key": self.priv_key,
            **options,
        }

    def start(self) -> None:
        (self.root / "persist").mkdir(parents=True, exist_ok=True)
        config = self.root / "snmpd.conf"
        config.write_text(
            CONFIG.format(
                community=self.community,
                user=self.user,
                auth_key=self.auth_key,
                priv_key=self.priv_key,
                root=self.root,
            )
        )
        self.log.write_bytes(b"")
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-f", "-Lo", "-C", "-c", str(config), self.listen],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "SNMP_PERSISTENT_DIR": str(self.root / "persist")},
                start_new_session=True,  # its own process group, apart from pytest's
            )
        deadline = time.monotonic() + START_TIMEOUT
        # With -Lo the agent prints its version once it is listening.
        while "NET-SNMP version" not in self.log.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                text = self.log.read_text(errors="replace")
                self.stop()
                pytest.fail(f"snmpd did not start on {self.listen}:\n{text[-2000:]}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


def start_snmpd(root: Path, ipv6: bool = False) -> SnmpdAgent:
    agent = SnmpdAgent(free_port(socket.SOCK_DGRAM), root, require_binary("snmpd"), ipv6=ipv6)
    agent.start()
    return agent


@pytest.fixture
def snmpd_factory(tmp_path: Path) -> Iterator[Callable[..., SnmpdAgent]]:
    """Start as many agents as a test needs (``ipv6=True``: also on [::1]); all stopped at teardown."""
    agents: list[SnmpdAgent] = []

    def make(ipv6: bool = False) -> SnmpdAgent:
        agent = start_snmpd(tmp_path / f"snmpd{len(agents)}", ipv6)
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


@pytest.fixture(scope="module")
def snmpd_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdAgent]:
    """One agent shared by a test module (tests must not stop it)."""
    agent = start_snmpd(tmp_path_factory.mktemp("snmpd"))
    yield agent
    agent.stop()
