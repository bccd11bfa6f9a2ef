"""The main job end to end: sandbox up, one integration cycle through Dagster, a summary.

``make demo`` calls this through ``acs-khaos demo``. The runs land on the persistent
local Dagster instance (``DAGSTER_HOME``), so ``make dev`` shows them afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
from dagster import DagsterInstance
from rich.console import Console
from rich.table import Table

from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.sandbox.scenario.manifest import MANIFEST_NAME


def ensure_scenario(settings: Settings, size: str, seed: int) -> Path:
    """The scenario folder for ``size``/``seed``, generated on first use."""
    from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario

    folder = settings.data_dir / "scenarios" / f"{size}-{seed}"
    if not (folder / MANIFEST_NAME).exists():
        generate_scenario(size, seed, folder, account_code=settings.acs.account_code)  # type: ignore[arg-type]
    return folder


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def _frame_table(title: str, frame: pd.DataFrame) -> Table:
    table = Table(title=title)
    for column in frame.columns:
        table.add_column(
            str(column), justify="right" if frame[column].dtype.kind in "iuf" else "left"
        )
    for row in frame.itertuples(index=False):
        table.add_row(*(str(value) for value in row))
    return table


def run_demo(settings: Settings, *, size: str, seed: int, console: Console) -> int:
    """Run ``integration_cycle`` against a fresh sandbox; returns the process exit code."""
    from acs_khaos_dagster.definitions import defs
    from acs_khaos_dagster.sandbox.runner import Sandbox

    with console.status(f"generating the {size} brand scenario (seed {seed})"):
        folder = ensure_scenario(settings, size, seed)
    with Sandbox(folder, settings.drop_folder, settings, seed=seed) as box:
        console.print(f"sandbox: ACS {box.acs_url}, Khaos {box.khaos_url}")
        written = box.acs.write_daily_files()
        console.print(
            f"ACS delivered {', '.join(p.name for p in written)} to {settings.drop_folder}"
        )
        with _environment(box.settings_env()), console.status("running integration_cycle"):
            instance = DagsterInstance.get()
            job = defs.get_job_def("integration_cycle")
            result = job.execute_in_process(instance=instance, raise_on_error=False)
    console.print(
        f"Dagster run [bold]{result.run_id}[/bold]: {'succeeded' if result.success else 'FAILED'}"
    )
    if not result.success:
        for event in result.all_events:
            if event.is_failure:
                console.print(f"[red]{event.message}[/red]")
        return 1
    print_summary(result, console)
    return 0


def print_summary(result, console: Console) -> None:
    from acs_khaos_dagster.domain.snapshot import units_per_status

    skus: pd.DataFrame = result.output_for_node("khaos_sku_master")
    orders: pd.DataFrame = result.output_for_node("khaos_released_orders")
    counts: pd.DataFrame = result.output_for_node("acs_stock_snapshot")
    parents = int((~skus["stock_controlled"]).sum())
    hire = int(skus["is_hire"].sum())
    console.print(f"Khaos SKU master: {len(skus)} items ({parents} style parents, {hire} hire)")
    console.print(
        f"Released orders: {orders['order_id'].nunique()} orders, {len(orders)} lines, "
        f"{int(orders['quantity'].sum())} units"
    )
    console.print(
        _frame_table("ACS snapshot: units per normalised status", units_per_status(counts))
    )
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == "acs_stock_snapshot":
            meta = materialization.metadata
            quarantined = meta["rows_quarantined"].value
            console.print(f"quarantined rows: {quarantined}")
            if quarantined:
                console.print(meta["quarantine_reasons"].value)
