"""Signed, expiring acknowledge links for the messages a person is paged with.

A link names one incident and one person and carries an HMAC-SHA256 over
both and its expiry, keyed by a key derived from the appliance's key file
(``SecretBox.derive_key("ack-link")``), so it cannot be forged or moved to
another incident. Opening it shows a confirm page; only the POST from that
page acknowledges (mail scanners follow links, and must not acknowledge).
Pure functions: the key and the time are passed in.

Token: ``<incident>.<person>.<expires>.<signature>``, URL-safe as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass

LIFETIME = 24 * 3600.0
"""How long a link works: longer than any escalation, shorter than a leaked mail matters."""
_TOKEN = re.compile(r"^(\d{1,12})\.([a-z0-9][a-z0-9_-]{0,63})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$")


class BadLink(ValueError):
    """The link is not one of ours, was altered, or has expired (the sentence says which)."""


@dataclass(frozen=True, slots=True)
class AckLink:
    incident_id: int
    person_id: str
    expires: int


def _signature(key: bytes, incident_id: int, person_id: str, expires: int) -> str:
    mac = hmac.new(key, f"ack:{incident_id}:{person_id}:{expires}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")


def sign(
    key: bytes, incident_id: int, person_id: str, now: float, lifetime: float = LIFETIME
) -> str:
    expires = int(now + lifetime)
    return f"{incident_id}.{person_id}.{expires}.{_signature(key, incident_id, person_id, expires)}"


def verify(key: bytes, token: str, now: float) -> AckLink:
    match = _TOKEN.fullmatch(token or "")
    if match is None:
        raise BadLink("this is not an acknowledge link of this appliance")
    incident_id, person_id, expires = int(match[1]), match[2], int(match[3])
    if not hmac.compare_digest(match[4], _signature(key, incident_id, person_id, expires)):
        raise BadLink("this acknowledge link has been altered or was made by another appliance")
    if now >= expires:
        raise BadLink("this acknowledge link has expired; acknowledge in the console instead")
    return AckLink(incident_id, person_id, expires)
