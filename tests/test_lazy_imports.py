"""Heavy libraries load only for the probe kinds that use them.

The engine imports every probe kind (``probes.PROBES``), so a top-level import
of aiohttp, dnspython or cryptography in any probe module would be carried by
every appliance, at every size (engine memory at 10,000 targets, see
bench/RESULTS.md). Each case runs in a fresh interpreter: this test process
has imported them all long ago.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

DEFERRED = (
    "aiohttp",  # http probe
    "yarl",
    "multidict",
    "dns",  # dns probe; sip only for a host name
    "cryptography",  # certificate details: http, tls, sips
    "urllib3",  # dialer source: http
    "paramiko",  # server via: ssh
    "pysnmp",  # server via: snmp
)

SCRIPT = textwrap.dedent(
    """
    import asyncio, importlib.util, json, socket, sys
    from pathlib import Path

    import monitor.engine
    from monitor.config import load_config
    from probes import PROBES, ProbeContext

    config_file = Path(sys.argv[1])
    deferred = json.loads(sys.argv[2])

    # A UDP port nothing listens on: the SIP check gets ICMP port unreachable
    # (or times out); either way it runs its whole path for an IP-address URI.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    config_file.write_text(
        "targets:\\n"
        f"  - {{id: trunk, kind: sip, uri: 'sip:127.0.0.1:{closed}'}}\\n"
        "  - {id: tcp-trunk, kind: sip, uri: 'sip:127.0.0.1', transport: tcp}\\n"
        "  - {id: host, kind: server}\\n"
        f"  - {{id: crm-db, kind: tcp, address: '127.0.0.1:{closed}'}}\\n",
        encoding="utf-8",
    )
    loaded = load_config(config_file, env={})

    async def run_checks():
        ctx = ProbeContext("any", timeout=0.5)
        try:
            for target in loaded.config.targets:
                if target.kind in ("sip", "tcp"):
                    await PROBES[target.kind].check(target, ctx)
        finally:
            await ctx.shared.aclose()

    asyncio.run(run_checks())
    print(json.dumps({
        "loaded": [name for name in deferred if name in sys.modules],
        "missing": [name for name in deferred if importlib.util.find_spec(name) is None],
    }))
    """
)


def test_an_engine_with_sip_by_ip_server_and_tcp_targets_loads_no_heavy_library(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "site.yaml"), json.dumps(DEFERRED)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.splitlines()[-1])
    assert result["missing"] == []  # every name is a real module: no vacuous pass
    assert result["loaded"] == [], (
        f"{', '.join(result['loaded'])} imported by the engine, the config loader or a "
        "sip/tcp check: import it where it is used (see probes/base.py LazyEntries)"
    )
