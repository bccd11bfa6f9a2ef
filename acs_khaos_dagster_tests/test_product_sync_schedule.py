"""On a daemon alone, every input an automatic run reads is refreshed by an automatic run.

The soak found that nothing but a manual ``integration_cycle`` materialised the products
group, so order release, the stock push and reconciliation failed on a missing input.
"""

from __future__ import annotations

from dagster import AssetKey

from acs_khaos_dagster.definitions import defs
from acs_khaos_dagster.defs.automation import SCHEDULE_STATUS


def _automatic_jobs() -> set[str]:
    repo = defs.get_repository_def()
    jobs = {s.job_name for s in repo.schedule_defs}
    jobs |= {t.job_name for s in repo.sensor_defs for t in s.targets}
    return jobs


def _job_assets(name: str) -> set[AssetKey]:
    job = defs.resolve_job_def(name)
    return set(job.asset_layer.selected_asset_keys)


def test_every_input_of_an_automatic_run_is_made_by_an_automatic_run() -> None:
    graph = defs.resolve_asset_graph()
    made = set().union(*(_job_assets(j) for j in _automatic_jobs()))
    missing = {
        (key.to_user_string(), parent.to_user_string())
        for key in made
        for parent in graph.get(key).parent_keys
        if graph.get(parent).is_materializable and parent not in made
    }
    assert not missing, f"read by an automatic run, made by none: {sorted(missing)}"


def test_the_product_sync_schedule_follows_the_automation_switch_and_refreshes_ready_skus() -> None:
    schedule = defs.get_repository_def().get_schedule_def("product_sync_schedule")
    # Running wherever the other schedules run (production's ACS_KHAOS_AUTOMATION=running).
    assert schedule.default_status == SCHEDULE_STATUS
    assert {AssetKey("khaos_sku_master"), AssetKey("ready_for_sale_skus")} <= _job_assets(
        schedule.job_name
    )
