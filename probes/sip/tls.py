"""TLS for the sip probe: the client SSL context, and one sentence for each way TLS fails.

Verification is on by default: the chain must lead to a trusted CA (the
system's, or ``tls.ca_file``) and the certificate must name the host we
asked for (``tls.server_name``, else the URI's or the SRV target's host; an
IP address is matched against the certificate's IP entries). Contexts are
cached in ``ctx.shared`` per option set, because loading a CA bundle costs
milliseconds of CPU and thousands of targets share a handful of settings.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from core.net.tls import (
    VERIFY_EXPIRED,
    VERIFY_NAME_MISMATCH,
    VERIFY_NOT_YET_VALID,
    VERIFY_REVOKED,
    VERIFY_UNKNOWN_CA,
)
from core.net.tls import client_context as client_context_for
from core.shared import SharedResources

if TYPE_CHECKING:
    from probes.sip.config import TlsOptions

SHARED_KEY = "sip.tls_contexts"

# OpenSSL X509_V_ERR_* codes (x509_vfy.h) that we explain in words.


class TlsFailure(ConnectionError):
    """The TLS handshake (or a TLS alert right after it) ended the connection; ``detail`` says why."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class TlsSetupError(Exception):
    """Our own TLS settings cannot be used (a file missing or not PEM): the probe cannot run."""


def client_context(options: TlsOptions, shared: SharedResources) -> ssl.SSLContext:
    """The SSLContext for these options, built once per engine."""
    cache: dict[TlsOptions, ssl.SSLContext] | None = shared.get(SHARED_KEY)
    if cache is None:
        cache = {}
        shared.set(SHARED_KEY, cache)
    context = cache.get(options)
    if context is None:
        context = build_context(options)
        cache[options] = context
    return context


def build_context(options: TlsOptions) -> ssl.SSLContext:
    """A TLS client context (TLS 1.2 or newer) for ``options``; TlsSetupError when files are bad."""
    try:
        # the same trust rules as the http and tls probes: the system store, or
        # only tls.ca_file when given; TLS 1.2 or newer (Python's default)
        context = client_context_for(options.verify, options.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise TlsSetupError(f"cannot load tls.ca_file {options.ca_file} ({_reason(exc)})") from None
    if options.cert_file:
        try:
            context.load_cert_chain(options.cert_file, options.key_file)
        except (OSError, ssl.SSLError) as exc:
            raise TlsSetupError(
                f"cannot load the client certificate {options.cert_file} ({_reason(exc)})"
            ) from None
    return context


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return str(exc.reason).replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


def describe_tls_error(exc: ssl.SSLError | OSError, server_name: str) -> str:
    """One human sentence for a failed TLS handshake or a TLS alert from the peer."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code == VERIFY_EXPIRED:
            return f"TLS: the certificate of {server_name} has expired"
        if code == VERIFY_NOT_YET_VALID:
            return f"TLS: the certificate of {server_name} is not valid yet (check both clocks)"
        if code in VERIFY_NAME_MISMATCH:
            return (
                f"TLS: the peer's certificate is not valid for {server_name} "
                "(wrong name; set tls.server_name if the peer uses another name)"
            )
        if code in VERIFY_UNKNOWN_CA:
            return (
                f"TLS: the certificate of {server_name} is signed by an unknown CA "
                "(not in the trusted bundle; set tls.ca_file to the carrier's CA)"
            )
        if code == VERIFY_REVOKED:
            return f"TLS: the certificate of {server_name} has been revoked"
        return f"TLS: the certificate of {server_name} was rejected ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        reason = (exc.reason or "").lower()
        if "certificate_required" in reason or "certificate required" in reason:
            return f"TLS: {server_name} refused the handshake: it wants a client certificate"
        if "alert" in reason:
            # The peer sent a TLS alert: it refused us (bad client certificate, no shared cipher...).
            return f"TLS: {server_name} refused the handshake ({reason.replace('_', ' ')})"
        return f"TLS handshake with {server_name} failed ({reason.replace('_', ' ') or exc})"
    return (
        f"TLS: {server_name} closed the connection during the handshake "
        f"({exc.strerror or exc}); it may want a client certificate or not speak TLS on this port"
    )
