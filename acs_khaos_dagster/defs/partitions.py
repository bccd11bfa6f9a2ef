"""The daily partitions (Europe/London days) of the stock and reconciliation groups.

In a module of their own so that each group's checks, kept beside it, can be partitioned
like the assets they check without importing the group's module.
"""

from dagster import DailyPartitionsDefinition

from acs_khaos_dagster.config import UK_TIME_ZONE
from acs_khaos_dagster.flows.stock_snapshot import PARTITIONS_START as SNAPSHOTS_START

RECONCILIATIONS_START = "2026-01-01"

# end_offset=1: today's snapshot is a partition while today is still running.
SNAPSHOT_DAYS = DailyPartitionsDefinition(
    start_date=SNAPSHOTS_START, timezone=UK_TIME_ZONE, end_offset=1
)
RECONCILIATION_DAYS = DailyPartitionsDefinition(
    start_date=RECONCILIATIONS_START, timezone=UK_TIME_ZONE, end_offset=1
)
