"""The Dagster type of every table asset, built from its pandera model (``flows/tables``).

A pandera Dagster type fails the step *before* the IO manager stores the value, so a
table that breaks its schema never reaches a downstream push; it also gives the asset
its column schema in the UI.
"""

import warnings

from dagster import BetaWarning
from dagster_pandera import pandera_schema_to_dagster_type

from acs_khaos_dagster.flows import tables

# dagster-pandera is marked beta; the pinned versions are tested together.
warnings.filterwarnings("ignore", category=BetaWarning, module=__name__)
AcsRegistryType = pandera_schema_to_dagster_type(tables.AcsRegistrySchema)
HireLifecycleType = pandera_schema_to_dagster_type(tables.HireLifecycleSchema)
IntegrationExceptionsType = pandera_schema_to_dagster_type(tables.IntegrationExceptionsSchema)
NonSellableStockType = pandera_schema_to_dagster_type(tables.NonSellableStockSchema)
OrderReleaseType = pandera_schema_to_dagster_type(tables.OrderReleaseSchema)
OrderStatusReconciliationType = pandera_schema_to_dagster_type(
    tables.OrderStatusReconciliationSchema
)
OrderToCashType = pandera_schema_to_dagster_type(tables.OrderToCashSchema)
ReadyForSaleType = pandera_schema_to_dagster_type(tables.ReadyForSaleSchema)
RefundClockType = pandera_schema_to_dagster_type(tables.RefundClockSchema)
ReleasedOrderLinesType = pandera_schema_to_dagster_type(tables.ReleasedOrderLinesSchema)
ReturnPostingsType = pandera_schema_to_dagster_type(tables.ReturnPostingsSchema)
ReturnStockMovesType = pandera_schema_to_dagster_type(tables.ReturnStockMovesSchema)
ReturnedUnitsType = pandera_schema_to_dagster_type(tables.ReturnedUnitsSchema)
ReturnsReconciliationType = pandera_schema_to_dagster_type(tables.ReturnsReconciliationSchema)
SellableStockType = pandera_schema_to_dagster_type(tables.SellableStockSchema)
ShipmentPostingsType = pandera_schema_to_dagster_type(tables.ShipmentPostingsSchema)
ShipmentsType = pandera_schema_to_dagster_type(tables.ShipmentsSchema)
SkuMappingType = pandera_schema_to_dagster_type(tables.SkuMappingSchema)
SkuMasterType = pandera_schema_to_dagster_type(tables.SkuMasterSchema)
SkuPushType = pandera_schema_to_dagster_type(tables.SkuPushSchema)
SlaBreachesType = pandera_schema_to_dagster_type(tables.SlaBreachesSchema)
SnapshotStatusCountsType = pandera_schema_to_dagster_type(tables.SnapshotStatusCountsSchema)
StockReconciliationType = pandera_schema_to_dagster_type(tables.StockReconciliationSchema)
StockUpdateType = pandera_schema_to_dagster_type(tables.StockUpdateSchema)
