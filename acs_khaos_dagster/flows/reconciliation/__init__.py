"""The daily reconciliation flows (issue 9): does the warehouse (ACS) agree with the ledger
(Khaos)? Each flow reads both systems and the store, calls one rule of
``domain.reconciliation``, keeps the day's table as Parquet (the month-end pack and
``acs-khaos trace`` read it) and raises what it finds as ``drift`` exceptions (owner
finance), each once when it opens and closed when it closes. No Dagster here: the assets
in ``defs/reconciliation.py`` call these.
"""

from acs_khaos_dagster.flows.reconciliation.orders import (
    CASH_LOOKBACK,
    NOT_INVOICED_AFTER_HOURS,
    OrderStatusReconciliation,
    OrderToCash,
    reconcile_order_status,
    reconcile_order_to_cash,
)
from acs_khaos_dagster.flows.reconciliation.returns import (
    CREDIT_MISSING_AFTER_HOURS,
    ReturnsReconciliation,
    exception_queue,
    reconcile_returns,
)
from acs_khaos_dagster.flows.reconciliation.stock import StockReconciliation, reconcile_stock
from acs_khaos_dagster.flows.reconciliation.storage import (
    DRIFT,
    day_window,
    drift_by_day_path,
    read_day,
    reconciliation_folder,
    table_path,
)

__all__ = [
    "CASH_LOOKBACK",
    "CREDIT_MISSING_AFTER_HOURS",
    "DRIFT",
    "NOT_INVOICED_AFTER_HOURS",
    "OrderStatusReconciliation",
    "OrderToCash",
    "ReturnsReconciliation",
    "StockReconciliation",
    "day_window",
    "drift_by_day_path",
    "exception_queue",
    "read_day",
    "reconcile_order_status",
    "reconcile_order_to_cash",
    "reconcile_returns",
    "reconcile_stock",
    "reconciliation_folder",
    "table_path",
]
