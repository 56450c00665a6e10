"""Who may see the dashboard and the API.

Until the security issue lands: on a loopback listener everyone may (only
people on the box itself can connect); on any other address a request needs
``config.web.token`` as ``Authorization: Bearer <token>``, or the dashboard
cookie that ``?token=`` sets. The status page, ``/healthz`` and static assets
never need one.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

COOKIE = "dialwatch_session"


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and ``localhost`` are loopback; everything else (0.0.0.0, ::, names) is not."""
    host = host.strip().strip("[]").lower()
    if host in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tokens_equal(given: str | None, expected: str | None) -> bool:
    """Constant-time comparison; a missing or empty expected token never matches."""
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def cookie_value(token: str) -> str:
    """What the dashboard cookie holds: a keyed digest, so the cookie is not the API token itself."""
    return hmac.new(token.encode(), b"dialwatch dashboard session", hashlib.sha256).hexdigest()


def bearer(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


NO_TOKEN_CONFIGURED = "no_token_configured"
WRONG_TOKEN = "wrong_token"
STALE_COOKIE = "stale_cookie"
TOKEN_REQUIRED = "token_required"

REASONS = {
    NO_TOKEN_CONFIGURED: (
        "this server listens on a non-loopback address and web.token is not set in the "
        "config; set it to use the dashboard and the API"
    ),
    WRONG_TOKEN: "the bearer token is wrong",
    STALE_COOKIE: "the session cookie is no longer valid; open the dashboard with ?token= again",
    TOKEN_REQUIRED: (
        "a token is required: send Authorization: Bearer <token> "
        "(or open the dashboard with ?token=)"
    ),
}
"""English reasons for API callers; pages show translated ones for the same keys."""


def denial(
    listen_host: str,
    expected_token: str | None,
    bearer_token: str | None,
    cookie: str | None,
) -> str | None:
    """Why a request is refused (a key of REASONS), or None when it may pass (pure)."""
    if is_loopback(listen_host):
        return None
    if not expected_token:
        return NO_TOKEN_CONFIGURED
    if bearer_token is not None:
        return None if tokens_equal(bearer_token, expected_token) else WRONG_TOKEN
    if cookie is not None:
        return None if tokens_equal(cookie, cookie_value(expected_token)) else STALE_COOKIE
    return TOKEN_REQUIRED


def cross_site(origin: str | None, host: str | None) -> bool:
    """True when a browser sent this request from another site (a forged form or fetch).

    Scripts and curl send no Origin; browsers do on POST. Checking it keeps a page
    on the internet from making a NOC browser POST to a loopback appliance.
    """
    if not origin:
        return False
    if origin == "null":
        return True
    return urlsplit(origin).netloc.lower() != (host or "").lower()
