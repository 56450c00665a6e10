"""Probe kinds: one module each, one signature, one literal registry.

``PROBES`` is the only place a kind is registered; the config loader builds
the ``targets`` schema from it and the runner looks checks up in it. Each
entry also names the kind's key metrics (with their units), which the
dashboard lists and the target page charts first.
"""

from __future__ import annotations

from probes import appliance, dialer, dns, http, server, sip, tcp, tls
from probes.base import KeyMetric, ProbeContext, ProbeKind

PROBES: dict[str, ProbeKind] = {
    "sip": ProbeKind(
        "sip",
        sip.SipTarget,
        sip.check,
        "SIP trunk: OPTIONS over UDP/TCP/TLS, REGISTER, RFC 3263 gateways, test call",
        key_metrics=(
            KeyMetric("sip.rtt_ms", "ms"),
            KeyMetric("sip.loss_pct", "%"),
            KeyMetric("sip.rtt_dev_ms", "ms"),
            KeyMetric("sip_gateways.up"),
            KeyMetric("sip_register.registered"),
            KeyMetric("sip_call.post_dial_delay_ms", "ms"),
            KeyMetric("sip.status_code"),
        ),
    ),
    "server": ProbeKind(
        "server",
        server.ServerTarget,
        server.check,
        "CPU, memory, disk, network, processes",
        key_metrics=(
            KeyMetric("server.cpu_percent", "%"),
            KeyMetric("snmp_cpu.load_percent[processor=all]", "%"),
            KeyMetric("server.memory_percent", "%"),
            KeyMetric("server_disk.used_percent", "%"),
            KeyMetric("server.load_per_core"),
            KeyMetric("server.swap_percent", "%"),
            KeyMetric("server_net.rx_bytes_per_s", "B/s"),
            KeyMetric("server_net.tx_bytes_per_s", "B/s"),
        ),
    ),
    "tcp": ProbeKind(
        "tcp",
        tcp.TcpTarget,
        tcp.check,
        "TCP connect time",
        key_metrics=(KeyMetric("tcp.connect_ms", "ms"),),
    ),
    "http": ProbeKind(
        "http",
        http.HttpTarget,
        http.check,
        "HTTP status, body match, TLS expiry",
        key_metrics=(
            KeyMetric("http.response_ms", "ms"),
            KeyMetric("http.status_code"),
            KeyMetric("http.cert_days", "d"),
        ),
    ),
    "tls": ProbeKind(
        "tls",
        tls.TlsTarget,
        tls.check,
        "certificate chain, name and expiry",
        key_metrics=(KeyMetric("tls.days_left", "d"),),
    ),
    "dns": ProbeKind(
        "dns",
        dns.DnsTarget,
        dns.check,
        "DNS answer and answer time",
        key_metrics=(KeyMetric("dns.answer_ms", "ms"), KeyMetric("dns.answers")),
    ),
    "dialer": ProbeKind(
        "dialer",
        dialer.DialerTarget,
        dialer.check,
        "call loss, ASR, ACD, abandon rate per trunk (CDRs); queues (AMI, HTTP)",
        key_metrics=(
            # CDR sources write the rates, queue sources the waiting calls and agents
            KeyMetric("dialer.loss_rate", "%"),
            KeyMetric("dialer.asr", "%"),
            KeyMetric("dialer.calls_per_minute", "/min"),
            KeyMetric("dialer.calls_waiting"),
            KeyMetric("dialer.agents_available"),
            KeyMetric("dialer.longest_wait", "s"),
            KeyMetric("dialer.acd", "s"),
            KeyMetric("dialer.abandon_rate", "%"),
        ),
    ),
    "appliance": ProbeKind(
        "appliance",
        appliance.ApplianceTarget,
        appliance.check,
        "Dialwatch's own health (built in)",
        builtin=appliance.builtin_target,
        key_metrics=(
            KeyMetric("appliance.scheduler_lag_seconds", "s"),
            KeyMetric("appliance.data_free_percent", "%"),
            KeyMetric("appliance.sinks_down"),
            KeyMetric("appliance.late_per_second", "/s"),
        ),
    ),
}

__all__ = ["PROBES", "KeyMetric", "ProbeContext", "ProbeKind"]
