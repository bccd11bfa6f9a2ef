"""Pandera validation as asset checks: each table asset's model, visible and re-runnable in
the UI, its result tied to the partition it validated."""

from __future__ import annotations

import pandas as pd
from dagster import AssetKey, build_asset_check_context, materialize

from acs_khaos_dagster.dagster_kit.pandera_checks import CHECK_NAME
from acs_khaos_dagster.defs.resources import default_resources
from acs_khaos_dagster.defs.stock import partition_day
from acs_khaos_dagster_tests.conftest import IntegrationHarness


def _checks() -> dict[str, object]:
    from acs_khaos_dagster.definitions import defs

    found = {}
    for checks in defs.asset_checks or []:
        for key in checks.check_keys:
            if key.name == CHECK_NAME:
                found[key.asset_key.to_user_string()] = checks
    return found


def test_every_table_asset_has_a_check_of_its_pandera_model() -> None:
    from acs_khaos_dagster.definitions import defs

    specs = {s.key.to_user_string(): s for s in defs.resolve_all_asset_specs()}
    tables = {name for name, s in specs.items() if "dagster/column_schema" in s.metadata}
    assert set(_checks()) == tables and len(tables) >= 24


def test_a_table_that_breaks_its_model_fails_the_check_with_the_failures_shown() -> None:
    check = _checks()["sellable_stock"]
    broken = pd.DataFrame({"stock_id": ["not a number"], "site_id": [1]})

    result = check(build_asset_check_context(), broken)  # type: ignore[operator]

    assert result.passed is False
    assert result.metadata["model"].value == "SellableStockSchema"
    assert result.description


def test_the_snapshot_check_runs_after_each_day_and_reports_that_day(
    integration: IntegrationHarness,
) -> None:
    from acs_khaos_dagster.definitions import defs

    integration.run("khaos_sku_master", "acs_product_registry", "sku_mapping")
    path = next(p for p in integration.sandbox.acs.write_daily_files() if "stock_units" in p.name)
    day = partition_day(path.name, pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC"))

    result = materialize(
        [*defs.assets, *defs.asset_checks],
        selection=[AssetKey("acs_stock_snapshot")],
        partition_key=day,
        resources=default_resources(),
        instance=integration.instance,
        run_config={"ops": {"acs_stock_snapshot": {"config": {"file": path.name}}}},
    )

    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME]
    assert evaluation.passed and evaluation.partition == day
    assert evaluation.metadata["rows"].value > 0


def test_str_columns_are_checked_without_a_python_call_per_value_and_still_fail_a_non_str(
    monkeypatch,
) -> None:
    import pandera.pandas as pa
    import pytest
    from pandera.errors import SchemaError

    from acs_khaos_dagster.flows import tables  # installs the check

    schema = pa.DataFrameSchema({"code": pa.Column(str, nullable=True)})  # no coercion
    good = pd.DataFrame({"code": ["A1", None, "B2"] * 1000})
    typed = pd.DataFrame({"code": pd.array(["A1", None], dtype="string")})

    def per_value(*_args, **_kwargs):
        raise AssertionError("walked every value")

    with monkeypatch.context() as patched:
        # pandera's own check maps isinstance over the column.
        patched.setattr(pd.Series, "map", per_value)
        schema.validate(good)
        schema.validate(typed)
        tables.SnapshotStatusCountsSchema.validate(
            pd.DataFrame({"sku": ["S"], "status": ["x"], "bucket": ["sellable"], "units": [1]})
        )
    # A value that is not a str fails as pandera has it fail, naming the value.
    with pytest.raises(SchemaError) as failed:
        schema.validate(pd.DataFrame({"code": ["A1", 7, "B2"]}))
    assert 7 in list(failed.value.failure_cases["failure_case"])
    with pytest.raises(SchemaError):
        schema.validate(pd.DataFrame({"code": [1, 2]}))
