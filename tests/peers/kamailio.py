"""Kamailio as a real SIP peer: a registrar with digest authentication, and a record-routing proxy.

Every instance runs in the foreground (``-DD -E``) on free loopback ports
with its config and control socket in the test's temp directory, and is
stopped at teardown. No database: the registrar keeps bindings in memory
(``usrloc`` ``db_mode 0``) and checks passwords written into the config
with ``pv_www_authenticate`` (the auth module; ``algorithm`` picks MD5 or
SHA-256 for the challenges).
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from tests.peers import free_port, port_bound, require_binary, stop_process

MODULES = "/usr/lib/x86_64-linux-gnu/kamailio/modules/"
REALM = "dialwatch.test"

_HEAD = """#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
listen=udp:127.0.0.1:{port}
listen=tcp:127.0.0.1:{tcp_port}
mpath="{modules}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "ctl.so"
loadmodule "kex.so"
modparam("ctl", "binrpc", "unix:{ctl}")
modparam("tm", "fr_timer", {fr_timer})
modparam("tm", "fr_inv_timer", 20000)
"""

_REGISTRAR = """loadmodule "auth.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("usrloc", "db_mode", 0)
modparam("auth", "algorithm", "{algorithm}")
modparam("registrar", "max_expires", 3600)
modparam("registrar", "min_expires", 10)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (!is_method("REGISTER")) {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
{passwords}
    if (!pv_www_authenticate("{realm}", "$var(password)", "0")) {{
        www_challenge("{realm}", "1");
        exit;
    }}
    if ($au == "{blocked}") {{
        sl_send_reply("403", "Forbidden");
        exit;
    }}
    consume_credentials();
    if (!save("location")) {{
        sl_reply_error();
    }}
    exit;
}}
"""

_PROXY = """loadmodule "rr.so"
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        # In-dialog (ACK, BYE): follow the Route set we recorded.
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        # Like an SBC: answer keep-alive pings itself.
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    record_route();
    $du = "sip:127.0.0.1:{gateway_port}";
    t_relay();
    exit;
}}
"""


@dataclass
class Kamailio:
    port: int
    tcp_port: int
    ctl: Path
    process: subprocess.Popen[bytes]
    log: Path
    command: tuple[str, ...] = ()
    """How it was started: ``restart`` starts it again the same way."""

    def restart(self) -> None:
        """Stop Kamailio and start it again with the same config, ports and ctl socket, as
        ``systemctl restart kamailio`` would: it forgets every state set over RPC (the
        dispatcher list is read from its file again)."""
        stop_process(self.process, 10)
        self.ctl.unlink(missing_ok=True)
        self.process = _start(self.command, self.log, self.port, self.tcp_port, self.ctl)

    def rpc(self, *args: str) -> str:
        """Run a control command (``ul.add``, ``ul.dump``...) over the ctl socket."""
        kamcmd = require_binary("kamcmd")
        done = subprocess.run(
            [kamcmd, "-s", f"unix:{self.ctl}", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        if done.returncode != 0 or done.stdout.startswith("error:"):
            raise RuntimeError(f"kamcmd {' '.join(args)} failed: {done.stderr or done.stdout}")
        return done.stdout

    def add_binding(self, user: str, contact: str, expires: int = 3600) -> None:
        """Register ``contact`` for ``user`` behind the probe's back, as a PBX would."""
        self.rpc("ul.add", "location", user, contact, str(expires), "1.0", "s:0", "0", "0", "0")


@contextlib.contextmanager
def run_kamailio(
    workdir: Path, body: str, *, fr_timer: int = 2000, **values: object
) -> Iterator[Kamailio]:
    """Start Kamailio with the common head plus ``body`` (formatted with ``values``).
    ``fr_timer``: tm's final-response timeout in ms (2 s here; Kamailio ships 30 s)."""
    kamailio = require_binary("kamailio")
    port = free_port(socket.SOCK_DGRAM)
    tcp_port = free_port()
    ctl = workdir / f"kamailio-{port}.ctl"
    cfg = workdir / f"kamailio-{port}.cfg"
    cfg.write_text(
        _HEAD.format(port=port, tcp_port=tcp_port, modules=MODULES, ctl=ctl, fr_timer=fr_timer)
        + body.format(**values)
    )
    log = workdir / f"kamailio-{port}.log"
    command = (kamailio, "-f", str(cfg), "-DD", "-E", "-w", str(workdir), "-Y", str(workdir))
    instance = Kamailio(
        port, tcp_port, ctl, _start(command, log, port, tcp_port, ctl), log, command
    )
    try:
        yield instance
    finally:
        stop_process(instance.process, 10)


def _start(
    command: tuple[str, ...], log: Path, port: int, tcp_port: int, ctl: Path
) -> subprocess.Popen[bytes]:
    """Start Kamailio (its output appended to ``log``) and wait until it listens on its
    UDP and TCP ports and has made its ctl socket."""
    with log.open("ab") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while not (port_bound(port, "udp") and port_bound(tcp_port, "tcp") and ctl.exists()):
            if process.poll() is not None:
                raise RuntimeError(f"kamailio exited: {log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"kamailio did not start within 15 s: {log.read_text()[-2000:]}")
            time.sleep(0.05)
    except BaseException:
        stop_process(process, 10)
        raise
    return process


@contextlib.contextmanager
def kamailio_registrar(
    workdir: Path,
    passwords: Mapping[str, str],
    algorithm: str = "MD5",
    blocked: str = "blocked",
) -> Iterator[Kamailio]:
    """A registrar for realm ``dialwatch.test`` with these users and passwords.

    ``algorithm``: ``MD5`` or ``SHA-256`` for its challenges. The user
    ``blocked`` authenticates but is then refused with 403.
    """
    checks = "\n".join(
        f'    {"if" if i == 0 else "} else if"} ($au == "{user}") {{\n'
        f'        $var(password) = "{password}";'
        for i, (user, password) in enumerate(passwords.items())
    )
    checks = '    $var(password) = "";\n' + (checks + "\n    }" if checks else "")
    with run_kamailio(
        workdir,
        _REGISTRAR,
        passwords=checks,
        realm=REALM,
        algorithm=algorithm,
        blocked=blocked,
    ) as instance:
        yield instance


@contextlib.contextmanager
def kamailio_record_routing_proxy(workdir: Path, gateway_port: int) -> Iterator[Kamailio]:
    """A proxy that record-routes every dialog and relays new requests to 127.0.0.1:gateway_port.

    Like an SBC it answers OPTIONS without a user part itself (200 OK).
    """
    with run_kamailio(workdir, _PROXY, gateway_port=gateway_port) as instance:
        yield instance


_DISPATCHER = """tcp_accept_no_cl=yes
loadmodule "rr.so"
loadmodule "dispatcher.so"
loadmodule "xhttp.so"
loadmodule "jsonrpcs.so"
modparam("dispatcher", "list_file", "{list_file}")
modparam("dispatcher", "ds_ping_interval", {ping_interval})
modparam("dispatcher", "ds_probing_threshold", {probing_threshold})
modparam("dispatcher", "ds_probing_mode", {probing_mode})
modparam("jsonrpcs", "pretty_format", 0)
modparam("jsonrpcs", "transport", 1)
request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            t_relay();
            exit;
        }}
        if (is_method("ACK") && t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    if (is_method("OPTIONS") && $rU == $null) {{
        sl_send_reply("200", "OK");
        exit;
    }}
    if (is_method("CANCEL")) {{
        if (t_check_trans()) {{
            t_relay();
        }}
        exit;
    }}
    # Priority order among the active destinations of set 1.
    if (!ds_select_dst("1", "8")) {{
        sl_send_reply("503", "No Destination");
        exit;
    }}
    record_route();
    t_relay();
    exit;
}}
event_route[xhttp:request] {{
{auth_check}
    if ($hu =~ "^/RPC") {{
        jsonrpc_dispatch();
    }} else {{
        xhttp_reply("404", "Not Found", "text/plain", "no such path");
    }}
}}
"""


@contextlib.contextmanager
def kamailio_dispatcher(
    workdir: Path,
    gateways: list[tuple[str, int]],
    *,
    ping_interval: int = 0,
    probing_threshold: int = 2,
    basic_auth: str | None = None,
    fr_timer: int = 2000,
) -> Iterator[Kamailio]:
    """A proxy routing new requests over dispatcher set 1 in priority order, with the
    ``gateways`` (URI, priority) as its list; JSON-RPC at ``http://127.0.0.1:<tcp_port>/RPC``
    (no authentication, as Kamailio ships it) and the ctl socket for ``kamcmd``.
    ``ping_interval`` > 0 turns on Kamailio's own OPTIONS probing of the gateways.
    ``basic_auth`` (an ``Authorization`` value): the HTTP route answers 401 to any
    request without it, as a proxy in front of JSON-RPC would."""
    list_file = workdir / f"dispatcher-{len(gateways)}-{free_port()}.list"
    list_file.write_text("".join(f"1 {uri} 0 {priority}\n" for uri, priority in gateways))
    with run_kamailio(
        workdir,
        _DISPATCHER,
        fr_timer=fr_timer,
        list_file=list_file,
        ping_interval=ping_interval,
        probing_threshold=probing_threshold,
        probing_mode=1 if ping_interval else 0,
        auth_check=(
            f'    if ($hdr(Authorization) != "{basic_auth}") {{\n'
            '        xhttp_reply("401", "Unauthorized", "text/plain", "who are you");\n'
            "        exit;\n    }"
            if basic_auth
            else ""
        ),
    ) as instance:
        yield instance
