"""The people's entry point: ``acs-khaos``."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from typer.testing import CliRunner

from acs_khaos_dagster.cli import app

ROOT = Path(__file__).resolve().parent.parent
runner = CliRunner()


def test_scenario_generate_writes_a_manifest_and_both_acs_files(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["scenario", "generate", "--size", "tiny", "--seed", "3", "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names[0] == "manifest.json"
    assert any(n.startswith("stock_units_BRAND01_") for n in names)
    assert any(n.startswith("returns_BRAND01_") for n in names)


def test_an_unknown_scenario_size_is_refused_with_the_option_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["scenario", "generate", "--size", "huge", "--out", str(tmp_path)])
    assert result.exit_code != 0
    assert "--size" in result.output


def test_invalid_settings_stop_the_command_with_the_field_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACS_KHAOS_OUTBOX__MAX_ATTEMPTS", "0")
    result = runner.invoke(app, ["demo", "--size", "tiny"])
    assert result.exit_code == 2
    assert "outbox.max_attempts" in result.output


def test_demo_runs_the_integration_cycle_through_dagster_on_a_persistent_instance(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ACS_KHAOS_ACS__DROP_FOLDER", str(tmp_path / "data" / "acs_drop"))

    result = runner.invoke(app, ["demo", "--size", "tiny", "--seed", "7"])

    assert result.exit_code == 0, result.output
    assert "outbox effects by state" in result.output
    assert "units per status" in result.output
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="integration_cycle"))
    assert runs and all(run.status == DagsterRunStatus.SUCCESS for run in runs)

    # A user's second try works too: a fresh simulated world, the last one kept aside.
    again = runner.invoke(app, ["demo", "--size", "tiny", "--seed", "7"])
    assert again.exit_code == 0, again.output
    assert "a fresh simulated world" in again.output
    assert (tmp_path / "data" / "previous_demo" / "integration.sqlite").exists()
    with DagsterInstance.get() as instance:
        runs = instance.get_runs(RunsFilter(job_name="integration_cycle"))
    assert len(runs) == 8 and all(run.status == DagsterRunStatus.SUCCESS for run in runs)

    # Ages are measured on the world's clock the exceptions were raised on: days at most,
    # not the months between the demo's simulated March and today.
    listed = runner.invoke(app, ["exceptions", "list", "--status", "all"])
    assert listed.exit_code == 0, listed.output
    ages = [int(d) for d in re.findall(r"(\d+)d\d\dh", listed.output)]
    assert ages and max(ages) <= 14, listed.output


def test_the_demo_never_moves_a_store_it_did_not_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from acs_khaos_dagster.store import Store

    data = tmp_path / "data"
    data.mkdir()
    # An installation on the embedded default store, not the demo's world.
    with Store.open(f"sqlite:///{data / 'integration.sqlite'}"):
        pass
    monkeypatch.setenv("ACS_KHAOS_DATA_DIR", str(data))

    result = runner.invoke(app, ["demo", "--size", "tiny"])

    assert result.exit_code == 2 and "not written by the demo" in result.output
    assert (data / "integration.sqlite").exists() and not (data / "previous_demo").exists()
