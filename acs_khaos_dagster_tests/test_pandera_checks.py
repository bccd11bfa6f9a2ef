"""Pandera validation as asset checks: each table asset's model, visible and re-runnable in
the UI, its result tied to the partition it validated."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetSelection,
    Definitions,
    build_asset_check_context,
    define_asset_job,
    materialize,
)

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


def _stock_day(integration: IntegrationHarness) -> tuple[str, str]:
    integration.run("khaos_sku_master", "acs_product_registry", "sku_mapping")
    path = next(p for p in integration.sandbox.acs.write_daily_files() if "stock_units" in p.name)
    return path.name, partition_day(
        path.name, pd.Timestamp(path.stat().st_mtime, unit="s", tz="UTC")
    )


def _snapshot_run(integration: IntegrationHarness, day: str, file: str = "", check_only=False):
    from acs_khaos_dagster.definitions import defs

    key = AssetKey("acs_stock_snapshot")
    if check_only:  # the check alone, as a person runs it from the UI
        job = define_asset_job(
            "check_alone",
            selection=AssetSelection.checks(AssetCheckKey(key, CHECK_NAME)),
        )
        alone = Definitions(
            assets=[defs.get_assets_def(key)],
            asset_checks=[_checks()["acs_stock_snapshot"]],
            jobs=[job],
            resources=default_resources(),
        )
        # As the UI starts it: the day as the run's partition tag.
        return alone.resolve_job_def("check_alone").execute_in_process(
            instance=integration.instance, tags={"dagster/partition": day}
        )
    return materialize(
        [*defs.assets, *defs.asset_checks],
        selection=AssetSelection.assets(key),
        partition_key=day,
        resources=default_resources(),
        instance=integration.instance,
        run_config={"ops": {"acs_stock_snapshot": {"config": {"file": file}}}},
    )


def test_in_the_run_that_stored_the_table_the_check_reports_the_type_check_not_a_second_validation(
    integration: IntegrationHarness, monkeypatch
) -> None:
    import pandera.pandas as pa

    file, day = _stock_day(integration)
    validations = []
    validate = pa.DataFrameSchema.validate

    def counted(schema, *args, **kwargs):
        validations.append(schema.name)
        return validate(schema, *args, **kwargs)

    monkeypatch.setattr(pa.DataFrameSchema, "validate", counted)
    result = _snapshot_run(integration, day, file)

    [evaluation] = [e for e in result.get_asset_check_evaluations() if e.check_name == CHECK_NAME]
    assert evaluation.passed
    assert evaluation.metadata["validated_by"].value == "output type check"
    assert validations.count("SnapshotStatusCountsSchema") == 1


def test_run_on_its_own_the_check_validates_the_stored_table_and_fails_a_broken_one(
    integration: IntegrationHarness,
) -> None:
    import pickle

    file, day = _stock_day(integration)
    _snapshot_run(integration, day, file)
    alone = _snapshot_run(integration, day, check_only=True)
    [evaluation] = alone.get_asset_check_evaluations()
    assert evaluation.passed and "validated_by" not in evaluation.metadata

    # The stored table, changed behind Dagster's back: only a real validation sees it.
    stored = Path(integration.instance.storage_directory()) / "acs_stock_snapshot" / day
    broken = pd.DataFrame({"sku": ["S"], "status": ["x"], "bucket": ["nowhere"], "units": [-1]})
    stored.write_bytes(pickle.dumps(broken))
    [evaluation] = _snapshot_run(
        integration, day, None, check_only=True
    ).get_asset_check_evaluations()
    assert evaluation.passed is False and evaluation.partition == day


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
