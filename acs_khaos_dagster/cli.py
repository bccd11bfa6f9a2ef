"""``acs-khaos``: the entry point for people running the integration.

Imports are made inside commands so that ``acs-khaos --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from acs_khaos_dagster.config import SettingsError, load_settings

app = typer.Typer(
    help="ACS <-> Khaos Control integration, orchestrated by Dagster.", no_args_is_help=True
)
scenario_app = typer.Typer(
    help="Generate sandbox scenarios (a fashion brand's data).", no_args_is_help=True
)
app.add_typer(scenario_app, name="scenario")
console = Console()

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", help="YAML settings file (else ACS_KHAOS_CONFIG_FILE, env, defaults)"),
]


def _mount_operations() -> None:
    """The store's people surface (exceptions, outbox) lives in ``cli_ops``."""
    from acs_khaos_dagster.cli_admin import db_app, webserver
    from acs_khaos_dagster.cli_brands import overview
    from acs_khaos_dagster.cli_ops import exceptions_app, outbox_app
    from acs_khaos_dagster.cli_trace import trace_app

    app.add_typer(db_app, name="db")
    app.command("webserver")(webserver)
    app.add_typer(exceptions_app, name="exceptions")
    app.add_typer(outbox_app, name="outbox")
    app.add_typer(trace_app, name="trace")
    app.command("overview")(overview)


_mount_operations()


@app.callback()
def _brand(
    brand: Annotated[
        str | None,
        typer.Option(
            "--brand",
            help="run the command as this brand of a deployment serving several: its "
            'settings and secrets from --brands-dir (deploy/README.md "Several brands")',
        ),
    ] = None,
    brands_dir: Annotated[
        Path | None,
        typer.Option(
            "--brands-dir",
            help="folder of <brand>.yaml and <brand>.env "
            "[env ACS_KHAOS_BRANDS_DIR; default /etc/acs-khaos/brands]",
        ),
    ] = None,
) -> None:
    if brand is None:
        return
    from acs_khaos_dagster.brands import brands_dir as folder_of
    from acs_khaos_dagster.brands import enter_brand

    try:
        enter_brand(brand, folder_of(brands_dir))
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@scenario_app.command("generate")
def scenario_generate(
    size: Annotated[str, typer.Option(help="tiny | small | brand")] = "small",
    seed: Annotated[int, typer.Option(help="same seed, same bytes")] = 42,
    out: Annotated[Path | None, typer.Option(help="output folder")] = None,
    config: ConfigOption = None,
) -> None:
    """Write a deterministic brand scenario: manifest plus ACS stock and returns files."""
    from acs_khaos_dagster.sandbox.scenario.generator import generate_scenario

    settings = _settings(config)
    if size not in ("tiny", "small", "brand"):
        raise typer.BadParameter("size must be tiny, small or brand", param_hint="--size")
    folder = out or settings.data_dir / "scenarios" / f"{size}-{seed}"
    with _progress() as progress:
        tasks: dict[str, int] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        manifest = generate_scenario(
            size,
            seed,
            folder,
            account_code=settings.acs.account_code,
            progress=report,  # type: ignore[arg-type]
        )
    console.print(f"scenario written to [bold]{folder}[/bold]: {manifest.counts}")


@app.command()
def sandbox(
    scenario: Annotated[
        Path | None, typer.Option(help="scenario folder (generated if absent)")
    ] = None,
    acs_port: Annotated[int, typer.Option(help="ACS simulator port")] = 8701,
    khaos_port: Annotated[int, typer.Option(help="Khaos simulator port")] = 8702,
    variant: Annotated[
        str, typer.Option(help="install variant to simulate (sandbox/variants.py)")
    ] = "modelled",
    config: ConfigOption = None,
) -> None:
    """Serve the ACS and Khaos Control simulators on loopback until interrupted."""
    from acs_khaos_dagster.demo import ensure_scenario
    from acs_khaos_dagster.sandbox.runner import Sandbox
    from acs_khaos_dagster.sandbox.variants import VARIANTS

    if variant not in VARIANTS:
        console.print(f"[red]unknown variant {variant!r}; choose from {', '.join(VARIANTS)}[/red]")
        raise typer.Exit(2)
    settings = _settings(config)
    folder = scenario or ensure_scenario(settings, "small", 42)
    with Sandbox(
        folder,
        settings.drop_folder,
        settings,
        acs_port=acs_port,
        khaos_port=khaos_port,
        variant=VARIANTS[variant],
    ) as box:
        console.print(f"ACS simulator:   {box.acs_url}\nKhaos simulator: {box.khaos_url}")
        for name, value in VARIANTS[variant].settings.items():
            console.print(f"set for this variant: {name}={value}")
        console.print(
            "control: POST /_sandbox/clock/advance?minutes=N, /_sandbox/faults, GET /_sandbox/truth"
        )
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        with contextlib.suppress(KeyboardInterrupt):
            stopped.wait()


@app.command()
def demo(
    size: Annotated[str, typer.Option(help="scenario size")] = "small",
    seed: Annotated[int, typer.Option(help="scenario seed")] = 42,
    config: ConfigOption = None,
    brands: Annotated[
        int, typer.Option(help="generated brands, each its own world, on one instance")
    ] = 1,
) -> None:
    """Run a full integration cycle against the sandbox, through Dagster, and print a summary."""
    from acs_khaos_dagster.demo import run_demo

    settings = _settings(config)
    if brands != 1:
        from acs_khaos_dagster.demo_brands import run_brands_demo

        raise typer.Exit(
            run_brands_demo(settings, brands=brands, size=size, seed=seed, console=console)
        )
    raise typer.Exit(run_demo(settings, size=size, seed=seed, console=console))


def _settings(config: Path | None):
    try:
        return load_settings(config)
    except SettingsError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def main() -> None:
    logging.basicConfig(level=os.environ.get("ACS_KHAOS_LOG_LEVEL", "WARNING"))
    app()


if __name__ == "__main__":
    main()
