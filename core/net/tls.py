"""TLS client helpers shared by probes, steps and channels.

An SSL context built from ``verify``/``ca_file`` (cached in the shared
resources), the facts of a peer certificate, and a human sentence for a failed
verification (expired, wrong name, unknown CA). To say *which* name or date was
wrong, a failed verification is followed by a second, unverified handshake that
only reads the certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.shared import SharedResources

if TYPE_CHECKING:
    from cryptography import x509

# OpenSSL verify codes (X509_V_ERR_*) a monitor is most often asked about.
# OpenSSL X509_V_ERR_* codes behind ssl.SSLCertVerificationError.verify_code,
# shared by every probe that speaks TLS (http, tls, sip).
VERIFY_EXPIRED = 10
VERIFY_NOT_YET_VALID = 9
VERIFY_UNKNOWN_CA = {2, 18, 19, 20, 21}  # no issuer, self-signed leaf/chain, no local issuer, …
VERIFY_NAME_MISMATCH = {62, 64}  # hostname mismatch, IP address mismatch
VERIFY_REVOKED = 23


def check_ca_file(path: str | None) -> str | None:
    """Config-time check that a CA bundle path names a readable file."""
    if path is not None and not Path(path).expanduser().is_file():
        raise ValueError(f"CA file {path} does not exist or is not a file")
    return path


def client_context(verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """A client context that checks chain and name unless ``verify`` is off.

    With ``ca_file`` only that bundle is trusted (a private CA), not the system store.
    """
    if not verify:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if ca_file is not None:
        return ssl.create_default_context(cafile=str(Path(ca_file).expanduser()))
    return ssl.create_default_context()


class CaFileError(Exception):
    """The configured CA file cannot be used now; the message is the detail sentence."""


def shared_context(shared: SharedResources, verify: bool, ca_file: str | None) -> ssl.SSLContext:
    """``client_context``, built once and kept in the engine's shared resources.

    Loading the system CA store costs tens of milliseconds of CPU, too much to
    repeat every poll. A CA file is re-read when its modification time changes,
    so a rotated private CA is picked up without a restart.
    """
    stamp = None
    if ca_file is not None:
        path = Path(ca_file).expanduser()
        try:
            stamp = path.stat().st_mtime_ns
        except OSError as exc:
            raise CaFileError(f"cannot read CA file {ca_file} ({exc.strerror})") from None
    key = f"tls.context:{verify}:{ca_file}:{stamp}"
    context = shared.get(key)
    if context is None:
        try:
            context = client_context(verify, ca_file)
        except ssl.SSLError as exc:
            raise CaFileError(
                f"CA file {ca_file} holds no usable certificate ({exc.reason})"
            ) from None
        except OSError as exc:
            raise CaFileError(f"cannot read CA file {ca_file} ({exc.strerror})") from None
        shared.set(key, context)
    return context


@dataclass(frozen=True)
class CertInfo:
    """What a monitor reports about one leaf certificate."""

    subject: str
    issuer: str
    not_before: dt.datetime
    not_after: dt.datetime
    names: tuple[str, ...]
    """DNS names and IP addresses of the subjectAltName extension."""

    def days_left(self, now: dt.datetime | None = None) -> float:
        """Days (fractional, negative once expired) until ``not_after``."""
        now = now or dt.datetime.now(dt.UTC)
        return round((self.not_after - now).total_seconds() / 86400, 2)

    def summary(self) -> str:
        """``subject CN=x, issuer CN=y, 2 SANs`` for detail text."""
        count = len(self.names)
        return f"subject {self.subject}, issuer {self.issuer}, {count} SAN{'s' * (count != 1)}"


def _name(name: x509.Name) -> str:
    from cryptography.x509.oid import NameOID

    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if common:
        return f"CN={common[0].value}"
    return name.rfc4514_string() or "(empty)"


def parse_certificate(der: bytes) -> CertInfo:
    # Imported on the first certificate read: cryptography (~2 MB in the engine) is paid
    # only by a site with http, tls or sips targets (memory at 10,000 targets, bench/RESULTS.md).
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    names: list[str] = []
    with contextlib.suppress(x509.ExtensionNotFound):
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names += san.get_values_for_type(x509.DNSName)
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return CertInfo(
        subject=_name(cert.subject),
        issuer=_name(cert.issuer),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        names=tuple(names),
    )


def peer_certificate(ssl_object: ssl.SSLObject | ssl.SSLSocket | None) -> CertInfo | None:
    """The leaf certificate of an established TLS connection (verified or not)."""
    if ssl_object is None:
        return None
    der = ssl_object.getpeercert(binary_form=True)
    return parse_certificate(der) if der else None


async def fetch_unverified(
    host: str, port: int, server_name: str | None, timeout: float
) -> CertInfo | None:
    """Handshake without verification, only to read the certificate; None if that fails too."""
    writer = None
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(
                host,
                port,
                ssl=client_context(False, None),
                server_hostname=server_name or host,
            ),
            timeout,
        )
        return peer_certificate(writer.get_extra_info("ssl_object"))
    except (OSError, TimeoutError, ValueError):
        return None
    finally:
        if writer is not None:
            writer.close()


def describe_verify_error(
    exc: ssl.SSLCertVerificationError, checked_name: str, cert: CertInfo | None
) -> str:
    """A sentence for a failed certificate check: which check, and what the certificate says."""
    code = exc.verify_code
    if code == VERIFY_EXPIRED:
        if cert is not None:
            days = -cert.days_left()
            return (
                f"certificate expired on {cert.not_after:%Y-%m-%d %H:%M} UTC ({days:.0f} days ago)"
            )
        return "certificate has expired"
    if code == VERIFY_NOT_YET_VALID:
        when = f" (valid from {cert.not_before:%Y-%m-%d %H:%M} UTC)" if cert else ""
        return f"certificate is not valid yet{when}"
    if code in VERIFY_NAME_MISMATCH:
        covers = ""
        if cert is not None:
            covers = f" (it covers {', '.join(cert.names) or cert.subject})"
        return f"certificate is not valid for {checked_name}{covers}"
    if code in VERIFY_UNKNOWN_CA:
        issuer = f" {cert.issuer}" if cert is not None else ""
        return f"certificate is signed by an unknown CA{issuer} (not in the trusted CA bundle)"
    reason = exc.verify_message or exc.reason or str(exc)
    return f"certificate verification failed ({reason})"


def describe_ssl_error(exc: ssl.SSLError) -> str:
    """A sentence for a handshake that failed before or besides certificate checks."""
    reason = exc.reason or exc.strerror or str(exc)
    return f"TLS handshake failed ({reason})"
