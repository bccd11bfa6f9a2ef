"""The ACS simulator (partner API, despatch feed, daily files). Production code never imports it."""

from acs_khaos_dagster.sandbox.acs.simulator import AcsSimulator

__all__ = ["AcsSimulator"]
