"""Probe kinds: one module each, one signature, one literal registry.

``PROBES`` is the only place a kind is registered; the config loader builds
the ``targets`` schema from it and the runner looks checks up in it.
"""

from __future__ import annotations

from probes import appliance, dialer, dns, http, server, sip, tcp, tls
from probes.base import ProbeContext, ProbeKind

PROBES: dict[str, ProbeKind] = {
    "sip": ProbeKind(
        "sip",
        sip.SipTarget,
        sip.check,
        "SIP trunk: OPTIONS over UDP/TCP/TLS, REGISTER, RFC 3263 gateways, test call",
    ),
    "server": ProbeKind(
        "server", server.ServerTarget, server.check, "CPU, memory, disk, network, processes"
    ),
    "tcp": ProbeKind("tcp", tcp.TcpTarget, tcp.check, "TCP connect time"),
    "http": ProbeKind("http", http.HttpTarget, http.check, "HTTP status, body match, TLS expiry"),
    "tls": ProbeKind("tls", tls.TlsTarget, tls.check, "certificate chain, name and expiry"),
    "dns": ProbeKind("dns", dns.DnsTarget, dns.check, "DNS answer and answer time"),
    "dialer": ProbeKind(
        "dialer",
        dialer.DialerTarget,
        dialer.check,
        "call loss, ASR, ACD, abandon rate per trunk (CDRs); queues (AMI, HTTP)",
    ),
    "appliance": ProbeKind(
        "appliance",
        appliance.ApplianceTarget,
        appliance.check,
        "Dialwatch's own health (built in)",
        builtin=appliance.builtin_target,
    ),
}

__all__ = ["PROBES", "ProbeContext", "ProbeKind"]
