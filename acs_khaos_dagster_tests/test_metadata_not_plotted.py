"""The UI plots every number in an asset's metadata: identifiers are text, and a figure
with nothing to say is left out rather than given a stand-in such as -1."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from dagster import AssetKey, BoolMetadataValue, TextMetadataValue, materialize

from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.flows.reconciliation.storage import opened
from acs_khaos_dagster.flows.stock_snapshot import partition_day
from acs_khaos_dagster_tests.conftest import IntegrationHarness

PRODUCTS = ("khaos_sku_master", "acs_product_registry", "sku_mapping")
SNAPSHOT = ("acs_stock_snapshot", "sellable_stock", "non_sellable_stock")


def _defs() -> list[Any]:
    from acs_khaos_dagster.definitions import defs

    return [*defs.assets, *defs.asset_checks]


def _metadata(result: Any, asset: str) -> dict[str, Any]:
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return dict(materialization.metadata)
    raise KeyError(asset)


def _numbers(metadata: dict[str, Any]) -> set[str]:
    """The entries the UI plots (and the demo prints): ints and floats, not bools."""
    return {
        key
        for key, value in metadata.items()
        if isinstance(value.value, int | float) and not isinstance(value.value, bool)
    }


def test_open_counts_a_run_did_not_sync_are_left_out_not_minus_one() -> None:
    assert opened(drift_open=None, khaos_duplicates_open=3) == {"khaos_duplicates_open": 3}
    assert opened(drift_open=0) == {"drift_open": 0}


def test_a_snapshots_id_is_text_and_its_redelivery_a_yes_no(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    path = next(p for p in integration.sandbox.acs.write_daily_files() if "stock_units" in p.name)
    day = partition_day(path.name, datetime.fromtimestamp(path.stat().st_mtime, UTC))

    def take_in(*names: str) -> Any:
        return materialize(
            _defs(),
            selection=[AssetKey(n) for n in names],
            partition_key=day,
            resources=default_resources(),
            instance=integration.instance,
            run_config={"ops": {"acs_stock_snapshot": {"config": {"file": path.name}}}},
        )

    first = take_in(*SNAPSHOT)
    again = take_in("acs_stock_snapshot")  # the same file: taken in before

    for meta in (_metadata(first, "acs_stock_snapshot"), _metadata(first, "sellable_stock")):
        assert isinstance(meta["snapshot_id"], TextMetadataValue)
        assert "snapshot_id" not in _numbers(meta)
    [check] = [
        e
        for e in first.get_asset_check_evaluations()
        if e.check_name == "no_non_sellable_counted_as_sellable"
    ]
    assert isinstance(check.metadata["snapshot_id"], TextMetadataValue)
    meta = _metadata(again, "acs_stock_snapshot")
    assert isinstance(meta["taken_in_before"], BoolMetadataValue)
    assert isinstance(meta["snapshot_id"], TextMetadataValue)
    assert _numbers(meta) - {"dagster/row_count"} == {"units"}


def test_a_past_day_reconciled_after_a_newer_one_plots_no_open_count(
    integration: IntegrationHarness,
) -> None:
    integration.run(*PRODUCTS)
    today = integration.sandbox.clock.now().astimezone(ZoneInfo("Europe/London")).date()

    def reconcile(day: str) -> dict[str, Any]:
        result = materialize(
            _defs(),
            selection=[AssetKey("returns_reconciliation")],
            partition_key=day,
            resources=default_resources(),
            instance=integration.instance,
        )
        return _metadata(result, "returns_reconciliation")

    newest = reconcile(today.isoformat())
    past = reconcile((today - timedelta(days=1)).isoformat())

    assert newest["drift_open"].value >= 0
    assert "drift_open" not in past  # the newer day's open drift stands; nothing to plot
    assert all(value.value != -1 for value in past.values())
