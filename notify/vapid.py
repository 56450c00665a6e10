"""The appliance's VAPID key pair (RFC 8292): made once, kept in the data directory, 0600.

Web push services accept a message only with a JWT signed by the key the
browser subscribed with (its public half is ``applicationServerKey`` in
``PushManager.subscribe``). So the key must outlive restarts and upgrades:
a new key orphans every subscription. It is a P-256 private key in PEM,
``<data>/keys/vapid.pem``, written 0600 in a 0700 directory by ``install.sh``
(``dialwatch vapid-key``) or, when missing, at the appliance's first start —
the same rule as the secrets key (``core.secret_box``).
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

KEY_FILE = Path("keys") / "vapid.pem"
"""Where the key lives, under the data directory."""


class VapidKeyError(Exception):
    """A key file that cannot be used (a sentence naming the file)."""


@dataclass(frozen=True)
class VapidKey:
    """The private key and its public half as browsers take it."""

    path: Path
    private_key: ec.EllipticCurvePrivateKey

    def __repr__(self) -> str:  # never the key
        return f"VapidKey({str(self.path)!r})"

    @property
    def public_key(self) -> str:
        """The uncompressed public point, URL-safe base64 without padding
        (``applicationServerKey``; the ``k=`` of the Authorization header)."""
        raw = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def key_path(data_dir: Path) -> Path:
    return data_dir / KEY_FILE


def load_or_create(path: Path, *, create: bool = True) -> VapidKey:
    """The key in ``path``; a new one written there (0600) when it is missing and ``create``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if not create:
            raise VapidKeyError(f"the VAPID key file {path} does not exist") from None
        return _create(path)
    except OSError as exc:
        raise VapidKeyError(f"cannot read the VAPID key file {path}: {exc.strerror}") from exc
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        os.chmod(path, 0o600)  # tighten, as core.secret_box does: a `cp` may have widened it
    return VapidKey(path, _parse(path, data))


def _parse(path: Path, data: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise VapidKeyError(f"the VAPID key file {path} is not a PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise VapidKeyError(f"the VAPID key file {path} does not hold a P-256 key")
    return key


def _create(path: Path) -> VapidKey:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # Written whole to a private temp file, then linked into place: the CLI and
    # the appliance starting together never read half a key, and the first wins.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        os.link(tmp, path)
    except FileExistsError:
        return load_or_create(path, create=False)
    except OSError as exc:
        raise VapidKeyError(f"cannot write the VAPID key file {path}: {exc.strerror}") from exc
    finally:
        tmp.unlink(missing_ok=True)
    return VapidKey(path, key)
