"""Flows: the application steps of the integration, one module per flow.

A flow is a plain function over ports — the store, the clients, the settings, the clock —
that calls the domain's rules and returns a typed result. Dagster's definitions (``defs/``),
the command line and the benchmarks call the same functions; nothing here imports Dagster.
"""
