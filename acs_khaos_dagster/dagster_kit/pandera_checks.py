"""Pandera validation as asset checks a person can see and re-run, one per table asset.

Each table asset's output type is built from its pandera model (``dagster_pandera``): that
type check already stops a bad table before it is stored, but it shows only in a step's
log. The check here shows that validation as a check result, per partition on partitioned
assets. In the run that made the table, the output's type check has just validated that very
value before it was stored (a failure fails the step, and no table is stored), so the check
reports it rather than validating the table a second time; run on its own (from the UI, or
in a later run), it runs the same validation (the type's own check function, so the same
model) on the stored table. Its figures are measured on the table (rows, failure cases);
the model's name is text.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator

import dagster as dg

from acs_khaos_dagster.dagster_kit.checks import partitioned_check

CHECK_NAME = "pandera_model"


def table_assets(
    groups: Iterable[dg.Definitions],
) -> Iterator[tuple[dg.AssetsDefinition, dg.DagsterType]]:
    """Each single-output asset whose output type carries a table schema (a pandera type)."""
    for group in groups:
        for asset in group.assets or []:
            if not isinstance(asset, dg.AssetsDefinition) or len(asset.keys) != 1:
                continue
            dagster_type = asset.op.output_defs[0].dagster_type
            if isinstance(dagster_type.metadata.get("schema"), dg.TableSchemaMetadataValue):
                yield asset, dagster_type


def pandera_checks(groups: Iterable[dg.Definitions]) -> list[dg.AssetChecksDefinition]:
    return [_check(asset, dagster_type) for asset, dagster_type in table_assets(groups)]


def _stored_by_this_run(context: dg.AssetCheckExecutionContext) -> bool:
    """Whether the checked table (its partition's) was stored by this check's own run."""
    [spec] = context.check_specs
    partitions = [context.partition_key] if context.has_partition_key else None
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=spec.asset_key, asset_partitions=partitions), limit=1
    ).records
    return bool(found) and found[0].run_id == context.run.run_id


def _check(asset: dg.AssetsDefinition, dagster_type: dg.DagsterType) -> dg.AssetChecksDefinition:
    model = dagster_type.display_name

    def _validate(context: dg.AssetCheckExecutionContext, *args: object, **kwargs: object):
        table = (*args, *kwargs.values())[0]  # the stored table (one partition, if any)
        rows = len(table) if hasattr(table, "__len__") else 0  # type: ignore[arg-type]
        if _stored_by_this_run(context):
            return dg.AssetCheckResult(
                passed=True,
                description=f"{rows} rows match {model}: validated by the output's type "
                "check in this run, before the table was stored",
                metadata={"model": model, "rows": rows, "validated_by": "output type check"},
            )
        verdict = dagster_type.type_check(context, table)  # the type's own pandera check
        return dg.AssetCheckResult(
            passed=bool(verdict.success),
            description=verdict.description or f"{rows} rows match {model}",
            metadata={"model": model, "rows": rows, **(verdict.metadata or {})},
        )

    # Dagster loads the checked asset into the parameter named after it.
    names = ["context", asset.key.path[-1]]
    _validate.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in names]
    )
    # Partitioned like the asset: each result tied to its day. Its owner is its asset's
    # (definitions.py gives every check one).
    return partitioned_check(
        asset=asset.key,
        name=CHECK_NAME,
        description=f"Every row matches the pandera model {model} (columns, types, "
        "uniqueness, ranges): the one the asset's Dagster type is built from.",
        partitions_def=asset.partitions_def,
    )(_validate)
