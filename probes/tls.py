"""``tls`` probe: does a TLS server present a valid certificate, and for how long still?

Connects to ``host:port``, completes a TLS handshake that checks the chain and
the name (on by default), and reports the days until the certificate expires
with warn/fail thresholds. Nothing is sent after the handshake. STARTTLS
(SMTP, IMAP, XMPP…) is out of scope: the port must speak TLS from the first byte.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Literal

from pydantic import field_validator, model_validator

from core.config import Bool, FieldValueError, TargetBase
from core.errors import describe_os_error
from core.net.address import split_host_port
from core.net.tls import (
    CaFileError,
    check_ca_file,
    describe_ssl_error,
    describe_verify_error,
    fetch_unverified,
    peer_certificate,
    shared_context,
)
from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.base import ProbeContext
from probes.thresholds import Limit
from probes.tlsinfo import expiry_limit, judge_expiry


class TlsTarget(TargetBase):
    kind: Literal["tls"]
    address: str
    """``host:port`` of the TLS server (``crm.example.com:443``, ``[2001:db8::1]:5061``)."""
    server_name: str | None = None
    """Name sent as SNI and checked against the certificate; default: the address's host."""
    verify: Bool = True
    """Check the chain and the name. Off: only the expiry is judged."""
    ca_file: str | None = None
    """PEM bundle of CAs to trust instead of the system store (a private CA)."""
    cert_expiry_days: Limit | None = None
    """Days left before expiry: ``{warn: 14, fail: 3}`` by default; ``null`` turns it off."""

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        split_host_port(value)
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        return check_ca_file(value)

    @model_validator(mode="after")
    def _consistent(self) -> TlsTarget:
        if self.ca_file is not None and not self.verify:
            raise FieldValueError("ca_file", "ca_file has no effect with verify: false")
        try:
            _ = self.expiry_limit  # resolving checks warn/fail order
        except ValueError as exc:
            raise FieldValueError("cert_expiry_days", str(exc)) from None
        return self

    @property
    def expiry_limit(self) -> Limit:
        return expiry_limit(self.cert_expiry_days, "cert_expiry_days" in self.model_fields_set)


async def check(target: TlsTarget, ctx: ProbeContext) -> Observation:
    host, port = split_host_port(target.address)
    # Python sends no SNI for an IP literal and checks it against the IP SANs instead.
    checked_name = target.server_name or host
    try:
        context = shared_context(ctx.shared, target.verify, target.ca_file)
    except CaFileError as exc:
        return Observation.fail(str(exc), ErrorClass.TLS)
    started = time.perf_counter()
    writer = None
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=context,
                server_hostname=checked_name,
            ),
            ctx.timeout,
        )
        cert = peer_certificate(writer.get_extra_info("ssl_object"))
    except TimeoutError:
        return Observation.fail(
            f"no TLS handshake with {target.address} within {ctx.timeout:g}s", ErrorClass.TIMEOUT
        )
    except ssl.SSLCertVerificationError as exc:
        remaining = max(ctx.timeout - (time.perf_counter() - started), 0.1)
        seen = await fetch_unverified(host, port, target.server_name, remaining)
        detail = describe_verify_error(exc, checked_name, seen)
        if seen is not None:
            detail = f"{detail}; {seen.summary()}"
        return Observation.fail(detail, ErrorClass.TLS)
    except ssl.SSLError as exc:
        return Observation.fail(describe_ssl_error(exc), ErrorClass.TLS)
    except ConnectionResetError:
        return Observation.fail(
            "TLS handshake failed (the server closed the connection)", ErrorClass.TLS
        )
    except OSError as exc:
        detail, error_class = describe_os_error(exc)
        return Observation.fail(detail, error_class)
    finally:
        if writer is not None:
            writer.close()
    elapsed = time.perf_counter() - started
    if cert is None:
        return Observation.fail("the server sent no certificate", ErrorClass.TLS, latency=elapsed)
    status, sentence, days = judge_expiry(cert, target.expiry_limit)
    point = MetricPoint("tls", {"days_left": float(days)})
    detail = f"{sentence}; {cert.summary()}"
    if status is Status.OK:
        return Observation.ok(detail, (point,), elapsed)
    return Observation(status, detail, (point,), elapsed, ErrorClass.THRESHOLD)
