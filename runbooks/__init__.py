"""What is done: runbooks (config, step kinds, runs, the engine that executes them, the rule
triggers that start them) and trunk failover groups."""
