"""Building SIP requests (OPTIONS, REGISTER, INVITE...) and parsing the responses to them.

Pure functions only: no sockets, no clocks. The parser is deliberately
forgiving about what RFC 3261 allows (compact header names, any letter case,
folded header lines, ``\\n`` instead of ``\\r\\n``) and strict about what we
need to match a response to our request (a status line, the top Via's branch
and the CSeq method). Anything else raises ``SipParseError``, which the
transports treat as "ignore this datagram", never as the end of a transaction.
"""

from __future__ import annotations

import functools
import random
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

MAGIC_COOKIE = "z9hG4bK"
"""RFC 3261 §8.1.1.7: a branch starting with this marks an RFC 3261 transaction id."""

# RFC 3261 §7.3.3 and the IANA SIP header registry: compact form -> full name.
COMPACT_HEADERS: Mapping[str, str] = {
    "a": "accept-contact",
    "b": "referred-by",
    "c": "content-type",
    "d": "request-disposition",
    "e": "content-encoding",
    "f": "from",
    "i": "call-id",
    "j": "reject-contact",
    "k": "supported",
    "l": "content-length",
    "m": "contact",
    "o": "event",
    "r": "refer-to",
    "s": "subject",
    "t": "to",
    "u": "allow-events",
    "v": "via",
    "x": "session-expires",
    "y": "identity",
}

MAX_MESSAGE = 65536
"""Largest SIP message accepted on a stream (and the most a UDP datagram can hold)."""

_STATUS_LINE_RE = re.compile(r"^SIP/2\.0\s+(\d{3})(?:\s+(.*))?$", re.IGNORECASE)
_URI_RE = re.compile(
    r"""^(?P<scheme>sips?):
        (?:(?P<user>[^@;?]+)@)?
        (?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)
        (?::(?P<port>\d{1,5}))?
        (?P<params>(?:;[^;?]*)*)
        (?:\?(?P<headers>.*))?$""",
    re.VERBOSE | re.IGNORECASE,
)
_HOSTNAME_LABEL_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")


# Branch, Call-ID and tags must be unique, not secret (RFC 3261 §8.1.1.7, §8.1.1.4):
# a PRNG seeded from the OS gives that without an urandom syscall per value,
# which was ~4 % of the engine's loop at 1,000 OPTIONS/s (py-spy).
_rng = random.Random(secrets.token_bytes(32))


def _token(nbytes: int) -> str:
    """``nbytes`` random bytes as hex, for SIP identifiers."""
    return f"{_rng.getrandbits(nbytes * 8):0{nbytes * 2}x}"


class SipParseError(ValueError):
    """A datagram or stream chunk that is not a SIP response we can use."""


@dataclass(frozen=True, slots=True)
class SipUri:
    """The parts of a ``sip:``/``sips:`` URI the probe needs."""

    scheme: str
    user: str | None
    host: str
    """Host name or address, IPv6 without brackets."""
    port: int | None
    params: Mapping[str, str] = field(default_factory=dict)
    """URI parameters, names lower-cased; a parameter without value maps to ``""``."""
    text: str = ""
    """The URI as written, used verbatim as the Request-URI."""

    @property
    def default_port(self) -> int:
        return 5061 if self.scheme == "sips" else 5060

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else self.default_port


@functools.lru_cache(maxsize=16384)
def parse_uri(text: str) -> SipUri:
    """Parse ``sip:[user@]host[:port][;params][?headers]``; ValueError says what is wrong.

    Cached: every probe run parses its target's URI again, and the result is
    immutable (do not modify its ``params``).
    """
    text = text.strip()
    m = _URI_RE.match(text)
    if m is None:
        raise ValueError(
            "must be a SIP URI like sip:carrier.example.com or sip:+8610@192.0.2.10:5060"
        )
    host = m.group("host")
    if host.startswith("["):
        host = host[1:-1]
        if ":" not in host:
            raise ValueError("brackets in a SIP URI are for IPv6 addresses only")
    elif not _is_ipv4(host):
        labels = host.rstrip(".").split(".")
        if not all(_HOSTNAME_LABEL_RE.match(label) for label in labels):
            raise ValueError(f"{host!r} is not a valid host name")
    port = int(m.group("port")) if m.group("port") else None
    if port is not None and not 0 < port < 65536:
        raise ValueError("port must be a number from 1 to 65535")
    params: dict[str, str] = {}
    for part in (m.group("params") or "").split(";")[1:]:
        name, _, value = part.partition("=")
        if not name:
            raise ValueError("empty URI parameter (two ';' in a row)")
        params[name.strip().lower()] = value.strip()
    return SipUri(m.group("scheme").lower(), m.group("user"), host, port, params, text)


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


def format_host(host: str) -> str:
    """Host for a header: IPv6 addresses go in brackets."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def new_branch() -> str:
    """A fresh Via branch: the magic cookie plus 96 random bits."""
    return MAGIC_COOKIE + _token(12)


@dataclass(frozen=True, slots=True)
class SipRequest:
    """One request: its bytes and what identifies its transaction."""

    data: bytes
    branch: str
    call_id: str
    cseq: int
    method: str = "OPTIONS"
    from_tag: str = ""


OptionsRequest = SipRequest
"""The name this type had when the probe only sent OPTIONS."""


def build_request(
    *,
    method: str,
    request_uri: str,
    transport: str,
    local_host: str,
    local_port: int,
    from_user: str,
    from_domain: str,
    user_agent: str,
    cseq: int = 1,
    branch: str | None = None,
    call_id: str | None = None,
    from_tag: str | None = None,
    to_uri: str | None = None,
    to_tag: str | None = None,
    from_uri: str | None = None,
    contact: bool = True,
    headers: Sequence[str] = (),
    body: bytes = b"",
) -> SipRequest:
    """Build a request (RFC 3261 §8.1.1): Via, Max-Forwards, From, To, Call-ID, CSeq, Contact.

    ``transport`` is ``udp``, ``tcp`` or ``tls`` and ends up in the Via and
    Contact. ``to_uri`` defaults to the Request-URI; ``from_uri`` to
    ``sip:from_user@from_domain``. ``contact=False`` leaves Contact out (a
    REGISTER that only asks for bindings, RFC 3261 §10.2.3). ``headers`` are
    extra lines placed before User-Agent. The random parts can be given for
    tests; by default they are fresh.
    """
    branch = branch or new_branch()
    call_id = call_id or f"{_token(16)}@{format_host(local_host)}"
    from_tag = from_tag or _token(8)
    proto = transport.upper()
    host = format_host(local_host)
    to_uri = to_uri or request_uri.split("?", 1)[0]
    from_uri = from_uri or f"sip:{from_user}@{format_host(from_domain)}"
    to_value = f"<{to_uri}>" + (f";tag={to_tag}" if to_tag else "")
    lines = [
        f"{method} {request_uri} SIP/2.0",
        f"Via: SIP/2.0/{proto} {host}:{local_port};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <{from_uri}>;tag={from_tag}",
        f"To: {to_value}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} {method}",
    ]
    if contact:
        lines.append(
            f"Contact: <{contact_uri(request_uri, from_user, host, local_port, transport)}>"
        )
    lines.extend(headers)
    lines += [f"User-Agent: {user_agent}", f"Content-Length: {len(body)}"]
    data = ("\r\n".join(lines) + "\r\n\r\n").encode() + body
    return SipRequest(data, branch, call_id, cseq, method, from_tag)


def contact_uri(request_uri: str, user: str, host: str, port: int, transport: str) -> str:
    """Our Contact: ``sips:`` when the request goes to a ``sips:`` URI (RFC 3261 §8.1.1.8)."""
    if request_uri[:5].lower() == "sips:":
        return f"sips:{user}@{host}:{port}"
    return f"sip:{user}@{host}:{port};transport={transport.lower()}"


def build_options(
    *,
    request_uri: str,
    transport: str,
    local_host: str,
    local_port: int,
    from_user: str,
    from_domain: str,
    user_agent: str,
    cseq: int = 1,
    branch: str | None = None,
    call_id: str | None = None,
    from_tag: str | None = None,
) -> SipRequest:
    """Build an out-of-dialog OPTIONS request (RFC 3261 §8.1.1 and §11.1)."""
    return build_request(
        method="OPTIONS",
        request_uri=request_uri,
        transport=transport,
        local_host=local_host,
        local_port=local_port,
        from_user=from_user,
        from_domain=from_domain,
        user_agent=user_agent,
        cseq=cseq,
        branch=branch,
        call_id=call_id,
        from_tag=from_tag,
        headers=("Accept: application/sdp",),
    )


@dataclass(frozen=True, slots=True)
class SipResponse:
    """A parsed SIP response: status, and headers under their full lower-case names."""

    status: int
    reason: str
    headers: Mapping[str, tuple[str, ...]]
    """Every value of every header, in order; comma-separated values are not split."""
    body: bytes = b""

    def header(self, name: str) -> str | None:
        """First value of a header (full or compact name, any case), or None."""
        values = self.headers.get(_canonical_name(name))
        return values[0] if values else None

    def header_values(self, name: str) -> list[str]:
        """Every value of a header, comma-separated lists split (Contact, Record-Route)."""
        return [
            item
            for value in self.headers.get(_canonical_name(name), ())
            for item in split_header_list(value)
        ]

    @property
    def to_tag(self) -> str | None:
        value = self.header("to")
        return header_params(value).get("tag") if value else None

    @property
    def top_via_branch(self) -> str | None:
        via = self.header("via")
        if via is None:
            return None
        return via_params(first_via(via)).get("branch")

    @property
    def cseq(self) -> tuple[int, str] | None:
        """(number, METHOD) from the CSeq header, or None when missing or malformed."""
        value = self.header("cseq")
        if value is None:
            return None
        parts = value.split()
        if len(parts) != 2 or not parts[0].isdigit():
            return None
        return int(parts[0]), parts[1].upper()

    def matches(self, branch: str, method: str = "OPTIONS") -> bool:
        """RFC 3261 §17.1.3: same top Via branch and same CSeq method as our request."""
        cseq = self.cseq
        return self.top_via_branch == branch and cseq is not None and cseq[1] == method


def _canonical_name(name: str) -> str:
    name = name.strip().lower()
    return COMPACT_HEADERS.get(name, name)


def first_via(value: str) -> str:
    """The first via-parm of a Via header value that may hold several, comma-separated."""
    return value.split(",", 1)[0].strip()


def via_params(via: str) -> dict[str, str]:
    """Parameters of one via-parm (``SIP/2.0/UDP h:p;branch=x;rport``), names lower-cased."""
    params: dict[str, str] = {}
    for part in via.split(";")[1:]:
        name, _, value = part.partition("=")
        params[name.strip().lower()] = value.strip()
    return params


def split_header_list(value: str) -> list[str]:
    """Split a comma-separated header value (Contact, Record-Route) outside quotes and <>."""
    parts: list[str] = []
    depth = 0
    quoted = False
    current: list[str] = []
    for ch in value:
        if ch == '"' and (not current or current[-1] != "\\"):
            quoted = not quoted
        elif not quoted and ch == "<":
            depth += 1
        elif not quoted and ch == ">" and depth:
            depth -= 1
        elif ch == "," and not quoted and not depth:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return [p for p in parts if p]


def name_addr_uri(value: str) -> str:
    """The URI of a name-addr or addr-spec (``"A" <sip:a@h>;tag=x`` → ``sip:a@h``)."""
    start = value.find("<")
    if start >= 0:
        end = value.find(">", start)
        return value[start + 1 : end if end > start else len(value)].strip()
    return value.split(";", 1)[0].strip()


def header_params(value: str) -> dict[str, str]:
    """Parameters after a name-addr (``<sip:a@h>;expires=60;q=1``), names lower-cased."""
    end = value.rfind(">")
    tail = value[end + 1 :] if end >= 0 else value.split(";", 1)[1] if ";" in value else ""
    params: dict[str, str] = {}
    for part in tail.split(";"):
        name, _, param = part.partition("=")
        if name.strip():
            params[name.strip().lower()] = param.strip().strip('"')
    return params


def split_head(data: bytes) -> tuple[bytes, bytes]:
    """Split a message into (start line + headers, body) at the first empty line."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        head, found, body = data.partition(sep)
        if found:
            return head, body
    raise SipParseError("no empty line after the headers")


def parse_response(data: bytes) -> SipResponse:
    """Parse one complete SIP response (a UDP datagram or a framed TCP message)."""
    head, body = split_head(data.lstrip(b"\r\n"))
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = head.decode("latin-1")
    lines = text.replace("\r\n", "\n").split("\n")
    m = _STATUS_LINE_RE.match(lines[0].strip())
    if m is None:
        raise SipParseError(f"not a SIP response status line: {lines[0][:60]!r}")
    status = int(m.group(1))
    if not 100 <= status <= 699:
        raise SipParseError(f"status code {status} is out of range")
    headers: dict[str, list[str]] = {}
    last: str | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            # RFC 3261 §7.3.1: a line starting with whitespace continues the previous header.
            if last is None:
                raise SipParseError("continuation line before any header")
            headers[last][-1] = f"{headers[last][-1]} {line.strip()}"
            continue
        name, colon, value = line.partition(":")
        if not colon or not name.strip() or " " in name.strip():
            raise SipParseError(f"malformed header line: {line[:60]!r}")
        last = _canonical_name(name)
        headers.setdefault(last, []).append(value.strip())
    return SipResponse(
        status=status,
        reason=(m.group(2) or "").strip(),
        headers={k: tuple(v) for k, v in headers.items()},
        body=body,
    )


def content_length(head: bytes) -> int:
    """Content-Length (or ``l``) from a header block; 0 when absent. For stream framing."""
    for line in head.split(b"\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            value = value.strip()
            if not value.isdigit():
                raise SipParseError("Content-Length is not a number")
            return int(value)
    return 0


def frame_stream(buffer: bytearray) -> bytes | None:
    """Take one complete message off the front of a TCP receive buffer, or None if incomplete.

    Leading CRLFs are keep-alives (RFC 5626 §3.5.1) and are dropped. Framing
    follows RFC 3261 §18.3: headers up to the empty line, then Content-Length bytes.
    """
    while buffer[:2] == b"\r\n":
        del buffer[:2]
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_MESSAGE:
            # A peer streaming header bytes without end must not grow our memory forever.
            raise SipParseError(f"no end of headers within {MAX_MESSAGE} bytes")
        return None
    head_len = end + 4
    length = content_length(bytes(buffer[:end]))
    if length > MAX_MESSAGE:
        raise SipParseError(f"Content-Length {length} is larger than {MAX_MESSAGE} bytes")
    if len(buffer) < head_len + length:
        return None
    message = bytes(buffer[: head_len + length])
    del buffer[: head_len + length]
    return message
