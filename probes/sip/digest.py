"""HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760). Pure functions.

Supported: algorithms ``MD5``, ``MD5-sess``, ``SHA-256``, ``SHA-256-sess``
(and ``SHA-512-256``, ``SHA-512-256-sess``), ``qop=auth`` or no qop (the
RFC 2069 form some old registrars still use). ``auth-int`` is not offered:
a REGISTER without a body gains nothing from it. When a registrar offers
several challenges we answer the strongest algorithm we know (RFC 8760 §2.4).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

_HASHES = {
    "MD5": "md5",
    "SHA-256": "sha256",
    "SHA-512-256": "sha512_256",
}
# Preference when several challenges are offered: strongest first.
_STRENGTH = ["SHA-512-256", "SHA-256", "MD5"]


class DigestError(ValueError):
    """A challenge we cannot answer; the message says why, in words."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """One ``Digest`` challenge from WWW-Authenticate or Proxy-Authenticate."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    """Upper-cased, e.g. ``MD5``, ``SHA-256-SESS``."""
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    params: dict[str, str] = field(default_factory=dict)

    @property
    def base_algorithm(self) -> str:
        return self.algorithm.removesuffix("-SESS")

    @property
    def supported(self) -> bool:
        return self.base_algorithm in _HASHES and (not self.qop or "auth" in self.qop)


def _auth_params(text: str) -> dict[str, str]:
    """``a="x, y", b=z`` → {"a": "x, y", "b": "z"}: commas inside quotes stay."""
    params: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t,":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        name = text[i:eq].strip().lower()
        i = eq + 1
        while i < n and text[i] in " \t":
            i += 1
        if i < n and text[i] == '"':
            i += 1
            value: list[str] = []
            while i < n and text[i] != '"':
                if text[i] == "\\" and i + 1 < n:
                    i += 1
                value.append(text[i])
                i += 1
            i += 1  # closing quote
            params[name] = "".join(value)
        else:
            end = text.find(",", i)
            end = n if end < 0 else end
            params[name] = text[i:end].strip()
            i = end
        if not name:
            raise DigestError("a challenge parameter has no name")
    return params


def parse_challenge(value: str) -> Challenge:
    """Parse one ``Digest realm="...", nonce="...", ...`` header value."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(
            f"the registrar asks for {scheme or 'an empty'} authentication, not Digest"
        )
    params = _auth_params(rest)
    if "nonce" not in params or "realm" not in params:
        raise DigestError("the digest challenge has no realm or no nonce")
    qop = tuple(q.strip().lower() for q in params.get("qop", "").split(",") if q.strip())
    return Challenge(
        realm=params["realm"],
        nonce=params["nonce"],
        algorithm=(params.get("algorithm") or "MD5").upper(),
        qop=qop,
        opaque=params.get("opaque"),
        stale=params.get("stale", "").lower() == "true",
        params=params,
    )


def choose_challenge(values: list[str], realm: str | None = None) -> Challenge:
    """The challenge to answer among a response's header values (strongest supported first).

    ``realm`` limits the choice to that realm. DigestError says what was offered
    when nothing can be answered.
    """
    offered: list[Challenge] = []
    problems: list[str] = []
    for value in values:
        try:
            offered.append(parse_challenge(value))
        except DigestError as exc:
            problems.append(str(exc))
    if realm is not None:
        others = sorted({c.realm for c in offered if c.realm != realm})
        offered = [c for c in offered if c.realm == realm]
        if not offered:
            raise DigestError(
                f"the registrar challenged for realm {', '.join(others) or '(none)'}, "
                f"not the configured realm {realm}"
            )
    usable = [c for c in offered if c.supported]
    if not usable:
        if offered:
            kinds = ", ".join(
                sorted(
                    {
                        f"{c.algorithm}" + (f" qop={'/'.join(c.qop)}" if c.qop else "")
                        for c in offered
                    }
                )
            )
            raise DigestError(
                f"the registrar offers only digest {kinds}, which Dialwatch does not support"
            )
        raise DigestError(problems[0] if problems else "the registrar's 401/407 has no challenge")
    return min(usable, key=lambda c: _STRENGTH.index(c.base_algorithm))


def _h(algorithm: str, text: str) -> str:
    return hashlib.new(_HASHES[algorithm], text.encode("utf-8")).hexdigest()


def digest_response(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str,
    nc: int,
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1) for this challenge and request."""
    algorithm = challenge.base_algorithm
    ha1 = _h(algorithm, f"{username}:{challenge.realm}:{password}")
    if challenge.algorithm.endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{challenge.nonce}:{cnonce}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if "auth" in challenge.qop:
        return _h(algorithm, f"{ha1}:{challenge.nonce}:{nc:08x}:{cnonce}:auth:{ha2}")
    return _h(algorithm, f"{ha1}:{challenge.nonce}:{ha2}")


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nc: int = 1,
    cnonce: str | None = None,
) -> str:
    """The Authorization / Proxy-Authorization header value answering ``challenge``."""
    cnonce = cnonce or secrets.token_hex(8)
    response = digest_response(
        challenge,
        method=method,
        uri=uri,
        username=username,
        password=password,
        cnonce=cnonce,
        nc=nc,
    )
    parts = [
        f"username={_quote(username)}",
        f"realm={_quote(challenge.realm)}",
        f"nonce={_quote(challenge.nonce)}",
        f"uri={_quote(uri)}",
        f"response={_quote(response)}",
        # Echo the registrar's own spelling of the algorithm token.
        f"algorithm={challenge.params.get('algorithm') or 'MD5'}",
    ]
    if "auth" in challenge.qop:
        parts += ["qop=auth", f"nc={nc:08x}", f"cnonce={_quote(cnonce)}"]
    if challenge.opaque is not None:
        parts.append(f"opaque={_quote(challenge.opaque)}")
    return "Digest " + ", ".join(parts)
