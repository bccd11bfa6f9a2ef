"""``acs-khaos overview``: every brand of the deployment, and what needs attention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from acs_khaos_dagster.cli_ops import _age

console = Console()
notes = Console(
    stderr=True, soft_wrap=True
)  # where the brands came from: never in the --json lines

BrandsDirOption = Annotated[
    Path | None,
    typer.Option(
        "--brands-dir",
        help="folder of <brand>.yaml settings (and <brand>.env secrets) "
        "[env ACS_KHAOS_BRANDS_DIR; default /etc/acs-khaos/brands]",
    ),
]


def overview(
    brands_dir: BrandsDirOption = None,
    config: Annotated[
        list[Path] | None,
        typer.Option("--config", help="a brand's settings file (repeat; instead of a folder)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per brand")] = False,
) -> None:
    """Every brand: open exceptions by owner and over target, the oldest due effect, the
    last stock snapshot and despatch posted, unexplained drift, the month end."""
    from acs_khaos_dagster.config import SettingsError

    try:
        files = _files(brands_dir, config)
        # None: no brands folder anywhere, so this installation, as one brand.
        rows = [_overview_of(file) for file in ([None] if files is None else files)]
    except SettingsError as exc:  # BrandError too
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if not rows:
        console.print("[red]no brand found (no <brand>.yaml in the folder)[/red]")
        raise typer.Exit(2)
    shared = _sharing(rows)
    if as_json:
        from acs_khaos_dagster.flows.overview import overview_record

        for row, _ in rows:
            typer.echo(json.dumps(overview_record(row), default=str, sort_keys=True))
    else:
        _print(rows)
    for message in shared:
        console.print(f"[red]{message}[/red]")
    if shared:
        raise typer.Exit(1)


def _files(brands_dir: Path | None, config: list[Path] | None) -> list[Path] | None:
    """The brands' settings files: ``--config``, else the brands folder named (option,
    variable, or the default folder if it exists), else the folder ``acs-khaos demo --brands
    N`` wrote, if any; None: no brands folder at all (the overview is of this installation).
    Where no folder was named, says on stderr which it fell back to (stdout stays the
    overview, ``--json`` parseable)."""
    from acs_khaos_dagster.brands import (
        DEFAULT_BRANDS_DIR,
        brand_codes,
        brand_file,
        brands_dir_named,
        demo_brands_dir,
    )
    from acs_khaos_dagster.brands import brands_dir as folder_of
    from acs_khaos_dagster.config import load_settings

    if config:
        return list(config)
    if brands_dir is not None or brands_dir_named():
        folder = folder_of(brands_dir)
    else:
        demo = demo_brands_dir(load_settings().data_dir)
        if not demo.is_dir():
            notes.print(
                f"no brands folder ({DEFAULT_BRANDS_DIR}, --brands-dir or ACS_KHAOS_BRANDS_DIR): "
                "the overview of this installation's own settings, as one brand"
            )
            return None
        notes.print(
            f"no brands folder ({DEFAULT_BRANDS_DIR}, --brands-dir or ACS_KHAOS_BRANDS_DIR): "
            f"the demo's brands in {demo} (acs-khaos demo --brands N)"
        )
        folder = demo
    return [brand_file(code, folder) for code in brand_codes(folder)]


def _overview_of(file: Path | None):
    """One brand's row, read with that brand's settings alone (``file`` None: the
    process's own settings, as they are)."""
    from acs_khaos_dagster.brands import brand_environment
    from acs_khaos_dagster.config import load_settings
    from acs_khaos_dagster.flows.overview import take_overview

    if file is None:
        settings = load_settings()
        return take_overview(settings), _where(settings)
    with brand_environment(file) as settings:
        return take_overview(settings), _where(settings)


def _where(settings) -> tuple[str, str]:
    return settings.resolved_database_url, str(settings.drop_folder.resolve())


def _sharing(rows) -> list[str]:
    """Two brands on one store or one drop folder would read and write each other's data."""
    problems = []
    for what, part in (("store", 0), ("drop folder", 1)):
        seen: dict[str, str] = {}
        for row, where in rows:
            other = seen.setdefault(where[part], row.brand)
            if other != row.brand:
                problems.append(f"brands {other} and {row.brand} share one {what}")
    return problems


def _print(rows) -> None:
    # Stacked cells: a narrow terminal (or a CI log) keeps every fact, the brand first.
    table = Table(title=f"Brands ({len(rows)})", show_lines=True)
    table.add_column("Brand", no_wrap=True, style="bold")
    table.add_column("Exceptions\nopen / over target", overflow="fold")
    table.add_column("Oldest due\neffect", overflow="fold")
    table.add_column("Snapshot /\ndespatch age", overflow="fold")
    table.add_column("Unexplained\ndrift", overflow="fold")
    table.add_column("Month end", overflow="fold")
    for row, _ in rows:
        over = row.over_target_by_owner
        lines = [
            f"{o}: {n}" + (f" / [red]{over[o]}[/red]" if o in over else "")
            for o, n in sorted(row.open_by_owner.items())
        ]
        drift = "-" if row.drift_value is None else f"£{row.drift_value:,.2f}\n{row.drift_day}"
        table.add_row(
            row.brand,
            "\n".join([f"{row.open_exceptions} / {row.over_target}", *lines]),
            _age(row.oldest_due_age),
            f"{_age(row.snapshot_age)}\n{_age(row.despatch_posted_age)}",
            drift,
            row.month_end.replace(": ", "\n"),
        )
    console.print(table)
