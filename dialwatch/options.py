"""Where the appliance keeps its data and where it listens: the options the CLI and the app share."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DEFAULT_DATA_DIR = (
    Path("/var/lib/dialwatch") if os.geteuid() == 0 else Path.home() / ".local/share/dialwatch"
)
"""Used when neither ``--data``, ``DIALWATCH_DATA`` nor ``storage.data_dir`` says where."""


def resolve_data_dir(cli_value: str | None, config_value: str | None) -> Path:
    """``--data``, else ``DIALWATCH_DATA``, else the config's ``storage.data_dir``, else the default."""
    for value in (cli_value, os.environ.get("DIALWATCH_DATA"), config_value):
        if value:
            return Path(value).expanduser().resolve()
    return DEFAULT_DATA_DIR


def parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"--listen must be HOST:PORT like 127.0.0.1:8080, not {value!r}"
        )
    return host.strip("[]") or "127.0.0.1", int(port)
