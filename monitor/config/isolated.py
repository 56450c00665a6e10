"""Child process for ``load_config_isolated``: load one config, write the pickled result to stdout.

Run as ``python -m monitor.config.isolated PATH`` with ``DIALWATCH_DIGEST_KEY``
(hex) set by the parent. The output is read only by the parent that started
this process, never from anywhere else.
"""

from __future__ import annotations

import os
import pickle
import sys

from monitor.config import secrets as secrets_module
from monitor.config.errors import ConfigError
from monitor.config.loader import load_config


def main(argv: list[str]) -> int:
    key = os.environ.get("DIALWATCH_DIGEST_KEY")
    if key:
        secrets_module._DIGEST_KEY = bytes.fromhex(key)
    try:
        result: object = load_config(argv[1])
    except ConfigError as exc:
        result = exc
    sys.stdout.buffer.write(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
