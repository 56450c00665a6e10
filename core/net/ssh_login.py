"""How to log in to a host over SSH: the config model shared by every SSH user.

The server probe's ``ssh:`` section, runbook ``ssh`` steps and backup sources
extend it with what they do once logged in. No paramiko here: loading a config
must not import it (``tests/test_lazy_imports.py``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config import StrictModel


class SshLogin(StrictModel):
    """Host, user, credentials and host-key policy."""

    host: str
    """Host name or IP address of the machine."""
    port: int = Field(22, ge=1, le=65535)
    """SSH port."""
    user: str
    """Login user; an unprivileged account is enough for every built-in profile."""
    password: str | None = None
    """Password (use ``${ENV}`` or ``${file:...}``); tried after ``key_file`` when both are given."""
    key_file: str | None = None
    """Private key file (OpenSSH, PEM; RSA, ECDSA or Ed25519)."""
    passphrase: str | None = None
    """Passphrase of ``key_file`` if it is encrypted."""
    known_hosts: str = "~/.ssh/known_hosts"
    """known_hosts file holding the host's key (OpenSSH format, hashed entries work)."""
    host_key_policy: Literal["strict", "accept-new", "accept-any"] = "strict"
    """``strict``: the host key must already be in ``known_hosts``; ``accept-new``: an
    unknown host's key is recorded there on first connect (a changed key still fails);
    ``accept-any``: no verification at all (only for a lab)."""

    @field_validator("host", "user")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip() or any(c.isspace() for c in value):
            raise ValueError("must not be empty or contain spaces")
        return value

    @model_validator(mode="after")
    def _credentials(self) -> SshLogin:
        if self.password is None and self.key_file is None:
            raise ValueError("give key_file or password (or both)")
        return self
