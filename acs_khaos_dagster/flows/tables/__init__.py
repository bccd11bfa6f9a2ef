"""The tables the flows produce, as pandera models: one module per group.

Dagster builds each table asset's type (and its column schema in the UI) from these
(``dagster_kit/tables.py``); a flow can validate a frame with the same model without Dagster.
"""

from acs_khaos_dagster.flows.tables._str_check import install as _install_str_check
from acs_khaos_dagster.flows.tables.orders import (
    OrderReleaseSchema,
    ReleasedOrderLinesSchema,
    ShipmentPostingsSchema,
    ShipmentsSchema,
    SlaBreachesSchema,
)
from acs_khaos_dagster.flows.tables.products import (
    AcsRegistrySchema,
    ReadyForSaleSchema,
    SkuMappingSchema,
    SkuMasterSchema,
    SkuPushSchema,
)
from acs_khaos_dagster.flows.tables.reconciliation import (
    IntegrationExceptionsSchema,
    OrderStatusReconciliationSchema,
    OrderToCashSchema,
    ReturnsReconciliationSchema,
    StockReconciliationSchema,
)
from acs_khaos_dagster.flows.tables.returns import (
    HireLifecycleSchema,
    RefundClockSchema,
    ReturnedUnitsSchema,
    ReturnPostingsSchema,
    ReturnStockMovesSchema,
)
from acs_khaos_dagster.flows.tables.stock import (
    NonSellableStockSchema,
    SellableStockSchema,
    SnapshotStatusCountsSchema,
    StockUpdateSchema,
)

# Every model here checks its str columns in C first (see _str_check).
_install_str_check()

__all__ = [
    "AcsRegistrySchema",
    "HireLifecycleSchema",
    "IntegrationExceptionsSchema",
    "NonSellableStockSchema",
    "OrderReleaseSchema",
    "OrderStatusReconciliationSchema",
    "OrderToCashSchema",
    "ReadyForSaleSchema",
    "RefundClockSchema",
    "ReleasedOrderLinesSchema",
    "ReturnPostingsSchema",
    "ReturnStockMovesSchema",
    "ReturnedUnitsSchema",
    "ReturnsReconciliationSchema",
    "SellableStockSchema",
    "ShipmentPostingsSchema",
    "ShipmentsSchema",
    "SkuMappingSchema",
    "SkuMasterSchema",
    "SkuPushSchema",
    "SlaBreachesSchema",
    "SnapshotStatusCountsSchema",
    "StockReconciliationSchema",
    "StockUpdateSchema",
]
