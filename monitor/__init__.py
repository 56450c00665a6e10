"""Dialwatch engine: scheduler, runner, health, incidents, events, state DB and metric sinks."""
