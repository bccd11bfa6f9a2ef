"""The Dagster code location: ``acs_khaos_dagster.definitions:defs``.

Each group (products, orders, stock, returns, alerts, ...) is a module under ``defs/``
exposing its own ``defs``; this file merges them with the shared resources and jobs.
"""

from dagster import AssetSelection, Definitions, define_asset_job, in_process_executor

from acs_khaos_dagster.defs import (
    alerts,
    hire,
    month_end,
    orders,
    outbox,
    products,
    reconciliation,
    retention,
    returns,
    stock,
)
from acs_khaos_dagster.defs.resources import default_resources

GROUPS = [
    products.defs,
    orders.defs,
    stock.defs,
    returns.defs,
    hire.defs,
    reconciliation.defs,
    month_end.defs,
    outbox.defs,
    alerts.defs,
    retention.defs,
]


def _partitioned_asset_keys() -> list:
    """Partitioned assets (a snapshot day, a month) run in their own jobs, per partition."""
    return [
        key
        for group in GROUPS
        for asset in group.assets or []
        if getattr(asset, "partitions_def", None) is not None
        for key in asset.keys
    ]


# One full integration cycle over everything that is not partitioned: products, order
# release, despatch postings, the stock push of the newest snapshot, returns. Snapshot
# files are ingested per day by `acs_stock_file_sensor`. `make demo` launches this job.
integration_cycle = define_asset_job(
    "integration_cycle",
    selection=AssetSelection.all() - AssetSelection.assets(*_partitioned_asset_keys()),
    description="A full integration cycle: products, orders and despatches, the stock push, "
    "returns.",
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
