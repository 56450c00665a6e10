"""The ``sip`` target's configuration: transport, TLS, REGISTER, DNS, the test call, metrics.

Every option documents its default next to it; ``docs/probes/sip.md`` is the
user-facing page. Validation here is about the config alone (no sockets, no
files opened): what cannot be known before the probe runs (a CA file that
cannot be read, a name that does not resolve) is reported by the probe.
"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from core import __version__
from core.config import Bool, Duration, FieldValueError, Interval, StrictModel, TargetBase, Timeout
from core.net.address import parse_nameserver
from probes.sip.message import parse_uri

DEFAULT_WARN_CODES: tuple[int, ...] = (401, 403, 404, 405, 407, 420, 481, 484, 489)
"""``warn_codes`` by default: the peer parsed the request and refused it (why each one,
in ``probes.sip.classify``). Here, beside the field, so that the config imports
nothing of the probe's logic (which reads the config)."""

TRANSPORTS = ("udp", "tcp", "tls")


class TlsOptions(StrictModel):
    """How the probe checks the peer over TLS, and who it says it is."""

    verify: Bool = True
    """Check the peer's certificate chain and name. Turn off only for a lab peer."""
    ca_file: str | None = None
    """PEM bundle of CAs to trust instead of the system's (a carrier's private CA)."""
    cert_file: str | None = None
    """PEM client certificate, for peers that want one (mutual TLS)."""
    key_file: str | None = None
    """PEM private key of ``cert_file``; may be the same file."""
    server_name: str | None = None
    """Name sent as SNI and checked against the certificate; default: the URI's (or SRV target's) host."""

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsOptions:
        if self.key_file is not None and self.cert_file is None:
            raise FieldValueError("key_file", "key_file needs cert_file (the client certificate)")
        return self


class RegisterOptions(StrictModel):
    """REGISTER with digest authentication instead of OPTIONS.

    By default the probe only *queries* the bindings (a REGISTER without
    Contact, RFC 3261 §10.2.3): the registrar authenticates us and lists the
    contacts registered for the account, and nothing changes on it.
    """

    username: str
    """Account (user part of the address of record)."""
    password: str
    """Digest password; write it as ``${ENV_NAME}`` or ``${file:/run/secrets/x}``. Never logged."""
    auth_username: str | None = None
    """User name for digest authentication when it differs from ``username``."""
    domain: str | None = None
    """Host part of the address of record (To/From); default: the URI's host."""
    realm: str | None = None
    """Answer only challenges for this realm; default: whatever realm the registrar names."""
    register_cycle: Bool = False
    """Opt-in: register a Contact for ``expires`` seconds, check the binding, then unregister.
    Only for a dedicated test account: it adds (and removes) a binding on the registrar."""
    expires: int = Field(default=60, ge=10, le=3600)
    """Expires asked for in a ``register_cycle``."""
    warn_no_binding: Bool = False
    """In query mode, ``warn`` when the account has no binding (the PBX's own registration is gone)."""

    @field_validator("username", "auth_username")
    @classmethod
    def _user(cls, value: str | None) -> str | None:
        if value is not None and (not value or not set(value) <= _TOKEN_CHARS):
            raise ValueError("must be a SIP user name: letters, digits and -_.!~*'()+%&=$,;?/")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        if any(c in value for c in "\r\n"):
            raise ValueError("must be one line")
        return value


class DnsOptions(StrictModel):
    """RFC 3263 resolution of a host name: NAPTR → SRV → A/AAAA."""

    rfc3263: Bool = True
    """Look up NAPTR and SRV records for a host name without a port; ``false``: A/AAAA only."""
    nameservers: list[str] = Field(default_factory=list)
    """``ip`` or ``ip:port`` of DNS servers to ask; default: the system's (``/etc/resolv.conf``,
    with ``/etc/hosts`` for A/AAAA)."""
    max_gateways: int = Field(default=8, ge=1, le=32)
    """Probe at most this many resolved addresses (in RFC 3263 order)."""

    @field_validator("nameservers")
    @classmethod
    def _nameservers(cls, value: list[str]) -> list[str]:
        for server in value:
            parse_nameserver(server)
        return value


class TestCallOptions(StrictModel):
    """Opt-in test call: INVITE a test number, time the ringing and the answer, hang up.

    Calls cost money and occupy a channel: never on by default, and at most
    one call per ``rate_limit`` whatever the probe's interval.
    """

    __test__ = False  # not a pytest test class despite its name

    number: str
    """User part of the Request-URI: the test number the carrier routes (``+861012345678``)."""
    rate_limit: Duration = 3600.0
    """At most one test call per this period (default one an hour); other runs only ping."""
    ring_timeout: Duration = 8.0
    """Wait this long for an answer after the INVITE; then CANCEL (a ringing line counts as reached)."""
    hangup_after: Duration = 0.5
    """After an answer, wait this long before BYE (some switches reject an instant BYE)."""
    warn_post_dial_delay: Duration | None = None
    """``warn`` when ringing (180/183) takes longer than this."""

    @field_validator("number")
    @classmethod
    def _number(cls, value: str) -> str:
        if not value or not set(value) <= _TOKEN_CHARS:
            raise ValueError("must be a SIP user part: digits, +, letters")
        return value


_TOKEN_CHARS = set(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()+%&=$,;?/"
)


class SipTarget(TargetBase):
    """A SIP trunk, gateway or proxy: pinged with OPTIONS, or REGISTERed to, and optionally called."""

    kind: Literal["sip"]
    uri: str
    """Request-URI: ``sip:host[:port][;params]`` (``sip:carrier.example.com``,
    ``sips:sbc.example.net``, ``sip:+861012345@192.0.2.10:5080;transport=tcp``).
    Port default 5060 (5061 for TLS); a host name without a port is resolved per RFC 3263."""
    transport: Literal["udp", "tcp", "tls"] | None = None
    """``udp`` (retransmits per RFC 3261), ``tcp`` or ``tls``. When not given: the URI's
    ``transport=``; ``tls`` for ``sips:``; for a host name without port, what NAPTR/SRV
    records offer; else ``udp``."""
    tls: TlsOptions = Field(default_factory=TlsOptions)
    """Certificate checks and client certificate for ``transport: tls``."""
    registration: RegisterOptions | None = None
    """When given, the probe sends REGISTER with digest authentication instead of OPTIONS."""
    dns: DnsOptions = Field(default_factory=DnsOptions)
    """How host names are resolved (RFC 3263) and which DNS servers are asked."""
    test_call: TestCallOptions | None = None
    """Opt-in test call (costs money): off unless given."""
    stats_window: int = Field(default=20, ge=2, le=500)
    """How many recent probes the RTT deviation, loss and response counts are computed over."""
    source_address: str | None = None
    """Local IP to send from (carriers whitelist source IPs); default: the kernel's choice."""
    source_port: int = Field(default=0, ge=0, le=65535)
    """Local port to send from; 0 = ephemeral. Every UDP target with the same
    source address and port shares one socket."""
    from_user: str = "dialwatch"
    """User part of the From and Contact URIs."""
    from_domain: str | None = None
    """Host part of the From URI; default: the local address the request leaves from."""
    user_agent: str = f"Dialwatch/{__version__}"
    """User-Agent header (some carriers filter on it)."""
    warn_codes: list[int] = Field(default_factory=lambda: list(DEFAULT_WARN_CODES))
    """Final responses that prove the peer alive but unhappy with the request: ``warn``."""
    interval: Interval = 30.0
    """30 s: carriers and SBCs commonly rate-limit or block sources that ping faster."""
    timeout: Timeout = 4.0
    """Timer F: over UDP, retransmissions at 0.5, 1.5 and 3.5 s, then give up at 4 s."""

    @model_validator(mode="before")
    @classmethod
    def _transport_from_uri(cls, data: Any) -> Any:
        if isinstance(data, dict) and "transport" not in data and isinstance(data.get("uri"), str):
            try:
                param = parse_uri(data["uri"]).params.get("transport", "").lower()
            except ValueError:
                return data  # the uri validator reports it
            if param in TRANSPORTS:
                data = {**data, "transport": param}
            elif data["uri"].strip()[:5].lower() == "sips:":
                data = {**data, "transport": "tls"}
            else:
                try:
                    uri = parse_uri(data["uri"])
                except ValueError:
                    return data
                if uri.port is not None or _literal_address(uri.host, 0) is not None:
                    # RFC 3263 §4.1: an IP address or an explicit port means no NAPTR/SRV.
                    data = {**data, "transport": "udp"}
        return data

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        uri = parse_uri(value)
        param = uri.params.get("transport", "").lower()
        if param and param not in TRANSPORTS:
            raise ValueError(f"transport={param} is not supported (udp, tcp or tls)")
        return uri.text

    @field_validator("source_address")
    @classmethod
    def _source_address(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(ipaddress.ip_address(value))
        except ValueError:
            raise ValueError("must be an IP address of this machine, e.g. 192.0.2.5") from None

    @field_validator("from_user")
    @classmethod
    def _from_user(cls, value: str) -> str:
        if not value or not set(value) <= _TOKEN_CHARS:
            raise ValueError("must be a SIP user name: letters, digits and -_.!~*'()+%&=$,;?/")
        return value

    @field_validator("from_domain")
    @classmethod
    def _from_domain(cls, value: str | None) -> str | None:
        if value is not None:
            uri = parse_uri(f"sip:{value}")
            if uri.user or uri.port or uri.params or "?" in value:
                raise ValueError("must be a host name or IP address, e.g. carrier.example.com")
        return value

    @field_validator("user_agent")
    @classmethod
    def _user_agent(cls, value: str) -> str:
        if not value.strip() or any(c in value for c in "\r\n"):
            raise ValueError("must be one non-empty line")
        return value.strip()

    @field_validator("warn_codes")
    @classmethod
    def _warn_codes(cls, value: list[int]) -> list[int]:
        for code in value:
            if code == 408:
                raise ValueError(
                    "408 cannot be a warn code: proxies generate it themselves when "
                    "the peer behind them is silent, so it never proves the peer alive"
                )
            if not 300 <= code <= 699:
                raise ValueError(f"{code} is not a SIP error code (300-699)")
        return value

    @model_validator(mode="after")
    def _transport_matches_uri(self) -> SipTarget:
        uri = parse_uri(self.uri)
        literal = _literal_address(uri.host, uri.effective_port)
        if literal is not None and self.source_address is not None:
            source_family = _literal_address(self.source_address, 0)
            if source_family is not None and source_family[0] != literal[0]:
                raise ValueError(
                    f"source_address {self.source_address} and the uri's host {uri.host} "
                    "are not the same IP version"
                )
        param = uri.params.get("transport", "").lower()
        if param and param != self.transport:
            raise ValueError(
                f"transport is {self.transport} but the uri says transport={param}; "
                "remove one of them"
            )
        if uri.scheme == "sips" and self.transport not in (None, "tls"):
            raise ValueError(f"a sips: URI needs transport tls, not {self.transport}")
        if self.test_call is not None:
            budget = self.test_call.ring_timeout + self.test_call.hangup_after + 2.0
            if budget > self.timeout:
                raise FieldValueError(
                    "test_call",
                    f"a test call needs a timeout of at least {budget:g}s "
                    "(ring_timeout + hangup_after + 2s for the hang-up); raise timeout",
                )
            if self.test_call.rate_limit < self.interval:
                raise FieldValueError(
                    "test_call",
                    "rate_limit must not be shorter than interval (at most one call per probe run)",
                )
        return self


def _literal_address(host: str, port: int) -> tuple[int, tuple[Any, ...]] | None:
    """(family, sockaddr) when ``host`` is an IP address, else None."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if ip.version == 6:
        return socket.AF_INET6, (str(ip), port, 0, 0)
    return socket.AF_INET, (str(ip), port)
