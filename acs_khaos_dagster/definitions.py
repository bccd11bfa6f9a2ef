"""The Dagster code location: ``acs_khaos_dagster.definitions:defs``."""


from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from acs_khaos_dagster.defs import orders, products, stock
from acs_khaos_dagster.defs.resources import default_resources

ALL_ASSETS = [products.khaos_sku_master, orders.khaos_released_orders, stock.acs_stock_snapshot]

# One full integration cycle; `make demo` launches this same job.
integration_cycle = define_asset_job(
    "integration_cycle",
    selection=AssetSelection.assets(*ALL_ASSETS),
    description="A full integration cycle: products, orders, stock.",
)

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[integration_cycle],
    resources=default_resources(),
    # SQLite instance storage locks under parallel steps; production scales out
    # with dagster-postgres and the run queue instead (deploy/dagster.yaml).
    executor=in_process_executor,
)
