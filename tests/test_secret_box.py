"""The key file and the sealed secrets it opens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from core.secret_box import SecretBox, SecretBoxError, load_or_create_key


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_key_file_is_created_0600_in_a_0700_directory(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "appliance.key"
    key = load_or_create_key(path)
    assert len(key) == 32 and path.read_bytes() == key
    assert mode(path) == 0o600 and mode(path.parent) == 0o700
    assert load_or_create_key(path) == key  # read back, not replaced
    assert not [p for p in path.parent.iterdir() if p.name != "appliance.key"]


def test_a_widened_key_file_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "k"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    load_or_create_key(path)
    assert mode(path) == 0o600


def test_a_damaged_key_file_is_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "k"
    path.write_bytes(b"short")
    with pytest.raises(SecretBoxError, match="holds 5 bytes, not 32"):
        load_or_create_key(path)
    with pytest.raises(SecretBoxError, match="does not exist"):
        load_or_create_key(tmp_path / "missing", create=False)


def test_a_sealed_value_opens_only_with_its_key_and_context(tmp_path: Path) -> None:
    box = SecretBox.from_file(tmp_path / "a")
    sealed = box.seal("JBSWY3DPEHPK3PXP", "staff_user:1:totp")
    assert "JBSWY3DPEHPK3PXP" not in sealed and sealed.startswith("dwsb1:")
    assert box.open(sealed, "staff_user:1:totp") == "JBSWY3DPEHPK3PXP"
    assert box.seal("x", "c") != box.seal("x", "c")  # a fresh nonce each time
    with pytest.raises(SecretBoxError, match="does not open"):
        box.open(sealed, "staff_user:2:totp")
    with pytest.raises(SecretBoxError, match="does not open"):
        SecretBox.from_file(tmp_path / "b").open(sealed, "staff_user:1:totp")
    with pytest.raises(SecretBoxError, match="not sealed by this appliance"):
        box.open("JBSWY3DPEHPK3PXP", "staff_user:1:totp")
    with pytest.raises(SecretBoxError, match="damaged"):
        box.open("dwsb1:AAAA", "staff_user:1:totp")
    assert "key" in repr(box) and str(box.open.__self__) == "SecretBox(<key>)"
