"""Runbook engine and built-in runbooks (later issues)."""
