"""Child process for ``load_config_isolated``: load one config, write the pickled result to stdout.

Run as ``python -m monitor.config.isolated PATH [MODULE:NAME]`` with
``DIALWATCH_DIGEST_KEY`` (hex) set by the parent; ``MODULE:NAME`` is the
top-level schema to validate with (default: monitor's ``Config``), named by
the parent because the composition root that assembles it sits above
monitor. The output is read only by the parent that started this process,
never from anywhere else.
"""

from __future__ import annotations

import importlib
import os
import pickle
import sys

from monitor.config import secrets as secrets_module
from monitor.config.errors import ConfigError
from monitor.config.loader import load_config
from monitor.config.schema import Config


def _schema(name: str) -> type[Config]:
    module, _, attribute = name.partition(":")
    schema = getattr(importlib.import_module(module), attribute)
    if not (isinstance(schema, type) and issubclass(schema, Config)):
        raise TypeError(f"{name} is not a config schema")
    return schema


def main(argv: list[str]) -> int:
    key = os.environ.get("DIALWATCH_DIGEST_KEY")
    if key:
        secrets_module._DIGEST_KEY = bytes.fromhex(key)
    try:
        result: object = load_config(argv[1], schema=_schema(argv[2]) if len(argv) > 2 else Config)
    except ConfigError as exc:
        result = exc
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
