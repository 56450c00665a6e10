"""Dialwatch engine: configuration, scheduling, health, incidents, metrics and CLI."""

__version__ = "0.1.0"
