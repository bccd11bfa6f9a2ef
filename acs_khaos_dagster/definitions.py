"""The Dagster code location: ``acs_khaos_dagster.definitions:defs``.

Each group (products, orders, stock, ...) is a module under ``defs/`` exposing its
own ``defs``; this file merges them with the shared resources and jobs.
"""

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from acs_khaos_dagster.defs import alerts, orders, products, returns, stock
from acs_khaos_dagster.defs.resources import default_resources

GROUPS = [products.defs, orders.defs, stock.defs, returns.defs, alerts.defs]

# One full integration cycle; `make demo` launches this same job.
integration_cycle = define_asset_job(
    "integration_cycle",
    selection=AssetSelection.all(),
    description="A full integration cycle: products, orders and despatches, stock, returns.",
)

defs = Definitions.merge(
    *GROUPS,
    Definitions(
        jobs=[integration_cycle],
        resources=default_resources(),
        # SQLite instance storage locks under parallel steps; production scales out with
        # dagster-postgres and the run queue instead (deploy/dagster.yaml).
        executor=in_process_executor,
    ),
)
