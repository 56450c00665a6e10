"""SIPp as a real SIP peer: an OPTIONS-answering UAS on a loopback port, and a dropping UDP relay.

``sipp_options_uas`` starts ``sipp`` with a small XML scenario that receives
OPTIONS and answers with a chosen status (optionally preceded by ``100
Trying``), over UDP or TCP. SIPp's built-in ``uas`` scenario expects INVITE,
hence our own scenario.

``sipp_trunk_uas`` is a carrier trunk for the failover lab: one SIPp that
answers OPTIONS and takes calls (INVITE, 100/180/200, ACK, BYE), tracing every
message so a test can tell which trunk an INVITE reached
(``requests_received``); ``sipp_calls`` is the caller, a batch of calls
through a record-routing proxy.

``DroppingUdpRelay`` sits in front of a UDP peer and drops the first N
datagrams from the client. SIPp itself treats a retransmitted request as a
duplicate of one it never answered, so "lose the first copy" has to happen
before SIPp sees it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import re
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.peers import free_port, port_bound, require_binary, stop_process

_RESPONSE = """
      SIP/2.0 {code} {reason}
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Contact: <sip:[local_ip]:[local_port];transport=[transport]>
      Server: SIPp options-uas
      Content-Length: 0
"""


def options_scenario(code: int = 200, reason: str = "OK", provisional: bool = False) -> str:
    """SIPp scenario XML: receive OPTIONS, optionally send 100 Trying, then send ``code reason``."""
    sends = []
    if provisional:
        sends.append(_RESPONSE.format(code=100, reason="Trying"))
    sends.append(_RESPONSE.format(code=code, reason=reason))
    body = "".join(f"  <send>\n    <![CDATA[\n{s}\n    ]]>\n  </send>\n" for s in sends)
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<scenario name="dialwatch options uas">\n'
        '  <recv request="OPTIONS" crlf="true"/>\n'
        f"{body}"
        "</scenario>\n"
    )


@dataclass
class SippUas:
    port: int
    transport: str
    process: subprocess.Popen[bytes]
    log: Path
    messages: Path | None = None
    """SIPp's ``-trace_msg`` file: every message it received and sent (``sipp_trunk_uas``)."""

    @property
    def uri(self) -> str:
        suffix = ";transport=tcp" if self.transport == "tcp" else ""
        return f"sip:127.0.0.1:{self.port}{suffix}"


@contextlib.contextmanager
def sipp_options_uas(
    workdir: Path,
    code: int = 200,
    reason: str = "OK",
    transport: str = "udp",
    provisional: bool = False,
    port: int | None = None,
) -> Iterator[SippUas]:
    """Run SIPp answering OPTIONS with ``code reason`` on 127.0.0.1 (on ``port``, e.g. to
    bring a killed trunk back where it was; default: a free one); stopped on exit."""
    sipp = require_binary("sipp")
    kind = socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM
    port = port or free_port(kind)
    scenario = workdir / f"options-{transport}-{code}-{port}.xml"
    scenario.write_text(options_scenario(code, reason, provisional))
    log = workdir / f"sipp-{port}.log"
    cmd = [
        sipp,
        "-sf",
        str(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-t",
        "u1" if transport == "udp" else "t1",
        # SIPp's control socket defaults to UDP 8888; a free port keeps parallel runs apart.
        "-cp",
        str(free_port(socket.SOCK_DGRAM)),
        "-nostdin",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not port_bound(port, transport):
            if process.poll() is not None:
                raise RuntimeError(
                    f"sipp exited with {process.returncode}: {log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"sipp did not bind {transport} port {port} within 10 s")
            time.sleep(0.02)
        yield SippUas(port, transport, process, log)
    finally:
        stop_process(process, 5)


@pytest.fixture
def sipp_uas(tmp_path: Path) -> Iterator[Callable[..., SippUas]]:
    """Factory fixture: ``sipp_uas(code=503, reason="Service Unavailable", transport="udp")``
    starts a SIPp OPTIONS UAS; every one started is stopped at teardown."""
    with contextlib.ExitStack() as stack:

        def start(
            code: int = 200, reason: str = "OK", transport: str = "udp", provisional: bool = False
        ) -> SippUas:
            return stack.enter_context(
                sipp_options_uas(tmp_path, code, reason, transport, provisional)
            )

        yield start


class DroppingUdpRelay:
    """A UDP relay (test tool) in front of a peer that drops the first ``drop_first`` client datagrams.

    Datagrams from the client are forwarded to ``upstream`` from the relay's
    own upstream socket; whatever comes back is sent to the last client
    address. ``drop_first=-1`` drops every client datagram (a black hole).
    """

    def __init__(self, upstream: tuple[str, int], drop_first: int = 1) -> None:
        self.upstream = upstream
        self.drop_first = drop_first
        self.received = 0
        self.dropped = 0
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind(("127.0.0.1", 0))
        self._back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._back.bind(("127.0.0.1", 0))
        self._client: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dropping-udp-relay", daemon=True)

    @property
    def port(self) -> int:
        return self._front.getsockname()[1]

    def __enter__(self) -> DroppingUdpRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self._front.close()
        self._back.close()

    def _run(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self._front, selectors.EVENT_READ)
            sel.register(self._back, selectors.EVENT_READ)
            while not self._stop.is_set():
                for key, _ in sel.select(0.05):
                    sock = key.fileobj
                    assert isinstance(sock, socket.socket)
                    data, addr = sock.recvfrom(65535)
                    if sock is self._front:
                        self.received += 1
                        self._client = addr
                        if self.drop_first < 0 or self.received <= self.drop_first:
                            self.dropped += 1
                            continue
                        self._back.sendto(data, self.upstream)
                    elif self._client is not None:
                        self._front.sendto(data, self._client)


@dataclass
class TlsFront:
    """socat (OpenSSL) terminating TLS on a loopback port in front of a SIPp TCP UAS."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path


@contextlib.contextmanager
def sipp_tls_front(
    workdir: Path,
    upstream_port: int,
    cert_file: Path,
    key_file: Path,
    client_ca_file: Path | None = None,
) -> Iterator[TlsFront]:
    """Run ``socat`` as a TLS server on 127.0.0.1 relaying each connection to SIPp over TCP.

    The Debian SIPp build here has no TLS (``sipp -v`` lists no TLS) and
    Kamailio's tls module is a separate package, so TLS comes from socat's
    OpenSSL — a real TLS stack — and SIP from SIPp behind it. With
    ``client_ca_file`` the front demands a client certificate signed by that CA.
    """
    socat = require_binary("socat")
    port = free_port()
    options = [
        f"OPENSSL-LISTEN:{port}",
        "bind=127.0.0.1",
        "reuseaddr",
        "fork",
        f"cert={cert_file}",
        f"key={key_file}",
    ]
    if client_ca_file is not None:
        options += ["verify=1", f"cafile={client_ca_file}"]
    else:
        options.append("verify=0")
    log = workdir / f"socat-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [socat, "-d", ",".join(options), f"TCP:127.0.0.1:{upstream_port}"],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 10
        while not port_bound(port, "tcp"):
            if process.poll() is not None:
                raise RuntimeError(f"socat exited: {log.read_text()[-2000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"socat did not listen on {port} within 10 s")
            time.sleep(0.02)
        yield TlsFront(port, process, log)
    finally:
        stop_process(process, 5)


_CALL_HEADERS = """      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag[call_number]
      [last_Call-ID:]
      {cseq}
      [last_Record-Route:]
      Contact: <sip:callee@[local_ip]:[local_port];transport=[transport]>
      Server: SIPp call-uas"""

_SDP = """      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=sipp 1 1 IN IP4 [local_ip]
      s=-
      c=IN IP4 [local_ip]
      t=0 0
      m=audio 6000 RTP/AVP 0
      a=rtpmap:0 PCMU/8000"""


def _send(status: str, cseq: str = "[last_CSeq:]", sdp: bool = False, retrans: bool = False) -> str:
    body = _SDP if sdp else "      Content-Length: 0"
    attrs = ' retrans="500"' if retrans else ""
    headers = _CALL_HEADERS.format(cseq=cseq)
    return f"  <send{attrs}>\n    <![CDATA[\n      SIP/2.0 {status}\n{headers}\n{body}\n\n    ]]>\n  </send>\n"


def call_scenario(behaviour: str, ring_ms: int = 200) -> str:
    """SIPp UAS scenario XML for a test call.

    ``answer``: 100, 180, after ``ring_ms`` a 200 with SDP, then ACK and BYE (200).
    ``ring``: 100, 180, then wait for CANCEL; 200 to the CANCEL and 487 to the INVITE, ACK.
    ``busy``: 100 then 486 Busy Here, ACK. ``fail``: 503 Service Unavailable, ACK.
    Record-Route is echoed, so in-dialog requests can go back through a proxy.
    """
    plain_invite = '  <recv request="INVITE" crlf="true"/>\n'
    # The 487 answers the INVITE: it needs the INVITE's CSeq number and *all* its
    # Via lines (through a proxy: the proxy's and ours). [last_*] would give the
    # CANCEL's, which has a single Via, so capture them from the INVITE.
    capture = (
        '  <recv request="INVITE" crlf="true">\n'
        "    <action>\n"
        '      <ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq_number"/>\n'
        '      <ereg regexp="Via:[^[:cntrl:]]*([[:cntrl:]]+Via:[^[:cntrl:]]*)*" search_in="msg" '
        'assign_to="vias"/>\n'
        "    </action>\n"
        "  </recv>\n"
    )
    invite_cseq = "CSeq: [$cseq_number] INVITE"
    steps = [capture if behaviour == "ring" else plain_invite]
    if behaviour == "answer":
        steps += [
            _send("100 Trying"),
            _send("180 Ringing"),
            f'  <pause milliseconds="{ring_ms}"/>\n',
            _send("200 OK", sdp=True, retrans=True),
            '  <recv request="ACK" crlf="true"/>\n',
            '  <recv request="BYE"/>\n',
            _send("200 OK"),
        ]
    elif behaviour == "ring":
        steps += [
            _send("100 Trying"),
            _send("180 Ringing"),
            '  <recv request="CANCEL"/>\n',
            _send("200 OK"),
            _send("487 Request Terminated", cseq=invite_cseq).replace("[last_Via:]", "[$vias]"),
            '  <recv request="ACK"/>\n',
        ]
    elif behaviour == "busy":
        steps += [_send("100 Trying"), _send("486 Busy Here"), '  <recv request="ACK"/>\n']
    elif behaviour == "fail":
        steps += [_send("503 Service Unavailable"), '  <recv request="ACK"/>\n']
    else:
        raise ValueError(f"unknown call behaviour {behaviour!r}")
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        f'<scenario name="dialwatch call uas {behaviour}">\n' + "".join(steps) + "</scenario>\n"
    )


@contextlib.contextmanager
def sipp_call_uas(workdir: Path, behaviour: str, ring_ms: int = 200) -> Iterator[SippUas]:
    """Run SIPp as the callee of test calls (UDP, 127.0.0.1); see ``call_scenario``."""
    sipp = require_binary("sipp")
    port = free_port(socket.SOCK_DGRAM)
    scenario = workdir / f"call-{behaviour}-{port}.xml"
    scenario.write_text(call_scenario(behaviour, ring_ms))
    log = workdir / f"sipp-call-{port}.log"
    cmd = [
        sipp,
        "-sf",
        str(scenario),
        "-i",
        "127.0.0.1",
        "-p",
        str(port),
        "-t",
        "u1",
        "-cp",
        str(free_port(socket.SOCK_DGRAM)),
        "-nostdin",
        "-trace_msg",
        "-message_file",
        str(workdir / f"sipp-call-{port}-messages.log"),
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not port_bound(port, "udp"):
            if process.poll() is not None:
                raise RuntimeError(
                    f"sipp exited with {process.returncode}: {log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"sipp did not bind udp port {port} within 10 s")
            time.sleep(0.02)
        yield SippUas(port, "udp", process, log)
    finally:
        stop_process(process, 5)


def trunk_scenario(ring_ms: int = 100) -> str:
    """SIPp UAS scenario XML for a carrier trunk in a failover lab: it answers both.

    - an OPTIONS (a keep-alive probe, Dialwatch's ``sip`` probe): 200 OK;
    - an INVITE (a call): 100, 180, after ``ring_ms`` a 200 with SDP, then ACK and
      BYE (200). Record-Route is echoed, so the ACK and BYE come back through the proxy.

    Each new Call-ID starts the scenario at the top; an optional ``recv`` OPTIONS
    jumps to the OPTIONS answer, anything else must be an INVITE.
    """
    no_tag = ";tag=[pid]SIPpTag[call_number]"  # the BYE's To has the tag already
    steps = [
        '  <recv request="OPTIONS" optional="true" next="options"/>\n',
        '  <recv request="INVITE" crlf="true"/>\n',
        _send("100 Trying"),
        _send("180 Ringing"),
        f'  <pause milliseconds="{ring_ms}"/>\n',
        _send("200 OK", sdp=True, retrans=True),
        '  <recv request="ACK" crlf="true"/>\n',
        '  <recv request="BYE"/>\n',
        _send("200 OK").replace(no_tag, "").replace("<send>", '<send next="done">'),
        '  <label id="options"/>\n',
        _send("200 OK").replace("Server: SIPp call-uas", "Server: SIPp trunk-uas"),
        '  <label id="done"/>\n',
    ]
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<scenario name="dialwatch lab trunk">\n' + "".join(steps) + "</scenario>\n"
    )


@contextlib.contextmanager
def sipp_trunk_uas(workdir: Path, port: int | None = None, ring_ms: int = 100) -> Iterator[SippUas]:
    """Run SIPp as a carrier trunk (UDP, 127.0.0.1) answering OPTIONS and calls (see
    ``trunk_scenario``), on ``port`` (to bring a killed trunk back where it was; default a
    free one). Every message is traced to ``messages``: ``requests_received`` reads it."""
    sipp = require_binary("sipp")
    port = port or free_port(socket.SOCK_DGRAM)
    scenario = workdir / f"trunk-{port}.xml"
    scenario.write_text(trunk_scenario(ring_ms))
    log = workdir / f"sipp-trunk-{port}.log"
    messages = workdir / f"sipp-trunk-{port}-messages-{time.monotonic_ns()}.log"
    cmd = [
        sipp, "-sf", str(scenario), "-i", "127.0.0.1", "-p", str(port), "-t", "u1",
        "-cp", str(free_port(socket.SOCK_DGRAM)), "-nostdin",
        "-trace_msg", "-message_file", str(messages),
    ]  # fmt: skip
    with log.open("ab") as out:
        process = subprocess.Popen(cmd, cwd=workdir, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not port_bound(port, "udp"):
            if process.poll() is not None:
                raise RuntimeError(
                    f"sipp exited with {process.returncode}: {log.read_text()[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"sipp did not bind udp port {port} within 10 s")
            time.sleep(0.02)
        yield SippUas(port, "udp", process, log, messages)
    finally:
        stop_process(process, 5)


_CALL_ID = re.compile(r"^Call-ID:\s*(\S+)", re.MULTILINE | re.IGNORECASE)


def requests_received(uas: SippUas, method: str = "INVITE") -> list[str]:
    """The Call-IDs of the ``method`` requests (INVITE, ACK, BYE, OPTIONS) this trunk
    received, from its message trace, in order; a retransmitted request once."""
    assert uas.messages is not None, "only sipp_trunk_uas traces its messages"
    if not uas.messages.exists():
        return []
    seen: list[str] = []
    # SIPp writes one entry per message, each after a line of dashes.
    for entry in re.split(r"^-{20,}.*$", uas.messages.read_text(errors="replace"), flags=re.M):
        body = entry.split("\n\n", 1)[-1].lstrip()
        if entry.lstrip().startswith(("UDP message received", "TCP message received")) and (
            body.startswith(f"{method} ")
        ):
            found = _CALL_ID.search(body)
            if found and found[1] not in seen:
                seen.append(found[1])
    return seen


def caller_scenario(pause_ms: int = 50) -> str:
    """SIPp UAC scenario XML for calls through a record-routing proxy: INVITE (to the
    ``-s`` service), 100/180 optional, 200, ACK and, after ``pause_ms``, BYE, both along
    the recorded route (``rrs``, ``[next_url]``, ``[routes]``), then the BYE's 200.

    (SIPp's built-in ``uac`` sends ACK and BYE to the proxy's own address without a
    Route set, which a proxy that record-routes does not relay.)"""
    dialog = """      From: <sip:caller@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>{peer_tag}
      Call-ID: [call_id]
      CSeq: {cseq}
      Contact: <sip:caller@[local_ip]:[local_port];transport=[transport]>
      Max-Forwards: 70
      Content-Length: 0"""

    def request(line: str, cseq: str, in_dialog: bool, retrans: bool) -> str:
        attrs = ' retrans="500"' if retrans else ""
        via = "      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]"
        headers = dialog.format(peer_tag="[peer_tag_param]" if in_dialog else "", cseq=cseq)
        route = "\n      [routes]" if in_dialog else ""
        return (
            f"  <send{attrs}>\n    <![CDATA[\n      {line}\n{via}\n{headers}{route}\n\n"
            "    ]]>\n  </send>\n"
        )

    steps = [
        request("INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0", "1 INVITE", False, True),
        '  <recv response="100" optional="true"/>\n',
        '  <recv response="180" optional="true"/>\n',
        '  <recv response="200" rrs="true"/>\n',
        request("ACK [next_url] SIP/2.0", "1 ACK", True, False),
        f'  <pause milliseconds="{pause_ms}"/>\n',
        request("BYE [next_url] SIP/2.0", "2 BYE", True, True),
        '  <recv response="200" crlf="true"/>\n',
    ]
    return (
        '<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
        '<scenario name="dialwatch lab caller">\n' + "".join(steps) + "</scenario>\n"
    )


@dataclass(frozen=True)
class CallBatch:
    call_ids: list[str]
    returncode: int
    """SIPp's: 0 when every call completed, 1 when one failed."""
    output: str


def sipp_calls(
    workdir: Path, proxy: str, calls: int, label: str, *, rate: int = 50, timeout: float = 15.0
) -> CallBatch:
    """Run SIPp as a caller: ``calls`` calls (``-m``, ``rate`` per second) to
    ``sip:lab@<proxy>`` (``proxy`` is ``host:port``), each a full INVITE/ACK/BYE dialog (see
    ``caller_scenario``). The Call-IDs start with ``label`` so the trunks' traces show
    which batch reached whom. Waits for SIPp to finish."""
    sipp = require_binary("sipp")
    scenario = workdir / "lab-caller.xml"
    if not scenario.exists():
        scenario.write_text(caller_scenario())
    cmd = [
        sipp, "-sf", str(scenario), "-s", "lab", "-i", "127.0.0.1",
        "-p", str(free_port(socket.SOCK_DGRAM)), "-t", "u1",
        "-cp", str(free_port(socket.SOCK_DGRAM)), "-nostdin",
        "-m", str(calls), "-r", str(rate), "-l", str(calls),
        "-cid_str", f"{label}-%u-%p@%s",
        "-timeout", f"{timeout:g}s", "-timeout_error",
        proxy,
    ]  # fmt: skip
    with subprocess.Popen(
        cmd, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as process:
        try:
            output, _ = process.communicate(timeout=timeout + 10)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
    call_ids = [f"{label}-{n}-{process.pid}@127.0.0.1" for n in range(1, calls + 1)]
    return CallBatch(call_ids, process.returncode, output[-3000:])


# -- test certificates for the TLS front ---------------------------------

NOW = dt.datetime.now(dt.UTC)


@dataclass
class Issued:
    cert: Path
    key: Path


class Authority:
    """A test CA (generated with ``cryptography``) that issues server and client certificates."""

    def __init__(self, directory: Path, name: str) -> None:
        self.directory = directory
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - dt.timedelta(days=30))
            .not_valid_after(NOW + dt.timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca_file = directory / f"{name}-ca.pem"
        self.ca_file.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def issue(
        self,
        label: str,
        names: list[str],
        *,
        expired: bool = False,
        client: bool = False,
    ) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        alt: list[x509.GeneralName] = []
        for name in names:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(name)))
            except ValueError:
                alt.append(x509.DNSName(name))
        start, end = (
            (NOW - dt.timedelta(days=60), NOW - dt.timedelta(days=1))
            if expired
            else (NOW - dt.timedelta(days=1), NOW + dt.timedelta(days=90))
        )
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        issued = Issued(self.directory / f"{label}.pem", self.directory / f"{label}.key")
        issued.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        issued.key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return issued
