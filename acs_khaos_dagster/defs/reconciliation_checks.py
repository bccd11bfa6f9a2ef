"""The reconciliation group's checks, one result per day: each is partitioned like its
asset and reads its own day's stored table (Parquet, ``flows.reconciliation.storage``), so
re-running it for a past day from the UI judges that day's data, not the newest."""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    MetadataValue,
)

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.defs.checks import owned_by, partitioned_check
from acs_khaos_dagster.defs.common import markdown_table
from acs_khaos_dagster.defs.partitions import RECONCILIATION_DAYS
from acs_khaos_dagster.defs.resources import SettingsResource
from acs_khaos_dagster.domain.reconciliation import CashStatus, StockClass
from acs_khaos_dagster.flows.reconciliation import NOT_INVOICED_AFTER_HOURS, read_day

# --- checks (each reads its partition's table as the flow kept it, the one the month-end
# pack reads too) ------------------------------------------------------------------------------


def _read_day(
    context: AssetCheckExecutionContext, conf: Settings, table: str
) -> pd.DataFrame | None:
    return read_day(conf, table, context.partition_key)


def _missing(
    context: AssetCheckExecutionContext, table: str, severity: AssetCheckSeverity
) -> AssetCheckResult:
    return AssetCheckResult(
        passed=False,
        severity=severity,
        metadata={"missing": f"no {table} table for {context.partition_key}"},
    )


def _sample(frame: pd.DataFrame, columns: list[str]) -> MetadataValue:
    return markdown_table(frame[[c for c in columns if c in frame.columns]])


@partitioned_check(
    partitions_def=RECONCILIATION_DAYS,
    asset=AssetKey("stock_reconciliation"),
    name="unexplained_stock_drift_within_tolerance",
    metadata=owned_by("finance"),
    description="No StockID × site differs beyond the variance tolerance (units and £) once "
    "timing and unconfirmed pushes are taken out. A warning: it blocks nothing.",
)
def unexplained_stock_drift_within_tolerance(
    context: AssetCheckExecutionContext, settings: SettingsResource
) -> AssetCheckResult:
    conf = settings.load()
    frame = _read_day(context, conf, "stock")
    if frame is None:
        return _missing(context, "stock", AssetCheckSeverity.WARN)
    bad = frame.loc[frame["classification"] == str(StockClass.UNEXPLAINED)]
    return AssetCheckResult(
        passed=bad.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "unexplained_rows": len(bad),
            "unexplained_units_gross": int(bad["unexplained"].abs().sum()),
            "unexplained_value_gross": round(float(bad["unexplained_value"].abs().sum()), 2),
            # Settings, not measurements: text, so the UI does not plot them.
            "tolerance": MetadataValue.text(
                f"{conf.stock.variance_tolerance_units} units and "
                f"£{conf.stock.variance_tolerance_value:,.2f} (stock.variance_tolerance_*)"
            ),
            "rows": _sample(
                bad, ["stock_code", "site_name", "acs_units", "khaos_level", "unexplained"]
            ),
        },
    )


@partitioned_check(
    partitions_def=RECONCILIATION_DAYS,
    asset=AssetKey("order_to_cash_reconciliation"),
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
    context: AssetCheckExecutionContext, settings: SettingsResource
) -> AssetCheckResult:
    conf = settings.load()
    frame = _read_day(context, conf, "order_to_cash")
    if frame is None:
        return _missing(context, "order_to_cash", AssetCheckSeverity.ERROR)
    late = frame.loc[
        (frame["status"] != str(CashStatus.INVOICED))
        & (frame["age_hours"] > NOT_INVOICED_AFTER_HOURS)
    ]
    return AssetCheckResult(
        passed=late.empty,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "late_shipments": len(late),
            "late_value": round(float(late["value_waiting"].fillna(0).sum()), 2),
            "limit": MetadataValue.text(f"{NOT_INVOICED_AFTER_HOURS:g} hours"),
            "shipments": _sample(late, ["shipment_id", "order_number", "status", "age_hours"]),
        },
    )


@partitioned_check(
    partitions_def=RECONCILIATION_DAYS,
    asset=AssetKey("returns_reconciliation"),
    name="no_ber_unit_without_write_off",
    metadata=owned_by("finance"),
    description="Every returned unit graded BER or disposed is written off in Khaos (a "
    "write-off adjustment for a hire unit, a write-off reason on a sale return).",
)
def no_ber_unit_without_write_off(
    context: AssetCheckExecutionContext, settings: SettingsResource
) -> AssetCheckResult:
    conf = settings.load()
    frame = _read_day(context, conf, "returns")
    if frame is None:
        return _missing(context, "returns", AssetCheckSeverity.ERROR)
    bad = frame.loc[frame["write_off_status"].isin(["missing", "missing_reason"])]
    return AssetCheckResult(
        passed=bad.empty,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "units_without_write_off": len(bad),
            "units": _sample(bad, ["return_ref", "unique_sku", "grade", "write_off_status"]),
        },
    )


@partitioned_check(
    partitions_def=RECONCILIATION_DAYS,
    asset=AssetKey("integration_exceptions"),
    name="no_exception_older_than_owner_target",
    metadata=owned_by("integration"),
    description="No open exception is older than its owner team's target age "
    "(settings.owner_targets). A warning: it blocks nothing.",
)
def no_exception_older_than_owner_target(
    context: AssetCheckExecutionContext, settings: SettingsResource
) -> AssetCheckResult:
    conf = settings.load()
    frame = _read_day(context, conf, "exceptions")
    if frame is None:
        return _missing(context, "exceptions", AssetCheckSeverity.WARN)
    over = frame.loc[frame["over_target"] > 0]
    return AssetCheckResult(
        passed=over.empty,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "over_target": int(over["over_target"].sum()),
            "types": _sample(over, ["owner", "type", "over_target", "oldest_age_hours"]),
        },
    )


RECONCILIATION_CHECKS = [
    unexplained_stock_drift_within_tolerance,
    no_shipment_despatched_not_invoiced_too_long,
    no_ber_unit_without_write_off,
    no_exception_older_than_owner_target,
]
