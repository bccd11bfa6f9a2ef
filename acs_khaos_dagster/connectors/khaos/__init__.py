"""Khaos Control connector: SOAP client, wire conversions and UK-time handling."""

from acs_khaos_dagster.connectors.khaos.client import KhaosClient
from acs_khaos_dagster.connectors.khaos.records import KhaosCustomerReturn

__all__ = ["KhaosClient", "KhaosCustomerReturn"]
