"""The Dagster code location: ``acs_khaos_dagster.definitions:defs``.

Each group (products, orders, stock, returns, alerts, ...) is a module under ``defs/``
exposing its own ``defs``; this file merges them with the shared resources and jobs.
"""

import warnings
from datetime import timedelta

from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetsDefinition,
    AssetSelection,
    AssetSpec,
    Definitions,
    FreshnessPolicy,
    TableSchemaMetadataValue,
    define_asset_job,
    in_process_executor,
    with_source_code_references,
)
from dagster._utils.warnings import BetaWarning, PreviewWarning
from dagster_shared.record import replace

from acs_khaos_dagster.config import (
    UK_TIME_ZONE,
    FreshnessSettings,
    setting_at_load,
)
from acs_khaos_dagster.dagster_kit.brand import brand_code, branded
from acs_khaos_dagster.dagster_kit.checks import with_check_owners
from acs_khaos_dagster.dagster_kit.pandera_checks import pandera_checks
from acs_khaos_dagster.defs import (
    alerts,
    freshness,
    hire,
    month_end,
    orders,
    outbox,
    overview,
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
    freshness.defs,
    retention.defs,
    overview.defs,
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
    selection=AssetSelection.all()
    - AssetSelection.assets(*_partitioned_asset_keys())
    # The overview reads what the cycle did; it has its own job and schedule.
    - AssetSelection.assets(*overview.defs.assets or []),
    description="A full integration cycle: products, orders and despatches, the stock push, "
    "returns.",
)

# The team that owns each group's assets is the team that owns its exceptions
# (docs/operating-model.md), so the catalogue's owner filter matches the exception queue.
OWNER_OF_GROUP = {
    "products": "team:ecommerce",
    "orders": "team:operations",
    "stock": "team:operations",
    "returns": "team:operations",
    "reconciliation": "team:finance",
    "finance": "team:finance",
    "outbox": "team:integration",
}
# The exception queue's own table belongs to whoever runs the integration.
OWNER_OF_ASSET = {"integration_exceptions": "team:integration"}
# A check whose failure another team acts on than its asset's owner (by check name; checks
# in modules of this package name their owner themselves, ``dagster_kit/checks.py``).
OWNER_OF_CHECK = {
    # A refund past its deadline is finance's, as the refund_due exception is.
    "no_refund_breached": "team:finance",
}


def _freshness() -> dict[str, FreshnessPolicy]:
    """Each trading day's snapshot and each night's reconciliation by a deadline (UK time,
    ``freshness.*`` settings, read when the code location loads): the UI flags them late."""
    due = setting_at_load(lambda s: s.freshness, FreshnessSettings())
    day = timedelta(hours=24)
    snapshot = FreshnessPolicy.cron(
        deadline_cron=due.snapshot_due, lower_bound_delta=day, timezone=UK_TIME_ZONE
    )
    nightly = FreshnessPolicy.cron(
        deadline_cron=due.reconciliation_due, lower_bound_delta=day, timezone=UK_TIME_ZONE
    )
    return {"acs_stock_snapshot": snapshot} | {name: nightly for name in RECONCILED}


RECONCILED = (
    "stock_reconciliation",
    "order_status_reconciliation",
    "order_to_cash_reconciliation",
    "returns_reconciliation",
    "integration_exceptions",
)


def _column_schemas() -> dict[AssetKey, TableSchemaMetadataValue]:
    """Each table asset's columns, from the pandera model its output type was built from."""
    found: dict[AssetKey, TableSchemaMetadataValue] = {}
    for group in GROUPS:
        for asset in group.assets or []:
            if not isinstance(asset, AssetsDefinition) or len(asset.keys) != 1:
                continue
            schema = asset.op.output_defs[0].dagster_type.metadata.get("schema")
            if isinstance(schema, TableSchemaMetadataValue):
                found[asset.key] = schema
    return found


def _catalogued(spec: AssetSpec, schemas: dict[AssetKey, TableSchemaMetadataValue]) -> AssetSpec:
    group = spec.group_name
    name = spec.key.to_user_string()
    owner = OWNER_OF_ASSET.get(name) or OWNER_OF_GROUP.get(group or "", "team:integration")
    owners = list(spec.owners) or [owner]
    spec = spec.replace_attributes(group_name=group, owners=owners)
    if name in FRESHNESS and spec.freshness_policy is None:
        spec = spec.replace_attributes(freshness_policy=FRESHNESS[name])
    if spec.key in schemas and "dagster/column_schema" not in spec.metadata:
        spec = spec.merge_attributes(metadata={"dagster/column_schema": schemas[spec.key]})
    return spec


_schemas = _column_schemas()
FRESHNESS = _freshness()


def _checks_owned(defs: Definitions) -> Definitions:
    """Every check with an owner team (``dagster_kit/checks.py``): the one it names, else the
    first team owning its asset."""
    owners = {
        spec.key: next((o for o in spec.owners if o.startswith("team:")), "team:integration")
        for asset in defs.assets or []
        for spec in getattr(asset, "specs", [asset])
    }

    def owner_of(key: AssetCheckKey) -> str:
        return OWNER_OF_CHECK.get(key.name) or owners.get(key.asset_key, "team:integration")

    return replace(
        defs,
        assets=with_check_owners(defs.assets or [], owner_of),
        asset_checks=with_check_owners(defs.asset_checks or [], owner_of),
    )


def _definitions() -> Definitions:
    """Every group merged, with owners, groups, schemas and freshness mapped onto the assets.

    Built inside a function: Dagster refuses a module holding two ``Definitions`` objects."""
    merged = Definitions.merge(
        *GROUPS,
        Definitions(
            jobs=[integration_cycle],
            # Each table's pandera model as a visible, re-runnable check (per partition).
            asset_checks=pandera_checks(GROUPS),
            resources=default_resources(),
            # SQLite instance storage locks under parallel steps; production scales out with
            # dagster-postgres and the run queue instead (deploy/dagster.yaml).
            executor=in_process_executor,
        ),
    )
    with warnings.catch_warnings():
        # Code references are "beta" in 1.13: each asset links to the file and line of its
        # definition in the UI. (Definitions is a Dagster record: copied with a field
        # replaced, as Dagster itself does.)
        warnings.simplefilter("ignore", category=BetaWarning)
        merged = replace(merged, assets=with_source_code_references(merged.assets or []))
        # Mapping specs is "preview" in 1.13; it only sets owners, groups, schemas, freshness.
        warnings.simplefilter("ignore", category=PreviewWarning)
        catalogued = merged.map_asset_specs(func=lambda spec: _catalogued(spec, _schemas))
    catalogued = _checks_owned(catalogued)
    # One brand per code location: its keys prefixed, its runs tagged, its own API pools.
    return branded(catalogued, brand_code())


defs = _definitions()
