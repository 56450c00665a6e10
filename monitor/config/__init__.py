"""Dialwatch configuration: models, and loading YAML files into them.

Public API::

    load_config(path) -> LoadedConfig      # raises ConfigError
    check_config_main(path) -> int         # `dialwatch check-config PATH`
    ConfigError(Exception).errors          # one `file:line: key.path: message` per problem
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

# Imported on first use rather than here: the loader needs ``probes`` (for the
# targets union) and every probe module imports ``monitor.config.models``, so
# an eager import would make ``import probes`` circular.
_LAZY = {
    "ConfigError": "monitor.config.errors",
    "LoadedConfig": "monitor.config.loader",
    "check_config_main": "monitor.config.loader",
    "load_config": "monitor.config.loader",
    "load_config_isolated": "monitor.config.loader",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'monitor.config' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
