"""The chaos service: fault injection: faults kept with TTLs, applied by each target's agent (CRASH through the supervisor)."""
