"""Secrets kept in a database, encrypted with a key file that lives outside it.

TOTP seeds today, subscriber addresses and channel credentials later: a copy
of the state DB (a backup, a stolen disk image of the DB volume) must not
give them away, so each is sealed with AES-256-GCM under a 32-byte key read
from a file (0600, in a 0700 directory) that is never stored in the DB.

A sealed value is text: ``dwsb1:`` and the URL-safe base64 of nonce +
ciphertext. ``context`` (for example ``"staff_user:3:totp"``) is bound as
associated data, so a sealed value copied into another row does not open.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "dwsb1:"
KEY_BYTES = 32
NONCE_BYTES = 12


class SecretBoxError(Exception):
    """A key file that cannot be used, or a value that does not open (a sentence)."""


class SecretBox:
    """Seal and open short secrets with one key."""

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SecretBoxError(f"a secret key is {KEY_BYTES} bytes, not {len(key)}")
        self._key = key
        self._aead = AESGCM(key)

    def __repr__(self) -> str:  # never the key
        return "SecretBox(<key>)"

    @classmethod
    def from_file(cls, path: Path, *, create: bool = True) -> SecretBox:
        """Read the key file, creating it (0600, directory 0700) when missing and ``create``."""
        return cls(load_or_create_key(path, create=create))

    def derive_key(self, purpose: str) -> bytes:
        """A separate 32-byte key for ``purpose`` (HKDF-SHA256): the key file's own key
        is never used twice for different jobs."""
        return HKDF(algorithm=SHA256(), length=32, salt=None, info=purpose.encode()).derive(
            self._key
        )

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), context.encode())
        return PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        if not sealed.startswith(PREFIX):
            raise SecretBoxError("the stored secret is not sealed by this appliance")
        try:
            raw = base64.urlsafe_b64decode(sealed[len(PREFIX) :].encode("ascii"))
        except (binascii.Error, UnicodeEncodeError) as exc:
            raise SecretBoxError("the stored secret is damaged (not base64)") from exc
        if len(raw) <= NONCE_BYTES:
            raise SecretBoxError("the stored secret is damaged (too short)")
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], context.encode())
        except InvalidTag as exc:
            raise SecretBoxError(
                "the stored secret does not open with this key file "
                "(a different key, or a value moved from another row)"
            ) from exc
        return plain.decode()


def load_or_create_key(path: Path, *, create: bool = True) -> bytes:
    """The key in ``path``; a new random one written there (0600) when missing and ``create``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise SecretBoxError(f"the key file {path} does not exist") from None
        return _create_key(path)
    except OSError as exc:
        raise SecretBoxError(f"cannot read the key file {path}: {exc.strerror}") from exc
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Tighten rather than refuse: an operator's `cp` may have widened it, and
        # refusing would lock everyone out of the console over a file mode.
        os.chmod(path, 0o600)
    if len(data) != KEY_BYTES:
        raise SecretBoxError(
            f"the key file {path} holds {len(data)} bytes, not {KEY_BYTES}: "
            "it is damaged or not a Dialwatch key"
        )
    return data


def _create_key(path: Path) -> bytes:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = os.urandom(KEY_BYTES)
    # Written whole to a private temp file, then linked into place: another
    # process (the CLI beside the appliance) never reads a half-written key,
    # and the first one to link wins.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return load_or_create_key(path, create=False)
    except OSError as exc:
        raise SecretBoxError(f"cannot create the key file {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return key
