"""The Dagster code location loads, and every asset follows the project's conventions."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from dagster import AssetsDefinition, Definitions

from acs_khaos_dagster.definitions import defs


def test_the_code_location_is_loadable_with_every_resource_bound() -> None:
    Definitions.validate_loadable(defs)


def _selected(job_name: str) -> set[str]:
    job = defs.resolve_job_def(job_name)
    return {key.to_user_string() for key in job.asset_layer.executable_asset_keys}


def test_the_main_job_is_the_full_integration_cycle() -> None:
    assert {
        "khaos_sku_master",
        "acs_sku_push",
        "acs_order_release",
        "khaos_shipment_postings",
        "khaos_stock_update",
        "khaos_return_postings",
    } <= _selected("integration_cycle")


def test_snapshot_days_are_ingested_by_their_own_partitioned_job() -> None:
    assert "acs_stock_snapshot" not in _selected("integration_cycle")
    assert {"acs_stock_snapshot", "sellable_stock", "non_sellable_stock"} <= _selected(
        "stock_snapshot_job"
    )


def _assets() -> list[AssetsDefinition]:
    return [a for a in defs.resolve_asset_graph().assets_defs if a.is_executable]


def test_every_asset_belongs_to_a_business_group() -> None:
    groups = {"products", "orders", "stock", "returns", "reconciliation", "finance", "outbox"}
    groups.add("overview")  # the brand overview (integration), for the team running brands
    for asset in _assets():
        for key in asset.keys:
            assert asset.specs_by_key[key].group_name in groups, key


def test_every_asset_names_the_systems_it_touches() -> None:
    for asset in _assets():
        for key in asset.keys:
            assert asset.specs_by_key[key].kinds, f"{key} has no kinds"


def test_every_asset_has_a_description_for_the_ui() -> None:
    for asset in _assets():
        for key in asset.keys:
            assert asset.specs_by_key[key].description, f"{key} has no description"


_STATUSES = (
    "import json; from acs_khaos_dagster.definitions import defs; r = defs.get_repository_def(); "
    "print(json.dumps(sorted({s.default_status.value for s in "
    "[*r.sensor_defs, *r.schedule_defs]})))"
)


@pytest.mark.parametrize(
    ("automation", "expected"), [(None, ["STOPPED"]), ("running", ["RUNNING"])]
)
def test_sensors_and_schedules_run_only_where_automation_is_turned_on(
    automation: str | None, expected: list[str]
) -> None:
    # `make dev` after `make demo` stays quiet; production's environment turns them on.
    env = {k: v for k, v in os.environ.items() if k != "ACS_KHAOS_AUTOMATION"}
    if automation:
        env["ACS_KHAOS_AUTOMATION"] = automation
    out = subprocess.run(
        [sys.executable, "-c", _STATUSES], env=env, capture_output=True, text=True, check=True
    )
    assert json.loads(out.stdout.strip().splitlines()[-1]) == expected


def test_every_asset_has_an_owner_team_matching_the_exception_queue() -> None:
    specs = list(defs.resolve_all_asset_specs())
    teams = {"team:operations", "team:finance", "team:ecommerce", "team:integration"}
    assert all(s.owners and set(s.owners) <= teams for s in specs)
    by_name = {s.key.to_user_string(): s for s in specs}
    assert by_name["month_end_pack"].group_name == "finance"
    assert by_name["month_end_pack"].owners == ["team:finance"]
    assert by_name["ready_for_sale_skus"].owners == ["team:ecommerce"]


def test_every_asset_links_to_the_file_and_line_that_defines_it() -> None:
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    assert all("dagster/code_references" in s.metadata for s in specs.values())
    [reference] = specs["month_end_pack"].metadata["dagster/code_references"].code_references
    assert reference.file_path.endswith("defs/month_end.py") and reference.line_number > 0


def test_every_table_asset_shows_its_columns_from_its_pandera_model() -> None:
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    schema = specs["sellable_stock"].metadata["dagster/column_schema"].schema
    assert {"stock_id", "site_id"} <= {c.name for c in schema.columns}
    tables = [n for n, s in specs.items() if "dagster/column_schema" in s.metadata]
    assert len(tables) >= 24


def test_reports_draw_lineage_from_the_data_they_read() -> None:
    deps = {
        s.key.to_user_string(): {d.asset_key.to_user_string() for d in s.deps}
        for s in defs.resolve_all_asset_specs()
    }
    assert {"acs_stock_snapshot", "khaos_stock_update"} <= deps["stock_reconciliation"]
    assert "khaos_shipment_postings" in deps["order_to_cash_reconciliation"]
    assert "khaos_return_postings" in deps["returns_reconciliation"]
    # The pack depends on the days of its month, so the check guarding it shows as such.
    assert "order_to_cash_reconciliation" in deps["month_end_pack"]
    assert "integration_exceptions" in deps["workflow_audit_report"]


def test_the_snapshot_and_the_reconciliations_have_a_deadline() -> None:
    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    snapshot = specs["acs_stock_snapshot"].freshness_policy
    assert snapshot is not None and snapshot.deadline_cron == "0 9 * * 1-6"
    assert snapshot.timezone == "Europe/London"
    assert specs["stock_reconciliation"].freshness_policy.deadline_cron == "0 6 * * *"


def test_the_module_holds_exactly_one_definitions_object_as_dagster_requires() -> None:
    import acs_khaos_dagster.definitions as module

    found = [name for name, value in vars(module).items() if isinstance(value, Definitions)]
    assert found == ["defs"]
