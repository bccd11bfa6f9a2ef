"""The reconciliation group's checks, one result per day: each is partitioned like its
asset and reads its own day's stored table (Parquet, ``flows.reconciliation.storage``), so
re-running it for a past day from the UI judges that day's data, not the newest. The rules
are ``flows.reconciliation.checks``."""

from functools import partial

import dagster as dg

from acs_khaos_dagster.defs.checks import owned_by, partitioned_check
from acs_khaos_dagster.defs.common import check_result
from acs_khaos_dagster.defs.partitions import RECONCILIATION_DAYS
from acs_khaos_dagster.defs.resources import SettingsResource
from acs_khaos_dagster.flows.reconciliation import NOT_INVOICED_AFTER_HOURS
from acs_khaos_dagster.flows.reconciliation import checks as rules

# Each reads its partition's table as the flow kept it, the one the month-end pack reads too.
daily_check = partial(partitioned_check, partitions_def=RECONCILIATION_DAYS)


@daily_check(
    asset=dg.AssetKey("stock_reconciliation"),
    name="unexplained_stock_drift_within_tolerance",
    metadata=owned_by("finance"),
    description="No StockID × site differs beyond the variance tolerance (units and £) once "
    "timing and unconfirmed pushes are taken out. A warning: it blocks nothing.",
)
def unexplained_stock_drift_within_tolerance(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.stock_drift_on(settings.load(), context.partition_key))


@daily_check(
    asset=dg.AssetKey("order_to_cash_reconciliation"),
    name="no_shipment_despatched_not_invoiced_too_long",
    metadata=owned_by("finance"),
    # Not blocking: the exception queue is downstream (it must count the night's
    # ``recon:cash`` findings), and a blocking failure would stop it on the very nights a
    # shipment is late, and fail every nightly run for an item that already has an owner.
    # The month-end pack shows these shipments in its order-to-cash sheet.
    description=f"No ACS shipment despatched more than {NOT_INVOICED_AFTER_HOURS:g} h ago "
    "is still not posted or not invoiced in Khaos: each one is open in finance's queue and "
    "in the month-end pack's order-to-cash sheet.",
)
def no_shipment_despatched_not_invoiced_too_long(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.late_shipments_on(settings.load(), context.partition_key))


@daily_check(
    asset=dg.AssetKey("returns_reconciliation"),
    name="no_ber_unit_without_write_off",
    metadata=owned_by("finance"),
    description="Every returned unit graded BER or disposed is written off in Khaos (a "
    "write-off adjustment for a hire unit, a write-off reason on a sale return).",
)
def no_ber_unit_without_write_off(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.ber_write_offs_on(settings.load(), context.partition_key))


@daily_check(
    asset=dg.AssetKey("integration_exceptions"),
    name="no_exception_older_than_owner_target",
    metadata=owned_by("integration"),
    description="No open exception is older than its owner team's target age "
    "(settings.owner_targets). A warning: it blocks nothing.",
)
def no_exception_older_than_owner_target(
    context: dg.AssetCheckExecutionContext, settings: SettingsResource
) -> dg.AssetCheckResult:
    return check_result(rules.exception_ages_on(settings.load(), context.partition_key))


RECONCILIATION_CHECKS = [
    unexplained_stock_drift_within_tolerance,
    no_shipment_despatched_not_invoiced_too_long,
    no_ber_unit_without_write_off,
    no_exception_older_than_owner_target,
]
