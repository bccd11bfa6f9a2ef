"""A brand is a code location: its asset keys, runs and API pools carry the brand code.

One Dagster deployment serves several brands by loading this package once per brand, one
code location each (``/etc/acs-khaos/workspace.yaml``, installed from the template
``deploy/workspace.brands.yaml``), each with its own settings file
naming ``brand:`` and its own store, drop folder, secrets and alert routes. ``branded`` is
the one place that turns the integration's definitions into one brand's:

- every asset key is prefixed ``[brand, ...]`` (asset checks, dependencies and the jobs'
  selections follow), so brands never share a materialisation history on the instance;
- every asset, job and run carries the tag ``brand=<code>`` (the UI's filters), sensors
  and schedules the metadata ``brand``;
- the API pools ``acs_api`` and ``khaos_api`` become ``acs_api:<brand>`` and
  ``khaos_api:<brand>``, so a slow Khaos in one brand never holds another brand's slot;
- the runs a person starts from the UI (Materialize, on any asset page or the lineage)
  carry the brand tag too: they are runs of the implicit asset job ``__ASSET_JOB``, which
  Dagster builds itself with no tags, so the brand's location tags that job as well (the
  run queue's per-brand limit and the sensors' run lookups then count them).

Job, sensor and schedule names stay as they are: Dagster keeps them per code location.
Run lookups by job name are instance-wide, though, so sensors narrow them with
``brand_tags()``. Without a brand (the default) nothing changes.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)
from dagster._utils.warnings import BetaWarning
from dagster_shared.record import replace

from acs_khaos_dagster.brands import (
    API_POOLS,
    BRAND_TAG,
    brand_code,
    brand_tags,
    is_brand_code,
    pool_for,
)

__all__ = ["BRAND_TAG", "brand_code", "brand_key", "brand_tags", "branded", "pool_for"]


def brand_key(name: str) -> dg.AssetKey:
    """The asset key ``name`` of this code location's brand (unprefixed without one)."""
    brand = brand_code()
    return dg.AssetKey([brand, name]) if brand else dg.AssetKey(name)


def branded(defs: dg.Definitions, brand: str | None) -> dg.Definitions:
    """``defs`` as brand ``brand``'s code location (unchanged when ``brand`` is None)."""
    if brand is None:
        return defs
    if not is_brand_code(brand):
        raise ValueError("a brand code is lower-case letters, digits and _ (settings: brand)")
    with warnings.catch_warnings():
        # Copying sensors passes their (beta) owners on; nothing here is new to the user.
        warnings.simplefilter("ignore", category=BetaWarning)
        result = _branded(defs, brand)
    _tag_implicit_asset_job(result, brand)
    return result


def _tag_implicit_asset_job(defs: dg.Definitions, brand: str) -> None:
    """The UI's Materialize runs ``__ASSET_JOB`` (a subset of it), whose tags become the run's
    tags (with those the person adds); Dagster offers no setting for that job's tags, so its
    entry in the location's repository (built once and cached by ``defs``) is wrapped
    before anything resolves it. ``test_brand_location`` proves the run carries the tag."""
    repository = defs.get_repository_def()
    index = repository._repository_data._jobs  # type: ignore[attr-defined]
    build = index._definitions.get(IMPLICIT_ASSET_JOB_NAME)
    if build is None:
        return  # a location without assets has no implicit job
    if IMPLICIT_ASSET_JOB_NAME in index._definition_cache:
        raise RuntimeError("the implicit asset job was resolved before the brand could tag it")

    def tagged() -> dg.JobDefinition:
        job = build() if callable(build) else build
        return job._copy(tags={**job.tags, BRAND_TAG: brand})

    index._definitions = {**index._definitions, IMPLICIT_ASSET_JOB_NAME: tagged}


def _branded(defs: dg.Definitions, brand: str) -> dg.Definitions:
    graph = defs.resolve_asset_graph()
    keys = {key: key.with_prefix(brand) for key in graph.get_all_asset_keys()}
    # Jobs named by the definitions, and those only a schedule or sensor names.
    found = {job.name: job for job in defs.jobs or []}
    for schedule in defs.schedules or []:
        if isinstance(schedule, dg.ScheduleDefinition) and schedule.has_job:
            found.setdefault(schedule.job_name, schedule.job)
    for sensor in defs.sensors or []:
        for target in sensor.targets:
            if target.has_job_def:
                found.setdefault(target.job_name, target.job_def)
    jobs = {name: _job(job, brand, graph, keys) for name, job in found.items()}
    return dg.Definitions(
        assets=[_asset(asset, brand, keys) for asset in defs.assets or []],
        asset_checks=[_asset(check, brand, keys) for check in defs.asset_checks or []],
        jobs=list(jobs.values()),
        schedules=[_schedule(schedule, brand, jobs) for schedule in defs.schedules or []],
        sensors=[_sensor(sensor, brand, jobs) for sensor in defs.sensors or []],
        resources=defs.resources,
        executor=defs.executor,
        loggers=defs.loggers,
        metadata={**(defs.metadata or {}), BRAND_TAG: brand},
    )


def _asset(asset: Any, brand: str, keys: Mapping[dg.AssetKey, dg.AssetKey]) -> Any:
    tags = {BRAND_TAG: brand}
    if isinstance(asset, dg.AssetSpec):
        return asset.replace_attributes(
            key=keys[asset.key],
            deps=[
                dg.AssetDep(
                    keys.get(d.asset_key, d.asset_key), partition_mapping=d.partition_mapping
                )
                for d in asset.deps
            ],
        ).merge_attributes(tags=tags)
    if not isinstance(asset, dg.AssetsDefinition):
        raise TypeError(f"cannot brand {type(asset).__name__}: define it as an asset or a spec")
    asset = _pooled(asset.with_attributes(asset_key_replacements=keys), brand)
    if asset.specs:
        asset = asset.map_asset_specs(lambda spec: spec.merge_attributes(tags=tags))
    return asset


def _pooled(asset: dg.AssetsDefinition, brand: str) -> dg.AssetsDefinition:
    """The asset with its op in the brand's pool (``acs_api:<brand>``), if it is in one."""
    op = asset.node_def
    if not isinstance(op, dg.OpDefinition) or op.pool not in API_POOLS:
        return asset
    # As OpDefinition.with_replaced_properties copies an op, with the pool changed.
    pooled = dg.OpDefinition.dagster_internal_init(
        name=op.name,
        ins={d.name: dg.In.from_definition(d) for d in op.input_defs},
        outs={d.name: dg.Out.from_definition(d) for d in op.output_defs},
        compute_fn=op.compute_fn,
        config_schema=op.config_schema,
        description=op.description,
        tags=op.tags,
        required_resource_keys=op.required_resource_keys,
        code_version=op._version,  # as with_replaced_properties copies it
        retry_policy=op.retry_policy,
        version=None,
        pool=pool_for(op.pool, brand),
    )
    return asset.__class__.dagster_internal_init(
        **{**asset.get_attributes_dict(), "node_def": pooled}  # type: ignore[arg-type]
    )


def _job(
    job: Any, brand: str, graph: AssetGraph, keys: Mapping[dg.AssetKey, dg.AssetKey]
) -> UnresolvedAssetJobDefinition | dg.JobDefinition:
    tags = {**(job.tags or {}), BRAND_TAG: brand}
    if isinstance(job, UnresolvedAssetJobDefinition):
        # The selection as it resolves now, over the brand's keys: the same assets and checks.
        chosen = [keys[key] for key in job.selection.resolve(graph)]
        checks = [
            dg.AssetCheckKey(keys[check.asset_key], check.name)
            for check in job.selection.resolve_checks(graph)
        ]
        assets = dg.AssetSelection.assets(*chosen).without_checks()
        selection = assets | dg.AssetSelection.checks(*checks)
        run_tags = None if job.run_tags is None else {**job.run_tags, BRAND_TAG: brand}
        return replace(job, selection=selection, tags=tags, run_tags=run_tags)
    if isinstance(job, dg.JobDefinition):
        if any(node.definition.pools for node in job.graph.node_dict.values()):
            raise ValueError(f"op job {job.name} uses a pool: make it an asset job to brand it")
        return job._copy(tags=tags)
    raise TypeError(f"cannot brand job {job!r}")


def _schedule(schedule: Any, brand: str, jobs: Mapping[str, Any]) -> dg.ScheduleDefinition:
    if not isinstance(schedule, dg.ScheduleDefinition):
        raise TypeError(f"cannot brand schedule {schedule!r}")
    job = jobs.get(schedule.job_name) if schedule.has_job else None
    metadata = {**schedule.metadata, BRAND_TAG: brand}
    return schedule.with_attributes(job=job, metadata=metadata)


def _sensor(
    sensor: dg.SensorDefinition, brand: str, jobs: Mapping[str, Any]
) -> dg.SensorDefinition:
    metadata = {**sensor.metadata, BRAND_TAG: brand}
    targets = [target.job_name for target in sensor.targets if target.has_job_def]
    if not targets:
        return sensor.with_attributes(metadata=metadata)
    return sensor.with_attributes(jobs=[jobs[name] for name in targets], metadata=metadata)
