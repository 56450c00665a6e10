"""Loading a configuration: one YAML file or a directory of them, checked strictly.

``load_config(path)`` reads, substitutes ``${...}``, merges, validates through
``Config`` and cross-checks, then either returns a ``LoadedConfig`` or raises
one ``ConfigError`` listing every problem as ``file:line: key.path: message``.

Merging a directory: its ``*.yaml`` / ``*.yml`` files (not hidden ones) in name
order; list sections (``targets``, ``components``...) are concatenated; any
other section may be defined in one file only. Top-level keys starting with
``x-`` are ignored, so they can hold YAML anchors to reuse.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from monitor.config.compact import share_equal_parts
from monitor.config.crosscheck import cross_check
from monitor.config.errors import ConfigError, KeyPath, Location, Problem, render_all
from monitor.config.messages import Translated, translate
from monitor.config.removed import take_removed
from monitor.config.schema import Config
from monitor.config.secrets import Substituted, digest_safe, mask_in_model, redact, substitute
from monitor.config.source import SourceFile, read_yaml

CONFIG_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True, repr=False)
class LoadedConfig:
    """A validated configuration and what it was made from."""

    config: Config
    files: list[Path]
    digest: str
    """SHA-256 of the effective config (defaults filled in); equal digests mean equal configs."""
    secret_paths: frozenset[KeyPath] = frozenset()
    """Key paths whose values came from ``${...}``."""
    _target_digests: dict[str, str] = field(default_factory=dict)
    _secret_values: frozenset[str] = frozenset()
    disabled: tuple[str, ...] = ()
    """Error lines of entries that were stood in for (``Section.stand_in``: a channel
    whose entry does not validate is loaded as off, the rest work)."""

    def secret_values(self) -> frozenset[str]:
        """The texts ``${...}`` brought in (the substituted parts, not whole values),
        for a log filter that masks them wherever they turn up."""
        return self._secret_values

    def target_digest(self, target_id: str) -> str:
        """SHA-256 of one target's effective config, so a reload can keep unchanged targets running.

        Raises KeyError for an unknown id.
        """
        return self._target_digests[target_id]

    def redacted(self) -> dict[str, Any]:
        """The effective config as plain data, safe to print: secrets are ``***``."""
        return redact(self.config.model_dump(mode="json"), set(self.secret_paths))

    def __repr__(self) -> str:
        files = ", ".join(str(f) for f in self.files)
        return (
            f"LoadedConfig(files=[{files}], targets={len(self.config.targets)}, "
            f"components={len(self.config.components)}, digest={self.digest[:12]})"
        )

    __str__ = __repr__


def config_files(path: Path) -> list[Path]:
    """The files ``path`` stands for: itself, or a directory's config files in name order."""
    if path.is_dir():
        try:
            files = sorted(
                p
                for p in path.iterdir()
                if p.suffix in CONFIG_SUFFIXES and not p.name.startswith(".") and p.is_file()
            )
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
        if not files:
            raise ConfigError([f"{path}: no *.yaml files in this directory"])
        return files
    if not path.exists():
        raise ConfigError([f"{path}: no such file or directory"])
    return [path]


@dataclass
class _Merged:
    data: dict[str, Any] = field(default_factory=dict)
    lines: dict[KeyPath, Location] = field(default_factory=dict)
    secret_paths: set[KeyPath] = field(default_factory=set)
    secret_values: set[str] = field(default_factory=set)
    failed_paths: set[KeyPath] = field(default_factory=set)
    problems: list[Problem] = field(default_factory=list)

    def location(self, path: KeyPath) -> Location:
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines[path]

    def add(self, source: SourceFile, found: Substituted) -> None:
        offsets: dict[str, int] = {}
        self.lines.setdefault((), Location(source.path, 1))
        for key, value in source.data.items():
            # ``x-`` keys hold anchors; an empty section (``components:`` with
            # every entry commented out) means the defaults, not an error.
            if key.startswith("x-") or value is None:
                continue
            here = source.location((key,))
            if key not in self.data:
                self.data[key] = list(value) if isinstance(value, list) else value
                offsets[key] = 0
                self.lines[(key,)] = here
            elif isinstance(value, list) and isinstance(self.data[key], list):
                offsets[key] = len(self.data[key])
                self.data[key].extend(value)
            else:
                first = self.lines[(key,)]
                self.problems.append(
                    Problem(
                        here,
                        (key,),
                        f"defined in both {first} and {here}; define it in one file "
                        "(only list sections such as targets and components are merged)",
                    )
                )

        def moved(path: KeyPath) -> KeyPath | None:
            if not path or path[0] not in offsets:
                return None
            if len(path) > 1 and isinstance(path[1], int):
                return (path[0], path[1] + offsets[path[0]], *path[2:])
            return path if len(path) > 1 else None

        for path, line in source.lines.items():
            new = moved(path)
            if new is not None:
                self.lines[new] = Location(source.path, line)
        for paths, into in (
            (found.secret_paths, self.secret_paths),
            (found.failed_paths, self.failed_paths),
        ):
            for path in paths:
                new = moved(path)
                if new is not None:
                    into.add(new)


def _digest(data: Any) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _translate(schema: type[Config], error: ErrorDetails, secret_paths: set[KeyPath]) -> Translated:
    try:
        translated = translate(schema, error)
        key = translated.path
        if any(key[:n] in secret_paths for n in range(len(key) + 1)):
            translated = translate(schema, error, secret=True)
        return translated
    except Exception:
        # A model shape the translator does not know must still give an error
        # line, not a traceback: fall back to pydantic's own words (no input).
        loc = tuple(part for part in error["loc"] if isinstance(part, int | str))
        return Translated(loc, error["msg"])


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, schema: type[Config] = Config
) -> LoadedConfig:
    """Read, substitute, merge, validate and cross-check a config file or directory.

    ``env`` is where ``${NAME}`` looks (default: ``os.environ``). ``schema`` is
    the top-level model: the composition root's, whose rules know the installed
    action kinds (default: monitor's own, whose rules know none). Raises
    ``ConfigError`` with every problem found.
    """
    env = os.environ if env is None else env
    files = config_files(Path(path))
    merged = _Merged()
    for file in files:
        source, problems = read_yaml(file)
        merged.problems.extend(problems)
        if source is None:
            continue
        merged.problems.extend(take_removed(source))
        found = substitute(source, env)
        merged.problems.extend(found.problems)
        merged.secret_values |= found.secret_values
        merged.add(source, found)
    if () not in merged.lines:  # no file could be read at all: nothing to validate
        raise ConfigError(render_all(merged.problems))
    files += _section_files(schema, Path(path), merged, env)

    # Keys that already have an error: a failed ${...} leaves an empty value
    # behind, and saying it is also "required" or "unknown" would only confuse.
    reported: set[KeyPath] = set(merged.failed_paths)
    config, problems = _validate(schema, merged, reported)
    disabled: list[str] = []
    standing_in = _stand_ins(schema, merged, merged.problems + problems)
    if standing_in:
        # Every problem is inside entries that can be stood in for (a bad channel):
        # load the rest, and say which entries are off and why.
        disabled = render_all(merged.problems + problems, scrub=merged.secret_values)
        for (section, index), entry in standing_in.items():
            merged.data[section][index] = entry
        merged.problems.clear()
        reported = set()
        config, problems = _validate(schema, merged, reported)
    merged.problems.extend(problems)

    def report(key: KeyPath, message: str) -> None:
        if key not in reported:
            merged.problems.append(Problem(merged.location(key), key, message))

    unique = {key: s.unique_ids for key, s in schema.sections.items() if s.unique_ids}
    cross_check(merged.data, lambda key: str(merged.location(key)), report, unique)
    if config is not None:
        for section in schema.sections.values():
            if section.check is not None:
                for key, message in section.check(config):
                    report(key, message)

    if merged.problems or config is None:
        raise ConfigError(render_all(merged.problems, scrub=merged.secret_values))

    safe = digest_safe(config.model_dump(mode="json"), merged.secret_paths)
    target_digests = {target["id"]: _digest(target) for target in safe["targets"]}
    digest = _digest(safe)
    mask_in_model(config, merged.secret_paths)
    share_equal_parts(config)
    return LoadedConfig(
        config,
        files,
        digest,
        frozenset(merged.secret_paths),
        target_digests,
        frozenset(merged.secret_values),
        tuple(disabled),
    )


def _section_files(
    schema: type[Config], path: Path, merged: _Merged, env: Mapping[str, str]
) -> list[Path]:
    """The files of sections kept in a directory of their own (``Section.files_from``),
    merged like config files: each may hold that section's key only."""
    found: list[Path] = []
    for name, section in schema.sections.items():
        if section.files_from is None:
            continue
        outer, inner = section.files_from.split(".", 1)
        holder = merged.data.get(outer)
        folder = holder.get(inner) if isinstance(holder, dict) else None
        if not isinstance(folder, str) or not folder:
            continue
        base = path if path.is_dir() else path.parent
        where = Path(folder) if Path(folder).is_absolute() else base / folder
        if not where.is_dir():
            merged.problems.append(
                Problem(
                    merged.location((outer, inner)), (outer, inner), f"no such directory: {where}"
                )  # fmt: skip
            )
            continue
        try:
            files = config_files(where)
        except ConfigError:  # an empty directory: no entries from there (yet)
            files = []
        for file in files:
            source, problems = read_yaml(file)
            merged.problems.extend(problems)
            if source is None:
                continue
            others = [k for k in source.data if k != name and not k.startswith("x-")]
            if others:
                merged.problems.append(
                    Problem(
                        source.location((others[0],)), (others[0],),
                        f"a file in {section.files_from} ({where}) holds {name}: only; "
                        f"put {others[0]}: in the main config",
                    )
                )  # fmt: skip
                continue
            substituted = substitute(source, env)
            merged.problems.extend(substituted.problems)
            merged.secret_values |= substituted.secret_values
            merged.add(source, substituted)
            found.append(file)
    return found


def _validate(
    schema: type[Config], merged: _Merged, reported: set[KeyPath]
) -> tuple[Config | None, list[Problem]]:
    """The validated config, or None and the problems (each path added to ``reported``)."""
    try:
        return schema.model_validate(merged.data), []
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            translated = _translate(schema, error, merged.secret_paths)
            if translated.path in merged.failed_paths:
                continue
            reported.add(translated.path)
            problems.append(
                Problem(merged.location(translated.path), translated.path, translated.message)
            )
        return None, problems


def _stand_ins(
    schema: type[Config], merged: _Merged, problems: list[Problem]
) -> dict[tuple[str, int], Any]:
    """The stand-in for each entry with a problem, when every problem is inside an entry
    of a section that takes stand-ins and has a usable ``id``; else nothing."""
    if not problems:
        return {}
    by_entry: dict[tuple[str, int], list[Problem]] = {}
    for problem in problems:
        path = problem.path
        if not path or len(path) < 2 or not isinstance(path[1], int):
            return {}
        section = schema.sections.get(str(path[0]))
        if section is None or section.stand_in is None:
            return {}
        by_entry.setdefault((str(path[0]), path[1]), []).append(problem)
    stand_ins: dict[tuple[str, int], Any] = {}
    for (key, index), found in by_entry.items():
        entries = merged.data.get(key)
        entry = entries[index] if isinstance(entries, list) and index < len(entries) else None
        ident = entry.get("id") if isinstance(entry, dict) else None
        if (key, index, "id") in {p.path for p in found} or not isinstance(ident, str):
            return {}  # an entry without a good id cannot be named, so cannot be off
        reason = "; ".join(render_all(found, scrub=merged.secret_values))
        stand_in = schema.sections[key].stand_in
        assert stand_in is not None
        stand_ins[(key, index)] = dict(stand_in(ident, reason))
    return stand_ins


def check_config_main(path: str | Path, schema: type[Config] = Config) -> int:
    """``dialwatch check-config PATH``: 0 and a summary when valid, 2 and the errors on stderr when not."""
    try:
        loaded = load_config(path, schema=schema)
    except ConfigError as exc:
        for line in exc.errors:
            print(line, file=sys.stderr)
        return 2
    config = loaded.config
    if loaded.disabled:
        # The appliance would start (the rest works), but the config is not right.
        for line in loaded.disabled:
            print(line, file=sys.stderr)
        print(
            f"{len(loaded.disabled)} error(s); the appliance would run with those entries off",
            file=sys.stderr,
        )
        return 2
    files = ", ".join(str(f) for f in loaded.files)
    print(f"OK: {len(config.targets)} targets, {len(config.components)} components ({files})")
    return 0


def load_config_isolated(path: str | Path, schema: type[Config] = Config) -> LoadedConfig:
    """``load_config`` in a short-lived child process; the result comes back pickled.

    Composing the YAML of a large config (10,000 targets) allocates a node tree
    of ~75 MB that CPython's allocator keeps after it is freed; validating in a
    child keeps the appliance's resident memory at what the config itself needs
    (bench/sip_probe_throughput). ``ConfigError`` comes back as raised. The
    child hashes secrets with this process's key, so target digests compare
    equal across reloads. The child imports ``schema`` by its module and name,
    so it must be bound at module level there (as ``config_model`` asks).
    """
    import pickle
    import subprocess
    import sys

    from monitor.config import secrets as secrets_module

    env = {**os.environ, "DIALWATCH_DIGEST_KEY": secrets_module._DIGEST_KEY.hex()}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "monitor.config.isolated",
            str(path),
            f"{schema.__module__}:{schema.__qualname__}",
        ],
        capture_output=True,
        env=env,
        timeout=300,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"config loader child exited with {done.returncode}: {done.stderr.decode()[-2000:]}"
        )
    result = pickle.loads(done.stdout)
    if isinstance(result, ConfigError):
        raise result
    return result
