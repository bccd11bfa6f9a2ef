"""A check on a daily asset records one result per day, and run for day X judges day X.

The six hand-written checks on daily-partitioned assets (stock and reconciliation) are
partitioned like their asset: each materialisation's check result is stored against its
partition, and a person re-running the check for a past day from the UI gets that day's
verdict, whatever day was made last.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetMaterialization,
    AssetSelection,
    materialize,
)

from acs_khaos_dagster.config import load_settings
from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.flows.reconciliation.storage import table_path
from acs_khaos_dagster.flows.stock_placement import sellable_path
from acs_khaos_dagster.flows.stock_snapshot import partition_day
from acs_khaos_dagster_tests.conftest import IntegrationHarness

DAY_A, DAY_B = "2026-03-10", "2026-03-11"


def _defs() -> list[Any]:
    from acs_khaos_dagster.definitions import defs

    return [*defs.assets, *defs.asset_checks]


def _run_check(instance: Any, asset: str, check: str, day: str) -> Any:
    """The check alone for one day, as a person runs it from the UI: no asset in the run,
    only the partition's tag (Dagster infers a run's partitions from its assets, none here)."""
    result = materialize(
        _defs(),
        selection=AssetSelection.checks(AssetCheckKey(AssetKey(asset), check)),
        tags={"dagster/partition": day},
        resources=default_resources(),
        instance=instance,
        raise_on_error=False,
    )
    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == check]
    return evaluation


def _history(instance: Any, asset: str, check: str) -> list[str | None]:
    """The partition of each stored result of the check, oldest first."""
    records = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(asset), check), limit=50
    )
    return sorted(r.partition for r in records if r.event is not None)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    return tmp_path / "data"


def _keep(table: str, day: str, rows: list[dict[str, Any]]) -> None:
    path = table_path(load_settings(), table, day)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(path, index=False)


# One bad row and one good row of each reconciliation table, as its check reads it.
RECONCILIATION_CASES = {
    "unexplained_stock_drift_within_tolerance": (
        "stock_reconciliation",
        "stock",
        {"classification": "unexplained", "unexplained": 7, "unexplained_value": 70.0},
        {"classification": "in_step", "unexplained": 0, "unexplained_value": 0.0},
    ),
    "no_shipment_despatched_not_invoiced_too_long": (
        "order_to_cash_reconciliation",
        "order_to_cash",
        {"status": "posted_not_invoiced", "age_hours": 500.0, "value_waiting": 12.5},
        {"status": "invoiced", "age_hours": 500.0, "value_waiting": 0.0},
    ),
    "no_ber_unit_without_write_off": (
        "returns_reconciliation",
        "returns",
        {"write_off_status": "missing"},
        {"write_off_status": "written_off"},
    ),
    "no_exception_older_than_owner_target": (
        "integration_exceptions",
        "exceptions",
        {"owner": "finance", "type": "drift", "over_target": 2, "oldest_age_hours": 99.0},
        {"owner": "finance", "type": "drift", "over_target": 0, "oldest_age_hours": 1.0},
    ),
}


@pytest.mark.usefixtures("data_dir")
@pytest.mark.parametrize("check", sorted(RECONCILIATION_CASES))
def test_a_reconciliation_check_run_for_a_day_judges_that_days_table(
    check: str, dagster_instance: Any
) -> None:
    asset, table, bad, good = RECONCILIATION_CASES[check]
    _keep(table, DAY_A, [bad])
    _keep(table, DAY_B, [good])

    on_a = _run_check(dagster_instance, asset, check, DAY_A)
    on_b = _run_check(dagster_instance, asset, check, DAY_B)
    again_a = _run_check(dagster_instance, asset, check, DAY_A)  # after B: still A's verdict

    assert (on_a.partition, on_a.passed) == (DAY_A, False)
    assert (on_b.partition, on_b.passed) == (DAY_B, True)
    assert (again_a.partition, again_a.passed) == (DAY_A, False)
    assert _history(dagster_instance, asset, check) == [DAY_A, DAY_A, DAY_B]


@pytest.mark.usefixtures("data_dir")
def test_a_reconciliation_check_for_a_day_never_reconciled_says_so(dagster_instance: Any) -> None:
    _keep("stock", DAY_B, [RECONCILIATION_CASES["unexplained_stock_drift_within_tolerance"][3]])

    evaluation = _run_check(
        dagster_instance,
        "stock_reconciliation",
        "unexplained_stock_drift_within_tolerance",
        DAY_A,
    )

    assert not evaluation.passed and DAY_A in evaluation.metadata["missing"].value


@pytest.mark.usefixtures("data_dir")
def test_the_snapshot_check_run_for_a_day_judges_that_days_snapshot(dagster_instance: Any) -> None:
    figures = {"units": 100, "rows_quarantined": 0, "unknown_status_units": 0}
    dagster_instance.report_runless_asset_event(
        AssetMaterialization(
            "acs_stock_snapshot",
            partition=DAY_A,
            metadata={**figures, "file": "a.csv", "file_truncated": 1},
        )
    )
    dagster_instance.report_runless_asset_event(
        AssetMaterialization(
            "acs_stock_snapshot",
            partition=DAY_B,
            metadata={**figures, "file": "b.csv", "file_truncated": 0},
        )
    )
    check = "snapshot_file_is_whole_and_known"

    on_a = _run_check(dagster_instance, "acs_stock_snapshot", check, DAY_A)
    on_b = _run_check(dagster_instance, "acs_stock_snapshot", check, DAY_B)

    assert (on_a.partition, on_a.passed) == (DAY_A, False)
    assert "cut short" in (on_a.description or "")
    assert on_a.metadata["file"].value == "a.csv"
    assert (on_b.partition, on_b.passed, on_b.metadata["file"].value) == (DAY_B, True, "b.csv")
    missing = _run_check(dagster_instance, "acs_stock_snapshot", check, "2026-03-12")
    assert not missing.passed and "2026-03-12" in missing.metadata["missing"].value


# --- through the assets, against the sandbox ---------------------------------------------------

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping")
SNAPSHOT = ("acs_stock_snapshot", "sellable_stock", "non_sellable_stock")
STOCK_CHECKS = ("snapshot_file_is_whole_and_known", "no_non_sellable_counted_as_sellable")


def _take_in_a_day(integration: IntegrationHarness) -> tuple[str, Any]:
    from datetime import UTC, datetime

    path = next(p for p in integration.sandbox.acs.write_daily_files() if "stock_units" in p.name)
    day = partition_day(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))
    result = materialize(
        _defs(),
        selection=[AssetKey(n) for n in SNAPSHOT],
        partition_key=day,
        resources=default_resources(),
        instance=integration.instance,
        run_config={"ops": {"acs_stock_snapshot": {"config": {"file": path.name}}}},
    )
    return day, result


def test_two_snapshot_days_give_each_stock_check_one_result_per_day_and_a_rerun_judges_its_day(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    first, first_run = _take_in_a_day(integration)
    integration.sandbox.advance(timedelta(days=1))
    second, second_run = _take_in_a_day(integration)
    assert first != second

    for run, day in ((first_run, first), (second_run, second)):
        found = {e.check_name: e for e in run.get_asset_check_evaluations()}
        assert all(found[name].partition == day and found[name].passed for name in STOCK_CHECKS)
    assert _history(integration.instance, "acs_stock_snapshot", STOCK_CHECKS[0]) == [
        first,
        second,
    ]
    assert _history(integration.instance, "sellable_stock", STOCK_CHECKS[1]) == [first, second]

    # The first day's sellable table is spoiled after the second day was taken in: the
    # check re-run for the first day finds it, the second day's re-run does not.
    snapshot_of = {
        day: run.get_asset_check_evaluations()
        for day, run in ((first, first_run), (second, second_run))
    }
    first_id = next(
        e.metadata["snapshot_id"].value
        for e in snapshot_of[first]
        if e.check_name == STOCK_CHECKS[1]
    )
    path = sellable_path(load_settings(), first_id)
    spoiled = pd.read_parquet(path)
    spoiled.loc[0, "sellable_units"] += 1
    spoiled.to_parquet(path, index=False)

    on_first = _run_check(integration.instance, "sellable_stock", STOCK_CHECKS[1], first)
    on_second = _run_check(integration.instance, "sellable_stock", STOCK_CHECKS[1], second)

    assert (on_first.partition, on_first.passed) == (first, False)
    assert on_first.metadata["snapshot_id"].value == first_id
    assert (on_second.partition, on_second.passed) == (second, True)
