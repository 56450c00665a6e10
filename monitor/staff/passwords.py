"""Staff passwords: Argon2id hashes and the password policy (pure apart from the hashing cost).

Parameters: RFC 9106's second recommended option ("low memory"), Argon2id
with t=3 passes over m=64 MiB in p=4 lanes, a 16-byte salt and a 32-byte
tag — about 0.1 s on a 2-core appliance (bench/login_hash.py), slow enough
to make guessing a stolen hash expensive, fast enough for a login. A hash
made with other parameters is re-made at the next successful login
(``needs_rehash``), so raising them later needs no migration.
"""

from __future__ import annotations

import unicodedata

from argon2 import PasswordHasher, profiles
from argon2.exceptions import InvalidHashError, VerificationError

from monitor.staff.common_passwords import COMMON_PASSWORDS

PARAMETERS = profiles.RFC_9106_LOW_MEMORY
MIN_LENGTH = 12
"""NIST SP 800-63B asks for at least 8; a console that can fail over trunks asks for more."""
MAX_LENGTH = 256
"""Argon2 takes any length; the cap keeps a megabyte "password" from costing a login."""

_hasher = PasswordHasher.from_parameters(PARAMETERS)
_DUMMY_HASH = _hasher.hash("not a password anyone has: the unknown-user decoy")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; with no hash (an unknown user) it still costs one
    verification, so the answer's timing does not tell which user names exist."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _DUMMY_HASH, password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def policy_problems(user_name: str, password: str) -> list[str]:
    """Why ``password`` may not be used by ``user_name`` (empty: it may) — pure."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"a password needs at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"a password has at most {MAX_LENGTH} characters")
    folded = unicodedata.normalize("NFKC", password).casefold()
    name = user_name.casefold()
    if name and name in folded:
        problems.append("a password must not contain the user name")
    if folded in COMMON_PASSWORDS or folded.rstrip("0123456789!.") in COMMON_PASSWORDS:
        problems.append("this password is on the list of common passwords")
    if password and len(set(password)) < 4:
        problems.append("a password needs at least 4 different characters")
    return problems
