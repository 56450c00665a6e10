"""Composition root: builds the appliance from its parts (engine, web, sinks); the CLI.

Nothing imports this package; it imports everything it wires together.
"""
