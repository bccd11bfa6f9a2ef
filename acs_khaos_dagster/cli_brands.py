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
    from acs_khaos_dagster.brands import BrandError, brand_codes, brand_file
    from acs_khaos_dagster.brands import brands_dir as folder_of

    try:
        if config:
            files = list(config)
        else:
            folder = folder_of(brands_dir)
            files = [brand_file(code, folder) for code in brand_codes(folder)]
        rows = [_overview_of(file) for file in files]
    except BrandError as exc:
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


def _overview_of(file: Path):
    from acs_khaos_dagster.brands import brand_environment
    from acs_khaos_dagster.flows.overview import take_overview

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
