"""Dialwatch's shared kernel: values, base config models, errors, clock and net helpers.

Imports nothing of ours. Everything above it (probes, the engine, notifications,
runbooks, the web) builds on these pieces, so a step kind or a channel can use
the SSH pool, the TLS helpers and the error vocabulary without importing a probe.
"""

__version__ = "0.1.0"
