"""``${ENV}`` and ``${file:/path}`` substitution, and keeping the values it brings in out of sight.

Forms, allowed anywhere inside a string value (not in keys):

- ``${NAME}``: the environment variable; an error when it is not set.
- ``${NAME:-default}``: the variable, or ``default`` when it is unset or empty.
- ``${file:/run/secrets/token}``: the file's content without its final newline;
  a relative path is relative to the config file's directory.
- ``$${`` writes a literal ``${``.

Every value that came from a substitution is treated as a secret: its key path
is remembered, it is shown as ``***`` by ``LoadedConfig.redacted()`` and by the
config's ``repr``, and it is scrubbed from error messages.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets as _random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from core.config import SECRET_KEY_RE
from monitor.config.errors import KeyPath, Problem
from monitor.config.source import SourceFile

MASK = "***"
MAX_SECRET_FILE_BYTES = 64 * 1024

_REFERENCE_RE = re.compile(r"\$\$\{|\$\{([^}]*)\}")
_ENV_RE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?$", re.DOTALL)

# Digests include secret values only through a keyed hash, so a published
# digest does not let anyone test guesses of a short password. The key lives
# for the process: digests stay comparable across reloads, which is their use.
_DIGEST_KEY = _random.token_bytes(32)


class Secret(str):
    """A string that came from ``${...}``: equal to and usable as its value, masked in repr.

    ``str(secret)`` and f-strings give the real value (probes need it to log
    in); ``repr`` — which is what logging a model or a traceback shows — gives ``'***'``.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return repr(MASK)


@dataclass
class Substituted:
    """What substitution found in one file."""

    secret_paths: set[KeyPath] = field(default_factory=set)
    secret_values: set[str] = field(default_factory=set)
    failed_paths: set[KeyPath] = field(default_factory=set)
    """Where a reference could not be resolved (already reported; skip later errors there)."""
    problems: list[Problem] = field(default_factory=list)


def _resolve(
    reference: str, env: Mapping[str, str], base_dir: Path
) -> tuple[str | None, str | None, bool]:
    """One ``${...}`` body → (value, None, secret) or (None, human reason, False).

    ``secret`` is False for a ``:-default`` taken from the config text itself.
    """
    if reference.startswith("file:"):
        name = reference[len("file:") :].strip()
        if not name:
            return None, "empty file name in ${file:}; write ${file:/path/to/secret}", False
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        try:
            with path.open("rb") as handle:
                # Bounded: a mistyped path such as /dev/zero must not hang the loader.
                raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            return None, f"cannot read secret file {path} ({exc.strerror or exc})", False
        if len(raw) > MAX_SECRET_FILE_BYTES:
            return (
                None,
                f"secret file {path} is larger than {MAX_SECRET_FILE_BYTES // 1024} KiB",
                False,
            )
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            return None, f"secret file {path} is not UTF-8 text", False
        # Files written by `echo` or editors end in a newline that is not part of the secret.
        return text.removesuffix("\n").removesuffix("\r"), None, True
    match = _ENV_RE.match(reference)
    if match is None:
        return (
            None,
            f"bad substitution ${{{reference}}}; use ${{NAME}}, ${{NAME:-default}} or ${{file:/path}}",
            False,
        )
    name, default = match.group(1), match.group(2)
    value = env.get(name)
    if value is None or (value == "" and default is not None):
        if default is not None:
            return default, None, False
        return None, f"environment variable {name} is not set", False
    return value, None, True


def substitute(source: SourceFile, env: Mapping[str, str]) -> Substituted:
    """Replace references in every string value of ``source.data``, in place."""
    found = Substituted()
    base_dir = source.path.parent

    def one(value: str, path: KeyPath) -> str:
        used = False

        def replace(match: re.Match[str]) -> str:
            nonlocal used
            if match.group(0) == "$${":
                return "${"
            used = True
            resolved, reason, secret = _resolve(match.group(1), env, base_dir)
            if reason is not None:
                found.problems.append(Problem(source.location(path), path, reason))
                found.failed_paths.add(path)
                return ""
            assert resolved is not None
            if resolved and secret:
                found.secret_values.add(resolved)
            return resolved

        result = _REFERENCE_RE.sub(replace, value)
        if used:
            found.secret_paths.add(path)
            return Secret(result)
        return result

    def walk(node: Any, path: KeyPath) -> Any:
        if isinstance(node, dict):
            for key in node:
                node[key] = walk(node[key], (*path, key))
        elif isinstance(node, list):
            for index, item in enumerate(node):
                node[index] = walk(item, (*path, index))
        elif isinstance(node, str) and "${" in node:
            return one(node, path)
        return node

    walk(source.data, ())
    return found


def is_secret_key(key: object) -> bool:
    return isinstance(key, str) and SECRET_KEY_RE.search(key) is not None


def redact(data: Any, secret_paths: set[KeyPath], path: KeyPath = ()) -> Any:
    """A copy of plain data with substituted values and secret-named keys shown as ``***``."""
    if path in secret_paths and data is not None:
        return MASK
    if isinstance(data, dict):
        return {
            key: MASK
            if is_secret_key(key) and value is not None
            else redact(value, secret_paths, (*path, key))
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [redact(item, secret_paths, (*path, index)) for index, item in enumerate(data)]
    return data


def digest_safe(data: Any, secret_paths: set[KeyPath]) -> Any:
    """Like ``redact`` but each secret becomes a keyed hash, so a changed secret changes the digest."""
    # Only branches leading to a substituted value need their paths tracked;
    # everywhere else a cheaper walk looks at key names alone.
    prefixes = {path[:n] for path in secret_paths for n in range(len(path) + 1)}

    def walk(node: Any, path: KeyPath) -> Any:
        if path in secret_paths and node is not None:
            return _keyed_hash(node)
        if path not in prefixes:
            return _hash_secret_keys(node)
        if isinstance(node, dict):
            return {key: walk(value, (*path, key)) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item, (*path, i)) for i, item in enumerate(node)]
        return node

    return walk(data, ())


def _keyed_hash(value: Any) -> str:
    return "secret:" + hmac.new(_DIGEST_KEY, repr(value).encode(), hashlib.sha256).hexdigest()


def _hash_secret_keys(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            key: _keyed_hash(value)
            if value is not None and is_secret_key(key)
            else _hash_secret_keys(value)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_hash_secret_keys(item) for item in node]
    return node


def mask_in_model(model: BaseModel, secret_paths: set[KeyPath]) -> None:
    """Swap each substituted string in a validated config for a ``Secret`` so repr masks it.

    Validation turns our ``Secret`` back into a plain ``str``; the models are
    frozen, so the swap goes around ``__setattr__``. Only values that are still
    the same text are swapped (``${PORT}`` validated into an int is no secret).
    """
    for path in secret_paths:
        parent: Any = model
        for part in path[:-1]:
            parent = _child(parent, part)
            if parent is None:
                break
        if parent is None:
            continue
        last = path[-1]
        value = _child(parent, last)
        if not isinstance(value, str) or isinstance(value, Secret):
            continue
        if isinstance(parent, BaseModel) and isinstance(last, str):
            object.__setattr__(parent, last, Secret(value))
        elif isinstance(parent, dict | list):
            parent[last] = Secret(value)


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, BaseModel) and isinstance(part, str):
        return node.__dict__.get(part) if part in type(node).model_fields else None
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None
