"""Reconciliation rules: does the warehouse (ACS) agree with the ledger (Khaos)?

Pure and vectorised (pandas): no Dagster, no network, no database. The lead's
``reconciliation`` assets read the inputs, call these functions, store the tables per
day (Europe/London) and raise ``drift_findings`` as exceptions.

Tables
------
1. ``stock_reconciliation``       per StockID × site: ACS's units against Khaos's **Level**.
2. ``order_status_reconciliation`` per open order: ACS's status against Khaos's.
3. ``order_to_cash`` (+ ``order_to_cash_ageing``, ``month_end_cutoff``): every ACS
   shipment against its Khaos posting and invoice — where the seed's "hidden killer"
   (a fulfilment that never triggers an invoice) shows up.
4. ``returns_reconciliation``     per graded unit: credit raised / pending / none,
   BER against write-offs, the 14-day refund clock.
5. ``exceptions_table``           the open exception queue by type, owner and age.
6. ``drift_findings``             what to raise as exceptions, each with a stable key.
7. ``workflow_latencies``         the workflow audit: release → despatch → posting →
   invoice latencies, exception rates, the largest sources of delay.

Money is carried as float pounds rounded to the penny (computed in integer pence, so a
column's sum rounded to two places equals the sum of the rounded rows). Timestamps in
are timezone-aware (or UTC); timestamps out are UTC.
"""

from acs_khaos_dagster.domain.reconciliation.audit import (
    LEGS,
    STEPS,
    WorkflowAudit,
    workflow_latencies,
)
from acs_khaos_dagster.domain.reconciliation.cash import (
    DEFAULT_AGE_BUCKETS,
    ORDER_TO_CASH_COLUMNS,
    AgeBucket,
    CashStatus,
    month_end_cutoff,
    order_to_cash,
    order_to_cash_ageing,
)
from acs_khaos_dagster.domain.reconciliation.common import (
    CANCELLED_STAGE,
    FINDING_PREFIX,
    ISSUED_STAGES,
    UK_TIME_ZONE,
)
from acs_khaos_dagster.domain.reconciliation.findings import (
    Finding,
    drift_findings,
    finding_key,
    findings_frame,
    owns_finding,
)
from acs_khaos_dagster.domain.reconciliation.order_status import (
    ACS_STATES,
    ORDER_STATUS_COLUMNS,
    OrderMismatch,
    order_status_reconciliation,
)
from acs_khaos_dagster.domain.reconciliation.returns import (
    EXCEPTIONS_TABLE_COLUMNS,
    RETURNS_RECONCILIATION_COLUMNS,
    exceptions_table,
    returns_reconciliation,
)
from acs_khaos_dagster.domain.reconciliation.stock import (
    IN_FLIGHT_COLUMNS,
    PUSH_MISSING_COLUMNS,
    STOCK_RECONCILIATION_COLUMNS,
    InFlightReason,
    StockClass,
    in_flight_from_corrections,
    sku_within_tolerance,
    stock_reconciliation,
)

__all__ = [
    "ACS_STATES",
    "CANCELLED_STAGE",
    "DEFAULT_AGE_BUCKETS",
    "EXCEPTIONS_TABLE_COLUMNS",
    "FINDING_PREFIX",
    "IN_FLIGHT_COLUMNS",
    "ISSUED_STAGES",
    "LEGS",
    "ORDER_STATUS_COLUMNS",
    "ORDER_TO_CASH_COLUMNS",
    "PUSH_MISSING_COLUMNS",
    "RETURNS_RECONCILIATION_COLUMNS",
    "STEPS",
    "STOCK_RECONCILIATION_COLUMNS",
    "UK_TIME_ZONE",
    "AgeBucket",
    "CashStatus",
    "Finding",
    "InFlightReason",
    "OrderMismatch",
    "StockClass",
    "WorkflowAudit",
    "drift_findings",
    "exceptions_table",
    "finding_key",
    "findings_frame",
    "in_flight_from_corrections",
    "month_end_cutoff",
    "order_status_reconciliation",
    "order_to_cash",
    "order_to_cash_ageing",
    "owns_finding",
    "returns_reconciliation",
    "sku_within_tolerance",
    "stock_reconciliation",
    "workflow_latencies",
]
