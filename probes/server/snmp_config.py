"""The ``snmp:`` section of a ``server`` target read ``via: snmp``: agent, credentials, what to read.

Kept out of ``probes/server/config.py`` so that file only names the section;
everything SNMP-specific (versions, v3 protocols, profiles, own OIDs with
their thresholds) is declared and validated here.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, field_validator, model_validator

from core.config import FieldValueError, StrictModel
from probes.thresholds import DirectedLimit

PROFILES = ("host", "interfaces")
"""Built-in sets of readings: ``host`` (HOST-RESOURCES-MIB) and ``interfaces`` (IF-MIB)."""

MAX_OIDS = 64

_NAME_RE = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,62}[a-z0-9])?$")
_OID_RE = re.compile(r"^\.?(?:0|[1-9]\d*)(?:\.(?:0|[1-9]\d*))+$")


def _version_text(value: object) -> object:
    # YAML reads `version: 3` as an int and `version: 2c` as a string.
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def dotted_oid(value: str) -> str:
    """``.1.3.6.1.2.1.1.3.0`` or ``1.3.6.1.2.1.1.3.0`` -> ``1.3.6.1.2.1.1.3.0``; ValueError otherwise."""
    if not isinstance(value, str) or not _OID_RE.match(value.strip()):
        raise ValueError(
            "must be a dotted numeric OID like 1.3.6.1.2.1.1.3.0 (MIB names are not looked up)"
        )
    oid = value.strip().lstrip(".")
    if any(int(part) >= 2**32 for part in oid.split(".")):
        raise ValueError("each OID part must be below 4294967296")
    return oid


class SnmpOid(DirectedLimit):
    """One OID read each poll with GET, as a number with optional thresholds."""

    name: str
    """Names the value in metrics (tag ``name`` of ``snmp_oid``) and in the detail text."""
    oid: str
    """Dotted numeric OID of one instance (ending in ``.0`` for a scalar)."""
    type: Literal["gauge", "counter"] = "gauge"
    """``gauge``: the value as read; ``counter``: growth per second between two polls
    (Counter32 wraps are un-wrapped, a counter that went back counts from zero)."""
    unit: str = ""
    """Shown after the value in the detail text (``%``, ``calls``); ``/s`` is added for counters."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError("must be lower-case letters, digits, - and _ (e.g. active-calls)")
        return value

    @field_validator("oid")
    @classmethod
    def _oid(cls, value: str) -> str:
        return dotted_oid(value)


class SnmpOptions(StrictModel):
    """How to reach an SNMP agent and what to read from it."""

    host: str
    """Host name or IP address of the agent."""
    port: int = Field(161, ge=1, le=65535)
    """UDP port of the agent."""
    version: Annotated[Literal["2c", "3"], BeforeValidator(_version_text)] = "2c"
    """SNMP version: ``2c`` (community) or ``3`` (user-based security)."""
    community: str | None = None
    """For ``2c``: the community string (use ``${ENV}`` or ``${file:...}``)."""
    user: str | None = None
    """For ``3``: the USM user name."""
    auth_protocol: Literal["SHA", "SHA224", "SHA256", "SHA384", "SHA512", "MD5"] = "SHA"
    """For ``3``: authentication protocol (HMAC); SHA is SHA-1 as Net-SNMP names it."""
    auth_key: str | None = None
    """For ``3``: authentication passphrase (at least 8 characters). Without it: noAuthNoPriv."""
    priv_protocol: Literal["AES", "AES192", "AES256", "AES192C", "AES256C", "DES"] = "AES"
    """For ``3``: privacy (encryption) protocol; AES is AES-128-CFB. AES192/AES256 extend
    the key as Net-SNMP does (Blumenthal), AES192C/AES256C as Cisco does (Reeder)."""
    priv_key: str | None = None
    """For ``3``: privacy passphrase (at least 8 characters). With ``auth_key``: authPriv;
    without it: authNoPriv (no encryption)."""
    context: str = ""
    """For ``3``: the SNMP context name; most agents use the empty default."""
    profiles: list[Literal["host", "interfaces"]] = Field(default_factory=lambda: ["host"])
    """Built-in readings: ``host`` = CPU per processor, memory, swap and disks from
    HOST-RESOURCES-MIB (plus ``processes`` from hrSWRunTable); ``interfaces`` = status,
    traffic, errors and discards from IF-MIB."""
    oids: list[SnmpOid] = Field(default_factory=list, max_length=MAX_OIDS)
    """Own OIDs read with GET, each a gauge or a counter with optional thresholds."""
    interface_down: Literal["ok", "warn", "fail"] = "warn"
    """What an interface that is administratively up but operationally not up makes the
    observation (``interfaces`` profile; interfaces an admin shut down never count)."""
    retries: int = Field(1, ge=0, le=5)
    """Resends of an unanswered request; each try waits ``timeout ÷ (retries + 1)``."""
    max_repetitions: int = Field(25, ge=1, le=100)
    """Rows asked for in one GETBULK request of a table walk."""

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("must not be empty or contain spaces")
        return value.strip().removeprefix("[").removesuffix("]")

    @field_validator("profiles")
    @classmethod
    def _profiles(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("each profile may appear once")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SnmpOptions:
        # Problems with a key that is written are reported at that key's line.
        if self.version == "2c":
            if not self.community:
                raise ValueError("version 2c needs a community")
            for key in ("user", "auth_key", "priv_key"):
                if getattr(self, key):
                    raise FieldValueError(key, "is for version 3; version 2c uses community")
        else:
            if not self.user:
                raise ValueError("version 3 needs a user")
            if self.community:
                raise FieldValueError(
                    "community", "is for version 2c; version 3 uses user and keys"
                )
            if self.priv_key and not self.auth_key:
                raise FieldValueError(
                    "priv_key", "needs auth_key too (SNMPv3 has no privacy without authentication)"
                )
            for key in ("auth_key", "priv_key"):
                given = getattr(self, key)
                if given is not None and len(given) < 8:
                    raise FieldValueError(key, "must be at least 8 characters (RFC 3414)")
        names = [oid.name for oid in self.oids]
        if len(set(names)) != len(names):
            raise FieldValueError("oids", "each oid name may appear once")
        if not self.profiles and not self.oids:
            raise ValueError("nothing to read: give profiles or oids")
        return self

    @property
    def security_level(self) -> str:
        """``noAuthNoPriv``, ``authNoPriv`` or ``authPriv`` (version 3)."""
        if self.auth_key and self.priv_key:
            return "authPriv"
        return "authNoPriv" if self.auth_key else "noAuthNoPriv"

    @property
    def address(self) -> str:
        """``host:port`` as the detail text shows it (``[v6]:port`` for IPv6)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"
