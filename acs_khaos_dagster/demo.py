"""The main job end to end: sandbox up, integration cycles through Dagster, a summary.

``make demo`` calls this through ``acs-khaos demo``. The runs land on the persistent
local Dagster instance (``DAGSTER_HOME``), so ``make dev`` shows them afterwards.

The demo runs ``integration_cycle`` several times with simulated time passing in
between, as production would on its schedule: ACS activates new SKUs hours after
they are registered, picks and despatches orders, and Khaos's finance batch issues
invoices.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dagster import DagsterInstance, MetadataValue
from rich.console import Console
from rich.table import Table

from acs_khaos_dagster.clock import SIMULATED_CLOCK_CURSOR
from acs_khaos_dagster.config import Settings
from acs_khaos_dagster.demo_runs import WorkspaceRuns, workspace_runs
from acs_khaos_dagster.flows.month_end_pack import PREVIEW_DIR
from acs_khaos_dagster.sandbox.scenario.manifest import MANIFEST_NAME

# Dagster's console logger at DEBUG drowns the summary; failures still print.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Simulated time between cycles: long enough for ACS to activate SKUs and ship orders.
# The last one is past the scenario's returns (received 3–10 days after the start).
CYCLES = (timedelta(0), timedelta(hours=6), timedelta(hours=30), timedelta(days=9))


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


# Kept from one demo to the next: generated scenarios (slow to make, same seed same world)
# and the Dagster instance (so the UI shows every demo's runs).
KEPT = ("scenarios", "dagster_home", "previous_demo")


def start_fresh_world(settings: Settings, console: Console) -> Path | None:
    """Every demo starts a fresh simulated world: the simulators start from the scenario,
    so the integration's store, drop folder and files must too (a kept despatch cursor or
    push moment from the last world is invalid in the new one). The last demo's state is
    moved to ``<data>/previous_demo`` (replacing an older one), never deleted outright.
    Returns that folder, or None when there was nothing to move."""
    if settings.database_url is not None:
        raise DemoRefused(
            "the demo runs a simulated world in its own embedded store; it will not reset "
            "the database named by ACS_KHAOS_DATABASE_URL. Unset it to run the demo."
        )
    data = settings.data_dir
    leftovers = [p for p in data.iterdir() if p.name not in KEPT] if data.exists() else []
    if not leftovers:
        return None
    store = data / "integration.sqlite"
    if store.exists() and not _written_by_a_demo(store):
        raise DemoRefused(
            f"{store} was not written by the demo (it has no simulated clock): it may be a real "
            "installation's store, and the demo will not move it. Point ACS_KHAOS_DATA_DIR at "
            "a folder of its own to run the demo."
        )
    previous = data / "previous_demo"
    if previous.exists():
        shutil.rmtree(previous)
    previous.mkdir(parents=True)
    for path in leftovers:
        shutil.move(str(path), previous / path.name)
    console.print(f"a fresh simulated world: the last demo's store and files are in {previous}")
    return previous


def _written_by_a_demo(store: Path) -> bool:
    """Whether the embedded store carries the demo's simulated-clock marker."""
    with closing(sqlite3.connect(f"file:{store}?mode=ro", uri=True)) as db:
        try:
            found = db.execute(
                "SELECT 1 FROM cursors WHERE name = ?", (SIMULATED_CLOCK_CURSOR,)
            ).fetchone()
        except sqlite3.DatabaseError:
            return False
    return found is not None


class DemoRefused(RuntimeError):
    """The demo cannot run with these settings (the message says why)."""


def run_demo(settings: Settings, *, size: str, seed: int, console: Console) -> int:
    """Run ``integration_cycle`` against a fresh sandbox; returns the process exit code."""
    from acs_khaos_dagster.definitions import defs
    from acs_khaos_dagster.sandbox.runner import Sandbox

    try:
        start_fresh_world(settings, console)
    except DemoRefused as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    with console.status(f"generating the {size} brand scenario (seed {seed})"):
        folder = ensure_scenario(settings, size, seed)
    job = defs.resolve_job_def("integration_cycle")
    summaries: dict[str, dict[str, Any]] = {}
    with ExitStack() as stack, Sandbox(folder, settings.drop_folder, settings, seed=seed) as box:
        console.print(f"sandbox: ACS {box.acs_url}, Khaos {box.khaos_url}")
        with _environment(box.settings_env()):
            # Marked at once: a demo stopped half-way is still recognised as the demo's.
            _mark_simulated(box.clock.now())
            instance = DagsterInstance.get()
            # Launched through the workspace's code location: the UI's Jobs and Overview
            # pages list the demo's runs under their jobs.
            launcher = stack.enter_context(workspace_runs(instance))
            sensor_cursors: dict[str, str | None] = {}
            for number, wait in enumerate(CYCLES, start=1):
                if wait:
                    box.advance(wait)
                box.acs.receive_customer_returns(box.scenario_dir / box.manifest.files.returns)
                written = box.acs.write_daily_files()
                label = f"cycle {number} at {box.clock.now():%a %d %b %H:%M} UTC (simulated)"
                console.print(f"{label}: ACS delivered {', '.join(p.name for p in written)}")
                with console.status(f"{label}: integration_cycle"):
                    runs = [launcher.execute(job, run_config=QUIET)]
                with console.status(f"{label}: new ACS stock files"):
                    runs += _run_sensor(
                        defs, "acs_stock_file_sensor", instance, sensor_cursors, launcher
                    )
                if settings.sync_mode == "batch":
                    # What the batch schedule does in production: push the newest snapshot.
                    with console.status(f"{label}: stock push"):
                        runs.append(
                            launcher.execute(
                                defs.resolve_job_def("stock_push_job"), run_config=QUIET
                            )
                        )
                # What the nightly schedule does, for the day just simulated.
                day = box.clock.now().astimezone(settings.tz).date().isoformat()
                with console.status(f"{label}: reconciliation of {day}"):
                    runs.append(
                        launcher.execute(
                            defs.resolve_job_def("reconciliation_job"),
                            partition_key=day,
                            run_config=QUIET,
                        )
                    )
                for result in runs:
                    state = "succeeded" if result.success else "FAILED"
                    console.print(
                        f"  Dagster run {result.run_id[:8]} ({result.job_def.name}): {state}"
                    )
                    if not result.success:
                        for event in result.all_events:
                            if event.is_failure:
                                console.print(f"[red]{event.message}[/red]")
                        return 1
                    summaries.update(_asset_summaries(result))
            # The finance pack of the month so far, as a preview (the final one waits for the
            # month's end), and the month's workflow audit report so far.
            month = box.clock.now().astimezone(settings.tz).strftime("%Y-%m")
            with console.status(f"month-end pack preview and audit report for {month}"):
                pack = launcher.execute(
                    defs.resolve_job_def("month_end_preview_job"),
                    partition_key=month,
                    run_config=QUIET,
                )
            summaries.update(_asset_summaries(pack))
            store_counts = _store_counts(box.clock.now())
    _print_summary(summaries, store_counts, console)
    if not pack.success:
        console.print(f"[red]month-end pack preview or audit report failed for {month}[/red]")
        return 1
    pack_folder = settings.data_dir / "month_end" / month / PREVIEW_DIR
    console.print(f"[bold]Month-end pack ({month}, PREVIEW):[/bold] {pack_folder}")
    audit_folder = settings.data_dir / "audit" / month
    console.print(f"[bold]Workflow audit report ({month}):[/bold] {audit_folder}")
    console.print("open them from the assets' pages in `make dev` (links under /files/)")
    return 0


def _run_sensor(
    defs: Any,
    name: str,
    instance: DagsterInstance,
    cursors: dict[str, str | None],
    launcher: WorkspaceRuns,
) -> list[Any]:
    """One tick of a sensor, its run requests executed in process (as the daemon would)."""
    from dagster import build_sensor_context

    sensor = defs.resolve_sensor_def(name)
    with build_sensor_context(
        instance=instance,
        cursor=cursors.get(name),
        resources=defs.resources,
        repository_def=defs.get_repository_def(),
    ) as context:
        tick = sensor.evaluate_tick(context)
    cursors[name] = tick.cursor
    results = []
    for request in tick.run_requests or []:
        job = defs.resolve_job_def(request.job_name)
        results.append(
            launcher.execute(
                job,
                partition_key=request.partition_key,
                run_config={**QUIET, **(request.run_config or {})},
                tags=request.tags,
            )
        )
    return results


def _asset_summaries(result: Any) -> dict[str, dict[str, Any]]:
    """Each materialised asset's figures (numbers and short text) from its metadata."""
    summaries: dict[str, dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        figures = {
            key: value.value
            for key, value in materialization.metadata.items()
            if isinstance(value.value, int | float) and not isinstance(value.value, bool)
        }
        tables = {
            key: value.value
            for key, value in materialization.metadata.items()
            if isinstance(value, type(MetadataValue.md(""))) and key.startswith("units_per")
        }
        summaries[materialization.asset_key.to_user_string()] = {**figures, **tables}
    return summaries


def _mark_simulated(now: datetime) -> None:
    """Record the world's clock in the store: the CLI measures ages on it afterwards, and
    the next demo knows this store is the demo's own."""
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.store import Store

    with Store.from_settings(load_settings()) as store, store.transaction() as session:
        store.cursors.set(SIMULATED_CLOCK_CURSOR, now.isoformat(), session)


def _store_counts(simulated_now: datetime) -> dict[str, dict[str, int]]:
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.store import Store

    _mark_simulated(simulated_now)
    with Store.from_settings(load_settings()) as store:
        status = store.outbox.status()
        effects: dict[str, int] = {}
        for (_kind, state), count in status.counts.items():
            effects[state] = effects.get(state, 0) + count
        exceptions: dict[str, int] = {}
        for item in store.exceptions.list():
            key = f"{item.row.owner}: {item.row.type}"
            exceptions[key] = exceptions.get(key, 0) + 1
    return {"outbox effects by state": effects, "open exceptions by owner": exceptions}


def _print_summary(
    summaries: dict[str, dict[str, Any]], store_counts: dict[str, dict[str, int]], console: Console
) -> None:
    table = Table(title="Last cycle, per asset")
    table.add_column("asset")
    table.add_column("figures")
    for asset_key, figures in summaries.items():
        text = ", ".join(_figure(k, v) for k, v in figures.items() if not isinstance(v, str))
        table.add_row(asset_key, text or "-")
    console.print(table)
    for asset_key, figures in summaries.items():
        for key, value in figures.items():
            if isinstance(value, str):
                console.print(f"[bold]{asset_key}: {key.replace('_', ' ')}[/bold]\n{value}")
    for title, counts in store_counts.items():
        rows = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none"
        console.print(f"[bold]{title}[/bold]: {rows}")


def _figure(key: str, value: Any) -> str:
    """``stock_value_gbp`` 856086.6 as "stock value £856,086.60"; other figures as they are."""
    if key.endswith("_gbp") and isinstance(value, int | float):
        return f"{key.removesuffix('_gbp').replace('_', ' ')} £{value:,.2f}"
    return f"{key.replace('_', ' ')} {value}"
