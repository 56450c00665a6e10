"""Dialwatch configuration: models, and loading YAML files into them.

Public API::

    load_config(path) -> LoadedConfig      # raises ConfigError
    check_config_main(path) -> int         # `dialwatch check-config PATH`
    ConfigError(Exception).errors          # one `file:line: key.path: message` per problem
"""

from __future__ import annotations

from monitor.config.errors import ConfigError
from monitor.config.loader import (
    LoadedConfig,
    check_config_main,
    load_config,
    load_config_isolated,
)

__all__ = [
    "ConfigError",
    "LoadedConfig",
    "check_config_main",
    "load_config",
    "load_config_isolated",
]
