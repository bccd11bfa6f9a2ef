"""The month-end pack and the workflow audit, built from the stored daily reconciliation.

Pure: frames in, frames out (no Dagster, no store, no files). The ``reconciliation``
assets keep one table per UK day; the monthly assets read the month's days and call
these functions to shape the inputs of ``reports.render_month_end_pack`` and
``reports.render_audit_report``.

The month-end figures are **as at 23:59:59 UK time on the last day of the month**
(``reconciliation.month_end_cutoff``): the stock and order-to-cash tables are the last
day's, re-aged to the cut-off; returns are every unit received in the month, as last
reconciled; the drift series covers each day of the month.
"""

from acs_khaos_dagster.domain.month_end.audit import (
    EVENT_COLUMNS,
    LEG_TARGET_HOURS,
    delay_sources,
    exception_rates,
    latencies,
    store_events,
)
from acs_khaos_dagster.domain.month_end.pack import (
    DAILY_TABLES,
    FINANCE_CALENDAR,
    UK,
    MonthIncomplete,
    describe_missing,
    drift_of_stock,
    first_working_day,
    missing_days,
    month_bounds,
    month_closed_on,
    month_days,
    month_drift,
    month_returns,
    non_sellable_value,
    pack_order_to_cash,
    pack_returns,
    pack_stock,
    parse_month,
)

__all__ = [
    "DAILY_TABLES",
    "EVENT_COLUMNS",
    "FINANCE_CALENDAR",
    "LEG_TARGET_HOURS",
    "UK",
    "MonthIncomplete",
    "delay_sources",
    "describe_missing",
    "drift_of_stock",
    "exception_rates",
    "first_working_day",
    "latencies",
    "missing_days",
    "month_bounds",
    "month_closed_on",
    "month_days",
    "month_drift",
    "month_returns",
    "non_sellable_value",
    "pack_order_to_cash",
    "pack_returns",
    "pack_stock",
    "parse_month",
    "store_events",
]
