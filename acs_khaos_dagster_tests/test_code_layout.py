"""Files a person can hold in their head (CONTRIBUTING "Layers"): the size limits, held in CI.

The layering itself is import-linter's (``make lint``); this holds what it cannot see.
"""

import importlib
import pkgutil
from pathlib import Path

import dagster as dg
from dagster._core.definitions.unresolved_asset_job_definition import (
    UnresolvedAssetJobDefinition,
)

import acs_khaos_dagster
from acs_khaos_dagster import dagster_kit

PACKAGE = Path(acs_khaos_dagster.__file__).parent
MIGRATIONS = PACKAGE / "store" / "migrations"
SANDBOX = PACKAGE / "sandbox"


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def test_no_module_outside_the_migrations_and_the_sandbox_is_over_400_lines() -> None:
    modules = [p for p in PACKAGE.rglob("*.py") if not p.is_relative_to(MIGRATIONS)]
    over = {
        str(p.relative_to(PACKAGE)): _lines(p)
        for p in modules
        if not p.is_relative_to(SANDBOX) and _lines(p) > 400
    }
    assert over == {}, "split these by responsibility (CONTRIBUTING 'Layers')"


def test_no_simulator_module_is_over_600_lines() -> None:
    over = {
        str(p.relative_to(PACKAGE)): _lines(p) for p in SANDBOX.rglob("*.py") if _lines(p) > 600
    }
    assert over == {}


def test_no_pandera_model_is_declared_in_the_dagster_wiring() -> None:
    # The table models live in flows/tables, where flows and tests use them without Dagster.
    declaring = [
        p.name for p in (PACKAGE / "defs").glob("*.py") if "DataFrameModel" in p.read_text()
    ]
    assert declaring == []


def test_the_dagster_wiring_does_not_grow_back() -> None:
    # defs/ only declares: each asset loads its inputs, calls one flow and attaches the
    # flow's figures; rules, figures and check logic live in flows/, the Dagster toolkit
    # the declarations share in dagster_kit/ (issue 21: under 2,000 lines in all, from
    # 5,200; 1,941 today).
    lines = [
        line
        for p in (PACKAGE / "defs").rglob("*.py")
        for line in p.read_text(encoding="utf-8").splitlines()
    ]
    assert len(lines) < 2000, f"defs/ holds {len(lines)} lines: move rules and figures to flows/"


def test_the_dagster_toolkit_declares_no_asset_check_job_sensor_or_schedule() -> None:
    # dagster_kit/ is what defs/ declares with; a definition placed there would hide from
    # the limit above.
    kinds = (
        dg.AssetsDefinition,
        dg.AssetSpec,
        dg.SensorDefinition,
        dg.ScheduleDefinition,
        dg.JobDefinition,
        UnresolvedAssetJobDefinition,
        dg.Definitions,
    )
    declared = [
        f"{info.name}.{name}"
        for info in pkgutil.iter_modules(dagster_kit.__path__)
        for name, value in vars(
            importlib.import_module(f"{dagster_kit.__name__}.{info.name}")
        ).items()
        if isinstance(value, kinds)
    ]
    assert declared == []
    written = [p for p in (PACKAGE / "dagster_kit").rglob("*.py") if "@dg." in p.read_text()]
    assert written == []
