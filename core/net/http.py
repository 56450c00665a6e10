"""The one blocking HTTP client: bounded by a deadline and a body size, errors as sentences.

For probes' HTTP sources, and for runbook ``http`` steps, webhooks and chat/SMS
channels: urllib3 (already a dependency) in the caller's worker thread, no
retries (a caller that retries does so on purpose, once, where it decides),
every request bounded by what is left of the caller's deadline
(``time.monotonic()`` value) and, if the caller says so, its TCP connect by a
shorter wait; bodies bounded by ``max_bytes``, redirects followed only within
the same scheme, host and port — or not at all. A message never shows the
URL's query (it can hold a password or a token).

Status codes are the caller's to judge: an answer of any status is returned;
only a transport failure (refused, timed out, TLS, a broken answer, a body too
large, a redirect elsewhere) raises ``HttpFailure``.
"""

from __future__ import annotations

import base64
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urljoin, urlsplit

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)

from core.errors import describe_os_error
from core.observation import ErrorClass
from core.shared import SharedResources

MAX_REDIRECTS = 3
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})


class HttpFailure(Exception):
    """The request got no usable answer; ``detail`` is the sentence, ``error_class`` the vocabulary.

    ``cause`` is urllib3's own exception when there was one (None for a failure
    this module decided: a deadline already past, a body too large, a redirect
    not followed). It is for a caller that words transport failures itself, as
    the InfluxDB sinks do alike for their v1 API (this client) and their v2 API
    (``influxdb-client``, which raises the same urllib3 errors).
    """

    def __init__(
        self, detail: str, error_class: ErrorClass, cause: BaseException | None = None
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.error_class = error_class
        self.cause = cause


@dataclass(frozen=True)
class HttpAnswer:
    """An answer, whatever its status."""

    status: int
    reason: str
    url: str
    """The URL that answered (after same-origin redirects)."""
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    truncated: bool = False
    """An error answer's body was longer than ``max_bytes`` and was cut (a success's never is)."""


def shown_url(url: str) -> str:
    """scheme://host[:port]/path — what a message may show (no query: it can hold a password)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


def basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value for HTTP basic auth: ``user:password`` in UTF-8 (RFC 7617)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def new_pool(
    verify: bool, ca_file: str | None, *, num_pools: int = 64, maxsize: int = 1
) -> urllib3.PoolManager:
    """A connection pool (keep-alive) for one TLS setting: the system's CAs or only
    ``ca_file``, or no verification at all. ``maxsize``: idle connections kept per host."""
    if verify:
        return urllib3.PoolManager(
            num_pools=num_pools, maxsize=maxsize, cert_reqs="CERT_REQUIRED", ca_certs=ca_file
        )
    return urllib3.PoolManager(
        num_pools=num_pools, maxsize=maxsize, cert_reqs="CERT_NONE", assert_hostname=False
    )


def shared_pool(shared: SharedResources, verify: bool, ca_file: str | None) -> urllib3.PoolManager:
    """A connection pool per TLS setting, kept in the engine's shared resources (keep-alive)."""
    key = f"http.pool:{verify}:{ca_file}"
    pool = shared.get(key)
    if pool is None:
        pool = new_pool(verify, ca_file)
        shared.set(key, pool, close=pool.clear)
    return pool


def request(
    pool: urllib3.PoolManager,
    method: str,
    url: str,
    *,
    deadline: float,
    max_bytes: int,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    redirects: Literal["same-origin", "none"] = "same-origin",
    connect_timeout: float | None = None,
) -> HttpAnswer:
    """One request (blocking), its redirects within the same origin; HttpFailure with a sentence.

    ``connect_timeout``: the longest wait for a TCP connect (never past the
    deadline), so a host that drops SYNs is given up on sooner than one that is
    slow to answer; None: only the deadline.
    """
    start_origin = origin(url)
    current, verb, payload = url, method, body
    for _ in range(MAX_REDIRECTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise HttpFailure(f"no answer from {shown_url(current)} in time", ErrorClass.TIMEOUT)
        response = _send(pool, verb, current, headers or {}, payload, remaining, connect_timeout)
        try:
            if response.status in REDIRECT_CODES and redirects == "same-origin":
                location = response.headers.get("Location")
                if not location:
                    raise HttpFailure(
                        f"HTTP {response.status} from {shown_url(current)} without a Location",
                        ErrorClass.PROTOCOL,
                    )
                target = urljoin(current, location)
                if origin(target) != start_origin:
                    raise HttpFailure(
                        f"{shown_url(current)} redirected to {shown_url(target)}, another "
                        "host, scheme or port; not followed (point url at the final address)",
                        ErrorClass.RESPONSE,
                    )
                if response.status in (301, 302, 303) and verb not in ("GET", "HEAD"):
                    verb, payload = "GET", None  # what browsers and curl do
                # Read the redirect's (small) body: a keep-alive connection released with
                # its answer unread breaks the next request on it (http.client's
                # ResponseNotReady), and the next request here is to the same origin.
                response.drain_conn()
                current = target
                continue
            content = response.read(max_bytes + 1, decode_content=True)
            truncated = len(content) > max_bytes
            if truncated:
                response.close()  # the rest is unread: this connection must not be reused
            if truncated and response.status < 400:
                raise HttpFailure(
                    f"the answer from {shown_url(current)} is larger than {max_bytes} bytes",
                    ErrorClass.PROTOCOL,
                )
            return HttpAnswer(
                response.status,
                response.reason or "",
                current,
                content[:max_bytes],
                {k.lower(): v for k, v in response.headers.items()},
                truncated,
            )
        except (ReadTimeoutError, TimeoutError) as exc:
            raise HttpFailure(
                f"{shown_url(current)} stopped sending its answer (timeout)",
                ErrorClass.TIMEOUT,
                exc,
            ) from None
        except (ProtocolError, HTTPError) as exc:
            raise HttpFailure(
                f"{shown_url(current)} broke off its answer ({type(exc).__name__})",
                ErrorClass.PROTOCOL,
                exc,
            ) from None
        finally:
            response.release_conn()
    raise HttpFailure(
        f"{shown_url(url)} redirected more than {MAX_REDIRECTS} times", ErrorClass.RESPONSE
    )


def _send(
    pool: urllib3.PoolManager,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes | None,
    remaining: float,
    connect_timeout: float | None,
) -> urllib3.BaseHTTPResponse:
    where = shown_url(url)
    connect = remaining if connect_timeout is None else min(connect_timeout, remaining)
    try:
        return pool.request(
            method,
            url,
            body=body,
            headers=dict(headers),
            redirect=False,
            retries=False,
            preload_content=False,
            timeout=urllib3.Timeout(total=remaining, connect=connect),
        )
    except ReadTimeoutError as exc:
        raise HttpFailure(
            f"{where} did not answer within {remaining:.3g}s", ErrorClass.TIMEOUT, exc
        ) from None
    except SSLError as exc:
        raise HttpFailure(
            f"TLS with {where} failed: {tls_reason(exc)}", ErrorClass.TLS, exc
        ) from None
    except NameResolutionError as exc:
        raise HttpFailure(
            f"could not resolve the host of {where}", ErrorClass.RESOLVE, exc
        ) from None
    except NewConnectionError as exc:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, OSError):
            detail, error_class = describe_os_error(cause)
        else:
            detail, error_class = "connection failed", ErrorClass.UNREACHABLE
        raise HttpFailure(f"{where}: {detail}", error_class, exc) from None
    except ConnectTimeoutError as exc:  # after NewConnectionError, which is a subclass of it
        raise HttpFailure(
            f"no answer to TCP connect to {where} within {connect:.3g}s", ErrorClass.TIMEOUT, exc
        ) from None
    except (ProtocolError, HTTPError) as exc:
        raise HttpFailure(
            f"{where} closed the connection without an answer ({type(exc).__name__})",
            ErrorClass.PROTOCOL,
            exc,
        ) from None
    except OSError as exc:  # a socket error urllib3 let through unwrapped
        detail, error_class = describe_os_error(exc)
        raise HttpFailure(f"{where}: {detail}", error_class, exc) from None


def tls_reason(exc: SSLError) -> str:
    """The short reason of a TLS failure under urllib3."""
    inner = exc.args[0] if exc.args else exc
    if isinstance(inner, ssl.SSLCertVerificationError):
        return inner.verify_message or "certificate not trusted"
    text = str(inner)
    if "CERTIFICATE_VERIFY_FAILED" in text:
        return "certificate not trusted"
    if "WRONG_VERSION_NUMBER" in text:
        return "the server does not speak TLS on this port"
    return text[:120]
