"""Khaos Control simulator (SOAP 1.1 on loopback) for tests, the demo and benchmarks."""

from acs_khaos_dagster.sandbox.khaos.install import KhaosInstall
from acs_khaos_dagster.sandbox.khaos.simulator import KhaosSimulator
from acs_khaos_dagster.sandbox.khaos.state import (
    ADJUSTMENT_REASONS,
    RETURN_REASONS,
    IssuePolicy,
)

__all__ = [
    "ADJUSTMENT_REASONS",
    "RETURN_REASONS",
    "IssuePolicy",
    "KhaosInstall",
    "KhaosSimulator",
]
