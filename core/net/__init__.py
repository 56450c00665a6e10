"""Network helpers shared by probes, runbook steps and channels: addresses, TLS, SSH."""
