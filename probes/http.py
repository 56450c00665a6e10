"""``http`` probe: does a web endpoint (CRM, dialer API, portal) answer as expected?

One GET or HEAD per poll: status in the expected list, optional body
substring/regex match on the first MiB, response time, and — for https — the
certificate's days to expiry with warn/fail thresholds. Only ``http`` and
``https`` URLs are accepted (never ``file:`` or other schemes), and redirects
are followed only when asked, and then only to the same host.

The client is aiohttp: it is already in the environment, async, and
well kept. The only extra we need from it is the peer certificate of the
connection that served the response; ``_CertResponse`` reads it when the
response starts, before aiohttp can release the connection (it does so at
once for bodiless answers such as HEAD). aiohttp is imported by the first
request, not with the model: a site without http targets does not carry it
(~5 MB and ~100 modules in the engine; memory at 10,000 targets, bench/RESULTS.md).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
import ssl
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urljoin, urlsplit

from pydantic import Field, field_validator, model_validator

from core.config import Bool, Duration, FieldValueError, StrictModel, TargetBase
from core.errors import describe_os_error
from core.net.tls import (
    CaFileError,
    CertInfo,
    check_ca_file,
    describe_ssl_error,
    describe_verify_error,
    fetch_unverified,
    parse_certificate,
    shared_context,
)
from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.base import ProbeContext
from probes.thresholds import Limit, worst
from probes.tlsinfo import expiry_limit, judge_expiry

if TYPE_CHECKING:
    import aiohttp

MAX_BODY_BYTES = 1024 * 1024
"""Body matching reads at most this much; a big page is not downloaded whole every poll."""
MAX_REDIRECTS = 5
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_STATUS_CLASS_RE = re.compile(r"^[1-5]xx$")


class BasicAuth(StrictModel):
    user: str
    """User name."""
    password: str
    """Password; write it as ``${ENV}`` or ``${file:...}`` so it stays out of the config."""


class HttpAuth(StrictModel):
    """Exactly one of ``basic`` or ``bearer_token``."""

    basic: BasicAuth | None = None
    """HTTP basic authentication."""
    bearer_token: str | None = None
    """Sent as ``Authorization: Bearer <token>``; use ``${ENV}`` or ``${file:...}``."""

    @model_validator(mode="after")
    def _exactly_one(self) -> HttpAuth:
        if (self.basic is None) == (self.bearer_token is None):
            raise ValueError("give exactly one of basic or bearer_token")
        return self

    def header(self) -> str:
        if self.basic is not None:
            pair = f"{self.basic.user}:{self.basic.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        return f"Bearer {self.bearer_token}"


def status_matches(code: int, expected: list[int | str]) -> bool:
    """``code`` is listed, or its class (``2xx``) is."""
    return any(
        code == item if isinstance(item, int) else item[0] == str(code)[0] for item in expected
    )


def check_url(url: str) -> str:
    """Config-time check: an absolute http(s) URL with a host and no credentials in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        shown = f"{parts.scheme}:" if parts.scheme else "no scheme"
        raise ValueError(f"only http:// and https:// URLs can be probed, not {shown}")
    if not parts.hostname:
        raise ValueError("the URL has no host, e.g. https://crm.example.com/health")
    if parts.username is not None or parts.password is not None:
        # URLs end up in logs and on the dashboard; credentials belong in `auth`.
        raise ValueError("put credentials in auth (from secrets), not in the URL")
    try:
        parts.port  # noqa: B018 — raises ValueError for a port out of range
    except ValueError:
        raise ValueError("the URL's port must be a number from 1 to 65535") from None
    return url


class HttpTarget(TargetBase):
    kind: Literal["http"]
    url: str
    """``http://`` or ``https://`` URL to request; nothing else is accepted."""
    method: Literal["GET", "HEAD"] = "GET"
    """HEAD skips the body (and so cannot match it)."""
    expect_status: list[int | str] = Field(default_factory=lambda: ["2xx", "3xx"])
    """Status codes that are ``ok``: numbers (``200``) or classes (``2xx``)."""
    body_contains: str | None = None
    """Text the first MiB of the body must contain."""
    body_regex: str | None = None
    """Regular expression (Python syntax) that must match in the first MiB of the body."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (``Accept``, an API key header…)."""
    auth: HttpAuth | None = None
    """Basic or bearer authentication, credentials from secrets."""
    follow_redirects: Bool = False
    """Follow redirects (up to 5), only to the same host; off: a 3xx is the answer judged."""
    verify: Bool = True
    """https: check the certificate chain and name."""
    ca_file: str | None = None
    """https: PEM bundle of CAs to trust instead of the system store (a private CA)."""
    cert_expiry_days: Limit | None = None
    """https: days left before expiry, ``{warn: 14, fail: 3}`` by default; ``null`` turns it off."""
    warn_response_time: Duration | None = None
    """Responses slower than this make the observation ``warn``."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value)

    @field_validator("expect_status")
    @classmethod
    def _expect_status(cls, value: list[int | str]) -> list[int | str]:
        if not value:
            raise ValueError("list at least one status code or class, e.g. [200] or [2xx]")
        for item in value:
            if isinstance(item, bool) or (isinstance(item, int) and not 100 <= item <= 599):
                raise ValueError(f"{item!r} is not a status code from 100 to 599")
            if isinstance(item, str) and not _STATUS_CLASS_RE.match(item):
                raise ValueError(f"{item!r} is not a status code or a class like 2xx")
        return value

    @field_validator("body_regex")
    @classmethod
    def _body_regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return value

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        return check_ca_file(value)

    @model_validator(mode="after")
    def _consistent(self) -> HttpTarget:
        if self.method == "HEAD":
            for key in ("body_contains", "body_regex"):
                if getattr(self, key) is not None:
                    raise FieldValueError(key, "a HEAD request has no body to match; use GET")
        if self.auth is not None and any(h.lower() == "authorization" for h in self.headers):
            raise FieldValueError("headers", "Authorization is set by auth; remove it from headers")
        if self.ca_file is not None and not self.url.startswith("https:"):
            raise FieldValueError("ca_file", "ca_file applies to https:// URLs only")
        if self.ca_file is not None and not self.verify:
            raise FieldValueError("ca_file", "ca_file has no effect with verify: false")
        try:
            _ = self.expiry_limit  # resolving checks the warn/fail order
        except ValueError as exc:
            raise FieldValueError("cert_expiry_days", str(exc)) from None
        return self

    @property
    def expiry_limit(self) -> Limit:
        return expiry_limit(self.cert_expiry_days, "cert_expiry_days" in self.model_fields_set)


@functools.cache
def _cert_response_class() -> type[aiohttp.ClientResponse]:
    """``_CertResponse``, defined on first use because its base class is aiohttp's."""
    import aiohttp

    class _CertResponse(aiohttp.ClientResponse):
        """A response that remembers the peer certificate of its connection."""

        peer_cert_der: bytes | None = None

        async def start(self, connection: Any) -> aiohttp.ClientResponse:
            transport = connection.transport
            ssl_object = transport.get_extra_info("ssl_object") if transport is not None else None
            if ssl_object is not None:
                self.peer_cert_der = ssl_object.getpeercert(binary_form=True)
            return await super().start(connection)

    return _CertResponse


@dataclass(frozen=True)
class Answer:
    """The final response of one poll, as far as the probe needs it."""

    url: str
    status: int
    body: bytes
    charset: str | None
    cert: CertInfo | None
    location: str | None


class Refused(Exception):
    """A redirect the probe will not follow; the message is the detail sentence."""


def same_host_redirect(current: str, location: str) -> str:
    """The absolute URL of a redirect we may follow, or Refused saying why not."""
    target = urljoin(current, location)
    here, there = urlsplit(current), urlsplit(target)
    if there.scheme not in ("http", "https"):
        raise Refused(f"redirected to a {there.scheme or 'relative'}: URL ({target}); not followed")
    if (there.hostname or "").lower() != (here.hostname or "").lower():
        raise Refused(
            f"redirected to another host ({target}); only same-host redirects are followed"
        )
    if here.scheme == "https" and there.scheme == "http":
        raise Refused(f"redirected from https to plain http ({target}); not followed")
    return target


async def _read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await response.content.read(limit - size)
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


async def fetch(target: HttpTarget, timeout: float, context: ssl.SSLContext) -> Answer:
    """Do the request (and same-host redirects when enabled); aiohttp errors propagate."""
    import aiohttp

    headers = dict(target.headers)
    if target.auth is not None:
        headers["Authorization"] = target.auth.header()
    url, method = target.url, target.method
    async with aiohttp.ClientSession(
        response_class=_cert_response_class(),
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=timeout),
        connector=aiohttp.TCPConnector(ssl=context, force_close=True),
    ) as session:
        for _ in range(MAX_REDIRECTS + 1):
            async with session.request(
                method, url, headers=headers, allow_redirects=False
            ) as response:
                location = response.headers.get("Location")
                if target.follow_redirects and response.status in REDIRECT_CODES and location:
                    url = same_host_redirect(url, location)
                    if response.status == 303 and method != "HEAD":
                        method = "GET"
                    continue
                body = b"" if method == "HEAD" else await _read_bounded(response, MAX_BODY_BYTES)
                der: bytes | None = getattr(response, "peer_cert_der", None)
                return Answer(
                    url=url,
                    status=response.status,
                    body=body,
                    charset=response.charset,
                    cert=parse_certificate(der) if der else None,
                    location=location,
                )
    raise Refused(f"more than {MAX_REDIRECTS} redirects; last to {url}")


def body_problem(target: HttpTarget, answer: Answer) -> str | None:
    """Why the body does not match, or None."""
    if target.body_contains is None and target.body_regex is None:
        return None
    text = answer.body.decode(answer.charset or "utf-8", errors="replace")
    read = "first 1 MiB read" if len(answer.body) >= MAX_BODY_BYTES else "whole body read"
    if target.body_contains is not None and target.body_contains not in text:
        return f"the body does not contain {target.body_contains!r} ({read})"
    if target.body_regex is not None and not re.search(target.body_regex, text):
        return f"the body does not match /{target.body_regex}/ ({read})"
    return None


def judge(target: HttpTarget, answer: Answer, elapsed: float) -> Observation:
    """Pure: the observation for a response that arrived."""
    problems: list[tuple[Status, ErrorClass, str]] = []
    notes: list[str] = []  # facts worth showing that are not problems
    fields: dict[str, int | float] = {
        "status_code": answer.status,
        "response_ms": round(elapsed * 1000, 3),
    }
    headline = f"HTTP {answer.status} in {elapsed * 1000:.1f} ms"
    if answer.url != target.url:
        headline += f" from {answer.url}"
    if not status_matches(answer.status, target.expect_status):
        expected = ", ".join(str(item) for item in target.expect_status)
        sentence = f"expected {expected}"
        if answer.location and answer.status in REDIRECT_CODES:
            sentence += f"; it redirects to {answer.location}"
        problems.append((Status.FAIL, ErrorClass.RESPONSE, sentence))
    else:
        if answer.location and answer.status in REDIRECT_CODES:
            notes.append(f"redirects to {answer.location}")
        if (reason := body_problem(target, answer)) is not None:
            problems.append((Status.FAIL, ErrorClass.RESPONSE, reason))
    if target.warn_response_time is not None and elapsed > target.warn_response_time:
        limit_ms = target.warn_response_time * 1000
        problems.append((Status.WARN, ErrorClass.THRESHOLD, f"slower than {limit_ms:g} ms"))
    if answer.cert is not None:
        cert_status, sentence, days = judge_expiry(answer.cert, target.expiry_limit)
        fields["cert_days"] = float(days)
        if cert_status is Status.OK:
            notes.append(sentence)
        else:
            problems.append((cert_status, ErrorClass.THRESHOLD, sentence))
    point = MetricPoint("http", fields)
    tail = "".join(f"; {note}" for note in notes)
    if not problems:
        return Observation.ok(headline + tail, (point,), elapsed)
    status = worst(p[0] for p in problems)
    error_class = next(p[1] for p in problems if p[0] is status)
    detail = f"{headline}: {'; '.join(p[2] for p in problems)}{tail}"
    return Observation(status, detail, (point,), elapsed, error_class)


async def check(target: HttpTarget, ctx: ProbeContext) -> Observation:
    import aiohttp

    try:
        context = shared_context(ctx.shared, target.verify, target.ca_file)
    except CaFileError as exc:
        return Observation.fail(str(exc), ErrorClass.TLS)
    started = time.perf_counter()
    try:
        async with asyncio.timeout(ctx.timeout):
            answer = await fetch(target, ctx.timeout, context)
    except TimeoutError:
        return Observation.fail(
            f"no complete HTTP answer within {ctx.timeout:g}s", ErrorClass.TIMEOUT
        )
    except Refused as exc:
        return Observation.fail(str(exc), ErrorClass.RESPONSE)
    except aiohttp.ClientConnectorCertificateError as exc:
        return await _certificate_failure(
            target, exc, ctx.timeout - (time.perf_counter() - started)
        )
    except aiohttp.ClientConnectorSSLError as exc:
        reason = exc.os_error if isinstance(exc.os_error, ssl.SSLError) else None
        detail = describe_ssl_error(reason) if reason else f"TLS handshake failed ({exc})"
        return Observation.fail(detail, ErrorClass.TLS)
    except aiohttp.ClientConnectorError as exc:
        detail, error_class = describe_os_error(exc.os_error)
        return Observation.fail(detail, error_class)
    except aiohttp.ServerDisconnectedError:
        return Observation.fail(
            "the server closed the connection without an answer", ErrorClass.PROTOCOL
        )
    except aiohttp.ClientResponseError as exc:
        reason = " ".join(str(exc.message).split())  # parser messages span several lines
        return Observation.fail(f"the answer is not valid HTTP ({reason})", ErrorClass.PROTOCOL)
    except aiohttp.ClientPayloadError as exc:
        return Observation.fail(f"the response body was cut off ({exc})", ErrorClass.PROTOCOL)
    except aiohttp.ClientError as exc:
        return Observation.fail(f"HTTP request failed ({exc})", ErrorClass.PROTOCOL)
    return judge(target, answer, time.perf_counter() - started)


async def _certificate_failure(
    target: HttpTarget, exc: aiohttp.ClientConnectorCertificateError, remaining: float
) -> Observation:
    error = exc.certificate_error
    if not isinstance(error, ssl.SSLCertVerificationError):
        return Observation.fail(f"certificate verification failed ({error})", ErrorClass.TLS)
    host, port = exc.host, exc.port or 443
    seen = await fetch_unverified(host, port, None, max(remaining, 0.1))
    detail = describe_verify_error(error, host, seen)
    if seen is not None:
        detail = f"{detail}; {seen.summary()}"
    return Observation.fail(detail, ErrorClass.TLS)
