"""A brand is a code location: its keys, checks, jobs, pools and runs carry the brand code.

``dagster_kit.brand.branded`` turns the integration's definitions into one brand's; these tests
compare a brand's location with the unbranded one, definition by definition.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import AssetKey, Definitions, build_sensor_context

from acs_khaos_dagster.brands import BrandError
from acs_khaos_dagster.config import SettingsError, load_settings
from acs_khaos_dagster.dagster_kit.brand import BRAND_TAG, brand_code, branded, pool_for

BRAND = "acme"


@pytest.fixture(scope="module")
def plain() -> Definitions:
    from acs_khaos_dagster.definitions import defs

    return defs


@pytest.fixture(scope="module")
def acme(plain: Definitions) -> Definitions:
    return branded(plain, BRAND)


def _prefixed(key: AssetKey) -> AssetKey:
    return key.with_prefix(BRAND)


def test_without_a_brand_the_code_location_is_the_unprefixed_one(plain: Definitions) -> None:
    assert branded(plain, None) is plain
    assert load_settings().brand is None
    assert all(len(key.path) == 1 for key in plain.resolve_asset_graph().get_all_asset_keys())


def test_a_brand_prefixes_every_asset_key_and_every_check(
    plain: Definitions, acme: Definitions
) -> None:
    before, after = plain.resolve_asset_graph(), acme.resolve_asset_graph()
    assert set(after.get_all_asset_keys()) == {_prefixed(k) for k in before.get_all_asset_keys()}
    assert set(after.asset_check_keys) == {
        check.replace_asset_key(_prefixed(check.asset_key)) for check in before.asset_check_keys
    }


def test_dependencies_partitions_and_automation_survive_the_prefix(
    plain: Definitions, acme: Definitions
) -> None:
    before, after = plain.resolve_asset_graph(), acme.resolve_asset_graph()
    for key in before.get_all_asset_keys():
        old, new = before.get(key), after.get(_prefixed(key))
        assert {_prefixed(p) for p in old.parent_keys} == set(new.parent_keys), key
        assert old.partitions_def == new.partitions_def, key
        assert old.automation_condition == new.automation_condition, key
        assert old.group_name == new.group_name and old.owners == new.owners, key
        assert new.tags.get(BRAND_TAG) == BRAND, key


def test_every_job_selects_the_same_assets_and_checks_under_the_brand(
    plain: Definitions, acme: Definitions
) -> None:
    before = {job.name: job for job in plain.resolve_all_job_defs()}
    after = {job.name: job for job in acme.resolve_all_job_defs()}
    assert set(after) == set(before)
    for name, job in before.items():
        branded_job = after[name]
        if job.asset_layer is None or not job.asset_layer.selected_asset_keys:
            continue
        assert set(branded_job.asset_layer.selected_asset_keys) == {
            _prefixed(k) for k in job.asset_layer.selected_asset_keys
        }, name
        assert set(branded_job.asset_layer.asset_graph.asset_check_keys) == {
            c.replace_asset_key(_prefixed(c.asset_key))
            for c in job.asset_layer.asset_graph.asset_check_keys
        }, name
        assert job.partitions_def == branded_job.partitions_def, name
        if not name.startswith("__"):
            assert branded_job.tags.get(BRAND_TAG) == BRAND, name


def test_the_external_api_pools_are_the_brands_own(plain: Definitions, acme: Definitions) -> None:
    def pools(defs: Definitions) -> dict[tuple[str, str], str | None]:
        return {
            (job.name, node.name): node.definition.pool
            for job in defs.resolve_all_job_defs()
            for node in job.graph.node_dict.values()
        }

    before, after = pools(plain), pools(acme)
    assert {p for p in before.values() if p} == {"acs_api", "khaos_api"}
    assert after == {step: pool and pool_for(pool, BRAND) for step, pool in before.items()}
    assert {p for p in after.values() if p} == {"acs_api:acme", "khaos_api:acme"}


def test_sensors_and_schedules_start_the_brands_jobs(plain: Definitions, acme: Definitions) -> None:
    repo = acme.get_repository_def()
    for sensor in repo.sensor_defs:
        assert sensor.metadata[BRAND_TAG].value == BRAND, sensor.name
        for target in sensor.targets:
            job = repo.get_job(target.job_name)
            assert job.tags.get(BRAND_TAG) == BRAND, (sensor.name, job.name)
    for schedule in repo.schedule_defs:
        assert schedule.metadata[BRAND_TAG].value == BRAND, schedule.name
        assert repo.get_job(schedule.job_name).tags.get(BRAND_TAG) == BRAND
    plain_repo = plain.get_repository_def()
    assert {s.name for s in repo.sensor_defs} == {s.name for s in plain_repo.sensor_defs}
    assert {s.name for s in repo.schedule_defs} == {s.name for s in plain_repo.schedule_defs}


def test_a_brand_code_must_be_usable_as_a_key_a_tag_and_a_pool_name() -> None:
    with pytest.raises(SettingsError, match="brand"):
        load_settings(brand="Acme Ltd")
    assert load_settings(brand="acme_2").brand == "acme_2"


def test_a_brand_without_its_own_data_folder_gets_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACS_KHAOS_DATA_DIR")
    assert load_settings(brand="acme").data_dir == Path("data") / "acme"
    assert load_settings(brand="acme", data_dir="/srv/acme").data_dir == Path("/srv/acme")
    assert load_settings().data_dir == Path("data")


def test_a_location_with_broken_settings_still_loads_under_its_brand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "acme.yaml"
    file.write_text("brand: acme\nstock:\n  max_total_drop: 7\n", encoding="utf-8")
    monkeypatch.setenv("ACS_KHAOS_CONFIG_FILE", str(file))
    with pytest.raises(SettingsError):
        load_settings()
    assert brand_code() == "acme"


def test_a_location_whose_settings_yaml_is_broken_still_finds_its_brand_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    file = tmp_path / "acme.yaml"
    file.write_text("brand: acme\nstock: [unclosed\n", encoding="utf-8")
    monkeypatch.setenv("ACS_KHAOS_CONFIG_FILE", str(file))
    assert brand_code() == "acme"


def test_a_location_whose_settings_file_cannot_be_read_does_not_load_under_no_brand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under no brand it would show unprefixed keys and share pools with other such locations.
    monkeypatch.setenv("ACS_KHAOS_CONFIG_FILE", str(tmp_path / "missing.yaml"))
    with pytest.raises(BrandError, match="cannot be read"):
        brand_code()


def test_a_brand_that_is_not_a_brand_code_stops_the_location_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACS_KHAOS_BRAND", "Acme Ltd")
    with pytest.raises(BrandError, match="not a brand code"):
        brand_code()


def test_a_brands_run_materialises_its_own_keys_and_is_tagged_with_the_brand(
    sandbox, dagster_instance, acme: Definitions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("ACS_KHAOS_BRAND", BRAND)
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    result = acme.resolve_job_def("integration_cycle").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    assert result.dagster_run.tags[BRAND_TAG] == BRAND
    made = {e.asset_key for e in result.get_asset_materialization_events()}
    assert made and all(key.path[0] == BRAND for key in made)
    assert dagster_instance.get_latest_materialization_event(AssetKey("sku_mapping")) is None


def _outbox_tick(acme: Definitions, instance, monkeypatch, tmp_path: Path, *, queued: str | None):
    """One tick of brand acme's outbox sensor with an effect due and, if ``queued`` names a
    brand, a dispatch run of that brand already started on the instance."""
    from dagster import DagsterRunStatus

    from acs_khaos_dagster.domain.models import AdjustmentLine, StockAdjustmentGroup
    from acs_khaos_dagster.effects import TARGET_OF, EffectKind
    from acs_khaos_dagster.store import Store

    monkeypatch.setenv("ACS_KHAOS_BRAND", BRAND)
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    group = StockAdjustmentGroup(
        site_id=1,
        group_ref="BR-1",
        lines=(AdjustmentLine(stock_id=1, adjust_by=1, reason_code="VARIANCE"),),
    ).model_dump(mode="json")
    with Store.from_settings(load_settings()) as store:
        kind = EffectKind.KHAOS_STOCK_ADJUSTMENT
        store.outbox.enqueue(kind, TARGET_OF[kind], "BR-1", "BR-1", group)
    job = acme.resolve_job_def("outbox_dispatch_job")
    if queued is not None:
        instance.create_run_for_job(job, tags={BRAND_TAG: queued}, status=DagsterRunStatus.STARTED)
    with build_sensor_context(
        instance=instance, resources=acme.resources, repository_def=acme.get_repository_def()
    ) as context:
        return acme.resolve_sensor_def("outbox_due_sensor").evaluate_tick(context)


def test_a_brands_outbox_sensor_asks_for_the_brands_own_outbox_assets(
    sandbox, dagster_instance, acme: Definitions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tick = _outbox_tick(acme, dagster_instance, monkeypatch, tmp_path, queued=None)
    [request] = tick.run_requests or []
    assert request.asset_selection == [AssetKey([BRAND, "khaos_outbox"])]


def test_another_brands_dispatch_run_under_way_does_not_hold_this_brands_back(
    sandbox, dagster_instance, acme: Definitions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tick = _outbox_tick(acme, dagster_instance, monkeypatch, tmp_path, queued="bravo")
    assert len(tick.run_requests or []) == 1, tick.skip_message


def test_the_brands_own_dispatch_run_under_way_holds_the_next_back(
    sandbox, dagster_instance, acme: Definitions, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tick = _outbox_tick(acme, dagster_instance, monkeypatch, tmp_path, queued=BRAND)
    assert not tick.run_requests and "on its way" in (tick.skip_message or "")


def test_a_run_started_with_the_uis_materialize_button_carries_the_brand_tag(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The webserver's own launch (GraphQL ``launchPipelineExecution`` of ``__ASSET_JOB``,
    as the Materialize button sends it) against the brand's code location in its own
    process, on an instance whose queue holds the run (nothing executes)."""
    from dagster import instance_for_test
    from dagster_graphql.test.utils import define_out_of_process_context, materialize_assets

    monkeypatch.setenv("ACS_KHAOS_BRAND", BRAND)
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n      module_name: acs_khaos_dagster.definitions\n"
        f"      location_name: {BRAND}\n",
        encoding="utf-8",
    )
    queued = {"module": "dagster.core.run_coordinator", "class": "QueuedRunCoordinator"}
    with (
        instance_for_test(overrides={"run_coordinator": queued}) as instance,
        define_out_of_process_context(str(workspace), None, instance) as context,
    ):
        result = materialize_assets(context, [AssetKey([BRAND, "brand_overview"])])
        launched = result.data["launchPipelineExecution"]  # type: ignore[union-attr]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        run = instance.get_run_by_id(launched["run"]["runId"])
    assert run is not None and run.job_name == "__ASSET_JOB"
    assert run.tags.get(BRAND_TAG) == BRAND


def test_the_implicit_asset_job_of_a_brand_carries_the_brand_tag(acme: Definitions) -> None:
    job = acme.get_repository_def().get_job("__ASSET_JOB")
    assert job.tags.get(BRAND_TAG) == BRAND
    subset = job.get_subset(asset_selection={AssetKey([BRAND, "brand_overview"])})
    assert subset.run_tags.get(BRAND_TAG) == BRAND
